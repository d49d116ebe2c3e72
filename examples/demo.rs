//! A circuit breaker watching a real HTTP dependency fail and recover.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! The demo starts a small HTTP/1 server on `127.0.0.1` (a random port): a
//! stand-in "recommendations" service whose health changes over time:
//!
//! | time     | dependency  | answers `500` to |
//! |----------|-------------|------------------|
//! | 0–6 s    | healthy     | ≈ 2 % of calls   |
//! | 6–14 s   | failing     | ≈ 80 % of calls  |
//! | 14–20 s  | recovering  | ≈ 2 % of calls   |
//!
//! A client calls it 50 times a second for 20 s through a
//! [`CircuitBreakerLayer`] (failure rate ≥ 50 % over the last 2 s, at least 20
//! calls, open for 3 s, one probe). Whenever a call does not end in a good
//! answer (a `500`, a connection error, a timeout, or the breaker's own
//! rejection), the demo serves a fallback instead: `"popular titles"`.
//!
//! What you will see:
//!
//! 1. **closed**: for the first 6 s nearly every call is served by the
//!    dependency; the odd `500` is served the fallback.
//! 2. **trip**: about a second into the failing phase the failure rate
//!    crosses 50 % and the breaker opens (a `>>` line says why).
//! 3. **short-circuit**: while open, calls are rejected at once without
//!    touching the dependency (the `short-circ` column); every one of them
//!    still gets the fallback, and the dependency's request count stops
//!    growing, which gives it room to recover.
//! 4. **probe (half-open)**: every 3 s one call is let through as a probe.
//!    While the dependency is still failing the probe will most likely fail
//!    and the breaker opens again; once it has recovered the probe succeeds
//!    and the breaker **closes**, with a fresh window.
//!
//! One line is printed per second, and the state changes (`>>`) as they
//! happen. `failed` counts calls the dependency got but did not answer well;
//! `short-circ` counts calls the breaker rejected without making them; the
//! `failure rate` is the one the trip rule sees (the last 2 s of calls), shown
//! only while the breaker is closed, the only state in which it is used.
//! The final summary counts every call: each one ends either in the
//! dependency's answer or in the fallback, so no call is lost.
//!
//! The failures come from a random generator with a fixed seed, so runs look
//! alike; exact counts can still shift by a call or two with timing.
//!
//! The rolling window is 2 s here (Hystrix's default is 10 s) so that the
//! breaker reacts within the demo's 20 s.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rampart::circuit_breaker::{
    CircuitBreakerLayer, Outcome, State, StateChange, TransitionReason, Window,
};
use rampart::{BoxError, ErrorKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Calls per second made by the client.
const CALLS_PER_SECOND: u64 = 50;
/// How long the demo runs.
const RUN_FOR: Duration = Duration::from_secs(20);
/// What the demo serves when the dependency cannot.
const FALLBACK: &str = "popular titles";

// ===== the dependency: an HTTP server whose health changes over time =====

/// The dependency's phases: name, when it ends, and its share of `500`s.
const PHASES: [(&str, Duration, f64); 3] = [
    ("healthy", Duration::from_secs(6), 0.02),
    ("failing", Duration::from_secs(14), 0.80),
    ("recovering", Duration::MAX, 0.02),
];

fn phase_at(elapsed: Duration) -> (&'static str, f64) {
    let (name, _, error_rate) = PHASES
        .iter()
        .find(|(_, until, _)| elapsed < *until)
        .expect("the last phase never ends");
    (name, *error_rate)
}

/// The recommendations service.
struct Dependency {
    started: Instant,
    rng: Mutex<SmallRng>,
    /// Requests that reached the server.
    received: AtomicU64,
}

impl Dependency {
    fn respond(&self) -> Response<Full<Bytes>> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let (_, error_rate) = phase_at(self.started.elapsed());
        let fail = self.rng.lock().unwrap().random_bool(error_rate);
        let (status, body) = if fail {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        } else {
            (StatusCode::OK, "titles picked for you")
        };
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    }
}

/// Accepts connections until the task is dropped, each on its own task.
async fn serve(listener: TcpListener, dependency: Arc<Dependency>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let dependency = dependency.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                let response = dependency.respond();
                async move { Ok::<_, Infallible>(response) }
            });
            // A client hanging up mid-request is not the demo's concern.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

// ===== the client =====

/// One `GET /recommendations` on a fresh connection, body read in full.
///
/// Reading the body inside the service means the breaker also sees a
/// connection that breaks mid-body as a failure. A connection per call keeps
/// the demo short; a real client would pool them.
async fn fetch(addr: SocketAddr) -> Result<Response<Bytes>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/recommendations")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let (parts, body) = sender.send_request(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// Says in words why the breaker changed state.
fn explain(change: &StateChange) -> String {
    match change.reason {
        TransitionReason::FailureRate { rate } => format!(
            "failure rate {:.0}% reached the 50% threshold; rejecting calls for {:?}",
            rate * 100.0,
            change.open_for.unwrap_or_default()
        ),
        TransitionReason::OpenElapsed => "open time is up; letting one probe call through".into(),
        TransitionReason::ProbeFailed => format!(
            "the probe failed; rejecting calls for another {:?}",
            change.open_for.unwrap_or_default()
        ),
        TransitionReason::ProbesSucceeded => {
            "the probe succeeded; back to normal, fresh window".into()
        }
        ref other => other.as_str().into(),
    }
}

/// Counts for one one-second line.
#[derive(Default)]
struct Tally {
    calls: u64,
    ok: u64,
    failed: u64,
    short_circuited: u64,
    fallbacks: u64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();

    let dependency = Arc::new(Dependency {
        started,
        rng: Mutex::new(SmallRng::seed_from_u64(7)),
        received: AtomicU64::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, dependency.clone()));

    // How often the breaker opened, turned half-open and closed.
    let transitions = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let seen = transitions.clone();
    let breaker = CircuitBreakerLayer::builder("recommendations")
        .window(Window::time(Duration::from_secs(2), 4))
        .min_calls(20)
        .failure_rate(0.5)
        .open_for(Duration::from_secs(3))
        .probes(1)
        .classify(|result: &Result<Response<Bytes>, BoxError>| match result {
            Ok(response) if response.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .on_state_change(move |change: &StateChange| {
            let counter = match change.to {
                State::Open => Some(&seen[0]),
                State::HalfOpen => Some(&seen[1]),
                State::Closed => Some(&seen[2]),
                _ => None,
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            println!(
                "   >> {:5.2}s  breaker {} -> {}: {}",
                started.elapsed().as_secs_f64(),
                change.from,
                change.to,
                explain(change)
            );
        })
        .build()?;
    let handle = breaker.handle();

    // The breaker sits above a timeout, so a hung call counts as a failure
    // instead of holding the demo up.
    let mut recommendations = ServiceBuilder::new()
        .layer(breaker)
        .timeout(Duration::from_millis(250))
        .service_fn(move |()| fetch(addr));

    println!("dependency \"recommendations\" listening on http://{addr}");
    println!(
        "calling it {CALLS_PER_SECOND} times a second for {}s through a circuit breaker",
        RUN_FOR.as_secs()
    );
    println!("(failure rate >= 50% over the last 2 s, at least 20 calls; open for 3 s; 1 probe)\n");
    println!(
        "{:>4}  {:<10}  {:>5}  {:>4}  {:>6}  {:>10}  {:>9}  {:<9}  {:>12}",
        "sec",
        "dependency",
        "calls",
        "ok",
        "failed",
        "short-circ",
        "fallbacks",
        "breaker",
        "failure rate"
    );

    let mut total = Tally::default();
    let mut second = Tally::default();
    let mut served_by_dependency = 0u64;
    let mut served_by_fallback = 0u64;

    let mut ticks = tokio::time::interval(Duration::from_secs(1) / CALLS_PER_SECOND as u32);
    let total_calls = CALLS_PER_SECOND * RUN_FOR.as_secs();
    for call in 1..=total_calls {
        ticks.tick().await;
        second.calls += 1;

        let result = match recommendations.ready().await {
            Ok(service) => service.call(()).await,
            Err(e) => Err(e),
        };
        let served: &[u8] = match &result {
            Ok(response) if response.status().is_success() => {
                second.ok += 1;
                served_by_dependency += 1;
                response.body()
            }
            Err(e) if ErrorKind::of(e) == ErrorKind::CircuitOpen => {
                second.short_circuited += 1;
                second.fallbacks += 1;
                served_by_fallback += 1;
                FALLBACK.as_bytes()
            }
            // A 5xx, a connection error or a timeout.
            Ok(_) | Err(_) => {
                second.failed += 1;
                second.fallbacks += 1;
                served_by_fallback += 1;
                FALLBACK.as_bytes()
            }
        };
        assert!(!served.is_empty(), "every call serves something");

        if call % CALLS_PER_SECOND == 0 {
            // The rate the trip rule sees. An open breaker does not look at
            // it (only probes count then), so it is shown only when closed.
            let counts = handle.counts();
            let rate = if handle.state() == State::Closed {
                format!(
                    "{:.0}% of {}",
                    handle.failure_rate() * 100.0,
                    counts.calls()
                )
            } else {
                "-".to_string()
            };
            println!(
                "{:>3}s  {:<10}  {:>5}  {:>4}  {:>6}  {:>10}  {:>9}  {:<9}  {:>12}",
                call / CALLS_PER_SECOND,
                // The phase in the middle of that second.
                phase_at(Duration::from_millis(call * 1000 / CALLS_PER_SECOND - 500)).0,
                second.calls,
                second.ok,
                second.failed,
                second.short_circuited,
                second.fallbacks,
                handle.state().as_str(),
                rate
            );
            total.calls += second.calls;
            total.ok += second.ok;
            total.failed += second.failed;
            total.short_circuited += second.short_circuited;
            total.fallbacks += second.fallbacks;
            second = Tally::default();
        }
    }
    server.abort();

    let lost = total.calls - served_by_dependency - served_by_fallback;
    println!();
    println!(
        "calls made: {}, served by dependency: {}, served by fallback: {} \
         ({} after a failed call, {} short-circuited), calls lost: {}",
        total.calls,
        served_by_dependency,
        served_by_fallback,
        total.failed,
        total.short_circuited,
        lost
    );
    println!(
        "the dependency received {} requests; the breaker spared it {}",
        dependency.received.load(Ordering::Relaxed),
        total.short_circuited
    );
    let [opened, probed, closed] = transitions.each_ref().map(|n| n.load(Ordering::Relaxed));
    println!(
        "breaker transitions: opened {opened}, half-open probes {probed}, closed again {closed}; final state {}",
        handle.state()
    );
    Ok(())
}
