//! Every transition and trip rule of the circuit breaker, on a paused clock.

use rampart::circuit_breaker::{
    Builder, CircuitBreakerHandle, CircuitBreakerLayer, Outcome, State, StateChange,
    TransitionReason, Window,
};
use rampart::{BoxError, ErrorKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt};

/// What the fake dependency does with a request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Req {
    Ok,
    Fail,
    /// Answers 404: the classifier below ignores it.
    NotFound,
    /// Fails with tokio's `Elapsed`, as a timeout beneath the breaker would.
    TimedOut,
    /// Succeeds after this many milliseconds.
    Slow(u64),
    /// Never answers.
    Hang,
}

type Svc = tower::util::BoxService<Req, u16, BoxError>;

/// The dependency: counts the calls that reach it.
fn dependency(reached: Arc<AtomicUsize>) -> tower::util::BoxCloneService<Req, u16, BoxError> {
    tower::util::BoxCloneService::new(tower::service_fn(move |req: Req| {
        reached.fetch_add(1, Ordering::SeqCst);
        async move {
            match req {
                Req::Ok => Ok(200),
                Req::NotFound => Ok(404),
                Req::Fail => Err("connection reset".into()),
                Req::TimedOut => {
                    let e = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
                        .await
                        .unwrap_err();
                    Err(e.into())
                }
                Req::Slow(ms) => {
                    sleep(Duration::from_millis(ms)).await;
                    Ok(200)
                }
                Req::Hang => std::future::pending().await,
            }
        }
    }))
}

fn classify(r: &Result<u16, BoxError>) -> Outcome {
    match r {
        Ok(404) => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

struct Rig {
    svc: Svc,
    make: Box<dyn Fn() -> Svc>,
    handle: CircuitBreakerHandle,
    reached: Arc<AtomicUsize>,
    changes: Arc<Mutex<Vec<(State, State, TransitionReason)>>>,
}

impl Rig {
    fn new(configure: impl FnOnce(Builder) -> Builder) -> Rig {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = changes.clone();
        let layer = configure(CircuitBreakerLayer::builder("dep"))
            .on_state_change(move |c: &StateChange| {
                log.lock().unwrap().push((c.from, c.to, c.reason))
            })
            .classify(classify)
            .build()
            .expect("valid config");
        let reached = Arc::new(AtomicUsize::new(0));
        let r = reached.clone();
        let l = layer.clone();
        Rig {
            handle: layer.handle(),
            svc: Svc::new(layer.layer(dependency(reached.clone()))),
            make: Box::new(move || Svc::new(l.layer(dependency(r.clone())))),
            reached,
            changes,
        }
    }

    async fn call(&mut self, req: Req) -> Result<u16, BoxError> {
        self.svc.ready().await?.call(req).await
    }

    async fn calls(&mut self, req: Req, n: usize) {
        for _ in 0..n {
            let _ = self.call(req).await;
        }
    }

    /// A call that must be short-circuited: rejected without reaching the dependency.
    async fn assert_rejected(&mut self) {
        let before = self.reached();
        let err = self.call(Req::Ok).await.expect_err("breaker should reject");
        assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen, "{err}");
        assert_eq!(
            self.reached(),
            before,
            "a rejected call reached the dependency"
        );
    }

    /// Another service sharing the breaker (a fresh admission).
    fn svc_clone(&self) -> Svc {
        (self.make)()
    }

    fn reached(&self) -> usize {
        self.reached.load(Ordering::SeqCst)
    }

    fn changes(&self) -> Vec<(State, State, TransitionReason)> {
        self.changes.lock().unwrap().clone()
    }

    /// Starts a call as a future without finishing it.
    fn start(&mut self, req: Req) -> Pin<Box<dyn Future<Output = Result<u16, BoxError>> + Send>> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match self.svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            other => panic!("not ready: {other:?}"),
        }
        let mut fut = self.svc.call(req);
        assert!(
            fut.as_mut().poll(&mut cx).is_pending(),
            "call finished at once"
        );
        fut
    }
}

/// Opens a Hystrix-default breaker the ordinary way: 20 calls, all failing.
async fn tripped(configure: impl FnOnce(Builder) -> Builder) -> Rig {
    let mut rig = Rig::new(configure);
    rig.calls(Req::Fail, 20).await;
    assert_eq!(rig.handle.state(), State::Open);
    rig
}

// ===== failure-rate rule =====

#[tokio::test(start_paused = true)]
async fn trips_at_exactly_the_failure_rate_once_min_calls_are_reached() {
    let mut rig = Rig::new(|b| b);
    // 10 failures and 9 successes: 19 calls, below the 20-call minimum.
    rig.calls(Req::Fail, 10).await;
    rig.calls(Req::Ok, 9).await;
    assert_eq!(rig.handle.state(), State::Closed);
    // The 20th call is a success, yet 10/20 = 50 % ≥ 50 %: it trips.
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Open);
    assert!(
        matches!(rig.changes()[..], [(State::Closed, State::Open, TransitionReason::FailureRate { rate })] if rate == 0.5)
    );
    rig.assert_rejected().await;
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_min_calls_or_below_the_rate() {
    let mut rig = Rig::new(|b| b);
    rig.calls(Req::Fail, 19).await;
    assert_eq!(rig.handle.state(), State::Closed, "19 calls < min_calls");
    assert_eq!(rig.handle.counts().failures, 19);

    let mut rig = Rig::new(|b| b);
    rig.calls(Req::Fail, 9).await;
    rig.calls(Req::Ok, 11).await;
    rig.calls(Req::Ok, 100).await;
    assert_eq!(rig.handle.state(), State::Closed, "45 % < 50 %");
    assert_eq!(rig.reached(), 120);
}

#[tokio::test(start_paused = true)]
async fn failures_roll_out_of_the_time_window() {
    let mut rig = Rig::new(|b| b);
    rig.calls(Req::Fail, 19).await;
    // 10 s later the failures have left the 10 s window.
    advance(Duration::from_secs(10)).await;
    rig.calls(Req::Fail, 1).await;
    rig.calls(Req::Ok, 19).await;
    assert_eq!(rig.handle.state(), State::Closed);
    assert_eq!(rig.handle.counts().calls(), 20);
}

#[tokio::test(start_paused = true)]
async fn successes_rolling_out_can_trip_it_without_a_new_failure() {
    let mut rig = Rig::new(|b| b);
    rig.calls(Req::Ok, 30).await; // bucket 0 s
    advance(Duration::from_secs(5)).await;
    rig.calls(Req::Fail, 20).await; // bucket 5 s: 20/50 = 40 %
    assert_eq!(rig.handle.state(), State::Closed);
    // At 10 s the successes drop out: 20 failures / 20 calls.
    advance(Duration::from_secs(5)).await;
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn count_window_looks_at_the_last_n_calls() {
    let mut rig = Rig::new(|b| b.window(Window::count(10)).min_calls(10));
    rig.calls(Req::Fail, 4).await;
    rig.calls(Req::Ok, 6).await;
    assert_eq!(rig.handle.state(), State::Closed, "4/10");
    // Hours later the count window still holds those calls.
    advance(Duration::from_secs(3600)).await;
    rig.calls(Req::Fail, 1).await; // pushes out a failure: still 4/10
    assert_eq!(rig.handle.state(), State::Closed);
    rig.calls(Req::Fail, 1).await; // pushes out a failure: still 4/10
    rig.calls(Req::Fail, 1).await; // pushes out a failure: still 4/10
    rig.calls(Req::Fail, 1).await; // pushes out a failure: still 4/10
    assert_eq!(rig.handle.state(), State::Closed);
    rig.calls(Req::Fail, 1).await; // pushes out a success: 5/10
    assert_eq!(rig.handle.state(), State::Open);
}

// ===== classification =====

#[tokio::test(start_paused = true)]
async fn ignored_calls_never_count_toward_the_rate() {
    let mut rig = Rig::new(|b| b.min_calls(2));
    rig.calls(Req::NotFound, 50).await;
    rig.calls(Req::Ok, 1).await;
    rig.calls(Req::Fail, 1).await;
    let counts = rig.handle.counts();
    assert_eq!((counts.ignored, counts.calls()), (50, 2));
    assert_eq!(
        rig.handle.state(),
        State::Open,
        "1 of 2 counted calls failed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_the_classifier_calls_a_failure_counts() {
    let layer = CircuitBreakerLayer::builder("http")
        .min_calls(3)
        .classify(|r: &Result<u16, BoxError>| match r {
            Ok(status) if *status >= 500 => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(tower::service_fn(|status: u16| async move {
        Ok::<_, BoxError>(status)
    }));
    for _ in 0..3 {
        assert_eq!(
            svc.ready().await.unwrap().call(503).await.unwrap(),
            503,
            "responses pass through"
        );
    }
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn timeouts_beneath_are_tallied_as_timeouts_and_count_as_failures() {
    let mut rig = Rig::new(|b| b);
    rig.calls(Req::TimedOut, 10).await;
    rig.calls(Req::Ok, 10).await;
    let counts = rig.handle.counts();
    assert_eq!(
        (counts.timeouts, counts.failures, counts.failed()),
        (10, 0, 10)
    );
    assert_eq!(rig.handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn short_circuits_are_tallied_but_not_counted_as_failures() {
    let mut rig = tripped(|b| b).await;
    for _ in 0..5 {
        rig.assert_rejected().await;
    }
    let rolling = rig.handle.rolling_counts();
    assert_eq!((rolling.short_circuited, rolling.failures), (5, 20));
}

// ===== slow-call rule =====

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_it_at_the_slow_call_rate() {
    // 15 s of sequential calls: a window long enough to hold them all.
    let mut rig = Rig::new(|b| {
        b.window(Window::time(Duration::from_secs(60), 6))
            .min_calls(10)
            .slow_call(Duration::from_millis(500), 0.6)
    });
    rig.calls(Req::Slow(499), 10).await;
    assert_eq!(rig.handle.counts().slow, 0, "499 ms is under the bound");
    rig.calls(Req::Slow(500), 5).await; // 5/15 slow
    assert_eq!(rig.handle.state(), State::Closed);
    rig.calls(Req::Slow(800), 10).await; // 15/25 = 60 %
    assert_eq!(rig.handle.state(), State::Open);
    let changes = rig.changes();
    assert!(
        matches!(changes[0].2, TransitionReason::SlowCallRate { rate } if rate == 0.6),
        "{changes:?}"
    );
    let latencies = rig.handle.latencies();
    assert_eq!(latencies.count(), 25);
    let p100 = latencies.percentile(100.0).as_millis();
    assert!((750..=850).contains(&p100), "p100 {p100} ms");
}

// ===== timing =====

/// 20 000 calls in the first second (2 000 a bucket over the 10 s window),
/// then `then` calls in the next: how many of the calls were timed.
async fn timed_under_load(rig: &mut Rig, then: usize) -> u64 {
    rig.calls(Req::Ok, 20_000).await;
    assert_eq!(rig.handle.latencies().count(), 20_000, "all timed at first");
    advance(Duration::from_secs(1)).await;
    rig.calls(Req::Ok, then).await;
    assert_eq!(rig.handle.rolling_counts().calls(), 20_000 + then as u64);
    rig.handle.latencies().count() - 20_000
}

#[tokio::test(start_paused = true)]
async fn under_load_one_call_in_a_stride_is_timed_and_every_call_counted() {
    let mut rig = Rig::new(|b| b.failure_rate(0.5));
    // 20 000 calls in the last full bucket, 100 timed a bucket: one call in
    // 64 (200, capped), drawn at random.
    let timed = timed_under_load(&mut rig, 16_000).await;
    assert!((150..=400).contains(&timed), "{timed} of 16 000 timed");
}

#[tokio::test(start_paused = true)]
async fn a_count_window_keeps_about_100_timed_calls() {
    // A window of the last 800 calls, which `latencies` reads: one call
    // in 8 (800 / 100), not 64, for about 100 timed calls in it.
    let mut rig = Rig::new(|b| b.window(Window::count(800)).failure_rate(0.5));
    rig.calls(Req::Ok, 20_000).await;
    advance(Duration::from_secs(1)).await;
    rig.calls(Req::Ok, 16_000).await;
    assert_eq!(rig.handle.rolling_counts().calls(), 36_000);
    let timed = rig.handle.latencies().count();
    assert!((50..=170).contains(&timed), "{timed} of the last 800 timed");
}

#[tokio::test(start_paused = true)]
async fn a_commands_breaker_times_every_call() {
    let command = rampart::Command::builder("timed").build().unwrap();
    let breaker = command.breaker();
    let mut svc = command.layer(tower::service_fn(|_: ()| async { Ok::<_, BoxError>(()) }));
    for _ in 0..20_000 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    advance(Duration::from_secs(1)).await;
    for _ in 0..1_000 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(breaker.rolling_counts().calls(), 21_000);
    assert_eq!(breaker.latencies().count(), 21_000);
}

#[tokio::test(start_paused = true)]
async fn the_slow_call_rule_times_every_call_under_load() {
    let mut rig = Rig::new(|b| b.slow_call(Duration::from_secs(1), 0.9));
    assert_eq!(timed_under_load(&mut rig, 16_000).await, 16_000);
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_fails_when_the_slow_call_rule_is_on() {
    let mut rig = Rig::new(|b| b.min_calls(2).slow_call(Duration::from_millis(100), 1.0));
    rig.calls(Req::Slow(200), 2).await;
    assert_eq!(rig.handle.state(), State::Open);
    advance(Duration::from_secs(5)).await;
    rig.call(Req::Slow(150)).await.unwrap();
    assert_eq!(rig.handle.state(), State::Open);
    assert_eq!(
        rig.changes().last().unwrap().2,
        TransitionReason::ProbeFailed
    );
}

// ===== consecutive-failure rule =====

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_it_below_min_calls() {
    let mut rig = Rig::new(|b| b.consecutive_failures(5).failure_rate(None));
    rig.calls(Req::Fail, 4).await;
    rig.calls(Req::Ok, 1).await; // a success breaks the run
    rig.calls(Req::NotFound, 3).await; // ignored calls neither break nor extend it
    rig.calls(Req::Fail, 4).await;
    assert_eq!(rig.handle.consecutive_failures(), 4);
    assert_eq!(rig.handle.state(), State::Closed);
    rig.calls(Req::NotFound, 1).await;
    rig.calls(Req::Fail, 1).await;
    assert_eq!(rig.handle.state(), State::Open);
    assert_eq!(
        rig.changes()[0].2,
        TransitionReason::ConsecutiveFailures { count: 5 }
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_can_be_turned_off() {
    // Some rule must stay on (a breaker that can never open is a
    // ConfigError): one that 100 failures do not reach.
    let mut rig = Rig::new(|b| b.failure_rate(None).consecutive_failures(1_000));
    rig.calls(Req::Fail, 100).await;
    assert_eq!(rig.handle.state(), State::Closed);
    assert_eq!(rig.handle.failure_rate(), 1.0);
}

// ===== open, half-open, probes =====

#[tokio::test(start_paused = true)]
async fn open_rejects_until_open_for_then_one_probe_closes_it() {
    let mut rig = tripped(|b| b).await;
    assert_eq!(rig.handle.retry_after(), Some(Duration::from_secs(5)));
    advance(Duration::from_millis(4999)).await;
    rig.assert_rejected().await;
    assert_eq!(rig.handle.retry_after(), Some(Duration::from_millis(1)));
    advance(Duration::from_millis(1)).await;

    // The first call is the probe; while it runs, the rest are rejected at once.
    let probe = rig.start(Req::Slow(100));
    assert_eq!(rig.handle.state(), State::HalfOpen);
    rig.assert_rejected().await;
    rig.assert_rejected().await;
    probe.await.unwrap();

    assert_eq!(rig.handle.state(), State::Closed);
    assert_eq!(
        rig.handle.counts(),
        Default::default(),
        "closed with a fresh window"
    );
    let states: Vec<_> = rig.changes().iter().map(|c| (c.0, c.1, c.2)).collect();
    assert_eq!(
        states[1..],
        [
            (State::Open, State::HalfOpen, TransitionReason::OpenElapsed),
            (
                State::HalfOpen,
                State::Closed,
                TransitionReason::ProbesSucceeded
            ),
        ]
    );
    rig.calls(Req::Ok, 3).await;
    assert_eq!(rig.handle.counts().successes, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_it() {
    let mut rig = tripped(|b| b).await;
    advance(Duration::from_secs(5)).await;
    rig.call(Req::Fail).await.unwrap_err();
    assert_eq!(rig.handle.state(), State::Open);
    assert_eq!(
        rig.changes().last().unwrap().2,
        TransitionReason::ProbeFailed
    );
    rig.assert_rejected().await;
    assert_eq!(
        rig.handle.retry_after(),
        Some(Duration::from_secs(5)),
        "no growth without open_for_max"
    );
}

#[tokio::test(start_paused = true)]
async fn open_time_doubles_on_each_failed_probe_up_to_the_cap() {
    let mut rig = tripped(|b| {
        b.open_for(Duration::from_secs(1))
            .open_for_max(Duration::from_secs(5))
    })
    .await;
    let mut waited = Vec::new();
    for _ in 0..5 {
        let open_for = rig.handle.retry_after().unwrap();
        waited.push(open_for.as_secs());
        advance(open_for).await;
        rig.call(Req::Fail).await.unwrap_err(); // the probe fails
    }
    assert_eq!(waited, [1, 2, 4, 5, 5]);
    // Closing forgets the trips: the next trip opens for the base time again.
    advance(rig.handle.retry_after().unwrap()).await;
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
    rig.calls(Req::Fail, 20).await;
    assert_eq!(rig.handle.retry_after(), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_the_open_time_within_bounds() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let rig = tripped(|b| b.open_for(Duration::from_secs(10)).open_for_jitter(0.5)).await;
        let open_for = rig.handle.retry_after().unwrap();
        assert!(
            open_for >= Duration::from_secs(5) && open_for <= Duration::from_secs(15),
            "{open_for:?}"
        );
        seen.insert(open_for.as_millis());
    }
    assert!(seen.len() > 1, "jitter never varied");

    // At the cap too (found by a user trial: cut at the cap, most breakers
    // there opened for exactly the cap, and probed together).
    let mut above = 0;
    for _ in 0..40 {
        let rig = tripped(|b| {
            b.open_for(Duration::from_secs(10))
                .open_for_max(Duration::from_secs(10))
                .open_for_jitter(0.5)
        })
        .await;
        let open_for = rig.handle.retry_after().unwrap();
        assert!(open_for <= Duration::from_secs(15), "{open_for:?}");
        above += usize::from(open_for > Duration::from_secs(10));
    }
    assert!(above > 0, "never above the cap: the jitter was cut there");
}

#[tokio::test(start_paused = true)]
async fn every_probe_must_succeed_to_close() {
    let mut rig = tripped(|b| b.probes(3)).await;
    advance(Duration::from_secs(5)).await;
    let a = rig.start(Req::Slow(10));
    let b = rig.start(Req::Slow(20));
    let c = rig.start(Req::Slow(30));
    rig.assert_rejected().await; // a fourth call finds no place
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(
        rig.handle.state(),
        State::HalfOpen,
        "two of three probes are not enough"
    );
    c.await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);

    let mut rig = tripped(|b| b.probes(3)).await;
    advance(Duration::from_secs(5)).await;
    rig.call(Req::Ok).await.unwrap();
    rig.call(Req::Ok).await.unwrap();
    rig.call(Req::Fail).await.unwrap_err();
    assert_eq!(rig.handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn an_ignored_probe_gives_its_place_to_the_next_call() {
    let mut rig = tripped(|b| b).await;
    advance(Duration::from_secs(5)).await;
    assert_eq!(rig.call(Req::NotFound).await.unwrap(), 404);
    assert_eq!(rig.handle.state(), State::HalfOpen);
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_reopens_the_breaker_instead_of_wedging_it() {
    let mut rig = tripped(|b| b).await;
    advance(Duration::from_secs(5)).await;
    let probe = rig.start(Req::Hang);
    rig.assert_rejected().await;
    drop(probe); // e.g. a timeout above the breaker gave up on it
    assert_eq!(rig.handle.state(), State::Open);
    assert_eq!(
        rig.changes().last().unwrap().2,
        TransitionReason::ProbeAbandoned
    );
    advance(Duration::from_secs(5)).await;
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_never_ends_times_out() {
    let mut rig = tripped(|b| b.probe_timeout(Duration::from_secs(2))).await;
    advance(Duration::from_secs(5)).await;
    let mut probe = rig.start(Req::Slow(60_000)); // a minute: far past the probe timeout
    advance(Duration::from_millis(1999)).await;
    rig.assert_rejected().await;
    assert_eq!(rig.handle.state(), State::HalfOpen);
    advance(Duration::from_millis(1)).await;
    rig.assert_rejected().await; // this call finds the probe overdue
    assert_eq!(rig.handle.state(), State::Open);
    assert_eq!(
        rig.changes().last().unwrap().2,
        TransitionReason::ProbeTimedOut
    );
    // The late probe's success belongs to a past period: it changes nothing.
    advance(Duration::from_secs(60)).await;
    (&mut probe).await.unwrap();
    // Not closed by it; by now the open time has passed, so it reads
    // half-open, waiting for a probe of its own period.
    assert_eq!(rig.handle.state(), State::HalfOpen);
    // And the breaker goes on: the next probe closes it.
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn calls_admitted_before_a_trip_cannot_close_or_trip_a_later_period() {
    let mut rig = Rig::new(|b| b.min_calls(2).consecutive_failures(2));
    let slow_ok = rig.start(Req::Slow(10_000));
    let slow_fail_layer_call = rig.start(Req::Hang);
    rig.calls(Req::Fail, 2).await;
    assert_eq!(rig.handle.state(), State::Open);
    advance(Duration::from_secs(5)).await;
    let probe = rig.start(Req::Slow(5_000));
    // The old call succeeds while the breaker is half-open: not a probe.
    advance(Duration::from_secs(5)).await;
    slow_ok.await.unwrap();
    assert_eq!(rig.handle.state(), State::HalfOpen);
    probe.await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
    drop(slow_fail_layer_call);
    assert_eq!(rig.handle.state(), State::Closed);
}

// ===== readiness and cancellation =====

#[tokio::test(start_paused = true)]
async fn poll_ready_does_not_wait_for_the_inner_service_while_open() {
    let layer = CircuitBreakerLayer::builder("mock")
        .min_calls(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mut svc, mut dep) = tower_test::mock::spawn_layer::<(), (), _>(layer);
    dep.allow(1);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let response = svc.call(());
    dep.next_request().await.unwrap().1.send_error("down");
    response.await.unwrap_err();
    assert_eq!(handle.state(), State::Open);

    // The dependency has no capacity left, yet the open breaker is ready at
    // once and rejects the call without asking it.
    dep.allow(0);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let err = svc.call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);

    // Closed again, readiness is the dependency's.
    handle.reset();
    tokio_test::assert_pending!(svc.poll_ready());
    dep.allow(1);
    assert!(svc.is_woken());
    tokio_test::assert_ready_ok!(svc.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn dropping_calls_in_flight_loses_nothing_and_counts_nothing() {
    let mut rig = Rig::new(|b| b.min_calls(1));
    // Closed: a dropped call is neither a success nor a failure.
    drop(rig.start(Req::Hang));
    assert_eq!(rig.handle.counts(), Default::default());
    assert_eq!(rig.handle.state(), State::Closed);
    // Open: a rejected future dropped unpolled is harmless.
    rig.call(Req::Fail).await.unwrap_err();
    let waker = futures::task::noop_waker();
    assert!(rig
        .svc
        .poll_ready(&mut Context::from_waker(&waker))
        .is_ready());
    drop(rig.svc.call(Req::Ok));
    assert_eq!(rig.handle.state(), State::Open);
    // Forced and manual states: same.
    rig.handle.force_open();
    assert!(rig
        .svc
        .poll_ready(&mut Context::from_waker(&waker))
        .is_ready());
    drop(rig.svc.call(Req::Ok));
    rig.handle.force_closed();
    drop(rig.start(Req::Hang));
    rig.handle.metrics_only();
    drop(rig.start(Req::Hang));
    rig.handle.disable();
    drop(rig.start(Req::Hang));
    assert_eq!(rig.handle.state(), State::Disabled);
    assert_eq!(
        rig.handle.counts().failures,
        1,
        "only the completed failure"
    );
    // Half-open: see `a_dropped_probe_reopens_the_breaker_instead_of_wedging_it`.
}

#[tokio::test(start_paused = true)]
async fn clones_of_the_service_and_the_layer_share_one_breaker() {
    let layer = CircuitBreakerLayer::builder("shared")
        .min_calls(4)
        .build()
        .unwrap();
    let failing = tower::service_fn(|_: ()| async { Err::<(), BoxError>("down".into()) });
    let mut a = layer.clone().layer(failing);
    let mut b = a.clone();
    let mut c = layer.layer(failing);
    let _ = a.ready().await.unwrap().call(()).await;
    let _ = b.ready().await.unwrap().call(()).await;
    let _ = c.ready().await.unwrap().call(()).await;
    let _ = a.ready().await.unwrap().call(()).await;
    assert_eq!(layer.handle().state(), State::Open);
    assert_eq!(c.handle().counts().failures, 4);
}

// ===== manual control =====

#[tokio::test(start_paused = true)]
async fn forced_open_rejects_until_reset() {
    let mut rig = Rig::new(|b| b);
    rig.handle.force_open();
    advance(Duration::from_secs(3600)).await;
    rig.assert_rejected().await;
    assert_eq!(rig.handle.retry_after(), None);
    rig.handle.reset();
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(
        rig.changes(),
        [
            (State::Closed, State::ForcedOpen, TransitionReason::Manual),
            (State::ForcedOpen, State::Closed, TransitionReason::Manual),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn forced_closed_counts_but_never_trips() {
    let mut rig = Rig::new(|b| b.consecutive_failures(1));
    rig.handle.force_closed();
    rig.calls(Req::Fail, 50).await;
    assert_eq!(rig.handle.state(), State::ForcedClosed);
    assert_eq!(rig.handle.counts().failures, 50);
    assert_eq!(rig.reached(), 50);
}

#[tokio::test(start_paused = true)]
async fn disabled_counts_nothing() {
    let mut rig = Rig::new(|b| b);
    rig.handle.disable();
    rig.calls(Req::Fail, 50).await;
    assert_eq!(rig.handle.state(), State::Disabled);
    assert_eq!(rig.handle.counts(), Default::default());
    assert_eq!(rig.reached(), 50);
}

#[tokio::test(start_paused = true)]
async fn metrics_only_evaluates_but_never_opens() {
    let mut rig = Rig::new(|b| b);
    rig.handle.metrics_only();
    rig.calls(Req::Fail, 50).await;
    assert_eq!(rig.handle.state(), State::MetricsOnly);
    assert_eq!(rig.handle.failure_rate(), 1.0);
    // Back to normal operation: the same traffic trips it.
    rig.handle.reset();
    rig.calls(Req::Fail, 20).await;
    assert_eq!(rig.handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn reset_closes_an_open_breaker_with_a_fresh_window() {
    let mut rig = tripped(|b| b).await;
    rig.handle.reset();
    assert_eq!(rig.handle.state(), State::Closed);
    assert_eq!(rig.handle.counts(), Default::default());
    rig.calls(Req::Fail, 19).await;
    assert_eq!(
        rig.handle.state(),
        State::Closed,
        "the old failures are gone"
    );
}

// ===== metrics =====

#[tokio::test(start_paused = true)]
async fn reports_outcomes_and_state_through_the_metrics_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are taken when the layer is built: build it under the recorder.
    let mut rig = metrics::with_local_recorder(&recorder, || Rig::new(|b| b.min_calls(4)));
    rig.calls(Req::Ok, 2).await;
    rig.calls(Req::Fail, 2).await;
    rig.assert_rejected().await;

    let mut events = std::collections::BTreeMap::new();
    let mut state = None;
    let mut latencies = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
        };
        match (key.name(), value) {
            ("rampart_events_total", DebugValue::Counter(n)) => {
                assert_eq!(label("layer").as_deref(), Some("circuit_breaker"));
                assert_eq!(label("name").as_deref(), Some("dep"));
                events.insert(label("event").unwrap(), n);
            }
            ("rampart_circuit_breaker_state", DebugValue::Gauge(g)) => state = Some(g.into_inner()),
            ("rampart_call_duration_seconds", DebugValue::Histogram(h)) => latencies = h.len(),
            _ => {}
        }
    }
    assert_eq!(events.get("success"), Some(&2));
    assert_eq!(events.get("failure"), Some(&2));
    assert_eq!(events.get("short_circuited"), Some(&1));
    assert_eq!(state, Some(1.0), "open");
    assert_eq!(latencies, 4);
}

// ===== configuration =====

#[test]
fn every_bad_option_is_a_config_error_naming_its_field() {
    let d = Duration::from_secs(1);
    let cases: Vec<(&str, Builder)> = vec![
        ("name", CircuitBreakerLayer::builder("")),
        (
            "failure_rate",
            CircuitBreakerLayer::builder("x").failure_rate(1.5),
        ),
        (
            "failure_rate",
            CircuitBreakerLayer::builder("x").failure_rate(0.0),
        ),
        (
            "failure_rate",
            CircuitBreakerLayer::builder("x").failure_rate(-0.1),
        ),
        (
            "failure_rate",
            CircuitBreakerLayer::builder("x").failure_rate(f64::NAN),
        ),
        (
            "window",
            CircuitBreakerLayer::builder("x").window(Window::time(Duration::ZERO, 10)),
        ),
        (
            "window",
            CircuitBreakerLayer::builder("x").window(Window::time(d, 0)),
        ),
        (
            "window",
            CircuitBreakerLayer::builder("x").window(Window::time(d, 1001)),
        ),
        (
            "window",
            CircuitBreakerLayer::builder("x").window(Window::time(Duration::from_millis(10), 3)),
        ),
        (
            "window",
            CircuitBreakerLayer::builder("x")
                .window(Window::count(0))
                .min_calls(1),
        ),
        ("min_calls", CircuitBreakerLayer::builder("x").min_calls(0)),
        (
            "min_calls",
            CircuitBreakerLayer::builder("x")
                .window(Window::count(10))
                .min_calls(11),
        ),
        (
            "slow_call",
            CircuitBreakerLayer::builder("x").slow_call(Duration::ZERO, 0.5),
        ),
        (
            "slow_call",
            CircuitBreakerLayer::builder("x").slow_call(d, 0.0),
        ),
        (
            "slow_call",
            CircuitBreakerLayer::builder("x").slow_call(d, 1.01),
        ),
        (
            "consecutive_failures",
            CircuitBreakerLayer::builder("x").consecutive_failures(0),
        ),
        (
            "open_for",
            CircuitBreakerLayer::builder("x").open_for(Duration::ZERO),
        ),
        (
            "open_for_max",
            CircuitBreakerLayer::builder("x")
                .open_for(d)
                .open_for_max(d / 2),
        ),
        (
            "open_for_jitter",
            CircuitBreakerLayer::builder("x").open_for_jitter(1.5),
        ),
        (
            "open_for_jitter",
            CircuitBreakerLayer::builder("x").open_for_jitter(-0.1),
        ),
        ("probes", CircuitBreakerLayer::builder("x").probes(0)),
        ("probes", CircuitBreakerLayer::builder("x").probes(10_001)),
        (
            "probe_timeout",
            CircuitBreakerLayer::builder("x").probe_timeout(Duration::ZERO),
        ),
    ];
    for (field, builder) in cases {
        let shown = format!("{builder:?}");
        let err = builder.build().expect_err(&shown);
        assert!(err.names(field), "{shown}: {err}");
        assert_eq!(err.violations().len(), 1, "{shown}: {err}");
        assert!(
            err.to_string()
                .starts_with("invalid configuration for circuit breaker"),
            "{err}"
        );
    }
}

#[test]
fn a_config_error_lists_every_violation_with_the_rejected_value() {
    let err = CircuitBreakerLayer::builder("recs")
        .failure_rate(2.0)
        .probes(0)
        .open_for(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.violations().len(), 3);
    assert_eq!(
        err.to_string(),
        "invalid configuration for circuit breaker \"recs\": failure_rate: must be in (0, 1], got 2; \
         open_for: must be from 1 ms to a year, got 0ns; probes: must be from 1 to 10000, got 0"
    );
}

#[test]
fn defaults_are_hystrix_defaults() {
    let b = format!("{:?}", CircuitBreakerLayer::builder("x"));
    for expected in [
        "window: Window(Time { length: 10s, buckets: 10 })",
        "min_calls: 20",
        "failure_rate: Some(0.5)",
        "open_for: 5s",
        "probes: 1",
    ] {
        assert!(b.contains(expected), "{b} lacks {expected}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_probe_place_taken_by_poll_ready_and_never_used_is_given_back() {
    let mut rig = tripped(|b| b).await;
    advance(Duration::from_secs(5)).await;
    // Reading the state moves the breaker on to half-open (`poll_ready`
    // does not read the clock to see the open time out).
    assert_eq!(rig.handle.state(), State::HalfOpen);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // A clone polled ready takes the only probe place, then goes away.
    let mut polled = rig.svc_clone();
    assert!(polled.poll_ready(&mut cx).is_ready());
    rig.assert_rejected().await;
    drop(polled);
    // The place is free again: the next call is the probe, and closes it.
    rig.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_beneath_is_not_asked_for_a_slot_for_a_rejected_call() {
    use rampart::bulkhead::BulkheadLayer;
    let breaker = CircuitBreakerLayer::builder("b")
        .min_calls(1)
        .build()
        .unwrap();
    let bulkhead = BulkheadLayer::builder("b")
        .max_concurrent(1)
        .build()
        .unwrap();
    let slots = bulkhead.handle();
    let failing = tower::service_fn(|_: ()| async { Err::<(), BoxError>("down".into()) });
    let mut svc = tower::ServiceBuilder::new()
        .layer(breaker)
        .layer(bulkhead)
        .service(failing);
    svc.ready().await.unwrap().call(()).await.unwrap_err();
    // Open: poll_ready is ready without touching the bulkhead.
    let waker = futures::task::noop_waker();
    assert!(svc.poll_ready(&mut Context::from_waker(&waker)).is_ready());
    assert_eq!(slots.in_flight(), 0);
    let err = svc.call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(slots.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn only_the_admitted_probe_holds_a_bulkhead_slot_while_half_open() {
    use rampart::bulkhead::BulkheadLayer;
    let breaker = CircuitBreakerLayer::builder("b")
        .min_calls(1)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let bulkhead = BulkheadLayer::builder("b")
        .max_concurrent(5)
        .build()
        .unwrap();
    let slots = bulkhead.handle();
    let dependency = tower::service_fn(|ok: bool| async move {
        if ok {
            Ok(())
        } else {
            Err::<(), BoxError>("down".into())
        }
    });
    let stack = tower::ServiceBuilder::new()
        .layer(breaker)
        .layer(bulkhead)
        .service(dependency);
    let mut first = stack.clone();
    first.ready().await.unwrap().call(false).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);
    advance(Duration::from_secs(5)).await;
    assert_eq!(handle.state(), State::HalfOpen);

    // Two callers get ready while half-open with one probe place: only the
    // one admitted as the probe takes a slot in the bulkhead beneath.
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut a, mut b) = (stack.clone(), stack.clone());
    assert!(a.poll_ready(&mut cx).is_ready());
    assert!(b.poll_ready(&mut cx).is_ready());
    assert_eq!(slots.in_flight(), 1, "the rejected caller holds no slot");
    let err = b.call(true).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    a.call(true).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(slots.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_rejection_decided_in_poll_ready_is_reconsidered_when_polled_again() {
    let mut rig = tripped(|b| b).await;
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // Polled ready while open (as an idle Buffer worker would be)...
    assert!(rig.svc.poll_ready(&mut cx).is_ready());
    advance(Duration::from_secs(5)).await;
    // ...and again once the breaker is half-open: now it takes the only
    // probe place, so another caller is rejected meanwhile.
    assert_eq!(rig.handle.state(), State::HalfOpen);
    assert!(rig.svc.poll_ready(&mut cx).is_ready());
    let mut other = rig.svc_clone();
    let err = other
        .ready()
        .await
        .unwrap()
        .call(Req::Ok)
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    rig.svc.call(Req::Ok).await.unwrap();
    assert_eq!(rig.handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_rejection_decided_in_poll_ready_is_decided_again_at_the_call() {
    let mut rig = tripped(|b| b).await;
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // Polled ready while open, called once the open time is over, with
    // nothing in between: the call is the probe, and closes the breaker.
    assert!(rig.svc.poll_ready(&mut cx).is_ready());
    advance(Duration::from_secs(5)).await;
    let before = rig.reached();
    rig.svc.call(Req::Ok).await.unwrap();
    assert_eq!(rig.reached(), before + 1);
    assert_eq!(rig.handle.state(), State::Closed);
    // Polled and called while open: rejected, counted when called.
    rig.handle.force_open();
    assert!(rig.svc.poll_ready(&mut cx).is_ready());
    advance(Duration::from_secs(30)).await;
    let err = rig.svc.call(Req::Ok).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(rig.handle.rolling_counts().short_circuited, 1);
}

/// Fails calls of `false`; its readiness fails once `gone` is set.
#[derive(Clone)]
struct Gone(Arc<std::sync::atomic::AtomicBool>);

impl Service<bool> for Gone {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(match self.0.load(Ordering::SeqCst) {
            true => Err("gone".into()),
            false => Ok(()),
        })
    }

    fn call(&mut self, ok: bool) -> Self::Future {
        std::future::ready(if ok { Ok(()) } else { Err("down".into()) })
    }
}

#[tokio::test(start_paused = true)]
async fn an_inner_readiness_error_met_at_the_call_is_returned_by_the_next_poll_ready() {
    let breaker = CircuitBreakerLayer::builder("b")
        .min_calls(1)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut svc = breaker.layer(Gone(gone.clone()));
    svc.ready().await.unwrap().call(false).await.unwrap_err();
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(svc.poll_ready(&mut cx).is_ready(), "rejected while open");
    // The inner service fails meanwhile, and the open time runs out: the
    // call, which would be the probe, meets the failure. It is rejected
    // as decided when polled, and the failure is not lost.
    gone.store(true, Ordering::SeqCst);
    advance(Duration::from_secs(5)).await;
    let err = svc.call(true).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    let Poll::Ready(Err(err)) = svc.poll_ready(&mut cx) else {
        panic!("the next poll_ready returns the inner service's error");
    };
    assert_eq!(err.to_string(), "gone");
    // The probe place taken for the call was given back: the next call,
    // once the inner service is back, is the probe.
    gone.store(false, Ordering::SeqCst);
    svc.ready().await.unwrap().call(true).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_probe_decided_at_the_call_goes_ahead_only_if_the_inner_service_is_ready_at_once() {
    let breaker = CircuitBreakerLayer::builder("b")
        .min_calls(1)
        .build()
        .unwrap();
    let handle = breaker.handle();
    // 0 fails, 1 succeeds, anything else never ends.
    let dependency = tower::service_fn(|req: u8| async move {
        match req {
            0 => Err::<(), BoxError>("down".into()),
            1 => Ok(()),
            _ => std::future::pending().await,
        }
    });
    // A concurrency limit of one waits when full, as a bulkhead with a
    // queue does.
    let limit = tower::limit::ConcurrencyLimit::new(dependency, 1);
    let stack = breaker.layer(limit.clone());
    let mut first = stack.clone();
    first.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);

    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut caller = stack.clone();
    assert!(caller.poll_ready(&mut cx).is_ready(), "rejects at once");
    // The limit's one place is taken meanwhile, and the open time runs out.
    let mut other = limit.clone();
    other.ready().await.unwrap();
    let held = other.call(2);
    advance(Duration::from_secs(5)).await;
    // The call would be the probe, but the limit is not ready at once: it
    // is rejected, and the probe place is left to the next call.
    let err = caller.call(1).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(handle.state(), State::HalfOpen);
    drop(held);
    let mut next = stack.clone();
    next.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn calls_from_before_a_reset_stay_out_of_the_fresh_window() {
    let mut rig = Rig::new(|b| b.window(Window::count(10)).min_calls(10));
    let slow: Vec<_> = (0..5).map(|_| rig.start(Req::Slow(1_000))).collect();
    rig.handle.reset();
    for call in slow {
        call.await.unwrap();
    }
    assert_eq!(
        rig.handle.counts(),
        Default::default(),
        "the old calls are not in the new window"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_admitted_before_the_breaker_opened_is_decided_again() {
    let mut rig = Rig::new(|b| b.min_calls(1));
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // Polled ready while closed...
    assert!(rig.svc.poll_ready(&mut cx).is_ready());
    // ...then the breaker opens before the call is made.
    rig.handle.force_open();
    let before = rig.reached();
    let err = rig.svc.call(Req::Ok).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(rig.reached(), before);
}
