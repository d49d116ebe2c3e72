//! The turbine over real rampart instances on 127.0.0.1: each instance is
//! a registry of its own with a command, served by its own
//! `HystrixStream` on its own port, and the turbine follows them over
//! HTTP as it would follow hosts.
//!
//! # Time
//!
//! These tests run on the real clock: the instances, the turbine and the
//! test talk over real sockets, and a paused tokio clock would jump to the
//! next timer while bytes are in flight (see `tests/hyper_server.rs`).
//! Nothing sleeps to synchronise: every step reads the turbine's stream
//! until the merged object says what the step waits for, within a bound
//! ([`WAIT`]), and fails naming what it waited for and what it last saw.
//! Streams run at their shortest interval (100 ms), so a step usually
//! takes a few hundred milliseconds.

#![cfg(feature = "stream")]

use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::circuit_breaker::CircuitBreakerHandle;
use rampart::registry::Registry;
use rampart::stream::turbine::{Instance, Turbine};
use rampart::stream::{HystrixStream, Server, Serving};
use rampart::{BoxError, Command};
use serde_json::{json, Value};
use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tower::discover::Change;
use tower::{service_fn, Layer, Service, ServiceExt};

/// The longest any one step may take to show in the turbine's stream.
const WAIT: Duration = Duration::from_secs(10);

/// The streams' interval: the shortest allowed, so steps are quick.
const DELAY: Duration = Duration::from_millis(100);

const COMMAND: &str = "GetUser";

// ===== instances =====

/// One rampart instance: a registry with one command, and its stream on
/// a port of its own.
struct Host {
    registry: Registry,
    serving: Option<Serving>,
    breaker: CircuitBreakerHandle,
    // The registry keeps only weak references: the command must live.
    _command: Box<dyn Any + Send>,
}

impl Host {
    /// An instance whose command has answered `calls` calls.
    async fn start(calls: usize) -> Host {
        let registry = Registry::new();
        let command = Command::builder(COMMAND)
            .group("users")
            .registry(&registry)
            .build()
            .unwrap();
        let breaker = command.breaker();
        let mut service = command
            .clone()
            .layer(service_fn(|_: ()| async { Ok::<_, BoxError>("user") }));
        for _ in 0..calls {
            service.ready().await.unwrap().call(()).await.unwrap();
        }
        let stream = HystrixStream::builder()
            .registry(&registry)
            .delay(DELAY)
            .build()
            .unwrap();
        let serving = Server::new(stream).start().await.unwrap();
        Host {
            registry,
            serving: Some(serving),
            breaker,
            _command: Box::new(command),
        }
    }

    fn url(&self) -> String {
        self.serving
            .as_ref()
            .expect("the host is serving")
            .url("/hystrix.stream")
    }

    fn addr(&self) -> SocketAddr {
        self.serving
            .as_ref()
            .expect("the host is serving")
            .local_addr()
    }
}

async fn serve_turbine(turbine: Turbine) -> Serving {
    Server::new(turbine).start().await.unwrap()
}

fn turbine_url(serving: &Serving, cluster: &str) -> String {
    serving.url(&format!("/turbine.stream?cluster={cluster}&delay=100"))
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

// ===== reading a stream =====

/// A subscription to a stream: the latest object of each name, as events
/// arrive.
struct Subscription {
    url: String,
    body: Incoming,
    buffer: String,
    latest: HashMap<String, Value>,
    deleted: Vec<String>,
}

impl Subscription {
    async fn open(url: &str) -> Subscription {
        let request = Request::get(url).body(Empty::new()).unwrap();
        let response = tokio::time::timeout(WAIT, client().request(request))
            .await
            .unwrap_or_else(|_| panic!("{url} did not answer within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("{url} could not be reached: {e}"));
        assert_eq!(response.status(), StatusCode::OK, "subscribing to {url}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream;charset=UTF-8"
        );
        Subscription {
            url: url.to_owned(),
            body: response.into_body(),
            buffer: String::new(),
            latest: HashMap::new(),
            deleted: Vec::new(),
        }
    }

    /// Reads until `check` holds for the merged object named `name`, and
    /// returns it; fails after [`WAIT`], saying what it waited for.
    async fn until(&mut self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(object) = self.latest.get(name) {
                if check(object) {
                    return object.clone();
                }
            }
            let frame = match timeout_at(deadline, self.body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(other) => panic!("{} ended while waiting for {what}: {other:?}", self.url),
                Err(_) => panic!(
                    "{} did not show {what} within {WAIT:?}; last {name}: {}",
                    self.url,
                    self.latest
                        .get(name)
                        .map_or("none".to_owned(), |o| o.to_string())
                ),
            };
            if let Some(data) = frame.data_ref() {
                self.take(data);
            }
        }
    }

    /// Reads until `name` is announced deleted.
    async fn until_deleted(&mut self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.deleted.iter().any(|d| d == name) {
            match timeout_at(deadline, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.take(data);
                    }
                }
                Ok(other) => panic!("{} ended: {other:?}", self.url),
                Err(_) => panic!("{} did not delete {name} within {WAIT:?}", self.url),
            }
        }
    }

    fn take(&mut self, data: &Bytes) {
        self.buffer.push_str(std::str::from_utf8(data).unwrap());
        while let Some(end) = self.buffer.find("\n\n") {
            let event: String = self.buffer.drain(..end + 2).collect();
            let Some(json) = event.trim_end().strip_prefix("data: ") else {
                assert!(event.starts_with("ping:"), "unexpected event {event:?}");
                continue;
            };
            let object: Value = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("the turbine sent invalid JSON ({e}): {json}"));
            let name = object["name"].as_str().unwrap().to_owned();
            if object.get("deleteData").is_some() {
                self.latest.remove(&name);
                self.deleted.push(name);
            } else {
                self.latest.insert(name, object);
            }
        }
    }
}

fn hosts_and_requests(hosts: u64, requests: u64) -> impl Fn(&Value) -> bool {
    move |o| o["reportingHosts"] == json!(hosts) && o["requestCount"] == json!(requests)
}

/// A one-off request: its status and body.
async fn fetch(method: Method, url: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(WAIT, client().request(request))
        .await
        .expect("answered in time")
        .expect("reached");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

// ===== the merge over real instances =====

#[tokio::test]
async fn sums_numbers_across_hosts() {
    let (a, b) = (Host::start(3).await, Host::start(5).await);
    let turbine = Turbine::builder()
        .cluster("api", [a.url(), b.url()])
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    let merged = sub
        .until(COMMAND, "8 requests from 2 hosts", hosts_and_requests(2, 8))
        .await;
    assert_eq!(merged["type"], json!("HystrixCommand"));
    assert_eq!(merged["name"], json!(COMMAND));
    assert_eq!(merged["group"], json!("users"));
    assert_eq!(merged["threadPool"], json!("users"));
    assert_eq!(merged["rollingCountSuccess"], json!(8));
    assert_eq!(merged["errorCount"], json!(0));
    // Both closed: one plain value, as from one host.
    assert_eq!(merged["isCircuitBreakerOpen"], json!(false));
    assert_eq!(
        merged["propertyValue_executionIsolationStrategy"],
        json!("SEMAPHORE")
    );
    // Settings are summed too (Turbine 1.x); the dashboard divides.
    assert_eq!(
        merged["propertyValue_metricsRollingStatisticalWindowInMilliseconds"],
        json!(20_000)
    );
    let latency = merged["latencyExecute"].as_object().unwrap();
    for key in ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"] {
        assert!(latency[key].is_u64(), "latencyExecute.{key}: {latency:?}");
    }
}

#[tokio::test]
async fn counts_booleans_per_value_when_hosts_differ() {
    let (a, b) = (Host::start(3).await, Host::start(5).await);
    let turbine = Turbine::builder()
        .cluster("api", [a.url(), b.url()])
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    sub.until(COMMAND, "2 hosts", hosts_and_requests(2, 8))
        .await;
    b.breaker.force_open();
    let merged = sub
        .until(COMMAND, "one open breaker of two", |o| {
            o["isCircuitBreakerOpen"] == json!({"true": 1, "false": 1})
        })
        .await;
    // Forced on one host of two: not forced for the cluster (the Hystrix
    // dashboard would read any other value as forced everywhere).
    assert_eq!(
        merged["propertyValue_circuitBreakerForceOpen"],
        json!(false)
    );
    assert_eq!(
        merged["rampartCircuitState"],
        json!({"closed": 1, "forced_open": 1})
    );
    assert_eq!(merged["reportingHosts"], json!(2));
    // Back to agreement: a plain value again.
    b.breaker.reset();
    sub.until(COMMAND, "both breakers closed", |o| {
        o["isCircuitBreakerOpen"] == json!(false)
    })
    .await;
}

#[tokio::test]
async fn a_host_that_leaves_is_subtracted_and_counted_again_when_back() {
    let (a, mut b) = (Host::start(3).await, Host::start(5).await);
    let turbine = Turbine::builder()
        .cluster("api", [a.url(), b.url()])
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    sub.until(COMMAND, "2 hosts", hosts_and_requests(2, 8))
        .await;

    // Stopping b's server closes its stream: its share goes at once.
    let port = b.addr().port();
    drop(b.serving.take());
    sub.until(COMMAND, "b's share taken out", hosts_and_requests(1, 3))
        .await;

    // Back on the same port: the turbine's next attempt finds it.
    let stream = HystrixStream::builder()
        .registry(&b.registry)
        .delay(DELAY)
        .build()
        .unwrap();
    b.serving = Some(Server::new(stream).port(port).start().await.unwrap());
    sub.until(COMMAND, "b counted again", hosts_and_requests(2, 8))
        .await;
}

#[tokio::test]
async fn turbines_tier_and_count_hosts_not_turbines() {
    let hosts = [
        Host::start(1).await,
        Host::start(2).await,
        Host::start(3).await,
        Host::start(4).await,
    ];
    let zone = |a: &Host, b: &Host| {
        Turbine::builder()
            .cluster("api", [a.url(), b.url()])
            .delay(DELAY)
            .build()
            .unwrap()
    };
    let east = serve_turbine(zone(&hosts[0], &hosts[1])).await;
    let west = serve_turbine(zone(&hosts[2], &hosts[3])).await;
    let top = Turbine::builder()
        .cluster(
            "api",
            [turbine_url(&east, "api"), turbine_url(&west, "api")],
        )
        .build()
        .unwrap();
    let top = serve_turbine(top).await;
    let mut sub = Subscription::open(&turbine_url(&top, "api")).await;
    sub.until(
        COMMAND,
        "4 hosts through 2 turbines",
        hosts_and_requests(4, 10),
    )
    .await;
    hosts[2].breaker.force_open();
    let merged = sub
        .until(COMMAND, "one open breaker among 4 hosts", |o| {
            o["isCircuitBreakerOpen"] == json!({"true": 1, "false": 3})
        })
        .await;
    assert_eq!(merged["reportingHosts"], json!(4));
    assert_eq!(merged["group"], json!("users"));
}

// ===== what is answered =====

#[tokio::test]
async fn unknown_clusters_paths_and_methods_are_refused() {
    let a = Host::start(1).await;
    let turbine = Turbine::builder()
        .cluster("api", [a.url()])
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;

    let (status, body) = fetch(Method::GET, &serving.url("/turbine.stream?cluster=nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"nope\""), "{body}");
    assert!(body.contains("\"api\""), "{body}");

    // No cluster named: Turbine's "default".
    let (status, body) = fetch(Method::GET, &serving.url("/turbine.stream")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"default\""), "{body}");

    let (status, _) = fetch(Method::GET, &serving.url("/hystrix.stream?cluster=api")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = fetch(Method::POST, &serving.url("/turbine.stream?cluster=api")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // The dashboard page is served next to the aggregate, as next to an
    // instance's stream.
    let (status, body) = fetch(Method::GET, &serving.url("/dashboard")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("EventSource"), "the page");

    let (status, body) = fetch(
        Method::GET,
        &serving.url("/turbine.stream?cluster=api&delay=5"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("delay"), "{body}");
}

#[tokio::test]
async fn a_cluster_named_default_is_served_without_a_parameter() {
    let a = Host::start(2).await;
    let turbine = Turbine::builder()
        .cluster("default", [a.url()])
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&serving.url("/turbine.stream?delay=100")).await;
    sub.until(COMMAND, "the default cluster", hosts_and_requests(1, 2))
        .await;
}

// ===== sources that change =====

#[tokio::test]
async fn a_feed_of_instances_is_followed_as_it_changes() {
    let (a, b) = (Host::start(3).await, Host::start(5).await);
    let (feed, instances) = tokio::sync::watch::channel(vec![Instance::new("api", a.url())]);
    let turbine = Turbine::builder().instances(instances).build().unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    sub.until(COMMAND, "a alone", hosts_and_requests(1, 3))
        .await;

    feed.send(vec![
        Instance::new("api", a.url()),
        Instance::new("api", b.url()),
    ])
    .unwrap();
    sub.until(COMMAND, "b added", hosts_and_requests(2, 8))
        .await;

    feed.send(vec![Instance::new("api", b.url())]).unwrap();
    sub.until(COMMAND, "a removed", hosts_and_requests(1, 5))
        .await;

    // A cluster the feed names later is served then.
    feed.send(vec![
        Instance::new("api", b.url()),
        Instance::new("web", a.url()),
    ])
    .unwrap();
    let web = turbine_url(&serving, "web");
    let deadline = Instant::now() + WAIT;
    while fetch_status(&web).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "cluster web never served");
        tokio::task::yield_now().await;
    }
}

/// The status of a subscription, which is then dropped.
async fn fetch_status(url: &str) -> StatusCode {
    let request = Request::get(url).body(Empty::new()).unwrap();
    let response = tokio::time::timeout(WAIT, client().request(request))
        .await
        .expect("answered in time")
        .expect("reached");
    response.status()
}

#[tokio::test]
async fn a_discover_stream_inserts_and_removes_instances() {
    let (a, b) = (Host::start(3).await, Host::start(5).await);
    let (changes, discover) = mpsc::unbounded::<Change<&'static str, Instance>>();
    changes
        .unbounded_send(Change::Insert("a", Instance::new("api", a.url())))
        .unwrap();
    let turbine = Turbine::builder()
        .discover(discover.map(Ok::<_, Infallible>))
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    // Discovered clusters are known from the first request on.
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    sub.until(COMMAND, "a discovered", hosts_and_requests(1, 3))
        .await;
    changes
        .unbounded_send(Change::Insert("b", Instance::new("api", b.url())))
        .unwrap();
    sub.until(COMMAND, "b discovered", hosts_and_requests(2, 8))
        .await;
    changes.unbounded_send(Change::Remove("a")).unwrap();
    sub.until(COMMAND, "a removed", hosts_and_requests(1, 5))
        .await;
}

// ===== instances that misbehave =====

/// A server whose stream sends `first`, then stays open and silent.
async fn raw_stream(first: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<Incoming>| async move {
                    let chunks = futures::stream::once(async move {
                        Ok::<_, Infallible>(Frame::data(Bytes::from_static(first.as_bytes())))
                    })
                    .chain(futures::stream::pending());
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "text/event-stream;charset=UTF-8")
                            .body(StreamBody::new(chunks))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn malformed_events_are_skipped() {
    let garbage = concat!(
        "data: not json\n\n",
        "data: [1, 2]\n\n",
        "data: {\"type\": \"HystrixCommand\"}\n\n",
        "event: other\ndata: {\"type\":\"HystrixCommand\",\"name\":\"Named\"}\n\n",
        ": a comment\n\n",
        "ping: \n\n",
        "data: {\"type\":\"HystrixCommand\",\"name\":\"Odd\",\"requestCount\":\"many\",\"reportingHosts\":1}\n\n",
    );
    let (addr, _server) = raw_stream(garbage).await;
    let a = Host::start(3).await;
    let turbine = Turbine::builder()
        .cluster("api", [a.url(), format!("http://{addr}/hystrix.stream")])
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    let odd = sub
        .until("Odd", "the one well-formed object", |o| {
            o["requestCount"] == json!("many")
        })
        .await;
    assert_eq!(odd["reportingHosts"], json!(1));
    sub.until(COMMAND, "the real instance", hosts_and_requests(1, 3))
        .await;
    assert!(!sub.latest.contains_key("Named"), "a named event was taken");
}

#[tokio::test]
async fn a_silent_instance_is_taken_out() {
    let one = "data: {\"type\":\"HystrixCommand\",\"name\":\"Quiet\",\"requestCount\":7,\"reportingHosts\":1}\n\n";
    let (addr, _server) = raw_stream(one).await;
    let turbine = Turbine::builder()
        .cluster("api", [format!("http://{addr}/hystrix.stream")])
        .source_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let serving = serve_turbine(turbine).await;
    let mut sub = Subscription::open(&turbine_url(&serving, "api")).await;
    sub.until("Quiet", "the quiet instance's object", |o| {
        o["requestCount"] == json!(7)
    })
    .await;
    // Nothing, not even a ping, for a second: out (and announced).
    sub.until_deleted("Quiet").await;
}
