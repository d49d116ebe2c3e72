//! The load balancer on a paused clock: retries across instances, outlier
//! ejection, panic mode, retry budgets, discovery.

use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, Endpoint, Endpoints, HttpPolicy, NoHealthyEndpoint};
use rampart::retry::{Backoff, RetryBudget};
use rampart::{BoxError, ErrorKind};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::advance;
use tower::{Service, ServiceExt};

/// A fake instance: answers its id, or refuses connections while `down`.
#[derive(Clone)]
struct Instance {
    id: u32,
    down: Arc<AtomicBool>,
    hits: Arc<Mutex<HashMap<u32, usize>>>,
    /// The instance that got the current call's first attempt: the test
    /// sets it to `NONE` before a call, the first instance called takes it.
    first: Arc<AtomicU32>,
}

const NONE: u32 = u32::MAX;

impl Instance {
    fn service(&self) -> tower::util::BoxCloneSyncService<(), u32, BoxError> {
        let me = self.clone();
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |_: ()| {
            let me = me.clone();
            async move {
                *me.hits.lock().unwrap().entry(me.id).or_default() += 1;
                let _ = me
                    .first
                    .compare_exchange(NONE, me.id, Ordering::SeqCst, Ordering::SeqCst);
                if me.down.load(Ordering::SeqCst) {
                    Err(io::Error::from(io::ErrorKind::ConnectionRefused).into())
                } else {
                    Ok(me.id)
                }
            }
        }))
    }
}

struct Fleet {
    instances: Vec<Instance>,
    hits: Arc<Mutex<HashMap<u32, usize>>>,
    first: Arc<AtomicU32>,
}

impl Fleet {
    fn new(n: u32) -> Fleet {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let first = Arc::new(AtomicU32::new(NONE));
        Fleet {
            instances: (0..n)
                .map(|id| Instance {
                    id,
                    down: Arc::default(),
                    hits: hits.clone(),
                    first: first.clone(),
                })
                .collect(),
            hits,
            first,
        }
    }
    fn endpoints(&self) -> Endpoints<u32, tower::util::BoxCloneSyncService<(), u32, BoxError>> {
        Endpoints::fixed(
            self.instances
                .iter()
                .map(|i| Endpoint::new(i.id, i.service())),
        )
    }
    fn down(&self, id: u32, down: bool) {
        self.instances[id as usize]
            .down
            .store(down, Ordering::SeqCst);
    }
    fn hits(&self, id: u32) -> usize {
        self.hits.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
    /// The instance that took the last call's first attempt, if any; ready
    /// for the next call.
    fn take_first(&self) -> Option<u32> {
        Some(self.first.swap(NONE, Ordering::SeqCst)).filter(|&id| id != NONE)
    }
    fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

async fn call<S: Service<(), Response = u32, Error = BoxError>>(
    svc: &mut S,
) -> Result<u32, BoxError> {
    svc.ready().await?.call(()).await
}

#[tokio::test(start_paused = true)]
async fn a_refusing_instance_costs_callers_nothing() {
    let fleet = Fleet::new(3);
    fleet.down(1, true);
    let mut lb = Balance::builder("ratings")
        .rule(RoundRobin::new())
        .build(fleet.endpoints())
        .unwrap();
    for _ in 0..60 {
        assert_ne!(call(&mut lb).await.unwrap(), 1);
    }
    let stats = lb.handle().endpoints();
    let one = stats.iter().find(|e| e.key == "1").unwrap();
    assert!(one.ejected, "five refusals in a row eject it");
    assert_eq!(fleet.hits(1), 5, "and no call reaches it while ejected");
}

#[tokio::test(start_paused = true)]
async fn ejected_instances_come_back_on_probation() {
    let fleet = Fleet::new(4);
    fleet.down(0, true);
    let mut lb = Balance::builder("b")
        .rule(RoundRobin::new())
        .max_ejected(0.5)
        .build(fleet.endpoints())
        .unwrap();
    let ejected = |lb: &Balance<_, _>| {
        lb.handle()
            .endpoints()
            .iter()
            .find(|e| e.key == "0")
            .unwrap()
            .ejected
    };
    while !ejected(&lb) {
        call(&mut lb).await.unwrap();
    }
    let before = fleet.hits(0);
    for _ in 0..20 {
        call(&mut lb).await.unwrap();
    }
    assert_eq!(fleet.hits(0), before);
    // Ten seconds on it is back, on probation: one more failure ejects it
    // again, for twice as long.
    advance(Duration::from_secs(10)).await;
    for _ in 0..8 {
        call(&mut lb).await.unwrap();
    }
    assert_eq!(
        fleet.hits(0),
        before + 1,
        "one probing call, then out again"
    );
    assert!(ejected(&lb));
    advance(Duration::from_secs(10)).await;
    for _ in 0..8 {
        call(&mut lb).await.unwrap();
    }
    assert_eq!(fleet.hits(0), before + 1, "still out: 20 s this time");
    // Recovered: back for good after the 20 s.
    fleet.down(0, false);
    advance(Duration::from_secs(10)).await;
    for _ in 0..8 {
        call(&mut lb).await.unwrap();
    }
    assert!(fleet.hits(0) >= before + 3);
    assert!(!ejected(&lb));
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_ejection_cap_and_panic_mode_uses_everyone() {
    let fleet = Fleet::new(10);
    for id in 0..3 {
        fleet.down(id, true);
    }
    let mut lb = Balance::builder("cap")
        .rule(RoundRobin::new())
        .retries_next(9)
        .retry_budget(RetryBudget::new(Duration::from_secs(10), 100_000, 10.0).unwrap())
        .build(fleet.endpoints())
        .unwrap();
    for _ in 0..100 {
        call(&mut lb).await.unwrap();
    }
    let ejected = lb.handle().endpoints().iter().filter(|e| e.ejected).count();
    assert_eq!(ejected, 1, "10 % of 10");

    // Panic: with a cap of 100 %, 6 of 10 ejected leaves 40 % healthy,
    // below the 50 % threshold: ejections are ignored.
    let fleet = Fleet::new(10);
    for id in 0..6 {
        fleet.down(id, true);
    }
    let mut lb = Balance::builder("panic")
        .rule(RoundRobin::new())
        .retries_next(9)
        .retry_budget(RetryBudget::new(Duration::from_secs(10), 100_000, 10.0).unwrap())
        .max_ejected(1.0)
        .build(fleet.endpoints())
        .unwrap();
    for _ in 0..200 {
        call(&mut lb).await.unwrap();
    }
    let hits_before: Vec<usize> = (0..6).map(|id| fleet.hits(id)).collect();
    for _ in 0..100 {
        call(&mut lb).await.unwrap();
    }
    let sick_traffic: usize = (0..6)
        .map(|id| fleet.hits(id) - hits_before[id as usize])
        .sum();
    assert!(
        sick_traffic > 0,
        "in panic mode the ejected endpoints are used again"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_visit_each_instance_once_before_repeating() {
    let fleet = Fleet::new(3);
    fleet.down(0, true);
    fleet.down(1, true);
    let mut lb = Balance::builder("visit")
        .retries_next(2)
        .backoff(Backoff::none())
        .build(fleet.endpoints())
        .unwrap();
    for _ in 0..30 {
        assert_eq!(call(&mut lb).await.unwrap(), 2);
    }
    // Each failing instance is tried at most once per call.
    assert!(fleet.hits(0) <= 30 && fleet.hits(1) <= 30);
}

#[tokio::test(start_paused = true)]
async fn retries_same_tries_the_same_instance_first() {
    // An instance that refuses every other call. (This test once used a
    // connection reset, which `DefaultPolicy` no longer retries: the
    // instance may have received the request.)
    let flips = Arc::new(AtomicUsize::new(0));
    let f = flips.clone();
    let flaky = tower::service_fn(move |_: ()| {
        let n = f.fetch_add(1, Ordering::SeqCst);
        async move {
            if n % 2 == 0 {
                Err::<u32, BoxError>(io::Error::from(io::ErrorKind::ConnectionRefused).into())
            } else {
                Ok(7)
            }
        }
    });
    let mut lb = Balance::builder("same")
        .retries_same(1)
        .retries_next(0)
        .build(Endpoints::fixed([Endpoint::new("only", flaky)]))
        .unwrap();
    for _ in 0..10 {
        assert_eq!(call(&mut lb).await.unwrap(), 7);
    }
    assert_eq!(flips.load(Ordering::SeqCst), 20);
}

#[tokio::test(start_paused = true)]
async fn errors_the_policy_does_not_retry_come_back_at_once() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let bad_data = tower::service_fn(move |_: ()| {
        a.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, BoxError>(io::Error::from(io::ErrorKind::InvalidData).into()) }
    });
    let mut lb = Balance::builder("noretry")
        .retries_next(3)
        .build(Endpoints::fixed([
            Endpoint::new(1, bad_data.clone()),
            Endpoint::new(2, bad_data),
        ]))
        .unwrap();
    let err = call(&mut lb).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid data");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn http_retries_only_idempotent_requests() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let unavailable = tower::service_fn(move |_: http::Request<()>| {
        a.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(http::Response::builder().status(503).body(()).unwrap()) }
    });
    let mut lb = Balance::builder("http")
        .policy(HttpPolicy)
        .build(Endpoints::fixed([
            Endpoint::new(1, unavailable.clone()),
            Endpoint::new(2, unavailable),
        ]))
        .unwrap();
    let post = http::Request::post("/orders").body(()).unwrap();
    assert_eq!(
        lb.ready().await.unwrap().call(post).await.unwrap().status(),
        503
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "POST is not retried");
    let get = http::Request::get("/orders").body(()).unwrap();
    assert_eq!(
        lb.ready().await.unwrap().call(get).await.unwrap().status(),
        503
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "GET is retried on the other instance"
    );
}

/// As the retry layer: an endpoint behind a deadline layer that reads the
/// caller's deadline from the request's header would give each instance
/// the whole deadline again; a passed deadline is never retried.
#[tokio::test(start_paused = true)]
async fn a_passed_deadline_is_not_retried_on_another_instance() {
    use rampart::deadline::{DeadlineLayer, TIMEOUT_HEADER};
    use tower::Layer;

    let attempts = Arc::new(AtomicUsize::new(0));
    let deadline = DeadlineLayer::builder("lb-deadline").build().unwrap();
    let slow = || {
        let a = attempts.clone();
        deadline.layer(tower::service_fn(move |_: http::Request<()>| {
            a.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, BoxError>(http::Response::new(()))
            }
        }))
    };
    let mut lb = Balance::builder("lb-deadline")
        .policy(HttpPolicy)
        .build(Endpoints::fixed([
            Endpoint::new(1, slow()),
            Endpoint::new(2, slow()),
        ]))
        .unwrap();
    let get = http::Request::get("/titles")
        .header(TIMEOUT_HEADER, "100")
        .body(())
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = lb.ready().await.unwrap().call(get).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::DeadlineExceeded);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_caps_attempts_during_a_full_outage() {
    let fleet = Fleet::new(5);
    for id in 0..5 {
        fleet.down(id, true);
    }
    let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2).unwrap();
    let mut lb = Balance::builder("outage")
        .retries_same(2)
        .retries_next(4)
        .backoff(Backoff::none())
        .retry_budget(budget.clone())
        .build(fleet.endpoints())
        .unwrap();
    let requests = 1_000;
    let mut exhausted = 0;
    for _ in 0..requests {
        let err = call(&mut lb).await.unwrap_err();
        if ErrorKind::of(&err) == ErrorKind::RetryBudgetExhausted {
            exhausted += 1;
        }
    }
    // Floor: 10/s over the 10 s window = 100 retries, plus 20 % of requests.
    let cap = (requests as f64 * 1.2) as usize + 100;
    let attempts = fleet.total_hits();
    assert!(
        attempts <= cap,
        "{attempts} attempts for {requests} requests, cap {cap}"
    );
    assert!(attempts > requests, "some retries were allowed");
    assert!(exhausted > 900, "most calls ran out of budget: {exhausted}");
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_is_spent_by_every_balancer_that_holds_it() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    assert_eq!(budget.balance(), 0.0);
    let fleet = Fleet::new(2);
    fleet.down(0, true);
    fleet.down(1, true);
    let mut a = Balance::builder("a")
        .retry_budget(budget.clone())
        .build(fleet.endpoints())
        .unwrap();
    let err = call(&mut a).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::RetryBudgetExhausted);
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn watch_feed_adds_and_removes_without_losing_calls_in_flight() {
    let (registry, feed) = tokio::sync::watch::channel(vec![1u32]);
    let gates: Arc<Mutex<HashMap<u32, Arc<tokio::sync::Notify>>>> = Arc::default();
    let g = gates.clone();
    let make = move |id: &u32| {
        let gate = g
            .lock()
            .unwrap()
            .entry(*id)
            .or_insert_with(|| Arc::new(tokio::sync::Notify::new()))
            .clone();
        let id = *id;
        Endpoint::new(
            id,
            tower::util::BoxCloneSyncService::new(tower::service_fn(move |slow: bool| {
                let gate = gate.clone();
                async move {
                    if slow {
                        gate.notified().await;
                    }
                    Ok::<_, BoxError>(id)
                }
            })),
        )
    };
    let mut lb = Balance::builder("watched")
        .rule(RoundRobin::new())
        .build(Endpoints::watch(feed, make))
        .unwrap();
    // A slow call is in flight on endpoint 1, the only one, when the
    // registry replaces it with 2 and 3.
    lb.ready().await.unwrap();
    let in_flight = tokio::spawn(lb.call(true));
    tokio::task::yield_now().await;
    registry.send(vec![2, 3]).unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(lb.ready().await.unwrap().call(false).await.unwrap());
    }
    assert!(seen.iter().all(|&id| id == 2 || id == 3), "{seen:?}");
    assert!(seen.contains(&3), "new endpoint used");
    // The removed endpoint's call still finishes.
    let first = gates.lock().unwrap().get(&1).unwrap().clone();
    first.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn discover_streams_feed_the_set() {
    use tower::discover::Change;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Change<u32, _>, BoxError>>();
    let discover = tokio_stream_from(rx);
    let mut lb = Balance::builder("discovered")
        .build(Endpoints::discover(discover))
        .unwrap();
    let err = call(&mut lb).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::NoHealthyEndpoint);
    assert!(err.is::<NoHealthyEndpoint>());
    let fleet = Fleet::new(2);
    tx.send(Ok(Change::Insert(0, fleet.instances[0].service())))
        .unwrap();
    tx.send(Ok(Change::Insert(1, fleet.instances[1].service())))
        .unwrap();
    for _ in 0..10 {
        call(&mut lb).await.unwrap();
    }
    tx.send(Ok(Change::Remove(0))).unwrap();
    for _ in 0..10 {
        assert_eq!(call(&mut lb).await.unwrap(), 1);
    }
}

/// A `Stream` over an unbounded receiver (what tokio-stream's wrapper does).
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + Unpin
where
    T: Send + 'static,
{
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[test]
fn every_bad_option_is_a_config_error_naming_its_field() {
    let fleet = Fleet::new(2);
    let b = || Balance::builder("x");
    let cases = [
        ("retries_same", b().retries_same(11)),
        ("retries_next", b().retries_next(101)),
        ("eject_after", b().eject_after(0)),
        (
            "eject_for",
            b().eject_for(Duration::from_secs(10), Duration::from_secs(5)),
        ),
        ("max_ejected", b().max_ejected(1.5)),
        ("panic_threshold", b().panic_threshold(-0.1)),
        (
            "latency_estimate",
            b().latency_estimate(Duration::ZERO, Duration::from_secs(1)),
        ),
        ("name", Balance::builder("")),
    ];
    for (field, builder) in cases {
        let err = builder.build(fleet.endpoints()).unwrap_err();
        assert!(err.names(field), "{field}: {err}");
        assert_eq!(err.violations().len(), 1, "{err}");
    }
    let empty: Endpoints<u32, tower::util::BoxCloneSyncService<(), u32, BoxError>> =
        Endpoints::fixed([]);
    assert!(Balance::builder("x")
        .build(empty)
        .unwrap_err()
        .names("endpoints"));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_slow_to_be_ready_is_one_attempt() {
    // The endpoint's service is not ready for a while (its own limit is
    // full); however often the call is polled meanwhile, it is one attempt.
    let (mock, mut handle) = tower_test::mock::pair::<(), u32>();
    handle.allow(0);
    let mut lb = Balance::builder("ready")
        .retries_same(1)
        .retries_next(0)
        .backoff(Backoff::none())
        .build(Endpoints::fixed([Endpoint::new(1, mock)]))
        .unwrap();
    lb.ready().await.unwrap();
    let mut call = tokio_test::task::spawn(lb.call(()));
    for _ in 0..3 {
        assert!(call.poll().is_pending());
    }
    handle.allow(1);
    assert!(call.poll().is_pending());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(io::Error::from(io::ErrorKind::ConnectionRefused));
    // The failure is retried on the same endpoint (retries_same = 1).
    handle.allow(1);
    assert!(call.poll().is_pending());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(9);
    assert_eq!(call.await.unwrap(), 9);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_back_from_ejection_starts_level_with_the_others() {
    // Nobody calls an ejected endpoint, so its estimate decays toward zero;
    // were it kept, the returning endpoint would look the fastest of all
    // and draw every call at once. Starting it at the initial estimate,
    // above the others' decayed ones, would starve it instead.
    let fleet = Fleet::new(2);
    fleet.down(0, true);
    let mut lb = Balance::builder("back")
        .rule(RoundRobin::new())
        .max_ejected(0.5)
        .latency_estimate(Duration::from_millis(30), Duration::from_secs(10))
        .build(fleet.endpoints())
        .unwrap();
    for _ in 0..10 {
        call(&mut lb).await.unwrap();
    }
    advance(Duration::from_secs(10)).await;
    let stats = lb.handle().endpoints();
    let latency = |key: &str| stats.iter().find(|e| e.key == key).unwrap().latency;
    assert!(!stats[0].ejected, "its ejection is over");
    assert!(
        latency("1") < Duration::from_millis(15),
        "the other decayed: {:?}",
        latency("1")
    );
    assert_eq!(latency("0"), latency("1"), "back: level with the others");
}

/// A failure is evidence that the endpoint is bad, never that it is fast:
/// it raises the load estimate and never lowers it. (This test once
/// asserted the opposite, that failures leave the estimate alone; a dead
/// instance's estimate then only decayed, drawing the power of two choices
/// to it.)
#[tokio::test(start_paused = true)]
async fn failed_attempts_raise_the_latency_estimate_and_never_lower_it() {
    let slow_first = Arc::new(AtomicBool::new(true));
    let s = slow_first.clone();
    let failure = tower::service_fn(move |_: ()| {
        let slow = s.swap(false, Ordering::SeqCst);
        async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err::<u32, BoxError>(io::Error::from(io::ErrorKind::InvalidData).into())
        }
    });
    let mut lb = Balance::builder("fails")
        .latency_estimate(Duration::from_millis(30), Duration::from_secs(10))
        .eject_after(100)
        .build(Endpoints::fixed([Endpoint::new(1, failure)]))
        .unwrap();
    call(&mut lb).await.unwrap_err();
    let after_slow = lb.handle().endpoints()[0].latency;
    assert!(after_slow >= Duration::from_millis(500), "{after_slow:?}");
    // A failure in no time (a refused connection) does not make it fast.
    call(&mut lb).await.unwrap_err();
    let after_fast = lb.handle().endpoints()[0].latency;
    assert!(after_fast >= after_slow, "{after_fast:?} < {after_slow:?}");
}

#[tokio::test(start_paused = true)]
async fn a_rule_choosing_out_of_range_fails_the_call_instead_of_panicking() {
    #[derive(Debug)]
    struct OffByOne;
    impl rampart::balance::rule::Rule for OffByOne {
        fn choose(&self, candidates: &rampart::balance::rule::Candidates<'_>) -> Option<usize> {
            Some(candidates.len())
        }
    }
    let fleet = Fleet::new(2);
    let mut lb = Balance::builder("bad-rule")
        .rule(OffByOne)
        .build(fleet.endpoints())
        .unwrap();
    let err = call(&mut lb).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::NoHealthyEndpoint);
}

// ===== failure awareness: failures and cancellations teach the balancer =====

/// `calls` sequential calls with the balancer's defaults over `n` instances
/// of which the first `dead` refuse connections. Returns, over the calls
/// after the first 100, the share of first attempts that went to a dead
/// instance and the share of calls that succeeded.
async fn dead_share_and_success(n: u32, dead: u32, calls: usize) -> (f64, f64) {
    let fleet = Fleet::new(n);
    for id in 0..dead {
        fleet.down(id, true);
    }
    let mut lb = Balance::builder("dead").build(fleet.endpoints()).unwrap();
    let (mut dead_first, mut ok, mut counted) = (0, 0, 0);
    for i in 0..calls {
        let result = call(&mut lb).await;
        let first = fleet.take_first().expect("every call makes an attempt");
        if i >= 100 {
            counted += 1;
            dead_first += usize::from(first < dead);
            ok += usize::from(result.is_ok());
        }
    }
    for e in lb.handle().endpoints() {
        eprintln!("{n}/{dead}: {e:?}");
    }
    (
        dead_first as f64 / counted as f64,
        ok as f64 / counted as f64,
    )
}

#[tokio::test(start_paused = true)]
async fn two_dead_instances_of_three_get_almost_no_first_attempts() {
    let (dead, success) = dead_share_and_success(3, 2, 600).await;
    eprintln!("2 of 3 dead: dead first attempts {dead:.3}, success {success:.3}");
    assert!(
        dead <= 0.05,
        "dead instances took {dead:.3} of first attempts"
    );
    assert!(success >= 0.99, "{success:.3} of calls succeeded");
}

#[tokio::test(start_paused = true)]
async fn five_dead_instances_of_ten_get_almost_no_first_attempts() {
    let (dead, success) = dead_share_and_success(10, 5, 600).await;
    eprintln!("5 of 10 dead: dead first attempts {dead:.3}, success {success:.3}");
    assert!(
        dead <= 0.05,
        "dead instances took {dead:.3} of first attempts"
    );
    assert!(success >= 0.99, "{success:.3} of calls succeeded");
}

/// Instance 0 never answers; 1 and 2 answer at once. A `Command` with a
/// 100 ms timeout sits above the balancer, which has no timeout of its own.
#[tokio::test(start_paused = true)]
async fn an_instance_that_never_answers_is_ejected_when_a_timeout_above_cuts_it_off() {
    use tower::Layer;
    let hits: Arc<[AtomicUsize; 3]> = Arc::default();
    let instance = |id: u32| {
        let hits = hits.clone();
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |_: ()| {
            hits[id as usize].fetch_add(1, Ordering::SeqCst);
            async move {
                if id == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<u32, BoxError>(id)
            }
        }))
    };
    let lb = Balance::builder("hanging")
        .build(Endpoints::fixed(
            (0..3).map(|id| Endpoint::new(id, instance(id))),
        ))
        .unwrap();
    let handle = lb.handle();
    let command = rampart::Command::builder("hanging")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc = command.layer(lb);
    let mut timeouts = 0;
    for _ in 0..100 {
        if svc.ready().await.unwrap().call(()).await.is_err() {
            timeouts += 1;
        }
    }
    let before = hits[0].load(Ordering::SeqCst);
    for _ in 0..500 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    let stats = handle.endpoints();
    let hanging = stats.iter().find(|e| e.key == "0").unwrap();
    eprintln!("hanging: {timeouts} timeouts in the first 100 calls; {hanging:?}");
    let share = (hits[0].load(Ordering::SeqCst) - before) as f64 / 500.0;
    assert!(
        hanging.ejected || share <= 0.05,
        "the hanging instance took {share:.3} of calls after the first 100: {hanging:?}"
    );
    assert!(
        hanging.timeouts >= 1,
        "its timeouts are counted: {hanging:?}"
    );
    assert_eq!(hanging.in_flight, 0, "{hanging:?}");
}

/// The same cut-off through a command with pool isolation: its timeout
/// sits on the caller's side of the pool, and the balancer's future is
/// dropped a moment later on a pool thread. It still counts as a timeout
/// for the endpoint, not as a caller's cancellation; it once counted as
/// the latter, so pool-isolated commands never ejected an instance that
/// accepts and never answers (found by `tests/soak.rs`).
///
/// On the real clock: a paused one would run out the timeout before the
/// pool's own threads started the call.
#[tokio::test]
async fn a_timeout_above_a_pool_counts_against_the_endpoint_too() {
    use tower::Layer;
    let never = tower::service_fn(|_: ()| std::future::pending::<Result<u32, BoxError>>());
    let lb = Balance::builder("hanging-pooled")
        .eject_after(3)
        .build(Endpoints::fixed([Endpoint::new(0, never)]))
        .unwrap();
    let handle = lb.handle();
    let command = rampart::Command::builder("hanging-pooled")
        .timeout(Duration::from_millis(100))
        // A thread per call: an aborted job frees its place on the pool's
        // time, not the caller's.
        .pool(3, 0)
        .build()
        .unwrap();
    let mut svc = command.layer(lb);
    // The pool's threads drop the aborted jobs on their own time; nothing
    // signals it, so wait a bounded while.
    let settled = |ended: u64| {
        for _ in 0..5_000 {
            let e = &handle.endpoints()[0];
            if e.in_flight == 0 && e.timeouts + e.cancelled == ended {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        handle.endpoints().remove(0)
    };
    for _ in 0..3 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout, "{err}");
    }
    let e = settled(3);
    assert_eq!((e.in_flight, e.timeouts, e.cancelled), (0, 3, 0), "{e:?}");
    assert!(e.ejected, "three timeouts in a row eject it: {e:?}");

    // Control: a caller walking away (tokio's timeout, before the
    // command's) is still a cancellation, through the pool too.
    let walked_away = tokio::time::timeout(
        Duration::from_millis(20),
        svc.ready().await.unwrap().call(()),
    )
    .await;
    assert!(walked_away.is_err());
    let e = settled(4);
    assert_eq!((e.in_flight, e.timeouts, e.cancelled), (0, 3, 1), "{e:?}");
}

/// A caller that walks away is not evidence against the endpoint.
#[tokio::test(start_paused = true)]
async fn a_callers_own_cancellation_does_not_count_against_the_endpoint() {
    let slow = tower::service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<u32, BoxError>(1)
    });
    let mut lb = Balance::builder("walk-away")
        .eject_after(1)
        .build(Endpoints::fixed([Endpoint::new(1, slow)]))
        .unwrap();
    for _ in 0..3 {
        // tokio's own timeout drops the call later, from its owner: a
        // caller's cancellation, not rampart's timeout.
        let r = tokio::time::timeout(Duration::from_millis(200), call(&mut lb)).await;
        assert!(r.is_err());
    }
    let e = &lb.handle().endpoints()[0];
    assert_eq!((e.failures, e.timeouts, e.cancelled), (0, 0, 3), "{e:?}");
    assert!(!e.ejected && e.consecutive_failures == 0, "{e:?}");
    assert_eq!(e.in_flight, 0);
    // It ran 200 ms, far past the 30 ms initial estimate: a lower bound.
    assert!(e.latency >= Duration::from_millis(200), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn failed_and_timed_out_attempts_are_measured_with_their_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timeouts = tower::service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<u32, BoxError>(tower::timeout::error::Elapsed::new().into())
    });
    let refuses = tower::service_fn(|_: ()| async {
        Err::<u32, BoxError>(io::Error::from(io::ErrorKind::ConnectionRefused).into())
    });
    let answers = tower::service_fn(|_: ()| async { Ok::<u32, BoxError>(3) });
    type Svc = tower::util::BoxCloneSyncService<(), u32, BoxError>;
    let mut lb = metrics::with_local_recorder(&recorder, || {
        Balance::builder("measured")
            .rule(RoundRobin::new())
            .retries_next(0)
            .build(Endpoints::fixed([
                Endpoint::new(1, Svc::new(timeouts)),
                Endpoint::new(2, Svc::new(refuses)),
                Endpoint::new(3, Svc::new(answers)),
            ]))
            .unwrap()
    });
    for _ in 0..3 {
        let _ = call(&mut lb).await;
    }
    let mut seen = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
                .unwrap()
        };
        if let ("rampart_endpoint_duration_seconds", DebugValue::Histogram(h)) = (key.name(), value)
        {
            if !h.is_empty() {
                seen.insert((label("endpoint"), label("outcome")), h.len());
            }
        }
    }
    let want: std::collections::BTreeMap<_, _> = [
        (("1".to_string(), "timeout".to_string()), 1),
        (("2".to_string(), "failure".to_string()), 1),
        (("3".to_string(), "success".to_string()), 1),
    ]
    .into();
    assert_eq!(seen, want);
    let stats = lb.handle().endpoints();
    let counts: Vec<_> = stats
        .iter()
        .map(|e| (e.key.clone(), e.successes, e.failures, e.timeouts))
        .collect();
    assert_eq!(
        counts,
        [
            ("1".to_string(), 0, 0, 1),
            ("2".to_string(), 0, 1, 0),
            ("3".to_string(), 1, 0, 0)
        ]
    );
}

// ===== visible outcomes =====

/// Two instances answering 503 to `GET`s, under `HttpPolicy` with the
/// given retry budget; returns the response to one call.
async fn a_503_with_budget(budget: RetryBudget) -> http::Response<()> {
    let unavailable = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, BoxError>(http::Response::builder().status(503).body(()).unwrap())
    });
    let mut lb = Balance::builder("marked")
        .policy(HttpPolicy)
        .retry_budget(budget)
        .build(Endpoints::fixed([
            Endpoint::new(1, unavailable),
            Endpoint::new(2, unavailable),
        ]))
        .unwrap();
    let get = http::Request::get("/").body(()).unwrap();
    lb.ready().await.unwrap().call(get).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_503_whose_retry_the_budget_refused_says_so() {
    use rampart::retry::RetryBudgetExhaustedMarker;
    let empty = RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    let refused = a_503_with_budget(empty).await;
    assert_eq!(refused.status(), 503);
    assert!(
        refused
            .extensions()
            .get::<RetryBudgetExhaustedMarker>()
            .is_some(),
        "the retry was refused: the response says so"
    );
    // Retried once on the other instance, which answered 503 too: the call
    // ran out of attempts, not of budget.
    let retried = a_503_with_budget(RetryBudget::default()).await;
    assert_eq!(retried.status(), 503);
    assert!(retried
        .extensions()
        .get::<RetryBudgetExhaustedMarker>()
        .is_none());
}

#[test]
fn a_fixed_list_naming_a_key_twice_is_a_config_error_naming_the_key() {
    let fleet = Fleet::new(3);
    let endpoints = Endpoints::fixed([
        Endpoint::new("a", fleet.instances[0].service()),
        Endpoint::new("b", fleet.instances[1].service()),
        Endpoint::new("a", fleet.instances[2].service()),
        Endpoint::new("a", fleet.instances[2].service()),
    ]);
    let err = Balance::builder("dup").build(endpoints).unwrap_err();
    assert!(err.names("endpoints"), "{err}");
    assert_eq!(err.violations().len(), 1, "the key is named once: {err}");
    assert!(err.to_string().contains("\"a\""), "{err}");
    assert!(!err.to_string().contains("\"b\""), "{err}");
}

// ===== panics and isolation =====

/// An endpoint whose service panics in `call` (`in_call`) or in its future.
fn panicking(in_call: bool) -> tower::util::BoxCloneSyncService<(), u32, BoxError> {
    tower::util::BoxCloneSyncService::new(tower::service_fn(move |_: ()| {
        if in_call {
            panic!("the endpoint's call panicked");
        }
        async { panic!("the endpoint's future panicked") }
    }))
}

#[tokio::test(start_paused = true)]
async fn a_panicking_endpoint_counts_as_a_failure_and_leaves_nothing_behind() {
    use futures::FutureExt;
    for in_call in [true, false] {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 1.0).unwrap();
        let mut lb = Balance::builder("panics")
            .rule(RoundRobin::new())
            .eject_after(1)
            .max_ejected(0.5)
            .retry_budget(budget.clone())
            .build(Endpoints::fixed([
                Endpoint::new(0, panicking(in_call)),
                Endpoint::new(1, Fleet::new(1).instances[0].service()),
            ]))
            .unwrap();
        let handle = lb.handle();
        lb.ready().await.unwrap();
        let unwound = std::panic::AssertUnwindSafe(lb.call(()))
            .catch_unwind()
            .await;
        assert!(unwound.is_err(), "the panic reaches the caller");
        let stats = handle.endpoints();
        let bad = stats.iter().find(|e| e.key == "0").unwrap();
        assert_eq!(bad.in_flight, 0, "in_call {in_call}: {bad:?}");
        assert_eq!(bad.failures, 1, "a panic is a failure: {bad:?}");
        assert!(bad.ejected, "eject_after(1): {bad:?}");
        // A `call` that panicked handed nothing over: no request counted.
        let deposited = if in_call { 0.0 } else { 1.0 };
        assert_eq!(budget.balance(), deposited, "in_call {in_call}");
        // The other endpoint serves; once the ejection is over, the place
        // it held is free again.
        assert_eq!(call(&mut lb).await.unwrap(), 0);
        advance(Duration::from_secs(10)).await;
        assert!(handle.endpoints().iter().all(|e| !e.ejected));
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_spawned_call_is_caught_by_tokio_and_counted() {
    let mut lb = Balance::builder("spawned")
        .build(Endpoints::fixed([Endpoint::new(0, panicking(false))]))
        .unwrap();
    let handle = lb.handle();
    for _ in 0..3 {
        lb.ready().await.unwrap();
        let joined = tokio::spawn(lb.call(())).await;
        assert!(joined.unwrap_err().is_panic());
    }
    let e = &handle.endpoints()[0];
    assert_eq!((e.in_flight, e.failures, e.cancelled), (0, 3, 0), "{e:?}");
}

/// `DefaultPolicy` knows nothing of the request: it retries only errors
/// that prove the endpoint never got it.
#[tokio::test(start_paused = true)]
async fn the_default_policy_never_resends_a_request_the_endpoint_may_have_received() {
    for (kind, retried) in [
        (io::ErrorKind::ConnectionRefused, true),
        (io::ErrorKind::ConnectionReset, false),
        (io::ErrorKind::ConnectionAborted, false),
        (io::ErrorKind::BrokenPipe, false),
    ] {
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let fails = tower::service_fn(move |_: ()| {
            a.fetch_add(1, Ordering::SeqCst);
            async move { Err::<u32, BoxError>(io::Error::from(kind).into()) }
        });
        let mut lb = Balance::builder("default")
            .build(Endpoints::fixed([
                Endpoint::new(1, fails.clone()),
                Endpoint::new(2, fails),
            ]))
            .unwrap();
        call(&mut lb).await.unwrap_err();
        let want = if retried { 2 } else { 1 };
        assert_eq!(attempts.load(Ordering::SeqCst), want, "{kind:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_feed_whose_make_panicked_goes_on_feeding_the_set() {
    use futures::FutureExt;
    let (registry, feed) = tokio::sync::watch::channel(vec![1u32]);
    let fleet = Fleet::new(4);
    let services: Vec<_> = fleet.instances.iter().map(Instance::service).collect();
    let make = move |id: &u32| {
        assert_ne!(*id, 3, "make panicked on 3");
        Endpoint::new(*id, services[*id as usize].clone())
    };
    let mut lb = Balance::builder("feed")
        .build(Endpoints::watch(feed, make))
        .unwrap();
    assert_eq!(call(&mut lb).await.unwrap(), 1);
    registry.send(vec![1, 3]).unwrap();
    let unwound = std::panic::AssertUnwindSafe(lb.ready())
        .catch_unwind()
        .await;
    assert!(unwound.is_err());
    registry.send(vec![2]).unwrap();
    for _ in 0..5 {
        assert_eq!(call(&mut lb).await.unwrap(), 2, "the feed still feeds");
    }
}
