//! The rate limit on a paused clock: GCRA's rate and burst, the times it
//! says to come back after, the bounded wait, limits per key and their
//! bounded memory, and its options.

use rampart::rate_limit::{RateLimitLayer, RateLimited};
use rampart::registry::Registry;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{advance, Instant};
use tower::{service_fn, Layer, Service, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A dependency that counts its calls and answers at once.
fn counting(
    calls: Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = BoxError> + Clone {
    service_fn(move |n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(n) }
    })
}

/// The time a rejection says to come back after; panics on anything else.
fn retry_after(result: Result<u32, BoxError>) -> Duration {
    let err = result.expect_err("expected a rejection");
    assert_eq!(ErrorKind::of(&err), ErrorKind::RateLimited, "{err}");
    err.downcast_ref::<RateLimited>().unwrap().retry_after()
}

async fn call<S>(svc: &mut S, n: u32) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    svc.ready().await?.call(n).await
}

fn layer(calls: u32, period: Duration, burst: u32) -> RateLimitLayer {
    RateLimitLayer::builder("test")
        .rate(calls, period)
        .burst(burst)
        .registry(&Registry::new())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_burst_goes_through_at_once_then_one_call_per_interval() {
    let calls = Arc::new(AtomicUsize::new(0));
    // 10 per second (T = 100 ms), a burst of 3.
    let mut svc = layer(10, Duration::from_secs(1), 3).layer(counting(calls.clone()));
    for n in 0..3 {
        assert_eq!(call(&mut svc, n).await.unwrap(), n);
    }
    // The fourth call's permit is one interval away; the dependency is
    // not called.
    assert_eq!(retry_after(call(&mut svc, 3).await), ms(100));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // 30 ms on: 70 ms to go.
    advance(ms(30)).await;
    assert_eq!(retry_after(call(&mut svc, 4).await), ms(70));
    // At 100 ms one permit is back, and only one.
    advance(ms(70)).await;
    call(&mut svc, 5).await.unwrap();
    assert_eq!(retry_after(call(&mut svc, 6).await), ms(100));

    // A long quiet spell refills the burst, never more than the burst.
    advance(Duration::from_secs(10)).await;
    for n in 0..3 {
        call(&mut svc, n).await.unwrap();
    }
    assert_eq!(retry_after(call(&mut svc, 9).await), ms(100));
    assert_eq!(calls.load(Ordering::SeqCst), 7);
}

#[tokio::test(start_paused = true)]
async fn the_long_run_rate_is_the_configured_rate() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer(50, Duration::from_secs(1), 5).layer(counting(calls.clone()));
    // Try every millisecond for 10 s: the burst of 5 in the first 5 ms,
    // then one per 20 ms, at 20, 40, ... 9980 ms.
    for n in 0..10_000 {
        let _ = call(&mut svc, n).await;
        advance(ms(1)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5 + 499);
}

#[tokio::test(start_paused = true)]
async fn the_default_burst_is_the_whole_rate() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::builder("default-burst")
        .rate(4, Duration::from_secs(2))
        .registry(&Registry::new())
        .build()
        .unwrap();
    assert_eq!(layer.handle().burst(), 4);
    let mut svc = layer.layer(counting(calls.clone()));
    for n in 0..4 {
        call(&mut svc, n).await.unwrap();
    }
    // One permit per 500 ms.
    assert_eq!(retry_after(call(&mut svc, 4).await), ms(500));
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_for_a_permit_within_max_wait() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::builder("waiting")
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .max_wait(ms(250))
        .registry(&Registry::new())
        .build()
        .unwrap();
    let svc = layer.layer(counting(calls.clone()));
    let start = Instant::now();
    // Three calls at once: at 0, and waiting for 100 ms and 200 ms.
    let answered: Vec<_> = futures::future::join_all((0..3).map(|n| {
        let mut svc = svc.clone();
        async move {
            let result = call(&mut svc, n).await;
            (result, start.elapsed())
        }
    }))
    .await;
    let mut times: Vec<_> = answered
        .into_iter()
        .map(|(result, at)| {
            result.unwrap();
            at
        })
        .collect();
    times.sort();
    assert_eq!(times, [ms(0), ms(100), ms(200)]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_permit_beyond_max_wait_is_refused_at_once_and_a_waiter_gives_up_at_its_bound() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::builder("bounded")
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .max_wait(ms(150))
        .registry(&Registry::new())
        .build()
        .unwrap();
    let svc = layer.layer(counting(calls.clone()));
    let start = Instant::now();
    // At 0: one goes, two wait for the permit at 100 ms; one gets it,
    // the other's next permit (200 ms) is past its bound (150 ms).
    let answered: Vec<_> = futures::future::join_all((0..3).map(|n| {
        let mut svc = svc.clone();
        async move {
            let result = call(&mut svc, n).await;
            (
                result.map_err(|e| e.downcast_ref::<RateLimited>().map(|r| r.retry_after())),
                start.elapsed(),
            )
        }
    }))
    .await;
    let ok: Vec<_> = answered
        .iter()
        .filter(|(r, _)| r.is_ok())
        .map(|(_, at)| *at)
        .collect();
    let refused: Vec<_> = answered
        .iter()
        .filter_map(|(r, at)| r.err().map(|e| (e, *at)))
        .collect();
    assert_eq!(ok.len(), 2);
    assert!(ok.contains(&ms(0)) && ok.contains(&ms(100)), "{ok:?}");
    // Refused at 100 ms, told to come back at 200 ms.
    assert_eq!(refused, [(Some(ms(100)), ms(100))]);
}

fn waiting_layer(max_wait: Duration) -> RateLimitLayer {
    RateLimitLayer::builder("waiting")
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .max_wait(max_wait)
        .registry(&Registry::new())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_permit_further_than_max_wait_is_refused_without_waiting() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = waiting_layer(ms(50)).layer(counting(calls.clone()));
    let start = Instant::now();
    call(&mut svc, 0).await.unwrap();
    // The next permit is 100 ms away, past the 50 ms bound: refused now.
    assert_eq!(retry_after(call(&mut svc, 1).await), ms(100));
    assert_eq!(start.elapsed(), ms(0));
    // 60 ms on, it is 40 ms away: the call waits for it.
    advance(ms(60)).await;
    call(&mut svc, 2).await.unwrap();
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_dropped_takes_no_permit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = waiting_layer(ms(500)).layer(counting(calls.clone()));
    call(&mut svc, 0).await.unwrap();
    // A call waits for the permit at 100 ms, and is dropped at 50 ms.
    let waiting = svc.ready().await.unwrap().call(1);
    let dropped = tokio::time::timeout(ms(50), waiting).await;
    assert!(dropped.is_err(), "still waiting at 50 ms");
    // At 100 ms the permit is there for the next call, at once.
    advance(ms(50)).await;
    let start = Instant::now();
    call(&mut svc, 2).await.unwrap();
    assert_eq!(start.elapsed(), ms(0));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// ===== per key =====

/// A limit per key: the key is the request number's tens (0..9 → 0, ...).
fn per_tens(
    calls: u32,
    period: Duration,
    burst: u32,
    max_keys: usize,
) -> RateLimitLayer<u32, impl Fn(&u32) -> u32 + Clone> {
    RateLimitLayer::builder("per-key")
        .rate(calls, period)
        .burst(burst)
        .key(|n: &u32| n / 10)
        .max_keys(max_keys)
        .registry(&Registry::new())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_limit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = per_tens(1, Duration::from_secs(1), 2, 1000);
    let handle = layer.handle();
    let mut svc = layer.layer(counting(calls.clone()));
    // Key 0 spends its burst of 2...
    call(&mut svc, 1).await.unwrap();
    call(&mut svc, 2).await.unwrap();
    assert_eq!(retry_after(call(&mut svc, 3).await), Duration::from_secs(1));
    // ...key 1 still has its own.
    call(&mut svc, 11).await.unwrap();
    call(&mut svc, 12).await.unwrap();
    advance(ms(400)).await;
    assert_eq!(retry_after(call(&mut svc, 13).await), ms(600));
    assert_eq!(retry_after(call(&mut svc, 4).await), ms(600));
    assert_eq!(handle.keys(), Some(2));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn past_max_keys_the_keys_nearest_to_a_full_allowance_are_forgotten() {
    let calls = Arc::new(AtomicUsize::new(0));
    // One call per hour per key: nothing becomes idle during the test.
    let layer = per_tens(1, Duration::from_secs(3600), 1, 16);
    let handle = layer.handle();
    let mut svc = layer.layer(counting(calls.clone()));
    for key in 0..16 {
        call(&mut svc, key * 10).await.unwrap();
        advance(ms(1)).await;
    }
    assert_eq!(handle.keys(), Some(16));
    // The 17th key: 16 − 16/8 = 14 stay; keys 0, 1 and 2 (the oldest
    // debts, so nearest to a full allowance) go.
    call(&mut svc, 160).await.unwrap();
    assert_eq!(handle.keys(), Some(14));
    assert_eq!(handle.evicted(), 3);
    // A forgotten key is let through as new; a kept one is still limited.
    call(&mut svc, 0).await.unwrap();
    assert!(retry_after(call(&mut svc, 30).await) > Duration::from_secs(3590));
}

#[tokio::test(start_paused = true)]
async fn keys_whose_allowance_is_full_again_are_forgotten_without_loss() {
    let calls = Arc::new(AtomicUsize::new(0));
    // 10 per second per key, a burst of 1: a key is idle 100 ms after its
    // call (plus one interval of margin, as governor keeps).
    let layer = per_tens(10, Duration::from_secs(1), 1, 1_000_000);
    let handle = layer.handle();
    let mut svc = layer.layer(counting(calls.clone()));
    for n in 0..1100 {
        call(&mut svc, n * 10).await.unwrap();
    }
    // The first sweep (past 1024 keys) found nothing idle.
    assert_eq!(handle.keys(), Some(1100));
    advance(Duration::from_secs(1)).await;
    // New keys: the sweep when the map doubles forgets the idle ones.
    for n in 1100..2100 {
        call(&mut svc, n * 10).await.unwrap();
    }
    let held = handle.keys().unwrap();
    assert!(held < 1100, "{held} keys held");
    assert_eq!(handle.evicted(), 0, "nothing forgotten over the bound");
    // A forgotten key behaves as it would have: its allowance was full.
    call(&mut svc, 0).await.unwrap();
    assert_eq!(retry_after(call(&mut svc, 1).await), ms(100));
}

// ===== options =====

#[test]
fn every_bad_option_is_named() {
    let err = RateLimitLayer::builder("")
        .burst(0)
        .max_wait(Duration::ZERO)
        .max_keys(10)
        .build()
        .unwrap_err();
    for field in ["name", "rate", "burst", "max_wait", "max_keys"] {
        assert!(err.names(field), "{field} not named in {err}");
    }
    assert!(err.to_string().contains("needs key"), "{err}");

    let err = RateLimitLayer::builder("x")
        .rate(0, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("calls must be at least 1, got 0"),
        "{err}"
    );
    // The burst, never set, is not named (a user trial found it was).
    assert!(!err.names("burst"), "{err}");
    let err = RateLimitLayer::builder("x")
        .rate(1, Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.names("rate"), "{err}");
    let err = RateLimitLayer::builder("x")
        .rate(u32::MAX, Duration::from_micros(1))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("more than one per nanosecond"),
        "{err}"
    );
    // A burst whose refill would overflow governor's arithmetic.
    let err = RateLimitLayer::builder("x")
        .rate(1, Duration::from_secs(3600))
        .burst(u32::MAX)
        .build()
        .unwrap_err();
    assert!(err.names("burst"), "{err}");
    let err = RateLimitLayer::builder("x")
        .rate(1, Duration::from_secs(1))
        .key(|n: &u32| *n)
        .max_keys(0)
        .build()
        .unwrap_err();
    assert!(err.names("max_keys"), "{err}");
}

#[test]
fn a_built_limit_is_listed_until_dropped() {
    let registry = Registry::new();
    let layer = RateLimitLayer::builder("listed")
        .rate(5, Duration::from_secs(1))
        .max_wait(ms(20))
        .registry(&registry)
        .build()
        .unwrap();
    let listed = registry.rate_limits();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name(), "listed");
    assert_eq!(listed[0].rate(), (5, Duration::from_secs(1)));
    assert_eq!(listed[0].max_wait(), Some(ms(20)));
    assert_eq!(listed[0].max_keys(), None);
    drop((layer, listed));
    assert!(registry.rate_limits().is_empty());
}

#[tokio::test(start_paused = true)]
async fn admitted_waited_and_rejected_calls_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || waiting_layer(ms(50)));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(counting(calls));
    call(&mut svc, 0).await.unwrap(); // admitted
    call(&mut svc, 1).await.unwrap_err(); // 100 ms away: rejected
    advance(ms(60)).await;
    call(&mut svc, 2).await.unwrap(); // waits 40 ms: admitted, waited
    let mut counted: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "rampart_events_total")
        .map(|(key, _, _, value)| {
            let event = key
                .key()
                .labels()
                .find(|l| l.key() == "event")
                .unwrap()
                .value()
                .to_owned();
            let DebugValue::Counter(n) = value else {
                panic!("not a counter")
            };
            (event, n)
        })
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        [
            ("admitted".into(), 2),
            ("rejected".into(), 1),
            ("waited".into(), 1)
        ]
    );
}

/// Found by a user trial: beneath a deadline, a call whose permit comes
/// after the deadline waited for it and was cut off at the deadline
/// (`DeadlineExceeded`); it is now refused at once, saying when the permit
/// comes, as no retry or backoff starts past a deadline.
#[tokio::test(start_paused = true)]
async fn a_wait_the_callers_deadline_would_cut_is_not_started() {
    use rampart::deadline::DeadlineLayer;

    for (budget, waited) in [(ms(100), None), (ms(2000), Some(ms(1000)))] {
        let limit = RateLimitLayer::builder("deadline")
            .rate(1, Duration::from_secs(1))
            .max_wait(Duration::from_secs(2))
            .registry(&Registry::new())
            .build()
            .unwrap();
        let deadline = DeadlineLayer::builder("deadline")
            .budget(budget)
            .build()
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let dependency = service_fn(move |_: http::Request<()>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        });
        let mut svc = deadline.layer(limit.layer(dependency));
        let mut send = async || svc.ready().await?.call(http::Request::new(())).await;
        send().await.unwrap();
        let started = Instant::now();
        let answer = send().await;
        match waited {
            // The permit, a second away, comes after the 100 ms deadline.
            None => {
                let err = answer.unwrap_err();
                assert_eq!(ErrorKind::of(&err), ErrorKind::RateLimited, "{err}");
                assert_eq!(started.elapsed(), Duration::ZERO);
                assert_eq!(calls.load(Ordering::SeqCst), 1);
            }
            Some(waited) => {
                answer.unwrap();
                assert_eq!(started.elapsed(), waited);
                assert_eq!(calls.load(Ordering::SeqCst), 2);
            }
        }
    }
}
