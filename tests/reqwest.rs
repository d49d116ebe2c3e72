//! rampart's reqwest integration against real hyper servers on 127.0.0.1:
//! `ReqwestEndpoint` under a balancer, and `CircuitBreakerMiddleware` in a
//! `reqwest_middleware` client.
//!
//! Each test starts its own servers on random ports. A server answers with
//! the status an atomic says (200 by default), with a body naming itself
//! and the request it got (`"{id} {method} {path?query} {body}"`), and
//! counts every request it receives. In `HANG` mode it answers nothing
//! until the test ends. A refused port is a socket bound but not listening.
//!
//! # Time
//!
//! The real clock (real sockets); every test is bounded by [`TEST_LIMIT`],
//! and every step awaits the event it depends on: a response, or a reqwest
//! timeout against a server that never answers. Nothing sleeps.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, DefaultPolicy, Endpoint, Endpoints, HttpPolicy};
use rampart::circuit_breaker::{CircuitBreakerLayer, Outcome, State};
use rampart::registry::Registry;
use rampart::reqwest::{
    CircuitBreakerMiddleware, CommandMiddleware, ReqwestEndpoint, ServerErrorsAsFailures,
};
use rampart::retry::{Backoff, RetryBudget, RetryBudgetExhaustedMarker};
use rampart::{BoxError, Command, ErrorKind};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::{Service, ServiceExt};

/// Every test must finish well within this.
const TEST_LIMIT: Duration = Duration::from_secs(10);

/// A status meaning: never answer.
const HANG: u16 = 0;

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test finished in time")
}

// ===== the servers =====

struct Control {
    id: usize,
    status: AtomicU16,
    received: AtomicU64,
    /// Requests received so far, as a channel to wait on.
    arrivals: watch::Sender<u64>,
}

struct TestServer {
    addr: SocketAddr,
    control: Arc<Control>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(id: usize) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Control {
            id,
            status: AtomicU16::new(200),
            received: AtomicU64::new(0),
            arrivals: watch::Sender::new(0),
        });
        let task = tokio::spawn(accept(listener, control.clone()));
        TestServer {
            addr,
            control,
            task,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn answer(&self, status: u16) {
        self.control.status.store(status, Ordering::SeqCst);
    }

    fn received(&self) -> u64 {
        self.control.received.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have arrived.
    async fn arrived(&self, n: u64) {
        let mut arrivals = self.control.arrivals.subscribe();
        arrivals.wait_for(|&seen| seen >= n).await.unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, control: Arc<Control>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let control = control.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(respond(&control, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn respond(control: &Control, request: Request<Incoming>) -> Response<Full<Bytes>> {
    control.received.fetch_add(1, Ordering::SeqCst);
    control.arrivals.send_modify(|n| *n += 1);
    let status = control.status.load(Ordering::SeqCst);
    if status == HANG {
        std::future::pending::<()>().await;
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = format!(
        "{} {} {} {}",
        control.id,
        parts.method,
        parts.uri.path_and_query().map_or("", |p| p.as_str()),
        String::from_utf8_lossy(&body)
    );
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

/// A port where connections are refused: bound, never listening. Keep the
/// socket as long as the port must stay refused.
fn refused_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

fn client() -> reqwest::Client {
    // Never through a proxy from the environment: only to 127.0.0.1.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn get(path: &str) -> Request<Bytes> {
    Request::get(path).body(Bytes::new()).unwrap()
}

// ===== ReqwestEndpoint =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_retries_a_503_on_a_healthy_instance() {
    bounded(async {
        let unavailable = TestServer::start(0).await;
        let healthy = TestServer::start(1).await;
        unavailable.answer(503);
        let client = client();
        let lb = Balance::builder("reqwest-503")
            .registry(&Registry::new())
            .policy(HttpPolicy)
            .rule(RoundRobin::new())
            .backoff(Backoff::none())
            // Never ejected: round robin keeps sending calls to it first.
            .eject_after(1000)
            .build(
                rampart::reqwest::endpoints(&client, [unavailable.base(), healthy.base()]).unwrap(),
            )
            .unwrap();

        // Each call on a task of its own, as a server would make it.
        const CALLS: u64 = 6;
        for _ in 0..CALLS {
            let mut lb = lb.clone();
            let response =
                tokio::spawn(async move { lb.ready().await?.call(get("/items?page=2")).await })
                    .await
                    .unwrap()
                    .expect("every call is answered");
            assert_eq!(response.status(), StatusCode::OK);
            // The healthy instance got the path and query of the request.
            assert_eq!(response.body(), "1 GET /items?page=2 ");
        }
        assert_eq!(
            healthy.received(),
            CALLS,
            "every call ended on the healthy instance"
        );
        assert!(
            unavailable.received() >= CALLS / 2 - 1,
            "round robin sent calls to the failing instance first: {}",
            unavailable.received()
        );
        let stats = lb.handle().endpoints();
        let failing = stats
            .iter()
            .find(|s| s.key.contains(&unavailable.addr.to_string()))
            .unwrap();
        assert_eq!(
            failing.failures,
            unavailable.received(),
            "each 503 is the instance's failure"
        );
    })
    .await;
}

#[tokio::test]
async fn a_503_the_retry_budget_refuses_comes_back_marked() {
    bounded(async {
        let servers = [TestServer::start(0).await, TestServer::start(1).await];
        for server in &servers {
            server.answer(503);
        }
        let client = client();
        let mut lb = Balance::builder("reqwest-budget")
            .registry(&Registry::new())
            .policy(HttpPolicy)
            .backoff(Backoff::none())
            // No retry at all.
            .retry_budget(RetryBudget::new(Duration::from_secs(1), 0, 0.0).unwrap())
            .build(
                rampart::reqwest::endpoints(&client, servers.iter().map(TestServer::base)).unwrap(),
            )
            .unwrap();

        let response = lb.ready().await.unwrap().call(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            response
                .extensions()
                .get::<RetryBudgetExhaustedMarker>()
                .is_some(),
            "HttpPolicy marks the response it could not retry"
        );
        let received: u64 = servers.iter().map(TestServer::received).sum();
        assert_eq!(received, 1, "one attempt, no retry");
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_elsewhere_by_the_default_policy() {
    bounded(async {
        let (_refusing, refused) = refused_port();
        let healthy = TestServer::start(1).await;
        let client = client();
        // `DefaultPolicy` retries only errors that prove the request never
        // left: it must find the refused connection inside reqwest's error.
        let mut lb = Balance::builder("reqwest-refused")
            .registry(&Registry::new())
            .policy(DefaultPolicy)
            .rule(RoundRobin::new())
            .backoff(Backoff::none())
            .eject_after(1000)
            .build(Endpoints::fixed([
                Endpoint::new(refused, ReqwestEndpoint::http(client.clone(), refused)),
                Endpoint::new(healthy.addr, ReqwestEndpoint::http(client, healthy.addr)),
            ]))
            .unwrap();

        for _ in 0..4 {
            let request = Request::post("/orders")
                .body(Bytes::from("one book"))
                .unwrap();
            let response = lb.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.body(), "1 POST /orders one book");
        }
        assert_eq!(healthy.received(), 4);
        let stats = lb.handle().endpoints();
        let refusing = stats
            .iter()
            .find(|s| s.key == format!("{refused:?}"))
            .unwrap();
        assert!(
            refusing.failures >= 1,
            "round robin tried the refused port: {refusing:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_reqwest_timeout_is_a_timeout() {
    bounded(async {
        let hanging = TestServer::start(0).await;
        hanging.answer(HANG);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let mut instance = ReqwestEndpoint::new(client, &hanging.base()).unwrap();
        let error = instance
            .ready()
            .await
            .unwrap()
            .call(get("/slow"))
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error}");
        assert_eq!(ErrorKind::of(&error), ErrorKind::Timeout);
        let boxed: BoxError = error.into();
        assert_eq!(ErrorKind::of(&boxed), ErrorKind::Timeout);
    })
    .await;
}

#[test]
fn every_unusable_base_url_is_named() {
    let client = client();
    let error = rampart::reqwest::endpoints(
        &client,
        [
            "http://10.0.0.1:8080",
            "https://ratings/",
            "ftp://10.0.0.2",
            "http://10.0.0.3/api",
            "http://10.0.0.4?zone=a",
            "http://user:secret@10.0.0.5",
            "10.0.0.6:8080",
            "",
        ],
    )
    .unwrap_err();
    assert_eq!(error.violations().len(), 6, "{error}");
    assert!(error.violations().iter().all(|v| v.field == "base"));
    for bad in [
        "ftp://10.0.0.2",
        "/api",
        "zone=a",
        "user:secret",
        "10.0.0.6:8080",
    ] {
        assert!(error.to_string().contains(bad), "{bad} in {error}");
    }
    let ok = ReqwestEndpoint::new(client.clone(), "https://ratings/").unwrap();
    assert_eq!(ok.base(), "https://ratings");
    assert_eq!(
        ReqwestEndpoint::new(client, "http://[::1]:8080")
            .unwrap()
            .base(),
        "http://[::1]:8080"
    );
}

// ===== CircuitBreakerMiddleware =====

/// A breaker that trips at 50 % of 4 calls and stays open for the test.
fn breaker(name: &str, registry: &Registry) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder(name)
        .registry(registry)
        .min_calls(4)
        .failure_rate(0.5)
        .open_for(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_middleware_trips_on_5xx_then_rejects_without_reaching_the_server() {
    bounded(async {
        let server = TestServer::start(0).await;
        server.answer(503);
        let registry = Registry::new();
        let breaker = breaker("mw-trips", &registry);
        let handle = breaker.handle();
        let client = reqwest_middleware::ClientBuilder::new(client())
            .with(CircuitBreakerMiddleware::new(breaker.handle()))
            .build();
        let url = format!("{}/catalog", server.base());

        // 503s are responses: they reach the caller, and count as failures.
        for _ in 0..4 {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(server.received(), 4);
        assert_eq!(handle.counts().failures, 4);
        assert_eq!(handle.state(), State::Open);

        // Open: rejected at once, without a request reaching the server.
        for _ in 0..5 {
            let error = client.get(&url).send().await.unwrap_err();
            assert!(error.is_middleware(), "{error:?}");
            assert_eq!(ErrorKind::of(&error), ErrorKind::CircuitOpen, "{error:?}");
            let boxed: BoxError = error.into();
            assert_eq!(ErrorKind::of(&boxed), ErrorKind::CircuitOpen);
            assert!(ErrorKind::of(&boxed).is_rejection());
        }
        assert_eq!(server.received(), 4, "no rejected call reached the server");
        assert_eq!(handle.rolling_counts().short_circuited, 5);

        // Forced closed from the same handle: calls go through again.
        handle.force_closed();
        server.answer(200);
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "0 GET /catalog ");
        assert_eq!(server.received(), 5);
    })
    .await;
}

#[tokio::test]
async fn the_middleware_counts_successes_and_its_own_classifier_decides() {
    bounded(async {
        let server = TestServer::start(0).await;
        let registry = Registry::new();
        let breaker = breaker("mw-classify", &registry);
        let handle = breaker.handle();
        // 404 is the caller's mistake: ignored, it cannot trip the breaker.
        let middleware = CircuitBreakerMiddleware::new(breaker.handle()).classify(
            |result: &reqwest_middleware::Result<reqwest::Response>| match result {
                Ok(r) if r.status() == StatusCode::NOT_FOUND => Outcome::Ignored,
                Ok(r) if r.status().is_server_error() => Outcome::Failure,
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Failure,
            },
        );
        assert!(middleware.handle().same_breaker(&handle));
        let client = reqwest_middleware::ClientBuilder::new(client())
            .with(middleware)
            .build();

        for _ in 0..3 {
            client.get(server.base()).send().await.unwrap();
        }
        server.answer(404);
        for _ in 0..6 {
            let response = client.get(server.base()).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        let counts = handle.counts();
        assert_eq!(
            (counts.successes, counts.ignored, counts.failed()),
            (3, 6, 0)
        );
        assert_eq!(handle.state(), State::Closed);
        assert_eq!(server.received(), 9);
    })
    .await;
}

#[tokio::test]
async fn the_chains_own_errors_come_back_as_they_were_and_count() {
    bounded(async {
        let (_refusing, refused) = refused_port();
        let hanging = TestServer::start(0).await;
        hanging.answer(HANG);
        let registry = Registry::new();
        let breaker = breaker("mw-errors", &registry);
        let handle = breaker.handle();
        let client = reqwest_middleware::ClientBuilder::new(
            reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .with(CircuitBreakerMiddleware::new(breaker.handle()))
        .build();

        let error = client
            .get(format!("http://{refused}/"))
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(&error, reqwest_middleware::Error::Reqwest(e) if e.is_connect()),
            "{error:?}"
        );
        assert_eq!(ErrorKind::of(&error), ErrorKind::Inner);

        let error = client.get(hanging.base()).send().await.unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(ErrorKind::of(&error), ErrorKind::Timeout);

        let counts = handle.counts();
        assert_eq!((counts.failures, counts.timeouts), (1, 1), "{counts:?}");
    })
    .await;
}

// ===== CommandMiddleware =====

#[tokio::test]
async fn the_command_middleware_serves_its_fallback_once_open_without_sending() {
    bounded(async {
        let server = TestServer::start(0).await;
        server.answer(503);
        let command = Command::builder("mw-command")
            .registry(&Registry::new())
            .timeout(Duration::from_secs(5))
            .bulkhead(10)
            .breaker(|b| {
                b.min_calls(4)
                    .failure_rate(0.5)
                    .open_for(Duration::from_secs(60))
                    .classify(ServerErrorsAsFailures)
            })
            .fallback_sync(|cause| {
                assert_eq!(cause.kind(), ErrorKind::CircuitOpen);
                Ok(reqwest::Response::from(http::Response::new("fallback")))
            })
            .build()
            .unwrap();
        let breaker = command.breaker();
        let fallbacks = command.fallback();
        let client = reqwest_middleware::ClientBuilder::new(client())
            .with(CommandMiddleware::new(command))
            .build();

        // A 503 is an answer: it reaches the caller, and counts.
        for _ in 0..4 {
            let response = client.get(server.base()).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(fallbacks.successes(), 0, "no fallback for a response");

        for _ in 0..3 {
            let response = client.get(server.base()).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.text().await.unwrap(), "fallback");
        }
        assert_eq!(fallbacks.successes(), 3);
        assert_eq!(breaker.rolling_counts().short_circuited, 3);
        assert_eq!(server.received(), 4, "no short-circuited call was sent");
    })
    .await;
}

#[tokio::test]
async fn the_command_middlewares_timeout_and_bulkhead_fail_with_errors_errorkind_reads() {
    bounded(async {
        let server = TestServer::start(0).await;
        server.answer(HANG);
        let command = Command::builder("mw-command-errors")
            .registry(&Registry::new())
            .timeout(Duration::from_millis(200))
            .bulkhead(1)
            .build()
            .unwrap();
        let breaker = command.breaker();
        let client = reqwest_middleware::ClientBuilder::new(client())
            .with(CommandMiddleware::new(command))
            .build();

        // One call holds the only bulkhead slot while the server hangs...
        let first = tokio::spawn({
            let client = client.clone();
            let url = server.base();
            async move { client.get(url).send().await }
        });
        server.arrived(1).await;
        // ...so a second is rejected at once, without being sent.
        let error = client.get(server.base()).send().await.unwrap_err();
        assert!(error.is_middleware(), "{error:?}");
        assert_eq!(ErrorKind::of(&error), ErrorKind::BulkheadFull, "{error:?}");
        assert_eq!(server.received(), 1);

        // The first runs into the command's timeout.
        let error = first.await.unwrap().unwrap_err();
        assert!(error.is_middleware(), "{error:?}");
        assert_eq!(ErrorKind::of(&error), ErrorKind::Timeout, "{error:?}");
        let boxed: BoxError = error.into();
        assert_eq!(ErrorKind::of(&boxed), ErrorKind::Timeout);

        let counts = breaker.counts();
        assert_eq!((counts.rejections, counts.timeouts), (1, 1), "{counts:?}");
    })
    .await;
}
