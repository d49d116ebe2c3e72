//! The `tracing` events every layer emits, with the fields and values
//! documented in `rampart::metrics` ("Tracing events"), caught by a small
//! subscriber that keeps each event's target, level and fields.

#[path = "support/capture.rs"]
mod capture;

use capture::Capture;

use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::bulkhead::pool::PoolLayer;
use rampart::bulkhead::BulkheadLayer;
use rampart::circuit_breaker::{CircuitBreakerLayer, State};
use rampart::fallback::FallbackLayer;
use rampart::metrics::{
    TARGET_BALANCE, TARGET_BULKHEAD, TARGET_CIRCUIT_BREAKER, TARGET_FALLBACK, TARGET_POOL,
    TARGET_TIMEOUT,
};
use rampart::retry::{Backoff, RetryBudget};
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, ErrorKind};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};
use tracing::Level;

// ===== dependencies =====

#[derive(Debug, Clone, Copy)]
enum Req {
    Ok,
    Fail,
    Hang,
}

fn dependency() -> tower::util::BoxCloneService<Req, &'static str, BoxError> {
    tower::util::BoxCloneService::new(tower::service_fn(|req: Req| async move {
        match req {
            Req::Ok => Ok("ok"),
            Req::Fail => Err::<_, BoxError>("connection refused".into()),
            Req::Hang => std::future::pending().await,
        }
    }))
}

async fn call<S: Service<Req>>(svc: &mut S, req: Req) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(req).await
}

// ===== circuit breaker =====

#[tokio::test(start_paused = true)]
async fn breaker_state_changes_and_short_circuits() {
    let (capture, _guard) = Capture::install();
    let layer = CircuitBreakerLayer::builder("dep")
        .consecutive_failures(1)
        .open_for(Duration::from_secs(2))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(dependency());

    call(&mut svc, Req::Fail).await.unwrap_err();
    let opened = capture.one("state_change");
    opened.assert_common(
        TARGET_CIRCUIT_BREAKER,
        "circuit_breaker",
        "dep",
        Level::WARN,
    );
    assert_eq!(opened.get("from"), Some("closed"));
    assert_eq!(opened.get("to"), Some("open"));
    assert_eq!(opened.get("reason"), Some("consecutive_failures"));
    assert_eq!(opened.get("open_for_ms"), Some("2000"));

    let err = call(&mut svc, Req::Ok).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    let rejected = capture.one("short_circuited");
    rejected.assert_common(
        TARGET_CIRCUIT_BREAKER,
        "circuit_breaker",
        "dep",
        Level::DEBUG,
    );

    // Back through half-open to closed: news, at info.
    capture.clear();
    advance(Duration::from_secs(2)).await;
    call(&mut svc, Req::Ok).await.unwrap();
    let changes = capture.named("state_change");
    let steps: Vec<_> = changes
        .iter()
        .map(|e| {
            e.assert_common(
                TARGET_CIRCUIT_BREAKER,
                "circuit_breaker",
                "dep",
                Level::INFO,
            );
            assert_eq!(
                e.get("open_for_ms"),
                None,
                "only an opening says for how long"
            );
            (e.get("from"), e.get("to"), e.get("reason"))
        })
        .collect();
    assert_eq!(
        steps,
        [
            (Some("open"), Some("half_open"), Some("open_elapsed")),
            (Some("half_open"), Some("closed"), Some("probes_succeeded")),
        ]
    );

    capture.clear();
    handle.force_open();
    let forced = capture.one("state_change");
    forced.assert_common(
        TARGET_CIRCUIT_BREAKER,
        "circuit_breaker",
        "dep",
        Level::WARN,
    );
    assert_eq!(forced.get("to"), Some("forced_open"));
    assert_eq!(forced.get("reason"), Some("manual"));
}

#[tokio::test(start_paused = true)]
async fn a_metrics_only_breaker_says_it_would_open() {
    let (capture, _guard) = Capture::install();
    let layer = CircuitBreakerLayer::builder("shadow")
        .consecutive_failures(1)
        .build()
        .unwrap();
    layer.handle().metrics_only();
    let mut svc = layer.layer(dependency());
    call(&mut svc, Req::Fail).await.unwrap_err();
    assert_eq!(layer.handle().state(), State::MetricsOnly);
    let would = capture.one("would_open");
    would.assert_common(
        TARGET_CIRCUIT_BREAKER,
        "circuit_breaker",
        "shadow",
        Level::INFO,
    );
    assert_eq!(would.get("reason"), Some("consecutive_failures"));
}

// ===== bulkhead, pool, timeout =====

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_rejects_and_says_so() {
    let (capture, _guard) = Capture::install();
    let layer = BulkheadLayer::builder("slots")
        .max_concurrent(1)
        .build()
        .unwrap();
    let mut a = layer.layer(dependency());
    let mut b = a.clone();
    let hanging = a.ready().await.unwrap().call(Req::Hang);
    let err = call(&mut b, Req::Ok).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    capture
        .one("rejected")
        .assert_common(TARGET_BULKHEAD, "bulkhead", "slots", Level::DEBUG);
    drop(hanging);
}

#[tokio::test(start_paused = true)]
async fn a_full_pool_rejects_and_says_so() {
    let (capture, _guard) = Capture::install();
    let layer = PoolLayer::builder("threads")
        .size(1)
        .queue(0)
        .build()
        .unwrap();
    // The first call holds the pool's one place until it is answered.
    let mut svc = layer.layer(tower::service_fn(|answer: oneshot::Receiver<()>| async {
        answer.await.map_err(BoxError::from)
    }));
    let (release, held) = oneshot::channel();
    let first = svc.ready().await.unwrap().call(held);
    let (_unused, refused) = oneshot::channel();
    let err = svc.ready().await.unwrap().call(refused).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    capture
        .one("rejected")
        .assert_common(TARGET_POOL, "pool", "threads", Level::DEBUG);
    release.send(()).unwrap();
    first.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timeout_says_which_one_elapsed() {
    let (capture, _guard) = Capture::install();
    let layer = TimeoutLayer::builder("deadline")
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency());
    let err = call(&mut svc, Req::Hang).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout);
    capture
        .one("timeout")
        .assert_common(TARGET_TIMEOUT, "timeout", "deadline", Level::DEBUG);
}

// ===== fallback =====

#[tokio::test(start_paused = true)]
async fn fallbacks_report_success_and_failure() {
    let (capture, _guard) = Capture::install();
    let serves = FallbackLayer::builder("serves")
        .fallback_sync(|_| Ok("cached"))
        .build()
        .unwrap();
    let mut svc = serves.layer(dependency());
    call(&mut svc, Req::Ok).await.unwrap();
    assert!(
        capture.named("fallback_success").is_empty(),
        "no fallback ran"
    );
    assert_eq!(call(&mut svc, Req::Fail).await.unwrap(), "cached");
    capture.one("fallback_success").assert_common(
        TARGET_FALLBACK,
        "fallback",
        "serves",
        Level::DEBUG,
    );

    let fails = FallbackLayer::builder("fails")
        .fallback_sync(|_| Err::<&'static str, _>("cache empty".into()))
        .build()
        .unwrap();
    let mut svc = fails.layer(dependency());
    call(&mut svc, Req::Fail).await.unwrap_err();
    capture.one("fallback_failure").assert_common(
        TARGET_FALLBACK,
        "fallback",
        "fails",
        Level::DEBUG,
    );
}

#[tokio::test(start_paused = true)]
async fn a_fallback_over_its_cap_is_rejected_and_says_so() {
    let (capture, _guard) = Capture::install();
    let layer = FallbackLayer::builder("capped")
        .max_concurrent(1)
        .fallback(|_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok("slow")
        })
        .build()
        .unwrap();
    let svc = layer.layer(dependency());
    let mut a = svc.clone();
    let first = tokio::spawn(async move { a.ready().await.unwrap().call(Req::Fail).await });
    tokio::task::yield_now().await;
    let mut b = svc.clone();
    let err = call(&mut b, Req::Fail).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::FallbackRejected);
    capture.one("fallback_rejected").assert_common(
        TARGET_FALLBACK,
        "fallback",
        "capped",
        Level::DEBUG,
    );
    assert_eq!(first.await.unwrap().unwrap(), "slow");
    capture.one("fallback_success");
}

// ===== balancer =====

/// An instance that refuses connections while `down`.
fn instance(down: Arc<AtomicBool>) -> tower::util::BoxCloneSyncService<(), &'static str, BoxError> {
    tower::util::BoxCloneSyncService::new(tower::service_fn(move |_: ()| {
        let down = down.load(Ordering::SeqCst);
        async move {
            if down {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused).into())
            } else {
                Ok("ok")
            }
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn balancer_retries_name_the_endpoint_and_attempt() {
    let (capture, _guard) = Capture::install();
    let down = Arc::new(AtomicBool::new(true));
    let mut lb = Balance::builder("ratings")
        .rule(RoundRobin::new())
        .backoff(Backoff::none())
        .build(Endpoints::fixed([
            Endpoint::new(0u32, instance(down.clone())),
            Endpoint::new(1u32, instance(Arc::default())),
        ]))
        .unwrap();
    lb.ready().await.unwrap().call(()).await.unwrap();
    let retry = capture.one("retry");
    retry.assert_common(TARGET_BALANCE, "balance", "ratings", Level::DEBUG);
    assert_eq!(retry.get("endpoint"), Some("0"));
    assert_eq!(retry.get("attempt"), Some("1"));
    assert_eq!(retry.get("error"), Some("connection refused"));
    let changed = capture.one("endpoints_changed");
    changed.assert_common(TARGET_BALANCE, "balance", "ratings", Level::DEBUG);
    assert_eq!(changed.get("endpoints"), Some("2"));
}

#[tokio::test(start_paused = true)]
async fn a_spent_retry_budget_says_which_retry_it_refused() {
    let (capture, _guard) = Capture::install();
    let mut lb = Balance::builder("outage")
        .rule(RoundRobin::new())
        .backoff(Backoff::none())
        // No floor and no share of requests: not one retry allowed.
        .retry_budget(RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap())
        .build(Endpoints::fixed([
            Endpoint::new(0u32, instance(Arc::new(AtomicBool::new(true)))),
            Endpoint::new(1u32, instance(Arc::new(AtomicBool::new(true)))),
        ]))
        .unwrap();
    let err = lb.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::RetryBudgetExhausted);
    assert!(capture.named("retry").is_empty());
    let refused = capture.one("retry_budget_exhausted");
    refused.assert_common(TARGET_BALANCE, "balance", "outage", Level::DEBUG);
    assert_eq!(refused.get("endpoint"), Some("0"));
    assert_eq!(refused.get("attempt"), Some("1"));
    assert_eq!(refused.get("error"), Some("connection refused"));
}

#[tokio::test(start_paused = true)]
async fn ejections_dead_marks_and_returns_are_announced() {
    let (capture, _guard) = Capture::install();
    let downs: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(true))).collect();
    let mut lb = Balance::builder("fleet")
        .rule(RoundRobin::new())
        .retries_next(0)
        .eject_after(1)
        .eject_for(Duration::from_secs(10), Duration::from_secs(30))
        .build(Endpoints::fixed((0u32..3).map(|id| {
            Endpoint::new(id, instance(downs[id as usize].clone()))
        })))
        .unwrap();
    downs[2].store(false, Ordering::SeqCst);
    // Instance 0 fails first and takes the one ejection place (10 % of 3,
    // at least one); instance 1 fails next and is marked dead instead.
    for _ in 0..3 {
        let _ = lb.ready().await.unwrap().call(()).await;
    }
    let ejected = capture.one("ejected");
    ejected.assert_common(TARGET_BALANCE, "balance", "fleet", Level::WARN);
    assert_eq!(ejected.get("endpoint"), Some("0"));
    assert_eq!(ejected.get("ejected_for_ms"), Some("10000"));
    let dead = capture.one("marked_dead");
    dead.assert_common(TARGET_BALANCE, "balance", "fleet", Level::WARN);
    assert_eq!(dead.get("endpoint"), Some("1"));
    assert_eq!(dead.get("marked_dead_for_ms"), Some("10000"));

    // Both spells run out (a dead mark ends a microsecond late: its end
    // is kept odd); the next selections see them back.
    downs[0].store(false, Ordering::SeqCst);
    downs[1].store(false, Ordering::SeqCst);
    advance(Duration::from_secs(10) + Duration::from_millis(1)).await;
    for _ in 0..3 {
        lb.ready().await.unwrap().call(()).await.unwrap();
    }
    let mut back: Vec<_> = capture
        .named("unejected")
        .into_iter()
        .map(|e| {
            e.assert_common(TARGET_BALANCE, "balance", "fleet", Level::INFO);
            e.get("endpoint").unwrap().to_owned()
        })
        .collect();
    back.sort();
    assert_eq!(back, ["0", "1"]);
}

#[tokio::test(start_paused = true)]
async fn discovery_failures_and_empty_sets_are_reported() {
    use tower::discover::Change;
    let (capture, _guard) = Capture::install();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<
        Result<Change<u32, tower::util::BoxCloneSyncService<(), &'static str, BoxError>>, BoxError>,
    >();
    let discover = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut lb = Balance::builder("discovered")
        .build(Endpoints::discover(discover))
        .unwrap();
    tx.send(Err("registry unreachable".into())).unwrap();
    let err = lb.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::NoHealthyEndpoint);
    let failed = capture.one("discovery_failed");
    failed.assert_common(TARGET_BALANCE, "balance", "discovered", Level::WARN);
    assert_eq!(failed.get("error"), Some("registry unreachable"));
    capture
        .one("no_endpoint")
        .assert_common(TARGET_BALANCE, "balance", "discovered", Level::DEBUG);
}

// ===== chaos =====

#[cfg(feature = "chaos")]
#[tokio::test(start_paused = true)]
async fn injected_faults_are_labelled_as_injected() {
    use rampart::chaos::{Abort, ChaosLayer, Delay};
    use rampart::metrics::TARGET_CHAOS;

    let (capture, _guard) = Capture::install();
    let layer = ChaosLayer::builder("monkey")
        .delay(Delay::fixed(Duration::from_millis(40)), 100.0)
        .abort(Abort::error(|| "injected: connection refused"), 100.0)
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency());
    layer.handle().enable();
    assert!(call(&mut svc, Req::Ok).await.is_err());
    layer.handle().disable();

    let switched = capture.one("enabled");
    switched.assert_common(TARGET_CHAOS, "chaos", "monkey", Level::WARN);
    assert_eq!(switched.get("injected"), Some("true"));
    let delayed = capture.one("delay_injected");
    delayed.assert_common(TARGET_CHAOS, "chaos", "monkey", Level::DEBUG);
    assert_eq!(delayed.get("injected"), Some("true"));
    assert_eq!(delayed.get("delay_ms"), Some("40.0"));
    let aborted = capture.one("abort_injected");
    aborted.assert_common(TARGET_CHAOS, "chaos", "monkey", Level::DEBUG);
    assert_eq!(aborted.get("abort"), Some("error"));
    capture
        .one("disabled")
        .assert_common(TARGET_CHAOS, "chaos", "monkey", Level::WARN);
}

// ===== live configuration =====

#[test]
fn live_changes_and_refused_properties() {
    let (capture, _guard) = Capture::install();
    let registry = rampart::registry::Registry::new();
    let breaker = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let timeout = TimeoutLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let bulkhead = BulkheadLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();

    breaker.handle().set_failure_rate(0.3).unwrap();
    let changed = capture.one("property_changed");
    changed.assert_common(
        TARGET_CIRCUIT_BREAKER,
        "circuit_breaker",
        "dep",
        Level::INFO,
    );
    assert_eq!(changed.get("property"), Some("failure_rate"));
    assert_eq!(changed.get("from"), Some("0.5"));
    assert_eq!(changed.get("to"), Some("0.3"));
    assert_eq!(changed.get("source"), Some("handle"));

    capture.clear();
    registry
        .apply(
            rampart::config::Source::File,
            "dep",
            "timeout",
            Some("250ms"),
        )
        .unwrap();
    let changed = capture.one("property_changed");
    changed.assert_common(TARGET_TIMEOUT, "timeout", "dep", Level::INFO);
    assert_eq!(changed.get("to"), Some("250ms"));
    assert_eq!(changed.get("source"), Some("file"));

    capture.clear();
    bulkhead.handle().set_max_concurrent(3).unwrap();
    let changed = capture.one("property_changed");
    changed.assert_common(TARGET_BULKHEAD, "bulkhead", "dep", Level::INFO);
    assert_eq!(changed.get("property"), Some("max_concurrent"));
    assert_eq!(changed.get("to"), Some("3"));

    // A source's whole read with a bad property: refused, at warn.
    capture.clear();
    let errors = registry.replace(
        rampart::config::Source::Etcd,
        &[rampart::config::Property {
            component: "dep".into(),
            name: "probes".into(),
            value: "0".into(),
        }],
    );
    assert_eq!(errors.len(), 1);
    let refused = capture.one("property_rejected");
    refused.assert_common(
        rampart::metrics::TARGET_CONFIG,
        "config",
        "dep",
        Level::WARN,
    );
    assert_eq!(refused.get("source"), Some("etcd"));
    drop((timeout, breaker));
}
