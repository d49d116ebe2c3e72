//! Netflix's Hystrix dashboard reads rampart's stream, and the turbine's,
//! in a real headless Chromium.
//!
//! The issue asks for "a hystrix.stream the real Hystrix dashboard and
//! Turbine read". This test runs that dashboard itself, unchanged: its
//! web app (`monitor/monitor.html`, `hystrixCommand.js`,
//! `hystrixThreadPool.js`, their templates, jQuery, d3) as published with
//! npm (`hystrix-dashboard` 1.0.4, `package/webapp`).
//!
//! # What runs
//!
//! - A tiny hyper server on 127.0.0.1 plays the dashboard's own server:
//!   the web app's files from `$RAMPART_HYSTRIX_DASHBOARD`, and
//!   `/proxy.stream?origin=URL` proxied to the stream as the dashboard's
//!   `ProxyStreamServlet` does (`origin` decoded, `http://` added if it
//!   has no scheme, every other parameter but `authorization` appended to
//!   it; the stream's status, headers and body passed through as they
//!   come).
//! - `monitor.html` loads underscore.js 1.8.3 from a CDN, which the test
//!   machine cannot reach: Chromium gets `$RAMPART_HYSTRIX_UNDERSCORE`
//!   (`underscore-min.js` of npm's `underscore` 1.8.3) from the test in
//!   its place (see `tests/support/browser.rs`).
//! - `.ci/run` fetches both packages into `target/hystrix-dashboard/`,
//!   checks their integrity and sets both variables.
//!
//! # What it proves
//!
//! 1. One instance: commands over a failing dependency (its breaker
//!    opens), a healthy one, and a pooled one, with the registry's
//!    [`HystrixStream`] on [`Server`]. `monitor.html?stream=…` shows, in
//!    its own markup, "Circuit Open" on the failing command's tile and
//!    "Circuit Closed" on the others, error percentages of 100 and 0, a
//!    request rate and a sparkline for the healthy command, and the pool's
//!    tile with its execution rate: every object passed the dashboard's
//!    `validateData` (an object missing a key is dropped with a
//!    `Key Missing` console message, which fails the test).
//! 2. A [`Turbine`] over two instances of one service. On the first, one
//!    command's dependency fails (its breaker opens) and another's
//!    breaker is forced open through the [`Registry`]; on the second both
//!    are closed. The dashboard shows 2 hosts, and the opened one's
//!    circuit as "Open 1 Closed 1" (its template's rendering of the
//!    count-map `{"true":1,"false":1}`), with an error percentage of 50
//!    (the hosts' 100 and 0, divided by `reportingHosts`) and rates that
//!    are numbers, not `NaN`. The forced one reads "Open 1 Closed 1" too:
//!    rampart's turbine sends `propertyValue_circuitBreakerForceOpen` as
//!    `false` unless every host is forced (Turbine 1.x would send the
//!    count-map, which the template reads as forced for the whole
//!    cluster).
//!
//! Neither page may throw. The screenshots are kept at
//! `target/test-artifacts/hystrix-dashboard.png` and
//! `hystrix-dashboard-turbine.png` (under `$CARGO_TARGET_DIR` when set),
//! with Chromium's log next to them. Every wait is bounded; the page is
//! polled, never waited for by sleeping.
//!
//! # Without the dashboard or Chromium
//!
//! Without Chromium, `$RAMPART_HYSTRIX_DASHBOARD` or
//! `$RAMPART_HYSTRIX_UNDERSCORE`: with `RAMPART_REQUIRE_BROWSER=1` (as CI
//! sets it) the test fails naming what is missing; otherwise it says on
//! stderr that it skipped, and passes.

#![cfg(feature = "stream")]

#[path = "support/browser.rs"]
mod browser;

use browser::{artifacts_dir, fail_with_log, find_chromium, keep_screenshot, missing, Browser};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::circuit_breaker::{CircuitBreakerHandle, State, Window};
use rampart::registry::Registry;
use rampart::stream::turbine::Turbine;
use rampart::stream::{HystrixStream, Server, Serving};
use rampart::{BoxError, Command};
use serde_json::Value;
use std::any::Any;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, timeout, Instant};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The whole browser test must finish within this.
const TEST_LIMIT: Duration = Duration::from_secs(150);
/// Each page must show what it must within this once loaded.
const PAGE_LIMIT: Duration = Duration::from_secs(30);
/// The services must reach the states the pages are to show within this.
const SETUP_LIMIT: Duration = Duration::from_secs(20);
/// The proxy's bound on reaching a stream (the servlet's connect timeout).
const PROXY_CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// Where `monitor.html` loads underscore.js from (scheme-relative).
const UNDERSCORE_URL: &str = "cdnjs.cloudflare.com/ajax/libs/underscore.js/1.8.3/underscore-min.js";

/// One instance's commands, by name.
const FAILING: &str = "PaymentsGet";
const HEALTHY: &str = "CatalogGet";
const POOLED: &str = "SearchGet";
/// The turbine's instances' commands: `TRIPPED`'s breaker is open on one
/// instance (its dependency fails there) and closed on the other;
/// `FORCED`'s is forced open on one and closed on the other.
const TRIPPED: &str = "InvoicesGet";
const FORCED: &str = "OrdersGet";
const SHARED_POOLED: &str = "StockGet";
/// The commands whose dependency fails, on some instance at least.
const TRIPS: [&str; 2] = [FAILING, TRIPPED];

const SCREENSHOT: &str = "hystrix-dashboard.png";
const TURBINE_SCREENSHOT: &str = "hystrix-dashboard-turbine.png";
const LOG: &str = "hystrix-dashboard-chromium.log";

// ===== the dashboard's server: its files, and proxy.stream =====

type Body = BoxBody<Bytes, hyper::Error>;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// The web app on 127.0.0.1, served as the dashboard's own server serves
/// it; stops when dropped.
struct Dashboard {
    addr: SocketAddr,
    /// Every request answered, `GET path -> status`, for failure messages.
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dashboard {
    async fn start(webapp: PathBuf) -> Dashboard {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let webapp = Arc::new(webapp);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            // Dropped with this task, closing every connection (and with
            // them the proxied streams).
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (webapp, client, log) = (webapp.clone(), client.clone(), log.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (webapp, client, log) = (webapp.clone(), client.clone(), log.clone());
                        async move {
                            let line = format!("{} {}", request.method(), request.uri());
                            let response = answer(&webapp, &client, request).await;
                            log.lock()
                                .unwrap()
                                .push(format!("{line} -> {}", response.status()));
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Dashboard {
            addr,
            requests,
            task,
        }
    }

    /// The monitor page reading `stream`, as the dashboard's home page
    /// links it (the stream URL encoded; `delay` and `title` beside it).
    fn monitor_url(&self, stream: &str, title: &str) -> String {
        format!(
            "http://{}/monitor/monitor.html?stream={}&delay=200&title={title}",
            self.addr,
            percent_encode(stream)
        )
    }

    /// The requests that were not answered `200`.
    fn failed_requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|line| !line.ends_with("200 OK"))
            .cloned()
            .collect()
    }
}

async fn answer(webapp: &Path, client: &HttpClient, request: Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only".into());
    }
    let uri = request.uri();
    if uri.path() == "/proxy.stream" {
        return proxy(client, uri.query().unwrap_or("")).await;
    }
    let Some(file) = file_for(webapp, uri.path()) else {
        return text(StatusCode::NOT_FOUND, format!("{} not found", uri.path()));
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let mut response = Response::new(full(bytes.into()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type(&file).parse().expect("a valid header value"),
            );
            response
        }
        Err(e) => text(StatusCode::NOT_FOUND, format!("{}: {e}", uri.path())),
    }
}

/// The file under `webapp` for a URL path; `None` for a path that would
/// leave it.
fn file_for(webapp: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(webapp.join(relative))
}

/// The content type the dashboard's own server gives each of its files.
fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// `proxy.stream`: the stream at the rebuilt origin, passed through.
async fn proxy(client: &HttpClient, query: &str) -> Response<Body> {
    let url = match origin_url(query) {
        Ok(url) => url,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let uri: Uri = match url.parse() {
        Ok(uri) => uri,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{url}: {e}")),
    };
    match timeout(PROXY_CONNECT_LIMIT, client.get(uri)).await {
        Ok(Ok(upstream)) => {
            let (mut parts, body) = upstream.into_parts();
            // Hop by hop: hyper frames the body for this connection itself.
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.remove(header::CONNECTION);
            Response::from_parts(parts, body.boxed())
        }
        Ok(Err(e)) => text(StatusCode::BAD_GATEWAY, format!("proxying {url}: {e}")),
        Err(_) => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!("proxying {url}: no answer within {PROXY_CONNECT_LIMIT:?}"),
        ),
    }
}

/// The stream URL `proxy.stream` opens, as the dashboard's
/// `ProxyStreamServlet` builds it from its parameters: `origin`, with
/// `http://` if it has no scheme, then every other parameter but
/// `authorization` (`monitor.html` appends `&delay=…` to the origin,
/// which so becomes a parameter of its own).
fn origin_url(query: &str) -> Result<String, String> {
    let mut origin = None;
    let mut others = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key)?, percent_decode(value)?);
        match key.as_str() {
            "origin" => {
                origin.get_or_insert(value);
            }
            "authorization" => {}
            _ => others.push((key, value)),
        }
    }
    let origin = origin.ok_or("Required parameter 'origin' missing")?;
    let origin = origin.trim();
    let mut url = if origin.starts_with("http") {
        origin.to_owned()
    } else {
        format!("http://{origin}")
    };
    let mut has_query = origin.contains('?');
    for (key, value) in others {
        url.push(if has_query { '&' } else { '?' });
        has_query = true;
        url.push_str(&format!("{key}={}", value.trim()));
    }
    Ok(url)
}

/// A query parameter as a servlet reads it: `%XX` and `+` decoded.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {text:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

/// `encodeURIComponent`, as the dashboard's home page encodes the stream.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'~' => {
                char::from(b).to_string()
            }
            b'*' | b'\'' | b'(' | b')' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(full(message.into()));
    *response.status_mut() = status;
    response
}

#[test]
fn the_proxy_opens_the_stream_the_servlet_would() {
    // monitor.html's `"../proxy.stream?origin=" + stream + "&delay=" + delay`.
    assert_eq!(
        origin_url("origin=http://127.0.0.1:9000/hystrix.stream&delay=200").unwrap(),
        "http://127.0.0.1:9000/hystrix.stream?delay=200"
    );
    assert_eq!(
        origin_url("origin=http://127.0.0.1:9000/turbine.stream?cluster=default&delay=200")
            .unwrap(),
        "http://127.0.0.1:9000/turbine.stream?cluster=default&delay=200"
    );
    assert_eq!(
        origin_url("origin=127.0.0.1:9000/hystrix.stream&authorization=secret").unwrap(),
        "http://127.0.0.1:9000/hystrix.stream"
    );
    assert_eq!(
        origin_url("origin=http%3A%2F%2Fh%3A1%2Fs%3Fa%3D1").unwrap(),
        "http://h:1/s?a=1"
    );
    assert!(origin_url("delay=200").is_err());
    assert!(origin_url("origin=%zz").is_err());
    assert_eq!(
        percent_encode("http://127.0.0.1:9/turbine.stream?cluster=a b"),
        "http%3A%2F%2F127.0.0.1%3A9%2Fturbine.stream%3Fcluster%3Da%20b"
    );
    assert_eq!(
        percent_decode(&percent_encode("a/b?c=d&e")).unwrap(),
        "a/b?c=d&e"
    );
}

#[test]
fn files_have_the_content_types_browsers_need() {
    for (file, expected) in [
        ("monitor/monitor.html", "text/html; charset=utf-8"),
        ("js/d3.v2.min.js", "application/javascript; charset=utf-8"),
        ("css/global.css", "text/css; charset=utf-8"),
        ("images/hystrix-logo.png", "image/png"),
    ] {
        assert_eq!(content_type(Path::new(file)), expected, "{file}");
    }
    let webapp = Path::new("/srv/webapp");
    assert_eq!(
        file_for(webapp, "/monitor/monitor.html"),
        Some(webapp.join("monitor/monitor.html"))
    );
    assert_eq!(file_for(webapp, "/../secret"), None);
    assert_eq!(file_for(webapp, "/js/../../secret"), None);
}

// ===== the services under watch =====

/// A failure of the dependency.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the dependency failed")
    }
}

impl std::error::Error for Refused {}

/// A dependency answering after `delay`, or failing if `fails`.
async fn dependency(delay: Duration, fails: bool) -> Result<&'static str, BoxError> {
    sleep(delay).await;
    if fails {
        Err(Refused.into())
    } else {
        Ok("answer")
    }
}

/// Calls each of `services` in turn until the task is aborted, so rates
/// and sparklines move.
fn keep_calling<S>(mut services: Vec<S>) -> JoinHandle<()>
where
    S: Service<(), Response = &'static str, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    tokio::spawn(async move {
        loop {
            for service in &mut services {
                if let Ok(ready) = service.ready().await {
                    let _ = ready.call(()).await;
                }
            }
            sleep(Duration::from_millis(15)).await;
        }
    })
}

type Boxed = tower::util::BoxService<(), &'static str, BoxError>;

/// One rampart instance: its registry, its commands, its stream.
struct Instance {
    registry: Registry,
    stream: Serving,
    /// The pool-isolated command's pool.
    pool: String,
    tasks: Vec<JoinHandle<()>>,
    // The registry keeps only weak references: the commands must live.
    _commands: Vec<Box<dyn Any + Send>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Instance {
    /// An instance with a semaphore-isolated command per `(name,
    /// failing)`, whose dependency always fails if `failing` and always
    /// answers otherwise, and a pool-isolated command `pooled` that always
    /// answers. Every breaker trips after 5 calls at 50 % failures; those
    /// of the commands whose dependency fails somewhere ([`TRIPS`]) stay
    /// open for the whole test, with their failures in their window as
    /// long, so the dashboard shows them however slowly Chromium starts
    /// (the same settings on every instance, as one service's deployment
    /// has). The others keep Hystrix's 10 s window, so their rates read
    /// as the traffic is.
    async fn start(commands: &[(&str, bool)], pooled: &str) -> Instance {
        let registry = Registry::new();
        let mut kept: Vec<Box<dyn Any + Send>> = Vec::new();
        let mut services: Vec<Boxed> = Vec::new();
        for &(name, failing) in commands {
            let command = Command::builder(name)
                .group(name.trim_end_matches("Get"))
                .registry(&registry)
                .timeout(Duration::from_millis(500))
                .bulkhead(8)
                .breaker(|b| {
                    let b = b.min_calls(5).failure_rate(0.5);
                    if TRIPS.contains(&name) {
                        b.window(Window::time(Duration::from_secs(600), 10))
                            .open_for(Duration::from_secs(600))
                    } else {
                        b
                    }
                })
                .build()
                .unwrap();
            kept.push(Box::new(command.clone()));
            let delay = Duration::from_millis(if failing { 2 } else { 6 });
            services.push(Boxed::new(
                ServiceBuilder::new()
                    .layer(command)
                    .service(service_fn(move |()| dependency(delay, failing))),
            ));
        }
        let command = Command::builder(pooled)
            .group(pooled.trim_end_matches("Get"))
            .registry(&registry)
            .timeout(Duration::from_millis(500))
            .pool(4, 2)
            .build()
            .unwrap();
        let pool = command.pool().name().to_owned();
        kept.push(Box::new(command.clone()));
        services.push(Boxed::new(ServiceBuilder::new().layer(command).service(
            service_fn(|()| dependency(Duration::from_millis(3), false)),
        )));
        let traffic = keep_calling(services);
        let stream = HystrixStream::builder()
            .registry(&registry)
            .build()
            .unwrap();
        let stream = Server::new(stream).start().await.unwrap();
        Instance {
            registry,
            stream,
            pool,
            tasks: vec![traffic],
            _commands: kept,
        }
    }

    fn breaker(&self, name: &str) -> CircuitBreakerHandle {
        self.registry
            .breakers()
            .into_iter()
            .find(|b| b.name() == name)
            .unwrap_or_else(|| panic!("setup: no breaker named {name} in the registry"))
    }

    fn stream_url(&self) -> String {
        self.stream.url("/hystrix.stream")
    }
}

/// Waits until `breaker` is in `state`.
async fn settle(breaker: &CircuitBreakerHandle, state: State) {
    let deadline = Instant::now() + SETUP_LIMIT;
    while breaker.state() != state {
        assert!(
            Instant::now() < deadline,
            "setup: within {SETUP_LIMIT:?} {}'s breaker should be {state:?} (is {:?})",
            breaker.name(),
            breaker.state(),
        );
        sleep(Duration::from_millis(20)).await;
    }
}

// ===== the dashboard, as Chromium draws it =====

#[tokio::test]
async fn the_real_hystrix_dashboard_reads_the_stream_and_the_turbine() {
    let Some(chromium) = find_chromium() else {
        return missing(
            "no Chromium found ($RAMPART_CHROMIUM unset; none of chromium, \
             chromium-browser, google-chrome, google-chrome-stable on PATH)",
            "install it (apt-get install chromium) or point RAMPART_CHROMIUM at it",
        );
    };
    let fetch = "run the step of .ci/run that fetches them (npm pack hystrix-dashboard@1.0.4 \
                 underscore@1.8.3, unpacked), or set RAMPART_HYSTRIX_DASHBOARD to the \
                 hystrix-dashboard package's webapp/ and RAMPART_HYSTRIX_UNDERSCORE to the \
                 underscore package's underscore-min.js";
    let webapp = match std::env::var_os("RAMPART_HYSTRIX_DASHBOARD") {
        Some(dir) if Path::new(&dir).join("monitor/monitor.html").is_file() => PathBuf::from(dir),
        Some(dir) => {
            return missing(
                &format!(
                    "RAMPART_HYSTRIX_DASHBOARD ({}) has no monitor/monitor.html: it is not the \
                     Hystrix dashboard's web app",
                    Path::new(&dir).display()
                ),
                fetch,
            )
        }
        None => {
            return missing(
                "the Hystrix dashboard's web app is missing (RAMPART_HYSTRIX_DASHBOARD unset)",
                fetch,
            )
        }
    };
    let underscore = match std::env::var_os("RAMPART_HYSTRIX_UNDERSCORE") {
        Some(file) if Path::new(&file).is_file() => std::fs::read(&file).unwrap(),
        Some(file) => {
            return missing(
                &format!(
                    "RAMPART_HYSTRIX_UNDERSCORE ({}) is not a file",
                    Path::new(&file).display()
                ),
                fetch,
            )
        }
        None => {
            return missing(
                "underscore.js for the Hystrix dashboard is missing \
                 (RAMPART_HYSTRIX_UNDERSCORE unset)",
                fetch,
            )
        }
    };
    let monitor = std::fs::read_to_string(webapp.join("monitor/monitor.html")).unwrap();
    assert!(
        monitor.contains(&format!("src=\"//{UNDERSCORE_URL}\"")),
        "monitor.html no longer loads underscore.js from //{UNDERSCORE_URL}: \
         not the web app of hystrix-dashboard 1.0.4?"
    );
    let artifacts = artifacts_dir();
    let failure = match timeout(
        TEST_LIMIT,
        browse(&chromium, webapp, underscore, &artifacts),
    )
    .await
    {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => format!("the browser test took longer than {TEST_LIMIT:?}"),
    };
    fail_with_log(&failure, &artifacts.join(LOG));
}

/// What the test reads from the page: the dashboard's own markup (the
/// templates `hystrixCircuit.html`, `hystrixCircuitContainer.html`,
/// `hystrixThreadPool.html` and `monitor.html`'s containers), each tile by
/// the name it shows.
const READ_PAGE: &str = r#"(() => {
  const squash = (node) => node ? node.textContent.replace(/\s+/g, ' ').trim() : null;
  const tiles = (container) => Object.fromEntries(
    [...document.querySelectorAll(`#${container} div.monitor`)].map((tile) => {
      const field = (selector) => squash(tile.querySelector(selector));
      const header = [...tile.querySelectorAll('.cell.header')]
        .find((cell) => squash(cell) === 'Hosts');
      return [field('p.name'), {
        circuit: field('div.circuitStatus'),
        hosts: header ? squash(header.nextElementSibling) : null,
        error: field('.errorPercentage .value'),
        rate: field('.ratePerSecond'),
        ratePerHost: field('.ratePerSecondPerHost'),
        sparkline: ((d) => d ? (d.includes('NaN') ? 'NaN' : 'drawn') : null)(
          tile.querySelector('.graph path')?.getAttribute('d')),
        text: field('div.monitor_data'),
      }];
    }));
  return JSON.stringify({
    loading: [...document.querySelectorAll('.loading')].map(squash),
    commands: tiles('dependencies_0'),
    pools: tiles('dependencyThreadPools_0'),
  });
})()"#;

async fn browse(
    chromium: &Path,
    webapp: PathBuf,
    underscore: Vec<u8>,
    artifacts: &Path,
) -> Result<(), String> {
    let dashboard = Dashboard::start(webapp).await;

    // One instance.
    let instance = Instance::start(&[(FAILING, true), (HEALTHY, false)], POOLED).await;
    settle(&instance.breaker(FAILING), State::Open).await;

    // Two instances of one service, behind a turbine: on the first,
    // `TRIPPED`'s dependency fails and `FORCED`'s breaker is forced open
    // through the registry, as an operator's tool would.
    let first = Instance::start(&[(TRIPPED, true), (FORCED, false)], SHARED_POOLED).await;
    let second = Instance::start(&[(TRIPPED, false), (FORCED, false)], SHARED_POOLED).await;
    first.breaker(FORCED).force_open();
    settle(&first.breaker(TRIPPED), State::Open).await;
    let turbine = Turbine::builder()
        .cluster("default", [first.stream_url(), second.stream_url()])
        .build()
        .map_err(|e| format!("building the turbine: {e}"))?;
    let turbine = Server::new(turbine).start().await.unwrap();

    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hystrix-dashboard-{}", std::process::id()));
    let mut browser = Browser::launch(chromium, &profile, &artifacts.join(LOG)).await?;
    browser.stand_in(
        UNDERSCORE_URL,
        "application/javascript; charset=utf-8",
        underscore,
    );
    let result = async {
        let url = dashboard.monitor_url(&instance.stream_url(), "rampart");
        check_page(
            &mut browser,
            &dashboard,
            &url,
            artifacts,
            SCREENSHOT,
            |shown| one_instance_missing(shown, &instance.pool),
        )
        .await?;
        let url = dashboard.monitor_url(&turbine.url("/turbine.stream?cluster=default"), "turbine");
        check_page(
            &mut browser,
            &dashboard,
            &url,
            artifacts,
            TURBINE_SCREENSHOT,
            |shown| turbine_missing(shown, &second.pool),
        )
        .await
    }
    .await;
    browser.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// Opens `url` and polls the page until `what_is_missing` says nothing is,
/// then keeps a screenshot; fails if the dashboard dropped an object or
/// the page threw.
async fn check_page(
    browser: &mut Browser,
    dashboard: &Dashboard,
    url: &str,
    artifacts: &Path,
    screenshot: &str,
    what_is_missing: impl Fn(&Value) -> Option<String>,
) -> Result<(), String> {
    let page = browser.open(url).await?;
    let deadline = Instant::now() + PAGE_LIMIT;
    let shown = loop {
        let shown: Value = serde_json::from_str(
            browser
                .evaluate(&page, READ_PAGE)
                .await?
                .as_str()
                .ok_or("the page read returned no string")?,
        )
        .map_err(|e| format!("the page read is not JSON: {e}"))?;
        // The dashboard drops an object it cannot read, saying why only on
        // the console: `Failed preProcessData: Key Missing: …`.
        let rejected: Vec<&String> = browser
            .console
            .iter()
            .filter(|line| line.contains("Failed preProcessData") || line.contains("Error"))
            .collect();
        if !rejected.is_empty() || !browser.exceptions.is_empty() {
            return Err(format!(
                "loading {url}, the dashboard rejected what it read: {rejected:#?}\n\
                 exceptions: {:#?}\nit showed: {shown:#}",
                browser.exceptions
            ));
        }
        match what_is_missing(&shown) {
            None => break shown,
            Some(missing) if Instant::now() >= deadline => {
                return Err(format!(
                    "within {PAGE_LIMIT:?} of loading {url} the dashboard did not show what \
                     it should: {missing}\nit showed: {shown:#}\nrequests not answered 200: \
                     {:#?}\nconsole: {:#?}",
                    dashboard.failed_requests(),
                    browser.console
                ))
            }
            Some(_) => sleep(Duration::from_millis(200)).await,
        }
    };
    let png = browser.screenshot(&page).await?;
    keep_screenshot(artifacts, screenshot, &png)?;
    if !browser.exceptions.is_empty() {
        return Err(format!(
            "the page threw: {:#?}\nit showed: {shown:#}",
            browser.exceptions
        ));
    }
    Ok(())
}

/// A number the dashboard printed, if it is one (`1,234.5` included).
fn number(shown: &Value) -> Option<f64> {
    shown
        .as_str()?
        .replace(',', "")
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
}

/// What no tile may show: a value the dashboard could not compute.
fn garbled(tiles: &Value) -> Option<String> {
    for (name, tile) in tiles.as_object()? {
        let text = tile.to_string();
        if text.contains("NaN") || text.contains("undefined") || text.contains("Infinity") {
            return Some(format!(
                "{name}'s tile shows a value it could not compute: {tile}"
            ));
        }
    }
    None
}

/// The pool's tile, with its executions counted.
fn pool_missing(shown: &Value, pool: &str) -> Option<String> {
    let tile = &shown["pools"][pool];
    if tile.is_null() {
        return Some(format!("no thread pool tile for {pool}"));
    }
    if !number(&tile["rate"]).is_some_and(|rate| rate > 0.0) {
        return Some(format!("the {pool} pool's execution rate: {tile}"));
    }
    None
}

fn one_instance_missing(shown: &Value, pool: &str) -> Option<String> {
    let tile = |name: &str| &shown["commands"][name];
    for (name, circuit) in [
        (FAILING, "Circuit Open"),
        (HEALTHY, "Circuit Closed"),
        (POOLED, "Circuit Closed"),
    ] {
        if tile(name).is_null() {
            return Some(format!("no tile for {name}"));
        }
        if tile(name)["circuit"] != circuit {
            return Some(format!(
                "{name}'s tile should say {circuit:?}: {}",
                tile(name)
            ));
        }
        if tile(name)["hosts"] != "1" {
            return Some(format!("{name}'s tile should say 1 host: {}", tile(name)));
        }
    }
    // Every call the failing command lets through fails; the others never.
    if tile(FAILING)["error"] != "100.0" || tile(HEALTHY)["error"] != "0.0" {
        return Some(format!(
            "error percentages of {FAILING} and {HEALTHY}: {} and {}",
            tile(FAILING)["error"],
            tile(HEALTHY)["error"]
        ));
    }
    if !number(&tile(HEALTHY)["rate"]).is_some_and(|rate| rate > 0.0) {
        return Some(format!("{HEALTHY}'s rate: {}", tile(HEALTHY)["rate"]));
    }
    // Drawn by d3 from the rates: a line once two differ.
    if tile(HEALTHY)["sparkline"] != "drawn" {
        return Some(format!(
            "{HEALTHY}'s sparkline: {}",
            tile(HEALTHY)["sparkline"]
        ));
    }
    pool_missing(shown, pool)
        .or_else(|| garbled(&shown["commands"]))
        .or_else(|| garbled(&shown["pools"]))
}

fn turbine_missing(shown: &Value, pool: &str) -> Option<String> {
    let tile = |name: &str| &shown["commands"][name];
    for (name, circuit) in [
        // Open on one host, closed on the other: `isCircuitBreakerOpen`
        // is the count-map `{"true":1,"false":1}`, which the template
        // prints so.
        (TRIPPED, "Circuit Open 1 Closed 1"),
        // Forced open on one host: the turbine says the cluster is not
        // forced (only one host is), so the template shows the count-map
        // of `isCircuitBreakerOpen`, not "Forced Open" for everyone.
        (FORCED, "Circuit Open 1 Closed 1"),
        (SHARED_POOLED, "Circuit Closed"),
    ] {
        if tile(name).is_null() {
            return Some(format!("no tile for {name}"));
        }
        if tile(name)["circuit"] != circuit {
            return Some(format!(
                "{name}'s tile should say {circuit:?}: {}",
                tile(name)
            ));
        }
        if tile(name)["hosts"] != "2" {
            return Some(format!("{name}'s tile should say 2 hosts: {}", tile(name)));
        }
    }
    // What the dashboard divides by reportingHosts: numbers, not NaN. The
    // error percentage is the hosts' mean: 100 on one, 0 on the other.
    let tripped = tile(TRIPPED);
    for field in ["rate", "ratePerHost", "error"] {
        if number(&tripped[field]).is_none() {
            return Some(format!("{TRIPPED}'s {field} is not a number: {tripped}"));
        }
    }
    if tripped["error"] != "50.0" {
        return Some(format!(
            "{TRIPPED}'s error percentage: {}",
            tripped["error"]
        ));
    }
    for name in [TRIPPED, FORCED] {
        if !number(&tile(name)["rate"]).is_some_and(|rate| rate > 0.0) {
            return Some(format!("{name}'s cluster rate: {}", tile(name)["rate"]));
        }
    }
    pool_missing(shown, pool)
        .or_else(|| garbled(&shown["commands"]))
        .or_else(|| garbled(&shown["pools"]))
}
