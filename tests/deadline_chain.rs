//! One deadline across three services on 127.0.0.1, all rampart: A calls B,
//! B calls C, C is slow. A gives the call 100 ms. B and C read the time
//! left from the request's header and stop their work when it runs out;
//! A answers at its deadline; nobody retries past it.
//!
//! On the real clock (the servers are real sockets); every wait is
//! bounded, and the one quiet period that shows nothing happens later is
//! a short real sleep.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::deadline::{DeadlineLayer, TIMEOUT_HEADER};
use rampart::retry::{Backoff, HttpPolicy, RetryBudget, RetryLayer};
use rampart::{BoxError, ErrorKind};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

type Handler = BoxCloneSyncService<Request<Incoming>, Response<Full<Bytes>>, BoxError>;
type Client2 = BoxCloneSyncService<Request<()>, Response<()>, BoxError>;

/// What one server saw: when each request arrived (after the test's
/// start), with what time left, and when its work ended (`true`: dropped
/// before it finished).
#[derive(Default)]
struct Log {
    arrivals: Mutex<Vec<(Duration, Option<String>)>>,
    ends: Mutex<Vec<(Duration, bool)>>,
}

/// Serves `handler` behind a server-side `DeadlineLayer` (no budget: it
/// holds to its caller's); a rampart error becomes a 504.
async fn server(handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = DeadlineLayer::builder("server")
        .build()
        .unwrap()
        .layer(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let serve = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let mut svc = svc.clone();
                    async move {
                        let answer = match svc.ready().await {
                            Ok(svc) => svc.call(request).await,
                            Err(e) => Err(e),
                        };
                        Ok::<_, Infallible>(answer.unwrap_or_else(|e| {
                            let mut response = Response::new(Full::new(Bytes::from(e.to_string())));
                            *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                            response
                        }))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), serve)
                    .await;
            });
        }
    });
    addr
}

/// A client to `addr`: a deadline layer (no budget of its own) over a
/// retry layer (3 attempts, 20 ms apart) over hyper, sending the
/// request's headers, and so its deadline.
fn client(addr: SocketAddr, budget: Option<Duration>) -> Client2 {
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let send = tower::service_fn(move |request: Request<()>| {
        let http = http.clone();
        async move {
            let (parts, ()) = request.into_parts();
            let mut out = Request::builder()
                .method(parts.method)
                .uri(format!("http://{addr}{}", parts.uri.path()));
            for (name, value) in &parts.headers {
                out = out.header(name, value);
            }
            let response = http.request(out.body(Empty::new())?).await?;
            let (head, body) = response.into_parts();
            body.collect().await?;
            Ok::<_, BoxError>(Response::from_parts(head, ()))
        }
    });
    let retry = RetryLayer::builder("chain")
        .policy(HttpPolicy)
        .max_attempts(3)
        .backoff(
            Backoff::decorrelated(Duration::from_millis(20), Duration::from_millis(20)).unwrap(),
        )
        .budget(RetryBudget::new(Duration::from_secs(10), 100, 1.0).unwrap())
        .build()
        .unwrap();
    let mut deadline = DeadlineLayer::builder("client");
    if let Some(budget) = budget {
        deadline = deadline.budget(budget);
    }
    BoxCloneSyncService::new(deadline.build().unwrap().layer(retry.layer(send)))
}

/// Marks the end of a handler's work: finished, or dropped mid-way.
struct Work {
    log: Arc<Log>,
    started: Instant,
    finished: bool,
}

impl Drop for Work {
    fn drop(&mut self) {
        self.log
            .ends
            .lock()
            .unwrap()
            .push((self.started.elapsed(), !self.finished));
    }
}

fn arrived(log: &Log, started: Instant, request: &Request<Incoming>) {
    let left = request
        .headers()
        .get(TIMEOUT_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    log.arrivals.lock().unwrap().push((started.elapsed(), left));
}

/// Waits (bounded) until `done` says so.
async fn until(what: &str, done: impl Fn() -> bool) {
    let limit = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < limit, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deadline_holds_across_three_services() {
    let started = Instant::now();

    // C: one second of work per request.
    let c_log = Arc::new(Log::default());
    let log = c_log.clone();
    let c = server(BoxCloneSyncService::new(tower::service_fn(
        move |request: Request<Incoming>| {
            arrived(&log, started, &request);
            let work = Work {
                log: log.clone(),
                started,
                finished: false,
            };
            async move {
                // The whole guard moves in, not just the field written below.
                let mut work = work;
                tokio::time::sleep(Duration::from_secs(1)).await;
                work.finished = true;
                Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"c"))))
            }
        },
    )))
    .await;

    // B: calls C with whatever time its caller left it.
    let b_log = Arc::new(Log::default());
    let log = b_log.clone();
    let to_c = client(c, None);
    let b = server(BoxCloneSyncService::new(tower::service_fn(
        move |request: Request<Incoming>| {
            arrived(&log, started, &request);
            let work = Work {
                log: log.clone(),
                started,
                finished: false,
            };
            let mut to_c = to_c.clone();
            async move {
                let mut work = work;
                let answer = to_c.ready().await?.call(Request::get("/c").body(())?).await;
                work.finished = true;
                answer.map(|from_c| {
                    // C's status, passed on.
                    let mut response = Response::new(Full::new(Bytes::from_static(b"b")));
                    *response.status_mut() = from_c.status();
                    response
                })
            }
        },
    )))
    .await;

    // A: 100 ms for the whole call.
    let mut to_b = client(b, Some(Duration::from_millis(100)));
    let called = Instant::now();
    let answer = to_b
        .ready()
        .await
        .unwrap()
        .call(Request::get("/b").body(()).unwrap())
        .await;
    let took = called.elapsed();
    // B runs out of time a little before A (its deadline is A's less the
    // trip), so A hears either B's 504 just before its own deadline or its
    // own cut at it; either way, at about 100 ms, with no retry.
    match answer {
        Err(e) => assert_eq!(ErrorKind::of(&e), ErrorKind::DeadlineExceeded, "{e}"),
        Ok(response) => assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT),
    }
    assert!(
        took >= Duration::from_millis(80) && took < Duration::from_millis(400),
        "A answered after {took:?}"
    );
    let deadline = called - started + Duration::from_millis(100);

    // B and C stopped around the deadline: C's second of work was cut off
    // (dropped), and B ended (cut off itself, or told so by C's 504).
    until("B's and C's work ended", || {
        !b_log.ends.lock().unwrap().is_empty() && !c_log.ends.lock().unwrap().is_empty()
    })
    .await;
    for &(_, dropped) in c_log.ends.lock().unwrap().iter() {
        assert!(dropped, "C finished its work instead of stopping");
    }
    for (name, log) in [("B", &b_log), ("C", &c_log)] {
        for &(at, _) in log.ends.lock().unwrap().iter() {
            assert!(
                at < deadline + Duration::from_millis(300),
                "{name} stopped at {at:?}, deadline {deadline:?}"
            );
        }
    }

    // Nothing arrives after the deadline: a short quiet period shows it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, log) in [("B", &b_log), ("C", &c_log)] {
        let arrivals = log.arrivals.lock().unwrap();
        assert!(!arrivals.is_empty(), "{name} was called");
        for (at, left) in arrivals.iter() {
            assert!(
                *at < deadline,
                "{name} got a request at {at:?}, after the deadline {deadline:?}"
            );
            let left: u64 = left
                .as_deref()
                .expect("the deadline travelled")
                .parse()
                .unwrap();
            assert!(left <= 100, "{name} was given {left} ms");
        }
    }
    assert_eq!(
        b_log.arrivals.lock().unwrap().len(),
        1,
        "A did not retry past its deadline"
    );
    assert_eq!(
        c_log.arrivals.lock().unwrap().len(),
        1,
        "B did not retry past the deadline"
    );
}
