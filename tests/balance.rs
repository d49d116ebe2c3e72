//! The load balancer on a paused clock: retries across instances, outlier
//! ejection, panic mode, retry budgets, discovery.

use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, Endpoint, Endpoints, HttpPolicy, NoHealthyEndpoint};
use rampart::retry::{Backoff, RetryBudget};
use rampart::{BoxError, ErrorKind};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
}

impl Instance {
    fn service(&self) -> tower::util::BoxCloneSyncService<(), u32, BoxError> {
        let me = self.clone();
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |_: ()| {
            let me = me.clone();
            async move {
                *me.hits.lock().unwrap().entry(me.id).or_default() += 1;
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
}

impl Fleet {
    fn new(n: u32) -> Fleet {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        Fleet {
            instances: (0..n)
                .map(|id| Instance {
                    id,
                    down: Arc::default(),
                    hits: hits.clone(),
                })
                .collect(),
            hits,
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
    // An instance that fails every other call.
    let flips = Arc::new(AtomicUsize::new(0));
    let f = flips.clone();
    let flaky = tower::service_fn(move |_: ()| {
        let n = f.fetch_add(1, Ordering::SeqCst);
        async move {
            if n % 2 == 0 {
                Err::<u32, BoxError>(io::Error::from(io::ErrorKind::ConnectionReset).into())
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
    reply.send_error(io::Error::from(io::ErrorKind::ConnectionReset));
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

#[tokio::test(start_paused = true)]
async fn failed_attempts_do_not_feed_the_latency_estimate() {
    let slow_failure = tower::service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Err::<u32, BoxError>(io::Error::from(io::ErrorKind::InvalidData).into())
    });
    let mut lb = Balance::builder("fails")
        .latency_estimate(Duration::from_millis(30), Duration::from_secs(10))
        .build(Endpoints::fixed([Endpoint::new(1, slow_failure)]))
        .unwrap();
    call(&mut lb).await.unwrap_err();
    let latency = lb.handle().endpoints()[0].latency;
    assert!(latency <= Duration::from_millis(30), "{latency:?}");
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
