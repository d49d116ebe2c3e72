//! Hedged requests on a paused clock: when a hedge goes out, which answer
//! wins, what is cancelled, and the limits (policy, percentile warm-up,
//! extra-load cap, shared budget, max hedged).

use rampart::hedge::{HedgeDelay, HedgeLayer};
use rampart::retry::{HttpPolicy, RetryBudget};
use rampart::BoxError;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// How each copy behaves: after `wait`, answers with its number, or fails.
#[derive(Clone, Copy)]
struct Copy {
    wait: Duration,
    ok: bool,
    status: u16,
}

fn ok_after(ms: u64) -> Copy {
    Copy {
        wait: MS(ms),
        ok: true,
        status: 200,
    }
}

fn fail_after(ms: u64) -> Copy {
    Copy {
        wait: MS(ms),
        ok: false,
        status: 200,
    }
}

/// A dependency playing a script of copies (then quick successes),
/// counting the copies sent and the ones dropped before they answered.
#[derive(Clone, Default)]
struct Dependency {
    script: Arc<Mutex<VecDeque<Copy>>>,
    sent: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

struct DropGuard(Arc<AtomicUsize>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Dependency {
    fn scripted(copies: impl IntoIterator<Item = Copy>) -> Self {
        let d = Dependency::default();
        d.script.lock().unwrap().extend(copies);
        d
    }

    fn service(
        &self,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<usize>,
        Error = BoxError,
        Future: Send,
    > + Clone {
        let this = self.clone();
        service_fn(move |_: http::Request<()>| {
            let n = this.sent.fetch_add(1, Ordering::SeqCst);
            this.arrivals.lock().unwrap().push(Instant::now());
            let copy = this
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(ok_after(1));
            let dropped = this.dropped.clone();
            async move {
                let mut guard = DropGuard(dropped, false);
                tokio::time::sleep(copy.wait).await;
                guard.1 = true;
                if copy.ok {
                    let mut response = http::Response::new(n);
                    *response.status_mut() = http::StatusCode::from_u16(copy.status).unwrap();
                    Ok(response)
                } else {
                    Err::<_, BoxError>(format!("copy {n} failed").into())
                }
            }
        })
    }
}

fn unavailable_after(ms: u64) -> Copy {
    Copy {
        wait: MS(ms),
        ok: true,
        status: 503,
    }
}

fn get() -> http::Request<()> {
    http::Request::get("/titles").body(()).unwrap()
}

fn fixed(ms: u64) -> HedgeLayer<HttpPolicy> {
    HedgeLayer::builder("hedge", HttpPolicy)
        .delay(HedgeDelay::fixed(MS(ms)))
        .max_extra_load(1.0)
        .build()
        .unwrap()
}

async fn send<S>(svc: &mut S, request: http::Request<()>) -> Result<usize, BoxError>
where
    S: Service<http::Request<()>, Response = http::Response<usize>, Error = BoxError>,
{
    Ok(svc.ready().await?.call(request).await?.into_body())
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_is_hedged_and_the_first_success_wins() {
    let layer = fixed(20);
    let dependency = Dependency::scripted([ok_after(1000), ok_after(5)]);
    let mut svc = layer.layer(dependency.service());
    let started = Instant::now();
    assert_eq!(
        send(&mut svc, get()).await.unwrap(),
        1,
        "the hedge's answer"
    );
    assert_eq!(started.elapsed(), MS(25));
    assert_eq!(
        dependency.dropped.load(Ordering::SeqCst),
        1,
        "the slow copy is cancelled"
    );
    let handle = layer.handle();
    assert_eq!((handle.sent(), handle.won(), handle.cancelled()), (1, 1, 1));

    // Quicker than the delay: no hedge.
    let dependency = Dependency::scripted([ok_after(10)]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap(), 0);
    assert_eq!(dependency.sent.load(Ordering::SeqCst), 1);

    // The first copy answering first after a hedge went out still wins.
    let dependency = Dependency::scripted([ok_after(30), ok_after(100)]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap(), 0);
    assert_eq!(
        dependency.dropped.load(Ordering::SeqCst),
        1,
        "the hedge is cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_copy_waits_for_the_others_and_all_failing_returns_the_last_error() {
    let layer = fixed(20);
    // The first fails after the hedge went out; the hedge succeeds.
    let dependency = Dependency::scripted([fail_after(30), ok_after(40)]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(send(&mut svc, get()).await.unwrap(), 1);

    let dependency = Dependency::scripted([fail_after(30), fail_after(40)]);
    let mut svc = layer.layer(dependency.service());
    let err = send(&mut svc, get()).await.unwrap_err();
    assert_eq!(err.to_string(), "copy 1 failed");

    // A copy failing before the delay is not hedged: hedging is for
    // slowness, retries are for errors.
    let dependency = Dependency::scripted([fail_after(5)]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(
        send(&mut svc, get()).await.unwrap_err().to_string(),
        "copy 0 failed"
    );
    assert_eq!(dependency.sent.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_response_does_not_win_over_a_hedge_still_running() {
    // HttpPolicy calls a 503 a failure: it waits for the hedge's 200.
    let layer = fixed(30);
    let dependency = Dependency::scripted([unavailable_after(100), ok_after(100)]);
    let mut svc = layer.layer(dependency.service());
    let started = Instant::now();
    assert_eq!(send(&mut svc, get()).await.unwrap(), 1);
    assert_eq!(started.elapsed(), MS(130));
    assert_eq!(layer.handle().won(), 1);

    // Both failing: the last failure comes back, a response as it is.
    let dependency = Dependency::scripted([unavailable_after(100), unavailable_after(100)]);
    let mut svc = layer.layer(dependency.service());
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(get())
            .await
            .unwrap()
            .status(),
        503
    );
}

#[tokio::test(start_paused = true)]
async fn only_what_the_policy_may_send_twice_is_hedged() {
    let layer = fixed(20);
    let dependency = Dependency::scripted([ok_after(1000)]);
    let mut svc = layer.layer(dependency.service());
    let post = http::Request::post("/orders").body(()).unwrap();
    assert_eq!(send(&mut svc, post).await.unwrap(), 0);
    assert_eq!(dependency.sent.load(Ordering::SeqCst), 1);
    assert_eq!(layer.handle().sent(), 0);
}

#[tokio::test(start_paused = true)]
async fn up_to_max_hedged_copies_go_out_a_delay_apart() {
    let layer = HedgeLayer::builder("three", HttpPolicy)
        .delay(HedgeDelay::fixed(MS(10)))
        .max_hedged(3)
        .max_extra_load(1.0)
        .build()
        .unwrap();
    // Five quick calls first: at most one hedge per call over the window,
    // so the slow call's three need earlier calls' share.
    let dependency = Dependency::scripted(
        std::iter::repeat_n(ok_after(1), 5).chain(std::iter::repeat_n(ok_after(1000), 4)),
    );
    let mut svc = layer.layer(dependency.service());
    for _ in 0..5 {
        send(&mut svc, get()).await.unwrap();
    }
    let started = Instant::now();
    assert_eq!(
        send(&mut svc, get()).await.unwrap(),
        5,
        "the first sent answers first"
    );
    assert_eq!(started.elapsed(), MS(1000));
    let arrivals = dependency.arrivals.lock().unwrap()[5..].to_vec();
    let offsets: Vec<_> = arrivals.iter().map(|t| *t - started).collect();
    assert_eq!(offsets, [MS(0), MS(10), MS(20), MS(30)]);
    assert_eq!(
        dependency.sent.load(Ordering::SeqCst),
        5 + 4,
        "three hedges at 10, 20, 30 ms"
    );
    assert_eq!(layer.handle().cancelled(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_hedges_only_once_it_has_enough_samples() {
    let layer = HedgeLayer::builder("p95", HttpPolicy)
        .delay(HedgeDelay::percentile(95.0).min_samples(50))
        .max_extra_load(1.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    // 49 calls of 10 ms: not enough to hedge, even a slow one.
    let dependency =
        Dependency::scripted(std::iter::repeat_n(ok_after(10), 49).chain([ok_after(200)]));
    let mut svc = layer.layer(dependency.service());
    for _ in 0..50 {
        send(&mut svc, get()).await.unwrap();
    }
    assert_eq!(handle.sent(), 0);
    // Now 50 samples, p95 about 10 ms (the 200 ms one is past p95); the
    // delay is recomputed once a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dependency = Dependency::scripted([ok_after(500), ok_after(5)]);
    let mut svc = layer.layer(dependency.service());
    let started = Instant::now();
    assert_eq!(send(&mut svc, get()).await.unwrap(), 1);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= MS(14) && elapsed <= MS(17),
        "hedged at about 10 ms: {elapsed:?}"
    );
    assert_eq!(handle.sent(), 1);
}

#[tokio::test(start_paused = true)]
async fn hedges_stay_under_the_extra_load_cap_and_the_shared_budget() {
    // Every call slow; 5 % cap: at most one hedge per twenty calls.
    let layer = HedgeLayer::builder("cap", HttpPolicy)
        .delay(HedgeDelay::fixed(MS(10)))
        .build()
        .unwrap();
    let dependency = Dependency::scripted(std::iter::repeat_n(ok_after(100), 400));
    let mut svc = layer.layer(dependency.service());
    for _ in 0..200 {
        send(&mut svc, get()).await.unwrap();
    }
    let sent = layer.handle().sent();
    assert!((9..=10).contains(&sent), "5 % of 200 calls: {sent} hedges");

    // A spent shared budget: no hedge, whatever the cap allows.
    let empty = RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    let layer = HedgeLayer::builder("budget", HttpPolicy)
        .delay(HedgeDelay::fixed(MS(10)))
        .max_extra_load(1.0)
        .budget(empty)
        .build()
        .unwrap();
    let dependency = Dependency::scripted(std::iter::repeat_n(ok_after(100), 20));
    let mut svc = layer.layer(dependency.service());
    for _ in 0..10 {
        send(&mut svc, get()).await.unwrap();
    }
    assert_eq!(layer.handle().sent(), 0);
    assert_eq!(dependency.sent.load(Ordering::SeqCst), 10);
}

/// Found by a user trial: a hedge the shared budget refused still took its
/// place under the extra-load cap, so the next hedge the budget allowed
/// found the cap spent.
#[tokio::test(start_paused = true)]
async fn a_hedge_the_budget_refuses_leaves_the_cap_as_it_was() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 1.0).unwrap();
    let layer = HedgeLayer::builder("refused", HttpPolicy)
        .delay(HedgeDelay::fixed(MS(10)))
        .max_extra_load(0.5)
        .budget(budget.clone())
        .build()
        .unwrap();
    let dependency = Dependency::scripted(std::iter::repeat_n(ok_after(50), 10));
    let mut svc = layer.layer(dependency.service());
    // Two calls earn the cap one hedge; the budget, with nothing
    // deposited, refuses it.
    for _ in 0..2 {
        send(&mut svc, get()).await.unwrap();
    }
    assert_eq!(layer.handle().sent(), 0);
    for _ in 0..10 {
        budget.deposit();
    }
    // The cap still holds the hedge the budget refused (1.5 by now).
    send(&mut svc, get()).await.unwrap();
    assert_eq!(layer.handle().sent(), 1);
}

#[test]
fn hedging_with_a_policy_that_sends_nothing_twice_is_a_config_error() {
    let err = HedgeLayer::builder("default", rampart::retry::DefaultPolicy)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("policy"), "{err}");
    let one =
        rampart::balance::Endpoint::new(1u16, service_fn(|_: ()| async { Ok::<_, BoxError>(()) }));
    let err = rampart::balance::Balance::builder("default-lb")
        .hedge(HedgeDelay::fixed(MS(10)), 0.05)
        .build(rampart::balance::Endpoints::fixed([one]))
        .unwrap_err();
    assert!(err.to_string().contains("hedge"), "{err}");
}

#[test]
fn bad_settings_are_config_errors() {
    let build = |delay, max_hedged, load| {
        HedgeLayer::builder("bad", HttpPolicy)
            .delay(delay)
            .max_hedged(max_hedged)
            .max_extra_load(load)
            .build()
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert!(build(HedgeDelay::fixed(MS(1)), 0, 0.05).contains("max_hedged"));
    assert!(build(HedgeDelay::fixed(MS(1)), 11, 0.05).contains("max_hedged"));
    assert!(build(HedgeDelay::fixed(MS(1)), 1, 1.5).contains("max_extra_load"));
    assert!(build(HedgeDelay::fixed(MS(1)), 1, f64::NAN).contains("max_extra_load"));
    assert!(build(HedgeDelay::percentile(100.0), 1, 0.05).contains("percentile"));
    assert!(build(HedgeDelay::percentile(95.0).min_samples(0), 1, 0.05).contains("min_samples"));
    assert!(build(HedgeDelay::fixed(Duration::from_secs(7200)), 1, 0.05).contains("delay"));
}

// ===== hedging in the balancer: the copy goes to another instance =====

mod balanced {
    use super::*;
    use rampart::balance::{Balance, Endpoint, Endpoints};

    /// Endpoints `keys` whose first call overall waits `first_ms` and every
    /// later one 5 ms; each logs which endpoint it ran on.
    fn fleet(
        keys: &[u16],
        first_ms: u64,
        log: &Arc<Mutex<Vec<u16>>>,
    ) -> Endpoints<
        u16,
        tower::util::BoxCloneSyncService<http::Request<()>, http::Response<u16>, BoxError>,
    > {
        let calls = Arc::new(AtomicUsize::new(0));
        Endpoints::fixed(keys.iter().map(|&key| {
            let (calls, log) = (calls.clone(), log.clone());
            Endpoint::new(
                key,
                tower::util::BoxCloneSyncService::new(service_fn(move |_: http::Request<()>| {
                    let wait = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        first_ms
                    } else {
                        5
                    };
                    log.lock().unwrap().push(key);
                    async move {
                        tokio::time::sleep(MS(wait)).await;
                        Ok::<_, BoxError>(http::Response::new(key))
                    }
                })),
            )
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn the_hedge_goes_to_another_instance_and_the_slow_one_is_not_blamed() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lb = Balance::builder("hedged-lb")
            .policy(HttpPolicy)
            .hedge(HedgeDelay::fixed(MS(20)), 1.0)
            .build(fleet(&[1, 2], 1000, &log))
            .unwrap();
        let handle = lb.handle();
        let started = Instant::now();
        let response = lb.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(
            started.elapsed(),
            MS(25),
            "the hedge answered 5 ms after it went out"
        );
        let ran_on = log.lock().unwrap().clone();
        assert_eq!(ran_on.len(), 2);
        assert_ne!(ran_on[0], ran_on[1], "the hedge went to the other instance");
        assert_eq!(*response.body(), ran_on[1], "the hedge's answer");
        let hedge = handle.hedge().unwrap();
        assert_eq!((hedge.sent(), hedge.won(), hedge.cancelled()), (1, 1, 1));
        let stats = handle.endpoints();
        let slow = stats
            .iter()
            .find(|e| e.key == ran_on[0].to_string())
            .unwrap();
        assert_eq!((slow.cancelled, slow.failures, slow.timeouts), (1, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_balanced_hedge_is_one_attempt_and_a_503_does_not_end_the_race() {
        // Three instances answering 503 after 100 ms: the call's own
        // attempts (one, then two retries elsewhere) and one hedge, which
        // is not retried itself.
        let attempts = Arc::new(AtomicUsize::new(0));
        let endpoints = Endpoints::fixed([1u16, 2, 3].map(|key| {
            let attempts = attempts.clone();
            Endpoint::new(
                key,
                tower::util::BoxCloneSyncService::new(service_fn(move |_: http::Request<()>| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(MS(100)).await;
                        let mut response = http::Response::new(key);
                        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        Ok::<_, BoxError>(response)
                    }
                })),
            )
        }));
        let mut lb = Balance::builder("hedged-503")
            .policy(HttpPolicy)
            .retries_next(2)
            .backoff(rampart::retry::Backoff::none())
            .hedge(HedgeDelay::fixed(MS(30)), 1.0)
            .build(endpoints)
            .unwrap();
        let response = lb.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            4,
            "three attempts and one hedge"
        );
        assert_eq!(lb.handle().hedge().unwrap().sent(), 1);

        // A 503 first, the hedge's 200 later: the 200.
        let log = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let endpoints = Endpoints::fixed([1u16, 2].map(|key| {
            let (calls, log) = (calls.clone(), log.clone());
            Endpoint::new(
                key,
                tower::util::BoxCloneSyncService::new(service_fn(move |_: http::Request<()>| {
                    let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                    log.lock().unwrap().push(key);
                    async move {
                        tokio::time::sleep(MS(100)).await;
                        let mut response = http::Response::new(key);
                        if first {
                            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, BoxError>(response)
                    }
                })),
            )
        }));
        let mut lb = Balance::builder("hedged-race")
            .policy(HttpPolicy)
            .retries_next(0)
            .hedge(HedgeDelay::fixed(MS(30)), 1.0)
            .build(endpoints)
            .unwrap();
        let started = Instant::now();
        let response = lb.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(started.elapsed(), MS(130));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_with_nowhere_else_to_go_leaves_the_call_alone() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lb = Balance::builder("hedged-alone")
            .policy(HttpPolicy)
            .hedge(HedgeDelay::fixed(MS(20)), 1.0)
            .build(fleet(&[1], 300, &log))
            .unwrap();
        let started = Instant::now();
        assert_eq!(
            *lb.ready().await.unwrap().call(get()).await.unwrap().body(),
            1
        );
        assert_eq!(started.elapsed(), MS(300));
        assert_eq!(log.lock().unwrap().len(), 1);
        assert_eq!(
            lb.handle().hedge().unwrap().sent(),
            0,
            "nothing sent, nothing counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_balancer_hedges_only_what_may_be_sent_twice_and_within_its_cap() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lb = Balance::builder("hedged-post")
            .policy(HttpPolicy)
            .hedge(HedgeDelay::fixed(MS(20)), 1.0)
            .build(fleet(&[1, 2], 300, &log))
            .unwrap();
        let post = http::Request::post("/orders").body(()).unwrap();
        lb.ready().await.unwrap().call(post).await.unwrap();
        assert_eq!(log.lock().unwrap().len(), 1);

        // A 5 % cap over calls that are all slow: one hedge in twenty.
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lb = Balance::builder("hedged-cap")
            .policy(HttpPolicy)
            .hedge(HedgeDelay::fixed(MS(1)), 0.05)
            .build(fleet(&[1, 2, 3], 5, &log))
            .unwrap();
        for _ in 0..100 {
            lb.ready().await.unwrap().call(get()).await.unwrap();
        }
        let sent = lb.handle().hedge().unwrap().sent();
        assert!((4..=5).contains(&sent), "{sent} hedges for 100 calls");
    }
}
