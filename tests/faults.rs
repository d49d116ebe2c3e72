//! Faults found by replaying peers' bug reports, a new-user trial and a
//! soak (issue 8), each as the small input that exposed it. Every test here
//! failed before its fix.

use rampart::bulkhead::pool::{PoolFull, PoolLayer};
use rampart::bulkhead::BulkheadLayer;
use rampart::catch_panic::Panicked;
use rampart::circuit_breaker::{
    CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer, State, Window,
};
use rampart::fallback::{FallbackFailed, FallbackLayer};
use rampart::{BoxError, Command, ErrorKind};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::advance;
use tower::util::BoxService;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// A dependency that counts its calls and answers each with what the
/// request's channel says: `true` succeeds, `false` fails.
fn controlled(
    reached: Arc<AtomicUsize>,
) -> impl Service<oneshot::Receiver<bool>, Response = (), Error = BoxError, Future: Send> + Clone {
    service_fn(move |answer: oneshot::Receiver<bool>| {
        reached.fetch_add(1, Ordering::SeqCst);
        async move {
            match answer.await {
                Ok(true) => Ok(()),
                _ => Err::<(), BoxError>("connection reset".into()),
            }
        }
    })
}

/// A breaker opened by one failure for `open_for`, over [`controlled`]:
/// tripped already.
async fn tripped(
    open_for: Duration,
    reached: Arc<AtomicUsize>,
) -> (
    CircuitBreakerHandle,
    CircuitBreaker<
        impl Service<oneshot::Receiver<bool>, Response = (), Error = BoxError, Future: Send> + Clone,
    >,
) {
    let layer = CircuitBreakerLayer::builder("dep")
        .consecutive_failures(1)
        .open_for(open_for)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(controlled(reached));
    let _ = svc.ready().await.unwrap().call(answered(false)).await;
    assert_eq!(handle.state(), State::Open);
    (handle, svc)
}

fn answered(ok: bool) -> oneshot::Receiver<bool> {
    let (tx, rx) = oneshot::channel();
    tx.send(ok).unwrap();
    rx
}

// ===== 1. A decision made in poll_ready must still hold at call =====

#[tokio::test(start_paused = true)]
async fn a_probe_place_readied_then_forced_open_is_rejected_at_call() {
    let reached = Arc::new(AtomicUsize::new(0));
    let (handle, mut svc) = tripped(Duration::from_secs(1), reached.clone()).await;

    advance(Duration::from_secs(1)).await;
    svc.ready().await.unwrap(); // takes the half-open probe place
    handle.force_open();
    let err = svc.call(answered(true)).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "the dependency was called while forced open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_rejected_after_its_bulkhead_slot_was_readied_gives_the_slot_back() {
    let reached = Arc::new(AtomicUsize::new(0));
    let breaker = CircuitBreakerLayer::builder("dep").build().unwrap();
    let bulkhead = BulkheadLayer::builder("dep")
        .max_concurrent(1)
        .build()
        .unwrap();
    let (handle, slots) = (breaker.handle(), bulkhead.handle());
    let mut a = ServiceBuilder::new()
        .layer(breaker)
        .layer(bulkhead)
        .service(controlled(reached.clone()));
    let mut b = a.clone();

    a.ready().await.unwrap();
    assert_eq!(slots.in_flight(), 1);
    handle.force_open();
    let err = a.call(answered(true)).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(slots.in_flight(), 0, "a slot held with nothing running");

    handle.reset();
    b.ready().await.unwrap().call(answered(true)).await.unwrap();
    assert_eq!(handle.counts().failed(), 0);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_caller_waiting_on_a_bulkhead_beneath_learns_the_breaker_was_forced_open() {
    let reached = Arc::new(AtomicUsize::new(0));
    let breaker = CircuitBreakerLayer::builder("dep").build().unwrap();
    let bulkhead = BulkheadLayer::builder("dep")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let (handle, slots) = (breaker.handle(), bulkhead.handle());
    let mut a = ServiceBuilder::new()
        .layer(breaker)
        .layer(bulkhead)
        .service(controlled(reached.clone()));
    let mut waiter = a.clone();

    let (_hold, hung) = oneshot::channel();
    let running = a.ready().await.unwrap().call(hung);
    let mut waiting = tokio_test::task::spawn(std::future::poll_fn(|cx| waiter.poll_ready(cx)));
    assert!(waiting.poll().is_pending());
    assert_eq!(slots.waiting(), 1);

    handle.force_open();
    assert!(waiting.is_woken(), "the waiter was not told of the change");
    assert!(matches!(waiting.poll(), Poll::Ready(Ok(()))));
    drop(waiting);
    assert_eq!(
        slots.waiting(),
        0,
        "the rejected caller still holds a place in the queue"
    );
    let err = waiter.call(answered(true)).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    drop(running);
    assert_eq!(slots.in_flight(), 0);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

// ===== 2. An outcome from an earlier period never lands in the current one =====

#[tokio::test(start_paused = true)]
async fn a_probe_from_before_a_reset_is_not_counted() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::builder("dep")
        .window(Window::count(10))
        .min_calls(2)
        .failure_rate(1.0)
        .open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(controlled(reached.clone()));
    for _ in 0..2 {
        let _ = svc.ready().await.unwrap().call(answered(false)).await;
    }
    assert_eq!(handle.state(), State::Open);

    advance(Duration::from_secs(1)).await;
    let (fail_probe, answer) = oneshot::channel();
    let mut probe = tokio_test::task::spawn(svc.ready().await.unwrap().call(answer));
    assert!(probe.poll().is_pending());
    assert_eq!(handle.state(), State::HalfOpen);

    handle.reset();
    fail_probe.send(false).unwrap();
    assert!(matches!(probe.poll(), Poll::Ready(Err(_))));
    assert_eq!(
        handle.counts().calls(),
        0,
        "the old probe landed in the new period"
    );

    let _ = svc.ready().await.unwrap().call(answered(false)).await;
    assert_eq!(handle.state(), State::Closed, "1 call is below min_calls 2");
}

// ===== 3. Whoever reads the state to decide sees what a call would meet =====

#[tokio::test(start_paused = true)]
async fn an_open_breaker_past_its_open_time_reads_half_open() {
    let (handle, mut svc) = tripped(Duration::from_secs(1), Arc::default()).await;
    assert!(!handle.is_call_permitted());

    advance(Duration::from_secs(1)).await;
    assert_eq!(handle.state(), State::HalfOpen);
    assert!(handle.is_call_permitted());
    assert_eq!(handle.retry_after(), None);

    // The probe place read as free is still there for the next call.
    svc.ready()
        .await
        .unwrap()
        .call(answered(true))
        .await
        .unwrap();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_availability_filter_sends_a_recovered_endpoint_its_probe() {
    use rampart::balance::rule::{AvailabilityFilter, RoundRobin};
    use rampart::balance::{Balance, Endpoint, Endpoints};

    let failing = Arc::new(AtomicBool::new(true));
    let calls = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let mut handles = Vec::new();
    let endpoints = (0..2usize).map(|i| {
        let layer = CircuitBreakerLayer::builder(format!("instance-{i}"))
            .consecutive_failures(1)
            .open_for(Duration::from_secs(1))
            .build()
            .unwrap();
        handles.push(layer.handle());
        let (failing, calls) = (failing.clone(), calls[i].clone());
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(move |_: ()| {
                calls.fetch_add(1, Ordering::SeqCst);
                let fail = i == 0 && failing.swap(false, Ordering::SeqCst);
                async move {
                    if fail {
                        Err::<usize, BoxError>("connection reset".into())
                    } else {
                        Ok(i)
                    }
                }
            }));
        Endpoint::new(i, svc).breaker(handles[i].clone())
    });
    let endpoints: Vec<_> = endpoints.collect();
    let mut balance = Balance::builder("pair")
        .rule(AvailabilityFilter::new(RoundRobin::new()))
        .retries_next(0)
        .build(Endpoints::fixed(endpoints))
        .unwrap();

    // Round robin starts at endpoint 0, which fails once and opens.
    for _ in 0..2 {
        let _ = balance.ready().await.unwrap().call(()).await;
    }
    assert_eq!(handles[0].state(), State::Open);
    let before = calls[0].load(Ordering::SeqCst);

    advance(Duration::from_secs(2)).await;
    for _ in 0..20 {
        balance.ready().await.unwrap().call(()).await.unwrap();
    }
    assert!(
        calls[0].load(Ordering::SeqCst) > before,
        "endpoint 0 never got its probe"
    );
    assert_eq!(handles[0].state(), State::Closed);
}

// ===== 4. A time window moves forward before it records =====

#[tokio::test(start_paused = true)]
async fn short_circuits_after_a_quiet_gap_are_counted() {
    let (handle, mut svc) = tripped(Duration::from_secs(60), Arc::default()).await;

    advance(Duration::from_secs(20)).await;
    for _ in 0..3 {
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(answered(true))
            .await
            .unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    }
    assert_eq!(handle.rolling_counts().short_circuited, 3);
}

// ===== 5. Isolation decides before the request reaches the dependency =====

#[tokio::test]
async fn a_full_pool_rejects_before_handing_the_request_over() {
    let reached = Arc::new(AtomicUsize::new(0));
    let pool = PoolLayer::builder("ratings-pool")
        .size(1)
        .queue(0)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(pool)
        .service(controlled(reached.clone()));

    let (_hold, hung) = oneshot::channel();
    let _running = svc.ready().await.unwrap().call(hung);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(answered(true))
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    let full = err.downcast_ref::<PoolFull>().expect("a PoolFull error");
    assert_eq!(full.name(), "ratings-pool");
    assert!(err.to_string().contains("ratings-pool"), "{err}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "the rejected request was handed over"
    );
}

// ===== 7. Panics =====

/// A dependency whose every call panics: in `call` or in its future.
#[derive(Clone)]
struct Panicking {
    in_call: bool,
    reached: Arc<AtomicUsize>,
}

impl Service<()> for Panicking {
    type Response = ();
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ()) -> Self::Future {
        self.reached.fetch_add(1, Ordering::SeqCst);
        if self.in_call {
            panic!("bug in call");
        }
        Box::pin(async { panic!("bug in the future") })
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_dependency_trips_the_breaker_and_leaves_no_slot_behind() {
    for in_call in [true, false] {
        let reached = Arc::new(AtomicUsize::new(0));
        let command = Command::builder("panicky")
            .breaker(|b| b.consecutive_failures(3))
            .build()
            .unwrap();
        let (breaker, bulkhead) = (command.breaker(), command.bulkhead());
        let mut svc = ServiceBuilder::new().layer(command).service(Panicking {
            in_call,
            reached: reached.clone(),
        });
        for _ in 0..3 {
            svc.ready().await.unwrap();
            let call = std::panic::catch_unwind(AssertUnwindSafe(|| svc.call(())));
            if let Ok(future) = call {
                // tokio catches the panic, then drops the future.
                let joined = tokio::spawn(future).await;
                assert!(joined.unwrap_err().is_panic());
            }
        }
        assert_eq!(breaker.state(), State::Open, "in_call: {in_call}");
        assert_eq!(breaker.counts().failures, 3);
        assert_eq!(bulkhead.in_flight(), 0);
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
        assert_eq!(reached.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_reopens_the_breaker_at_once() {
    let breaker = CircuitBreakerLayer::builder("dep")
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1))
        .probe_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let mut svc = ServiceBuilder::new().layer(breaker).service(Panicking {
        in_call: false,
        reached: Arc::default(),
    });
    let future = svc.ready().await.unwrap().call(());
    assert!(tokio::spawn(future).await.unwrap_err().is_panic());
    assert_eq!(handle.state(), State::Open);

    advance(Duration::from_secs(1)).await;
    let probe = svc.ready().await.unwrap().call(());
    assert!(tokio::spawn(probe).await.unwrap_err().is_panic());
    // Open again at once, not half-open until the 60 s probe timeout.
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.retry_after(), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn contained_panics_reach_the_fallback() {
    let command = Command::builder("panicky")
        .contain_panics()
        .fallback_sync(|cause| {
            assert_eq!(cause.kind(), ErrorKind::Panicked);
            Ok(())
        })
        .breaker(|b| b.consecutive_failures(2))
        .build()
        .unwrap();
    let breaker = command.breaker();
    let mut svc = ServiceBuilder::new().layer(command).service(Panicking {
        in_call: false,
        reached: Arc::default(),
    });
    for _ in 0..2 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test]
async fn a_panic_on_a_pool_thread_is_an_error_and_frees_the_thread() {
    let pool = PoolLayer::builder("pool").size(1).queue(0).build().unwrap();
    let handle = pool.handle();
    let mut svc = ServiceBuilder::new().layer(pool).service(Panicking {
        in_call: false,
        reached: Arc::default(),
    });
    for _ in 0..3 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::Panicked, "{err}");
        assert_eq!(
            err.downcast_ref::<Panicked>().unwrap().message(),
            Some("bug in the future")
        );
    }
    assert_eq!(handle.active() + handle.queued(), 0);
}

/// A fallback that panics, as it is made (a sync closure) or as its future
/// is polled, contained or not: it counts as failed, and the place it held
/// under the cap is given back as the call ends.
#[tokio::test(start_paused = true)]
async fn a_panicking_fallback_counts_as_failed_and_frees_its_place() {
    for polled in [false, true] {
        for contain in [false, true] {
            // The two kinds of fallback are two types: one macro builds both.
            macro_rules! service {
                ($builder:expr) => {{
                    let mut builder = $builder;
                    if contain {
                        builder = builder.contain_panics();
                    }
                    let fallback = builder.build().unwrap();
                    let stats = fallback.handle();
                    let svc = ServiceBuilder::new()
                        .layer(fallback)
                        .service(controlled(Arc::default()));
                    (BoxService::new(svc), stats)
                }};
            }
            let builder = FallbackLayer::builder("fb").max_concurrent(1);
            let (svc, stats) = if polled {
                service!(builder.fallback(|_cause| async { panic!("bug in the fallback's future") }))
            } else {
                service!(builder.fallback_sync(|_cause| -> Result<(), BoxError> {
                    panic!("bug in the fallback")
                }))
            };
            let future = svc.oneshot(answered(false));
            let result = tokio::spawn(future).await;
            let case = format!("polled: {polled}, contain: {contain}");
            if contain {
                let err = result.unwrap().unwrap_err();
                let failed = err.downcast_ref::<FallbackFailed>().unwrap();
                assert_eq!(ErrorKind::of(failed.fallback_error()), ErrorKind::Panicked);
                // Found by a user trial: it blamed the dependency.
                let panicked = failed.fallback_error().downcast_ref::<Panicked>().unwrap();
                assert!(panicked.in_fallback(), "{case}");
                assert!(
                    err.to_string()
                        .starts_with("fallback failed: the fallback panicked: bug in the fallback"),
                    "{case}: {err}"
                );
            } else {
                assert!(result.unwrap_err().is_panic(), "{case}");
            }
            assert_eq!(stats.failures(), 1, "{case}");
            assert_eq!(stats.successes(), 0, "{case}");
            assert_eq!(stats.running(), 0, "{case}");
        }
    }
}

// ===== 8. Visible outcomes and clear errors =====

#[tokio::test(start_paused = true)]
async fn a_rejected_fallback_has_its_own_kind() {
    let fallback = FallbackLayer::builder("fb")
        .max_concurrent(1)
        .fallback(|_cause| std::future::pending::<Result<(), BoxError>>())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(fallback)
        .service(controlled(Arc::default()));
    let mut first = tokio_test::task::spawn(svc.ready().await.unwrap().call(answered(false)));
    assert!(first.poll().is_pending());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(answered(false))
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::FallbackRejected);
}

#[tokio::test]
async fn a_pool_handle_prints_the_pool_not_the_runtime() {
    let pool = PoolLayer::builder("ratings-pool")
        .size(2)
        .queue(3)
        .build()
        .unwrap();
    let printed = format!("{:?}", pool.handle());
    assert!(
        printed.contains("ratings-pool") && printed.contains("queue: 3"),
        "{printed}"
    );
    assert!(!printed.to_lowercase().contains("runtime"), "{printed}");
}

/// Found by a user trial: the rejections printed their private field in
/// logs (`Elapsed { _p: () }`); a `{:?}` is now the error's name.
#[test]
fn rejection_errors_print_their_names() {
    let printed = [
        format!("{:?}", rampart::circuit_breaker::CircuitOpen::new()),
        format!("{:?}", rampart::bulkhead::BulkheadFull::new()),
        format!("{:?}", rampart::timeout::Elapsed::new()),
        format!("{:?}", rampart::deadline::DeadlineExceeded::new()),
        format!("{:?}", rampart::balance::NoHealthyEndpoint::new()),
        format!("{:?}", rampart::limit::LimitExceeded::new()),
        format!("{:?}", rampart::limit::PartitionLimitExceeded::new()),
        format!("{:?}", rampart::coalesce::WaitersFull::new()),
        format!("{:?}", rampart::collapse::MissingItem::new()),
        format!("{:?}", rampart::collapse::CollapserClosed::new()),
    ];
    assert_eq!(
        printed,
        [
            "CircuitOpen",
            "BulkheadFull",
            "Elapsed",
            "DeadlineExceeded",
            "NoHealthyEndpoint",
            "LimitExceeded",
            "PartitionLimitExceeded",
            "WaitersFull",
            "MissingItem",
            "CollapserClosed",
        ]
    );
}

#[test]
fn a_breaker_that_could_never_open_is_a_config_error() {
    let err = CircuitBreakerLayer::builder("dep")
        .failure_rate(None)
        .build()
        .unwrap_err();
    assert!(err.names("failure_rate"), "{err}");
    assert!(err.to_string().contains("no trip rule"), "{err}");
}

#[test]
fn every_bad_open_time_is_listed() {
    let err = CircuitBreakerLayer::builder("dep")
        .open_for(Duration::ZERO)
        .open_for_max(Duration::from_nanos(1))
        .build()
        .unwrap_err();
    assert!(err.names("open_for"), "{err}");
    assert!(err.names("open_for_max"), "{err}");
}

#[test]
fn a_timeout_longer_than_the_default_window_names_the_default_and_the_option() {
    let err = Command::builder("slow")
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("default window of 10s"), "{message}");
    assert!(message.contains("b.window(Window::time("), "{message}");
}
