//! rampart's dashboard page, in a real headless Chromium.
//!
//! The test starts, on 127.0.0.1, two dependencies as hyper servers (one
//! answering `500`, one `200`), a command in front of each (and a pooled
//! one), a balancer over three instances of which one refuses connections,
//! and the registry's [`HystrixStream`] served with [`Server`]. Traffic
//! keeps flowing while Chromium loads the dashboard page; the test then
//! reads the rendered DOM through the page's documented hooks: the failing
//! command's tile must say its breaker is open, the healthy one's closed,
//! the refusing instance ejected. The screenshot is kept at
//! `target/test-artifacts/dashboard.png` (under `$CARGO_TARGET_DIR` when
//! set), with Chromium's own log next to it.
//!
//! Chromium is driven over the DevTools protocol by `tests/support/browser.rs`
//! (shared with `tests/hystrix_dashboard.rs`): every wait is bounded, the
//! browser is killed if the test fails. Without Chromium, with
//! `RAMPART_REQUIRE_BROWSER=1` (as CI sets it) the test fails saying so;
//! otherwise it says it skipped and passes, so a `cargo test` without a
//! browser stays green.

#![cfg(feature = "stream")]

#[path = "support/browser.rs"]
mod browser;

use browser::{artifacts_dir, fail_with_log, find_chromium, keep_screenshot, missing, Browser};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, BalanceHandle, Endpoint, Endpoints};
use rampart::circuit_breaker::{CircuitBreakerHandle, State, Window};
use rampart::registry::Registry;
use rampart::stream::{HystrixStream, Server, Serving};
use rampart::{BoxError, Command};
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, timeout, Instant};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The whole browser test must finish within this.
const TEST_LIMIT: Duration = Duration::from_secs(120);
/// The page must show the breakers' states within this once loaded.
const PAGE_LIMIT: Duration = Duration::from_secs(30);
/// The services must reach the states the page is to show within this.
const SETUP_LIMIT: Duration = Duration::from_secs(20);

/// The commands the page must show, by name.
const FAILING: &str = "PaymentsGet";
const HEALTHY: &str = "CatalogGet";
const POOLED: &str = "SearchGet";
/// The balancer, and how many of its instances answer.
const BALANCER: &str = "ratings";
/// The discovery the page must show, whose etcd refuses connections.
#[cfg(feature = "etcd")]
const DISCOVERED: &str = "reviews";
const LIVE_INSTANCES: usize = 2;

// ===== the dependencies: hyper servers on 127.0.0.1 =====

/// A server answering every request with `status` after `delay`; it stops
/// with its task.
async fn serve(status: StatusCode, delay: Duration) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Dropped with this task, closing every connection.
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<Incoming>| async move {
                    sleep(delay).await;
                    let mut response = Response::new(Full::new(Bytes::from_static(b"answer")));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// An address on 127.0.0.1 where nothing listens: connecting is refused.
async fn refusing_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A dependency's failure in an answer other than `2xx`.
#[derive(Debug)]
struct HttpStatus(StatusCode);

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dependency answered {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}

/// GETs `uri`: a `2xx` is the answer, anything else an error (the breaker
/// only counts errors as failures).
async fn get(client: HttpClient, uri: Uri) -> Result<StatusCode, BoxError> {
    let response = client.get(uri).await?;
    let status = response.status();
    response.into_body().collect().await?;
    if status.is_success() {
        Ok(status)
    } else {
        Err(HttpStatus(status).into())
    }
}

fn uri(addr: SocketAddr, path: &str) -> Uri {
    format!("http://{addr}{path}").parse().unwrap()
}

// ===== the services under watch =====

/// Everything the page is to show, running; it all stops when dropped.
struct Scene {
    failing: CircuitBreakerHandle,
    healthy: CircuitBreakerHandle,
    balancer: BalanceHandle,
    refusing: SocketAddr,
    stream: Serving,
    tasks: Vec<JoinHandle<()>>,
    #[cfg(feature = "etcd")]
    _discovery: rampart::discovery::Discovery,
}

impl Drop for Scene {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Scene {
    async fn start() -> Scene {
        let registry = Registry::new();
        let (bad_addr, bad_server) =
            serve(StatusCode::INTERNAL_SERVER_ERROR, Duration::from_millis(2)).await;
        let (good_addr, good_server) = serve(StatusCode::OK, Duration::from_millis(6)).await;
        let (other_addr, other_server) = serve(StatusCode::OK, Duration::from_millis(9)).await;
        let refusing = refusing_address().await;
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        // The failing dependency's breaker trips after 5 calls and stays
        // open for the whole test; its failures stay in its window as
        // long, so the page keeps showing 100 % errors however slowly
        // Chromium starts.
        let failing = Command::builder(FAILING)
            .group("Payments")
            .registry(&registry)
            .timeout(Duration::from_millis(500))
            .bulkhead(8)
            .breaker(|b| {
                b.window(Window::time(Duration::from_secs(600), 10))
                    .min_calls(5)
                    .failure_rate(0.5)
                    .open_for(Duration::from_secs(600))
            })
            .fallback_sync(|_| Ok(StatusCode::OK))
            .build()
            .unwrap();
        let healthy = Command::builder(HEALTHY)
            .group("Catalog")
            .registry(&registry)
            .timeout(Duration::from_millis(500))
            .bulkhead(8)
            .build()
            .unwrap();
        let pooled = Command::builder(POOLED)
            .group("Search")
            .registry(&registry)
            .timeout(Duration::from_millis(500))
            .pool(4, 2)
            .build()
            .unwrap();
        let (failing_breaker, healthy_breaker) = (failing.breaker(), healthy.breaker());

        // Round robin, so the refusing instance gets its share of first
        // attempts and is ejected after 3 refusals in a row, for longer
        // than the test runs.
        let instances = [good_addr, other_addr, refusing].map(|addr| {
            let client = client.clone();
            let target = uri(addr, "/ratings");
            Endpoint::new(
                addr,
                service_fn(move |()| get(client.clone(), target.clone())),
            )
        });
        let balance = Balance::builder(BALANCER)
            .registry(&registry)
            .rule(RoundRobin::new())
            .eject_after(3)
            .eject_for(Duration::from_secs(600), Duration::from_secs(600))
            .build(Endpoints::fixed(instances))
            .unwrap();
        let balancer = balance.handle();

        let call = |addr: SocketAddr, path: &str| {
            let client = client.clone();
            let target = uri(addr, path);
            move |()| get(client.clone(), target.clone())
        };
        let mut failing_svc = ServiceBuilder::new()
            .layer(failing)
            .service_fn(call(bad_addr, "/payments"));
        let mut healthy_svc = ServiceBuilder::new()
            .layer(healthy)
            .service_fn(call(good_addr, "/catalog"));
        let mut pooled_svc = ServiceBuilder::new()
            .layer(pooled)
            .service_fn(call(other_addr, "/search"));
        let mut balance = balance;
        // Traffic for the whole test, so rates and sparklines move.
        let traffic = tokio::spawn(async move {
            loop {
                if let Ok(ready) = failing_svc.ready().await {
                    let _ = ready.call(()).await;
                }
                if let Ok(ready) = healthy_svc.ready().await {
                    let _ = ready.call(()).await;
                }
                if let Ok(ready) = pooled_svc.ready().await {
                    let _ = ready.call(()).await;
                }
                if let Ok(ready) = balance.ready().await {
                    let _ = ready.call(()).await;
                }
                sleep(Duration::from_millis(15)).await;
            }
        });

        // An etcd that refuses connections: the discovery never reads it,
        // and the page says its first read is pending.
        #[cfg(feature = "etcd")]
        let discovery = {
            let etcd = etcd_client::Client::connect([format!("http://{refusing}")], None)
                .await
                .unwrap();
            rampart::discovery::Discovery::builder(DISCOVERED)
                .registry(&registry)
                .start(etcd)
                .unwrap()
        };

        let stream = HystrixStream::builder()
            .registry(&registry)
            .build()
            .unwrap();
        let stream = Server::new(stream).start().await.unwrap();
        Scene {
            #[cfg(feature = "etcd")]
            _discovery: discovery,
            failing: failing_breaker,
            healthy: healthy_breaker,
            balancer,
            refusing,
            stream,
            tasks: vec![traffic, bad_server, good_server, other_server],
        }
    }

    /// Waits until the failing breaker is open and the refusing instance
    /// ejected: what the page is then to show.
    async fn settle(&self) {
        let deadline = Instant::now() + SETUP_LIMIT;
        loop {
            let ejected = self
                .balancer
                .endpoints()
                .iter()
                .any(|e| e.key == format!("{:?}", self.refusing) && e.ejected);
            if self.failing.state() == State::Open && ejected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "setup: within {SETUP_LIMIT:?} the failing breaker should be open (is {:?}) \
                 and {} ejected (is {ejected})",
                self.failing.state(),
                self.refusing,
            );
            sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            self.healthy.state(),
            State::Closed,
            "setup: healthy breaker"
        );
    }
}

// ===== the page, as a plain HTTP client sees it (no browser needed) =====

async fn fetch(method: Method, url: &str) -> (StatusCode, String, String) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let response = timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("the server answers within 10 s")
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_page_is_served_next_to_the_stream() {
    let serving = Server::new(
        HystrixStream::builder()
            .registry(&Registry::new())
            .build()
            .unwrap(),
    )
    .start()
    .await
    .unwrap();
    // At the root, by name, and under any prefix (the page then reads the
    // stream next to it: `hystrix.stream` is relative).
    for path in [
        "/",
        "/dashboard",
        "/index.html",
        "/admin/",
        "/admin/dashboard",
    ] {
        let (status, content_type, body) = fetch(Method::GET, &serving.url(path)).await;
        assert_eq!(status, StatusCode::OK, "GET {path}");
        assert_eq!(content_type, "text/html;charset=UTF-8", "GET {path}");
        assert!(
            body.starts_with("<!doctype html>"),
            "GET {path}: {body:.80}"
        );
        assert!(body.contains("new EventSource(streamUrl)"), "GET {path}");
        assert!(
            body.contains("params.get('stream') || 'hystrix.stream'"),
            "GET {path}: the default stream is the relative hystrix.stream"
        );
    }
    // Self-contained: nothing to fetch but the stream.
    let (_, _, body) = fetch(Method::GET, &serving.url("/")).await;
    for outside in ["<link", "<script src", "<img", "<iframe", "@import", "url("] {
        assert!(
            !body.contains(outside),
            "the page refers outside: {outside}"
        );
    }
    let (status, _, body) = fetch(Method::HEAD, &serving.url("/dashboard")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let (status, _, _) = fetch(Method::POST, &serving.url("/dashboard")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, body) = fetch(Method::GET, &serving.url("/dashboard.html")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("hystrix.stream") && body.contains("dashboard"),
        "{body}"
    );
}

// ===== the page, as Chromium draws it =====

#[tokio::test]
async fn the_page_shows_which_breakers_are_open() {
    let Some(chromium) = find_chromium() else {
        return missing(
            "no Chromium found ($RAMPART_CHROMIUM unset; none of chromium, \
             chromium-browser, google-chrome, google-chrome-stable on PATH)",
            "install it (apt-get install chromium) or point RAMPART_CHROMIUM at it",
        );
    };
    let artifacts = artifacts_dir();
    let failure = match timeout(TEST_LIMIT, browse(&chromium, &artifacts)).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => format!("the browser test took longer than {TEST_LIMIT:?}"),
    };
    fail_with_log(&failure, &artifacts.join(LOG));
}

const SCREENSHOT: &str = "dashboard.png";
const LOG: &str = "chromium.log";

/// What the test reads from the page, through its documented hooks.
const READ_PAGE: &str = r#"JSON.stringify({
  connection: document.querySelector('[data-connection]')?.dataset.connection,
  commands: Object.fromEntries([...document.querySelectorAll('[data-command]')].map((tile) => {
    const field = (f) => tile.querySelector(`[data-field="${f}"]`);
    return [tile.dataset.command, {
      tile: tile.dataset.state,
      state: field('state').dataset.state,
      text: field('state').textContent,
      error: field('error').textContent,
      rate: field('rate').textContent,
    }];
  })),
  endpoints: [...document.querySelectorAll('[data-balancer] tr[data-endpoint]')].map((row) => ({
    balancer: row.closest('[data-balancer]').dataset.balancer,
    endpoint: row.dataset.endpoint,
    status: row.dataset.status,
  })),
  discoveries: Object.fromEntries([...document.querySelectorAll('tr[data-discovery]')].map((row) => {
    const field = (f) => row.querySelector(`[data-field="${f}"]`).textContent;
    return [row.dataset.discovery, { status: row.dataset.status, text: field('status'), offered: field('offered'), hidden: row.closest('section').hidden }];
  })),
})"#;

async fn browse(chromium: &Path, artifacts: &Path) -> Result<(), String> {
    let scene = Scene::start().await;
    scene.settle().await;

    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dashboard-browser-{}", std::process::id()));
    let mut browser = Browser::launch(chromium, &profile, &artifacts.join(LOG)).await?;
    let result = check_page(&mut browser, &scene, artifacts).await;
    browser.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    result
}

async fn check_page(browser: &mut Browser, scene: &Scene, artifacts: &Path) -> Result<(), String> {
    // The stream parameter as an operator would write it for a Turbine,
    // query string and all; a short delay so the page fills quickly.
    let url = scene
        .stream
        .url("/dashboard?stream=hystrix.stream%3Fdelay%3D200&theme=dark");
    let page = browser.open(&url).await?;

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
        match what_is_missing(&shown, scene) {
            None => break shown,
            Some(missing) if Instant::now() >= deadline => {
                return Err(format!(
                    "within {PAGE_LIMIT:?} of loading {url} the page did not show what it \
                     should: {missing}\nit showed: {shown:#}"
                ))
            }
            Some(_) => sleep(Duration::from_millis(200)).await,
        }
    };
    // A second more, for the sparklines to draw a line, then the picture.
    sleep(Duration::from_secs(2)).await;
    let png = browser.screenshot(&page).await?;
    keep_screenshot(artifacts, SCREENSHOT, &png)?;

    if !browser.exceptions.is_empty() {
        return Err(format!(
            "the page threw: {:#?}\nit showed: {shown:#}",
            browser.exceptions
        ));
    }
    Ok(())
}

/// `None` when the page shows what it must, else what it does not.
fn what_is_missing(shown: &Value, scene: &Scene) -> Option<String> {
    if shown["connection"] != "connected" {
        return Some(format!("status line says {}", shown["connection"]));
    }
    let tile = |name: &str| &shown["commands"][name];
    for (name, state) in [(FAILING, "open"), (HEALTHY, "closed"), (POOLED, "closed")] {
        let t = tile(name);
        if t.is_null() {
            return Some(format!("no tile for {name}"));
        }
        if t["state"] != state || t["text"] != state || t["tile"] != state {
            return Some(format!("{name}'s tile should say {state}: {t}"));
        }
    }
    // Every call the failing command lets through fails; the others never.
    if tile(FAILING)["error"] != "100" || tile(HEALTHY)["error"] != "0" {
        return Some(format!(
            "error percentages: {} and {}",
            tile(FAILING)["error"],
            tile(HEALTHY)["error"]
        ));
    }
    if matches!(tile(HEALTHY)["rate"].as_str(), None | Some("" | "0")) {
        return Some(format!("{HEALTHY}'s rate: {}", tile(HEALTHY)["rate"]));
    }
    let endpoints = shown["endpoints"].as_array()?;
    let refusing = format!("{:?}", scene.refusing);
    let ejected = endpoints
        .iter()
        .filter(|e| e["balancer"] == BALANCER && e["status"] == "ejected")
        .map(|e| e["endpoint"].as_str().unwrap_or(""))
        .collect::<Vec<_>>();
    let live = endpoints
        .iter()
        .filter(|e| e["balancer"] == BALANCER && e["status"] == "in")
        .count();
    if ejected != [refusing.as_str()] || live != LIVE_INSTANCES {
        return Some(format!(
            "{BALANCER}: {refusing} alone should be ejected, {LIVE_INSTANCES} in: {}",
            shown["endpoints"]
        ));
    }
    #[cfg(feature = "etcd")]
    {
        let d = &shown["discoveries"][DISCOVERED];
        let expected = serde_json::json!({
            "status": "syncing", "text": "first read pending", "offered": "0", "hidden": false,
        });
        if *d != expected {
            return Some(format!(
                "{DISCOVERED}'s discovery row should be {expected}: {d}"
            ));
        }
    }
    None
}
