//! Deadlines on a paused clock: set from a budget, a header or the caller;
//! rejected at once when passed; cut off when reached; carried out in
//! headers; and honoured by every layer beneath (timeout, retry, hedge,
//! balancer, breaker).

use rampart::balance::{Balance, Endpoint, Endpoints, HttpPolicy};
use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::deadline::{Deadline, DeadlineLayer, WithDeadline, TIMEOUT_HEADER};
use rampart::hedge::{HedgeDelay, HedgeLayer};
use rampart::retry::{Backoff, RetryBudget, RetryLayer};
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

const MS: fn(u64) -> Duration = Duration::from_millis;

type Req = http::Request<()>;
type Res = http::Response<()>;

fn layer(budget: Option<u64>) -> DeadlineLayer {
    let b = DeadlineLayer::builder("test");
    match budget {
        Some(ms) => b.budget(MS(ms)),
        None => b,
    }
    .build()
    .unwrap()
}

/// A dependency that answers after `wait` (or fails, if `fail`), counting
/// calls, calls dropped unanswered, and the headers it saw.
#[derive(Clone, Default)]
struct Dependency {
    calls: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// What a call brought: its `TIMEOUT_HEADER`, and the deadline in force.
type Seen = (Option<String>, Option<Deadline>);

struct Guard(Arc<AtomicUsize>, bool);
impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Dependency {
    fn service(
        &self,
        wait: Duration,
        fail: bool,
    ) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone {
        let this = self.clone();
        service_fn(move |request: Req| {
            this.calls.fetch_add(1, Ordering::SeqCst);
            let header = request
                .headers()
                .get(TIMEOUT_HEADER)
                .map(|v| v.to_str().unwrap().to_owned());
            this.seen
                .lock()
                .unwrap()
                .push((header, Deadline::current()));
            let dropped = this.dropped.clone();
            async move {
                let mut guard = Guard(dropped, false);
                tokio::time::sleep(wait).await;
                guard.1 = true;
                if fail {
                    Err::<Res, BoxError>("refused".into())
                } else {
                    Ok(http::Response::new(()))
                }
            }
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn send<S>(svc: &mut S, request: Req) -> Result<Res, BoxError>
where
    S: Service<Req, Response = Res, Error = BoxError>,
{
    svc.ready().await?.call(request).await
}

fn get() -> Req {
    http::Request::get("/titles").body(()).unwrap()
}

fn kind(result: Result<Res, BoxError>) -> ErrorKind {
    ErrorKind::of(&result.unwrap_err())
}

#[tokio::test(start_paused = true)]
async fn a_call_still_running_at_its_deadline_is_cut_off() {
    let dependency = Dependency::default();
    let mut svc = layer(Some(100)).layer(dependency.service(Duration::from_secs(1), false));
    let started = Instant::now();
    assert_eq!(
        kind(send(&mut svc, get()).await),
        ErrorKind::DeadlineExceeded
    );
    assert_eq!(started.elapsed(), MS(100));
    assert_eq!(
        dependency.dropped.load(Ordering::SeqCst),
        1,
        "its work stopped"
    );

    // The deadline went out with the request, and was in force inside.
    let (header, current) = dependency.seen.lock().unwrap()[0].clone();
    assert_eq!(header.as_deref(), Some("100"));
    assert_eq!(current.map(|d| d.instant()), Some(started + MS(100)));

    // A quick call is untouched.
    let mut svc = layer(Some(100)).layer(dependency.service(MS(10), false));
    assert!(send(&mut svc, get()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_deadline_passed_is_rejected_at_once_and_frees_what_it_reserved() {
    let dependency = Dependency::default();
    // One slot beneath: a rejection that kept it would starve the next call.
    let limited =
        tower::limit::ConcurrencyLimitLayer::new(1).layer(dependency.service(MS(1), false));
    let mut svc = layer(None).layer(limited);
    let mut late = get();
    let now = Instant::now();
    late.set_deadline(Deadline::at(now), now);
    assert_eq!(
        kind(send(&mut svc, late).await),
        ErrorKind::DeadlineExceeded
    );
    assert_eq!(dependency.calls(), 0, "the dependency was not called");
    assert!(
        send(&mut svc, get()).await.is_ok(),
        "the slot was given back"
    );
    // With no deadline from anywhere, no deadline is made up.
    assert_eq!(dependency.seen.lock().unwrap()[0], (None, None));
}

#[tokio::test(start_paused = true)]
async fn a_server_holds_to_its_callers_header_and_passes_it_on() {
    let downstream = Dependency::default();
    // The server's handler calls downstream through a client-side layer
    // with no budget of its own: the caller's deadline carries over.
    let client = layer(None).layer(downstream.service(Duration::from_secs(1), false));
    let handler = service_fn(move |_: Req| {
        let mut client = client.clone();
        async move {
            tokio::time::sleep(MS(20)).await;
            send(&mut client, get()).await
        }
    });
    let mut server = layer(Some(5000)).layer(handler);
    let incoming = http::Request::get("/")
        .header(TIMEOUT_HEADER, "70")
        .body(())
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        kind(send(&mut server, incoming).await),
        ErrorKind::DeadlineExceeded
    );
    assert_eq!(
        started.elapsed(),
        MS(70),
        "the caller's 70 ms, not the server's 5 s"
    );
    let (header, _) = downstream.seen.lock().unwrap()[0].clone();
    assert_eq!(
        header.as_deref(),
        Some("50"),
        "70 ms less the 20 the handler spent"
    );

    // gRPC's header counts the same.
    let grpc = http::Request::get("/")
        .header("grpc-timeout", "30m")
        .body(())
        .unwrap();
    let mut server =
        layer(None).layer(Dependency::default().service(Duration::from_secs(1), false));
    let started = Instant::now();
    assert_eq!(
        kind(send(&mut server, grpc).await),
        ErrorKind::DeadlineExceeded
    );
    assert_eq!(started.elapsed(), MS(30));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_beneath_takes_the_earlier_of_its_own_and_the_deadline() {
    let dependency = Dependency::default();
    let timeout = TimeoutLayer::builder("beneath")
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc =
        layer(Some(100)).layer(timeout.layer(dependency.service(Duration::from_secs(5), false)));
    let started = Instant::now();
    assert_eq!(
        kind(send(&mut svc, get()).await),
        ErrorKind::DeadlineExceeded
    );
    assert_eq!(started.elapsed(), MS(100));

    let short = TimeoutLayer::builder("own")
        .timeout(MS(30))
        .build()
        .unwrap();
    let mut svc =
        layer(Some(100)).layer(short.layer(dependency.service(Duration::from_secs(5), false)));
    assert_eq!(
        kind(send(&mut svc, get()).await),
        ErrorKind::Timeout,
        "its own is earlier"
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_carries_the_time_left_when_it_is_sent() {
    // A deadline layer on top bounds the call; one at the bottom, next to
    // the transport, stamps each attempt with the time left then.
    let dependency = Dependency::default();
    let failing = dependency.service(MS(100), true);
    let refusing = tower::util::MapErrLayer::new(|_: BoxError| -> BoxError {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
    });
    let retry = RetryLayer::builder("stamped")
        .max_attempts(3)
        .backoff(Backoff::decorrelated(MS(50), MS(50)).unwrap())
        .budget(RetryBudget::new(Duration::from_secs(10), 100, 1.0).unwrap())
        .build()
        .unwrap();
    let mut svc = layer(Some(300)).layer(retry.layer(layer(None).layer(refusing.layer(failing))));
    send(&mut svc, get()).await.unwrap_err();
    let headers: Vec<_> = dependency
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h.clone().unwrap())
        .collect();
    // Sent at 0 and at 150 ms; a third at 300 would be past the deadline.
    assert_eq!(headers, ["300", "150"]);
}

#[tokio::test(start_paused = true)]
async fn a_commands_fallback_still_answers_at_the_deadline() {
    // The command's timeout (1 s) gives way to the deadline (100 ms), so
    // the call fails inside the command, where the fallback serves it,
    // rather than being cut off above it.
    let command = rampart::Command::builder("deadline-command")
        .fallback_sync(|cause| {
            assert_eq!(cause.kind(), ErrorKind::DeadlineExceeded);
            Ok(http::Response::builder().status(203).body(()).unwrap())
        })
        .build()
        .unwrap();
    let dependency = Dependency::default();
    let mut svc =
        layer(Some(100)).layer(command.layer(dependency.service(Duration::from_secs(5), false)));
    let started = Instant::now();
    let response = send(&mut svc, get()).await.unwrap();
    assert_eq!(response.status(), 203);
    assert_eq!(started.elapsed(), MS(100));
    assert_eq!(command.breaker().counts().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_that_the_deadline_would_cut_off() {
    let budget = RetryBudget::new(Duration::from_secs(10), 100, 1.0).unwrap();
    let retry = |backoff_ms| {
        RetryLayer::builder("deadline")
            .max_attempts(3)
            .backoff(Backoff::decorrelated(MS(backoff_ms), MS(backoff_ms)).unwrap())
            .budget(budget.clone())
            .build()
            .unwrap()
    };

    // Attempts fail after 30 ms; a retry after 80 ms would end past 100.
    let dependency = Dependency::default();
    let failing = dependency.service(MS(30), true);
    let refusing = tower::util::MapErrLayer::new(|_: BoxError| -> BoxError {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
    });
    let mut svc = layer(Some(100)).layer(retry(80).layer(refusing.layer(failing.clone())));
    let started = Instant::now();
    let err = send(&mut svc, get()).await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        MS(30),
        "the first failure comes back at once"
    );
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(dependency.calls(), 1);

    // Room for one retry (fails at 30, again at 30 + 25 + 30 = 85), not
    // for a second (85 + 25 is past 100).
    let dependency = Dependency::default();
    let failing = dependency.service(MS(30), true);
    let mut svc = layer(Some(100)).layer(retry(25).layer(refusing.layer(failing)));
    let started = Instant::now();
    send(&mut svc, get()).await.unwrap_err();
    assert_eq!(started.elapsed(), MS(85));
    assert_eq!(dependency.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_goes_out_that_the_deadline_would_cut_off() {
    let hedge = HedgeLayer::builder("deadline", HttpPolicy)
        .delay(HedgeDelay::fixed(MS(50)))
        .max_extra_load(1.0)
        .build()
        .unwrap();
    let dependency = Dependency::default();
    let mut svc =
        layer(Some(40)).layer(hedge.layer(dependency.service(Duration::from_secs(1), false)));
    assert_eq!(
        kind(send(&mut svc, get()).await),
        ErrorKind::DeadlineExceeded
    );
    assert_eq!(dependency.calls(), 1);
    assert_eq!(hedge.handle().sent(), 0);

    // With time for it, it goes.
    let dependency = Dependency::default();
    let mut svc =
        layer(Some(100)).layer(hedge.layer(dependency.service(Duration::from_secs(1), false)));
    send(&mut svc, get()).await.unwrap_err();
    assert_eq!(dependency.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_cut_counts_against_the_endpoint_and_the_breaker_a_cancel_does_not() {
    let dependency = Dependency::default();
    let breaker = CircuitBreakerLayer::builder("deadline-breaker")
        .build()
        .unwrap();
    let timeout = TimeoutLayer::builder("deadline-timeout")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let endpoint = breaker.layer(timeout.layer(dependency.service(Duration::from_secs(1), false)));
    let lb = Balance::builder("deadline-lb")
        .policy(HttpPolicy)
        .build(Endpoints::fixed([Endpoint::new(1u16, endpoint)]))
        .unwrap();
    let handle = lb.handle();
    let mut svc = layer(Some(100)).layer(lb.clone());
    assert_eq!(
        kind(send(&mut svc, get()).await),
        ErrorKind::DeadlineExceeded
    );
    let stats = &handle.endpoints()[0];
    assert_eq!((stats.timeouts, stats.cancelled), (1, 0));
    assert_eq!(breaker.handle().counts().timeouts, 1);
    assert_eq!(
        dependency.calls(),
        1,
        "the balancer did not retry past the deadline"
    );

    // The caller walking away is not the dependency's fault.
    let mut plain = lb;
    let call = send(&mut plain, get());
    assert!(tokio::time::timeout(MS(100), call).await.is_err());
    let stats = &handle.endpoints()[0];
    assert_eq!((stats.timeouts, stats.cancelled), (1, 1));
}

#[test]
fn a_bad_budget_is_a_config_error() {
    for bad in [
        Duration::ZERO,
        Duration::from_micros(10),
        Duration::from_secs(7200),
    ] {
        let err = DeadlineLayer::builder("bad")
            .budget(bad)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("budget"), "{err}");
    }
}
