//! The Hystrix-style command: defaults, accounting, validation, cancellation.

use rampart::circuit_breaker::{State, Window};
use rampart::fallback::{Cause, FallbackFailed};
use rampart::{BoxError, Command, ErrorKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};

#[derive(Debug, Clone, Copy)]
enum Req {
    Ok,
    Fail,
    /// Answers after this many milliseconds.
    Slow(u64),
}

fn dependency(
    reached: Arc<AtomicUsize>,
) -> tower::util::BoxCloneService<Req, &'static str, BoxError> {
    tower::util::BoxCloneService::new(tower::service_fn(move |req: Req| {
        reached.fetch_add(1, Ordering::SeqCst);
        async move {
            match req {
                Req::Ok => Ok("personal picks"),
                Req::Fail => Err::<_, BoxError>("connection refused".into()),
                Req::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok("personal picks, late")
                }
            }
        }
    }))
}

async fn call<S>(svc: &mut S, req: Req) -> Result<&'static str, BoxError>
where
    S: Service<Req, Response = &'static str, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

#[tokio::test(start_paused = true)]
async fn behaves_like_hystrix_on_its_defaults() {
    let reached = Arc::new(AtomicUsize::new(0));
    let command = Command::builder("RecommendationsGet")
        .fallback_sync(|_| Ok("popular titles"))
        .build()
        .unwrap();
    let breaker = command.breaker();
    let fallback = command.fallback();
    let mut svc = command.layer(dependency(reached.clone()));

    // 20 calls at 50 % failures trip it.
    for i in 0..20 {
        let req = if i % 2 == 0 { Req::Fail } else { Req::Ok };
        call(&mut svc, req).await.unwrap();
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        fallback.successes(),
        10,
        "failed calls were served the fallback"
    );

    // Short-circuits get the fallback without touching the dependency.
    for _ in 0..50 {
        assert_eq!(call(&mut svc, Req::Ok).await.unwrap(), "popular titles");
    }
    assert_eq!(reached.load(Ordering::SeqCst), 20);
    let counts = breaker.rolling_counts();
    assert_eq!(
        (counts.short_circuited, counts.failed()),
        (50, 10),
        "short-circuits are not failures"
    );

    // One probe after 5 s closes it.
    advance(Duration::from_millis(4999)).await;
    assert_eq!(call(&mut svc, Req::Ok).await.unwrap(), "popular titles");
    advance(Duration::from_millis(1)).await;
    assert_eq!(call(&mut svc, Req::Ok).await.unwrap(), "personal picks");
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(reached.load(Ordering::SeqCst), 21);
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_bulkhead_rejections_count_toward_the_error_rate() {
    let command = Command::builder("Slow")
        .timeout(Duration::from_millis(100))
        .bulkhead(2)
        .breaker(|b| b.min_calls(6))
        .fallback_sync(|cause: &Cause| -> Result<&'static str, BoxError> {
            Ok(if cause.kind() == ErrorKind::Timeout {
                "timed out"
            } else {
                "rejected"
            })
        })
        .build()
        .unwrap();
    let breaker = command.breaker();
    let bulkhead = command.bulkhead();
    // Boxed: rustc cannot yet prove the unboxed stack's future `Send` inside
    // `tokio::spawn` when the fallback closure takes a reference (#64552).
    let svc = tower::util::BoxCloneService::new(command.layer(dependency(Arc::default())));

    // Four slow calls at once: two take the bulkhead's slots and time out,
    // two are rejected by the full bulkhead.
    let mut calls = Vec::new();
    for _ in 0..4 {
        let mut svc = svc.clone();
        calls.push(tokio::spawn(async move {
            call(&mut svc, Req::Slow(1_000)).await
        }));
    }
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.unwrap().unwrap());
    }
    answers.sort();
    assert_eq!(answers, ["rejected", "rejected", "timed out", "timed out"]);
    let counts = breaker.counts();
    assert_eq!((counts.timeouts, counts.rejections), (2, 2));
    assert_eq!(bulkhead.in_flight(), 0);
    // Two more failures (served the fallback) reach min_calls at 100 %: open.
    let mut svc = svc.clone();
    call(&mut svc, Req::Fail).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
    call(&mut svc, Req::Fail).await.unwrap();
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn without_a_fallback_errors_pass_through_typed() {
    let command = Command::builder("Bare")
        .breaker(|b| b.min_calls(1))
        .build()
        .unwrap();
    let mut svc = command.layer(dependency(Arc::default()));
    let err = call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(
        (ErrorKind::of(&err), err.to_string()),
        (ErrorKind::Inner, "connection refused".into())
    );
    let err = call(&mut svc, Req::Ok).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
}

#[tokio::test(start_paused = true)]
async fn a_failing_fallback_keeps_both_errors() {
    let command = Command::builder("Both")
        .fallback_sync(|_| Err::<&'static str, BoxError>("no cached titles".into()))
        .build()
        .unwrap();
    let mut svc = command.layer(dependency(Arc::default()));
    let err = call(&mut svc, Req::Fail).await.unwrap_err();
    let both = err.downcast_ref::<FallbackFailed>().unwrap();
    assert_eq!(both.cause().to_string(), "connection refused");
    assert_eq!(both.fallback_error().to_string(), "no cached titles");
}

#[tokio::test(start_paused = true)]
async fn cancelling_at_any_point_leaks_nothing() {
    let command = Command::builder("Cancel")
        .timeout(Duration::from_secs(1))
        .bulkhead(1)
        .fallback(|_| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok("slow fallback")
        })
        .build()
        .unwrap();
    let (breaker, bulkhead, fallback) = (command.breaker(), command.bulkhead(), command.fallback());
    let mut svc = command.layer(dependency(Arc::default()));
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);

    // Dropped while the dependency works (slot held, timer running).
    let mut f: Pin<Box<dyn Future<Output = _> + Send>> =
        Box::pin(svc.ready().await.unwrap().call(Req::Slow(500)));
    assert!(f.as_mut().poll(&mut cx).is_pending());
    assert_eq!(bulkhead.in_flight(), 1);
    drop(f);
    assert_eq!(bulkhead.in_flight(), 0);

    // Dropped while its fallback runs.
    let mut f: Pin<Box<dyn Future<Output = _> + Send>> =
        Box::pin(svc.ready().await.unwrap().call(Req::Fail));
    assert!(f.as_mut().poll(&mut cx).is_pending());
    assert_eq!((fallback.running(), bulkhead.in_flight()), (1, 0));
    drop(f);
    assert_eq!(fallback.running(), 0);

    // Dropped after poll_ready took the slot, before call.
    let mut ready = svc.clone();
    assert!(matches!(ready.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(bulkhead.in_flight(), 1);
    drop(ready);
    assert_eq!(bulkhead.in_flight(), 0);

    assert_eq!(
        breaker.counts().calls(),
        1,
        "only the completed failure counted"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn pool_isolation_times_out_a_blocked_call_on_the_callers_side() {
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let blocked = Arc::new(std::sync::Mutex::new(blocked));
    let command = Command::builder("Legacy")
        .group("LegacyGroup")
        .pool(1, 0)
        .timeout(Duration::from_millis(200))
        .fallback_sync(|cause| {
            Ok(if cause.kind() == ErrorKind::Timeout {
                "timed out"
            } else {
                "rejected"
            })
        })
        .build()
        .unwrap();
    let pool = command.pool();
    assert_eq!(pool.name(), "LegacyGroup");
    let mut svc = command.layer(tower::service_fn(move |_: ()| {
        let blocked = blocked.clone();
        async move {
            // Blocks its pool thread, as a synchronous client would.
            let _ = blocked.lock().unwrap().recv();
            Ok::<_, BoxError>("late")
        }
    }));
    assert_eq!(
        svc.ready().await.unwrap().call(()).await.unwrap(),
        "timed out"
    );
    release.send(()).unwrap();
}

#[test]
fn contradictions_between_layers_are_config_errors() {
    let err = Command::builder("X")
        .timeout(Duration::from_secs(2))
        .breaker(|b| {
            b.slow_call(Duration::from_secs(3), 0.5)
                .window(Window::time(Duration::from_secs(1), 10))
        })
        .build()
        .unwrap_err();
    assert!(err.names("slow_call"), "{err}");
    assert!(err.names("window"), "{err}");
    assert!(
        err.to_string()
            .contains("must be shorter than the timeout (2s)"),
        "{err}"
    );
}

#[test]
fn every_layers_violations_come_back_together() {
    let err = Command::builder("X")
        .timeout(Duration::ZERO)
        .bulkhead(0)
        .breaker(|b| b.failure_rate(2.0))
        .fallback_max_concurrent(0)
        .fallback_sync(|_| Ok(()))
        .build()
        .unwrap_err();
    // Named by the command's own options (found by a user trial: both
    // caps were "max_concurrent"), the part's field kept in the message.
    for field in [
        "timeout",
        "bulkhead",
        "fallback_max_concurrent",
        "failure_rate",
    ] {
        assert!(err.names(field), "{field}: {err}");
    }
    assert!(!err.names("max_concurrent"), "{err}");
    let message = err.to_string();
    assert!(message.contains("(in the circuit breaker \"X\")"), "{err}");
    assert!(
        message.contains("bulkhead: max_concurrent must be from 1"),
        "{err}"
    );
    assert_eq!(err.violations().len(), 4, "{err}");

    let err = Command::builder("Y").pool(0, 0).build().unwrap_err();
    assert!(err.names("pool") && !err.names("size"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn fail_on_turns_failing_responses_into_errors_the_breaker_retries_and_fallback_see() {
    use rampart::fallback::FailedResponse;
    use rampart::retry::{Backoff, HttpPolicy, RetryBudget, RetryLayer};

    type Res = http::Response<u16>;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // 500, 500, 200, then 404s: the retry gets past two 500s.
    let dependency = tower::service_fn(move |_: http::Request<()>| {
        let status = match seen.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => 500,
            2 => 200,
            _ => 404,
        };
        async move {
            Ok::<_, BoxError>(
                http::Response::builder()
                    .status(status)
                    .body(status)
                    .unwrap(),
            )
        }
    });
    let command = Command::builder("fail-on")
        .retry(
            RetryLayer::builder("fail-on")
                .policy(HttpPolicy)
                .max_attempts(3)
                .backoff(Backoff::none())
                .budget(RetryBudget::new(Duration::from_secs(10), 100, 1.0).unwrap())
                .build()
                .unwrap(),
        )
        .fail_on(|response: &Res| response.status().is_server_error())
        .fallback_sync(|cause| {
            let failed = FailedResponse::<Res>::of(cause.error()).map(|r| r.status().as_u16());
            Ok(http::Response::new(failed.unwrap_or(0) + 1000))
        })
        .build()
        .unwrap();
    let mut svc = command.layer(dependency);
    let get = || http::Request::get("/").body(()).unwrap();
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(*response.body(), 200, "retried past two 500s");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(command.breaker().counts().failures, 2, "each 500 counted");

    // A 404 is not a failure: it comes back as it is.
    assert_eq!(
        *svc.ready().await.unwrap().call(get()).await.unwrap().body(),
        404
    );

    // All 500s: the fallback serves, and can read the last response.
    let all_failing = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, BoxError>(http::Response::builder().status(503).body(503u16).unwrap())
    });
    let mut svc = command.layer(all_failing);
    assert_eq!(
        *svc.ready().await.unwrap().call(get()).await.unwrap().body(),
        1503
    );
}
