//! The circuit breaker in front of a real hyper HTTP/1 server on 127.0.0.1.
//!
//! Each test starts its own server on a random port. What it answers is
//! switched by an `AtomicU8` the test controls, and it counts the requests it
//! receives, so a test can tell a call that reached the server from one the
//! breaker short-circuited.
//!
//! # Time
//!
//! These tests run on the real clock. A paused tokio clock (`start_paused`)
//! auto-advances whenever the runtime has nothing to run, and a runtime
//! waiting on a real socket has nothing to run: time would jump to the next
//! timer while bytes are in flight, so the breaker's clock would no longer
//! follow the calls. Instead the breakers use a short `open_for`, and the one
//! wait for it to elapse is a bounded loop that checks
//! [`retry_after`](rampart::circuit_breaker::CircuitBreakerHandle::retry_after)
//! every few milliseconds. Nothing else waits on time: every other step
//! awaits the event it depends on (a response, an error, the server task's
//! end).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rampart::circuit_breaker::{
    CircuitBreakerHandle, CircuitBreakerLayer, Outcome, State, StateChange,
};
use rampart::{BoxError, ErrorKind};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::{Service, ServiceExt};

/// How long the breakers that must recover stay open: short, yet long enough
/// that a test checking "still open" right after a trip cannot see it expire
/// on a loaded machine.
const OPEN_FOR: Duration = Duration::from_millis(500);

/// Every test must finish well within this.
const TEST_LIMIT: Duration = Duration::from_secs(5);

// ===== the server =====

const HEALTHY: u8 = 0;
const SERVER_ERROR: u8 = 1;
const NOT_FOUND: u8 = 2;

#[derive(Default)]
struct Control {
    mode: AtomicU8,
    received: AtomicU64,
}

/// A hyper server on 127.0.0.1: `200`, `500` or `404`, as `mode` says.
struct TestServer {
    addr: SocketAddr,
    control: Arc<Control>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Control::default());
        let task = tokio::spawn(accept(listener, control.clone()));
        TestServer {
            addr,
            control,
            task,
        }
    }

    fn set_mode(&self, mode: u8) {
        self.control.mode.store(mode, Ordering::SeqCst);
    }

    /// Requests the server has answered so far.
    fn received(&self) -> u64 {
        self.control.received.load(Ordering::SeqCst)
    }

    /// Stops the server: its listener and every open connection are gone
    /// when this returns, so new connections are refused.
    async fn kill(self) {
        self.task.abort();
        // The task owns the listener and the connections' `JoinSet`; once it
        // has been dropped, this resolves (to a cancellation).
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

async fn accept(listener: TcpListener, control: Arc<Control>) {
    // Dropped with this task, aborting every connection task.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let control = control.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                control.received.fetch_add(1, Ordering::SeqCst);
                let status = match control.mode.load(Ordering::SeqCst) {
                    HEALTHY => StatusCode::OK,
                    SERVER_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::NOT_FOUND,
                };
                let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
                *response.status_mut() = status;
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

// ===== the client =====

/// `GET /` on a new connection, body read in full: the body is part of the
/// call, so a connection lost mid-body is the call's failure too.
async fn get(addr: SocketAddr) -> Result<Response<Bytes>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let (parts, body) = sender.send_request(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

type HttpResult = Result<Response<Bytes>, BoxError>;

/// 5xx and connection errors fail, 4xx is the caller's fault.
fn classify(result: &HttpResult) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(response) if response.status().is_client_error() => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

/// A breaker with `min_calls` and `open_for`, recording its state changes.
#[allow(clippy::type_complexity)]
fn client(
    addr: SocketAddr,
    min_calls: u32,
    open_for: Duration,
) -> (
    impl Service<(), Response = Response<Bytes>, Error = BoxError>,
    CircuitBreakerHandle,
    Arc<Mutex<Vec<(State, State)>>>,
) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    let layer = CircuitBreakerLayer::builder("hyper-test")
        .min_calls(min_calls)
        .failure_rate(0.5)
        .open_for(open_for)
        .probes(1)
        .classify(classify)
        .on_state_change(move |c: &StateChange| seen.lock().unwrap().push((c.from, c.to)))
        .build()
        .unwrap();
    let handle = layer.handle();
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |()| get(addr));
    (service, handle, changes)
}

async fn call<S>(service: &mut S) -> Result<Response<Bytes>, BoxError>
where
    S: Service<(), Response = Response<Bytes>, Error = BoxError>,
{
    service.ready().await?.call(()).await
}

/// Waits, a few milliseconds at a time and for at most 2 s, until the open
/// breaker would let a probe through.
async fn wait_until_open_time_is_up(handle: &CircuitBreakerHandle) {
    for _ in 0..400 {
        match handle.retry_after() {
            Some(left) if !left.is_zero() => {
                tokio::time::sleep(left.min(Duration::from_millis(5))).await
            }
            _ => return,
        }
    }
    panic!("the breaker stayed open: {:?} left", handle.retry_after());
}

/// Runs a test body under [`TEST_LIMIT`].
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test ran past its time limit");
}

// ===== tests =====

#[tokio::test]
async fn server_errors_trip_the_breaker_and_calls_then_skip_the_server() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_mode(SERVER_ERROR);
        let (mut svc, handle, changes) = client(server.addr, 5, Duration::from_secs(60));

        for i in 1..=5 {
            assert_eq!(handle.state(), State::Closed, "closed before call {i}");
            let response = call(&mut svc).await.expect("a 500 is a response");
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        assert_eq!(server.received(), 5);
        assert_eq!(handle.state(), State::Open);
        assert_eq!(*changes.lock().unwrap(), [(State::Closed, State::Open)]);

        // Open: calls fail fast and the server sees none of them, even once
        // it is healthy again.
        server.set_mode(HEALTHY);
        for _ in 0..10 {
            let err = call(&mut svc).await.unwrap_err();
            assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
        }
        assert_eq!(
            server.received(),
            5,
            "no request reached the server while open"
        );
        let counts = handle.rolling_counts();
        assert_eq!((counts.failures, counts.short_circuited), (5, 10));
        assert_eq!(handle.state(), State::Open);
    })
    .await;
}

#[tokio::test]
async fn after_open_for_a_probe_reaches_the_healthy_server_and_closes_the_breaker() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_mode(SERVER_ERROR);
        let (mut svc, handle, changes) = client(server.addr, 3, OPEN_FOR);

        for _ in 0..3 {
            call(&mut svc).await.unwrap();
        }
        assert_eq!(handle.state(), State::Open);
        server.set_mode(HEALTHY);
        let err = call(&mut svc).await.unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
        assert_eq!(server.received(), 3);

        wait_until_open_time_is_up(&handle).await;
        let response = call(&mut svc).await.expect("the probe goes through");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(server.received(), 4, "the probe reached the server");
        assert_eq!(handle.state(), State::Closed);
        assert_eq!(
            *changes.lock().unwrap(),
            [
                (State::Closed, State::Open),
                (State::Open, State::HalfOpen),
                (State::HalfOpen, State::Closed),
            ]
        );

        // Closed with a fresh window: calls flow again.
        for _ in 0..5 {
            assert_eq!(call(&mut svc).await.unwrap().status(), StatusCode::OK);
        }
        assert_eq!(server.received(), 9);
        assert_eq!(
            handle.counts().successes,
            5,
            "the window restarted on closing"
        );
    })
    .await;
}

#[tokio::test]
async fn a_probe_that_gets_a_500_opens_the_breaker_again() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_mode(SERVER_ERROR);
        let (mut svc, handle, changes) = client(server.addr, 3, OPEN_FOR);

        for _ in 0..3 {
            call(&mut svc).await.unwrap();
        }
        assert_eq!(handle.state(), State::Open);

        wait_until_open_time_is_up(&handle).await;
        let response = call(&mut svc).await.expect("the probe goes through");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(server.received(), 4);
        assert_eq!(handle.state(), State::Open);
        assert!(handle.retry_after().is_some_and(|d| !d.is_zero()));
        assert_eq!(
            *changes.lock().unwrap(),
            [
                (State::Closed, State::Open),
                (State::Open, State::HalfOpen),
                (State::HalfOpen, State::Open),
            ]
        );
        let err = call(&mut svc).await.unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
        assert_eq!(server.received(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_dead_server_trips_the_breaker_and_every_call_still_ends() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr;
        let (mut svc, handle, _) = client(addr, 5, Duration::from_secs(60));

        for _ in 0..3 {
            assert_eq!(call(&mut svc).await.unwrap().status(), StatusCode::OK);
        }
        assert_eq!(server.received(), 3);
        server.kill().await;

        const CALLS: usize = 20;
        let (mut responses, mut refused, mut short_circuited) = (0, 0, 0);
        for _ in 0..CALLS {
            match call(&mut svc).await {
                Ok(_) => responses += 1,
                Err(e) if ErrorKind::of(&e) == ErrorKind::CircuitOpen => short_circuited += 1,
                Err(e) => {
                    assert_eq!(ErrorKind::of(&e), ErrorKind::Inner);
                    let io = e
                        .downcast_ref::<std::io::Error>()
                        .expect("a connection error");
                    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
                    refused += 1;
                }
            }
        }
        // Every call ended, in a response or an error.
        assert_eq!(responses + refused + short_circuited, CALLS);
        // 3 successes, then 3 refusals make a 50 % failure rate over 6 calls.
        assert_eq!((responses, refused, short_circuited), (0, 3, CALLS - 3));
        assert_eq!(handle.state(), State::Open);
        let counts = handle.rolling_counts();
        assert_eq!(counts.successes, 3);
        assert_eq!(counts.failures, 3, "connection errors count as failures");
        assert_eq!(counts.short_circuited, (CALLS - 3) as u64);
    })
    .await;
}

#[tokio::test]
async fn ignored_4xx_responses_do_not_trip_the_breaker() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_mode(NOT_FOUND);
        let (mut svc, handle, changes) = client(server.addr, 5, Duration::from_secs(60));

        for _ in 0..20 {
            let response = call(&mut svc).await.expect("a 404 is a response");
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        assert_eq!(server.received(), 20);
        assert_eq!(handle.state(), State::Closed);
        let counts = handle.counts();
        assert_eq!(counts.ignored, 20);
        assert_eq!(counts.calls(), 0, "ignored calls count toward no rate");
        assert_eq!(handle.failure_rate(), 0.0);

        // Nor toward `min_calls`: four 500s are still too few to judge...
        server.set_mode(SERVER_ERROR);
        for _ in 0..4 {
            call(&mut svc).await.unwrap();
        }
        assert_eq!(handle.state(), State::Closed);
        // ...and the fifth trips the breaker at a 100 % failure rate.
        call(&mut svc).await.unwrap();
        assert_eq!(handle.state(), State::Open);
        assert_eq!(handle.failure_rate(), 1.0);
        assert_eq!(changes.lock().unwrap().len(), 1);
    })
    .await;
}
