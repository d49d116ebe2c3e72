//! The adaptive limit as a service: partitions against a noisy tenant, the
//! limit finding a simulated server's capacity on a paused clock, what
//! counts as a drop, the bounded wait, and rejections as HTTP responses.

use http::{Request, Response, StatusCode};
use rampart::limit::{
    Aimd, Fixed, Gradient2, HttpClassifier, LimitExceeded, LimitLayer, PartitionLimitExceeded,
    Vegas,
};
use rampart::registry::Registry;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tower::{service_fn, Layer, Service, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn tenant(name: &'static str) -> Request<()> {
    Request::builder()
        .header("x-tenant", name)
        .body(())
        .unwrap()
}

fn tenant_of(request: &Request<()>) -> Option<&str> {
    request
        .headers()
        .get("x-tenant")
        .and_then(|v| v.to_str().ok())
}

// ===== partitions =====

/// Calls held by the service now and at most, per tenant.
#[derive(Default)]
struct Held {
    a: AtomicUsize,
    b: AtomicUsize,
    total_peak: AtomicUsize,
}

#[tokio::test(start_paused = true)]
async fn a_noisy_tenant_cannot_take_another_tenants_share() {
    let layer = LimitLayer::builder("tenants")
        .algorithm(Fixed::new(10))
        .partition("a", 0.5)
        .partition("b", 0.5)
        .partition_by(tenant_of)
        .build()
        .unwrap();
    let handle = layer.handle();
    let held = Arc::new(Held::default());
    let svc = layer.layer(service_fn({
        let held = held.clone();
        move |request: Request<()>| {
            let held = held.clone();
            async move {
                let mine = if tenant_of(&request) == Some("a") {
                    &held.a
                } else {
                    &held.b
                };
                mine.fetch_add(1, Ordering::SeqCst);
                let total = held.a.load(Ordering::SeqCst) + held.b.load(Ordering::SeqCst);
                held.total_peak.fetch_max(total, Ordering::SeqCst);
                sleep(ms(100)).await;
                mine.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxError>(Response::new(()))
            }
        }
    }));

    // Tenant a floods: 30 callers, each calling again at once, or 1 ms
    // after a rejection; each rejection is a's, over its share.
    let stop = Instant::now() + Duration::from_secs(5);
    let callers = |name: &'static str, n: usize| {
        (0..n)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    let (mut served, mut rejected) = (0, 0);
                    while Instant::now() < stop {
                        match svc.ready().await.unwrap().call(tenant(name)).await {
                            Ok(_) => served += 1,
                            Err(e) => {
                                assert_eq!(ErrorKind::of(&e), ErrorKind::LimitExceeded);
                                assert!(e.is::<PartitionLimitExceeded>(), "{e}");
                                rejected += 1;
                                sleep(ms(1)).await;
                            }
                        }
                    }
                    (served, rejected)
                })
            })
            .collect::<Vec<_>>()
    };
    let a = callers("a", 30);
    sleep(ms(250)).await;
    // a holds the whole limit while b is away.
    assert_eq!(held.a.load(Ordering::SeqCst), 10);

    // b comes with as many callers as its share: none is ever refused,
    // though a is still flooding.
    let b = callers("b", 5);
    sleep(ms(10)).await;
    assert_eq!(held.b.load(Ordering::SeqCst), 5, "b got its share at once");
    sleep(Duration::from_secs(1)).await;
    // Once a's extra calls have ended, a cannot replace them: 5 and 5.
    assert_eq!(held.a.load(Ordering::SeqCst), 5);
    assert_eq!(held.b.load(Ordering::SeqCst), 5);

    let mut a_totals = (0, 0);
    for task in a {
        let (s, r) = task.await.unwrap();
        a_totals = (a_totals.0 + s, a_totals.1 + r);
    }
    for task in b {
        let (served, rejected) = task.await.unwrap();
        assert_eq!(rejected, 0, "b, within its share, was refused");
        assert!(served >= 45, "b served {served} calls in ~4.75 s");
    }
    assert!(a_totals.1 > 1000, "a was refused {} times", a_totals.1);
    // b came while a held all 10: the calls in flight passed the limit by
    // at most b's share, and only until a's extra calls ended.
    assert!(held.total_peak.load(Ordering::SeqCst) <= 15);
    let stats = handle.partitions();
    assert_eq!((&*stats[0].name, stats[0].limit), ("a", 5));
    assert_eq!(stats[0].rejected, a_totals.1 as u64);
    assert_eq!((&*stats[1].name, stats[1].rejected), ("b", 0));
    assert_eq!(&*stats[2].name, "unknown");
}

#[tokio::test(start_paused = true)]
async fn calls_of_no_declared_partition_share_what_is_left_and_get_503s() {
    let layer = LimitLayer::builder("unknown-tenants")
        .algorithm(Fixed::new(4))
        .partition("a", 0.5)
        .partition_by(tenant_of)
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|_: Request<()>| async {
        sleep(ms(100)).await;
        Ok::<_, BoxError>(Response::new(()))
    }));
    // Under the limit, anyone gets in, with a key or without.
    let held: Vec<_> = (0..4)
        .map(|i| {
            let request = if i < 2 { Request::new(()) } else { tenant("z") };
            tokio::spawn(svc.ready_oneshot_clone().call(request))
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(layer.handle().in_flight(), 4);
    // At the limit, the unknown partition has no share: LimitExceeded
    // (503), not a partition's over-share rejection (429).
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<LimitExceeded>(), "{err}");
    // a still has its share of 2.
    let a = svc.ready().await.unwrap().call(tenant("a"));
    assert_eq!(layer.handle().in_flight(), 5);
    a.await.unwrap();
    for h in held {
        h.await.unwrap().unwrap();
    }
}

/// `ServiceExt::ready_oneshot` on a clone: a call that owns its service.
trait ReadyClone<R>: Service<R> + Clone + Sized {
    fn ready_oneshot_clone(&mut self) -> OwnedCall<Self> {
        OwnedCall(self.clone())
    }
}
impl<S: Service<R> + Clone, R> ReadyClone<R> for S {}

struct OwnedCall<S>(S);

impl<S> OwnedCall<S> {
    async fn call<R>(mut self, request: R) -> Result<S::Response, S::Error>
    where
        S: Service<R>,
    {
        self.0.ready().await?.call(request).await
    }
}

// ===== the limit follows a simulated server =====

/// An in-process server of capacity 50: 40 ms per call up to 50 at once,
/// then 15 % slower per call past 50 (examples/adaptive_limit.rs's).
fn contended_server(
    serving: Arc<AtomicUsize>,
) -> impl Service<
    (),
    Response = (),
    Error = BoxError,
    Future = impl std::future::Future<Output = Result<(), BoxError>> + Send,
> + Clone
       + Send {
    service_fn(move |_: ()| {
        let serving = serving.clone();
        async move {
            let n = serving.fetch_add(1, Ordering::SeqCst) + 1;
            let slow = 1.0 + 0.15 * n.saturating_sub(50) as f64;
            sleep(ms(40).mul_f64(slow.min(10.0))).await;
            serving.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, BoxError>(())
        }
    })
}

/// `callers` tasks calling through `layer` for `length` of paused time;
/// the limit every 100 ms, and the latencies of the calls served in the
/// last half.
async fn drive(layer: LimitLayer, callers: usize, length: Duration) -> (Vec<usize>, Vec<Duration>) {
    let handle = layer.handle();
    let svc = layer.layer(contended_server(Arc::new(AtomicUsize::new(0))));
    let began = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let mut svc = svc.clone();
            let latencies = latencies.clone();
            tokio::spawn(async move {
                while began.elapsed() < length {
                    let started = Instant::now();
                    match svc.ready().await.unwrap().call(()).await {
                        Ok(()) => {
                            if began.elapsed() > length / 2 {
                                latencies.lock().unwrap().push(started.elapsed());
                            }
                        }
                        Err(e) => {
                            assert_eq!(ErrorKind::of(&e), ErrorKind::LimitExceeded);
                            sleep(ms(10)).await;
                        }
                    }
                }
            })
        })
        .collect();
    let mut limits = Vec::new();
    while began.elapsed() < length {
        sleep(ms(100)).await;
        limits.push(handle.limit());
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort();
    (limits, latencies)
}

/// Each one-second mean of `limits` (read every 100 ms) from `second` on
/// is within 10 % of the capacity, 50.
fn assert_within_a_tenth_of_50_each_second_from(limits: &[usize], second: usize) {
    for (i, chunk) in limits.chunks(10).enumerate().skip(second) {
        let mean = chunk.iter().sum::<usize>() as f64 / chunk.len() as f64;
        assert!(
            (45.0..=55.0).contains(&mean),
            "mean {mean} in second {i}: {limits:?}"
        );
    }
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() * 99 / 100]
}

#[tokio::test(start_paused = true)]
async fn vegas_finds_the_capacity_of_a_contended_server() {
    let layer = LimitLayer::builder("vegas-sim")
        .algorithm(Vegas::new())
        .min_window(ms(100))
        .build()
        .unwrap();
    let (limits, latencies) = drive(layer, 120, Duration::from_secs(8)).await;
    // From 20, +6 a window while the RTT is flat (no queue), to 56; then
    // −1 a window while the queue estimate is past β = 6 (at 51 it is
    // ⌈51·(1 − 40/46)⌉ = 7), and +6 again from 50: a sawtooth from 50 to
    // 56 around the capacity, within 10 % of it on average.
    assert!(limits[..10].contains(&56), "{limits:?}");
    assert_within_a_tenth_of_50_each_second_from(&limits, 2);
    assert!(
        limits[20..].iter().all(|l| (50..=56).contains(l)),
        "{limits:?}"
    );
    // 56 admitted: 40 ms × (1 + 0.15 × 6) = 76 ms at worst.
    assert!(p99(&latencies) <= ms(80), "p99 {:?}", p99(&latencies));
}

#[tokio::test(start_paused = true)]
async fn gradient2_finds_the_capacity_of_a_contended_server() {
    let layer = LimitLayer::builder("gradient2-sim")
        .algorithm(Gradient2::new().rtt_tolerance(1.2))
        .min_window(ms(100))
        .build()
        .unwrap();
    let (limits, latencies) = drive(layer, 120, Duration::from_secs(10)).await;
    // 0.8 a window from 20: past 40 after 25 windows (windows end with the
    // first call after their 100 ms, so a little more than 2.5 s).
    assert!(limits[35] > 40, "{limits:?}");
    assert_within_a_tenth_of_50_each_second_from(&limits, 6);
    // The RTT held to 1.3× its long-term average at most: 52 or 53.
    assert!(
        limits[60..].iter().all(|l| (50..=55).contains(l)),
        "{limits:?}"
    );
    assert!(p99(&latencies) <= ms(80), "p99 {:?}", p99(&latencies));
}

#[tokio::test(start_paused = true)]
async fn aimd_backs_off_on_a_servers_503s() {
    // A server that refuses (503, at once) past 30 calls at once, else
    // answers in 20 ms: the client's AIMD limit keeps near 30.
    let serving = Arc::new(AtomicUsize::new(0));
    let layer = LimitLayer::builder("aimd-sim")
        .algorithm(Aimd::new().min_limit(1).initial_limit(10).max_limit(100))
        .classify(HttpClassifier)
        .min_window(ms(100))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(service_fn(move |_: ()| {
        let serving = serving.clone();
        async move {
            let n = serving.fetch_add(1, Ordering::SeqCst) + 1;
            let status = if n > 30 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                sleep(ms(20)).await;
                StatusCode::OK
            };
            serving.fetch_sub(1, Ordering::SeqCst);
            let mut response = Response::new(());
            *response.status_mut() = status;
            Ok::<_, BoxError>(response)
        }
    }));
    let began = Instant::now();
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                while began.elapsed() < Duration::from_secs(10) {
                    match svc.ready().await.unwrap().call(()).await {
                        Ok(response) if response.status().is_success() => {}
                        // Refused by the server or by the limit: wait a
                        // little (the server's refusal takes no time, and
                        // would otherwise loop without letting time pass).
                        _ => sleep(ms(5)).await,
                    }
                }
            })
        })
        .collect();
    let mut limits = Vec::new();
    for _ in 0..100 {
        sleep(ms(100)).await;
        limits.push(handle.limit());
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(handle.dropped() > 0, "the 503s were drops");
    // +1 a window up to 31, then ×0.9 on the window with a 503: a sawtooth
    // between 27 and 31.
    for &limit in &limits[30..] {
        assert!((27..=31).contains(&limit), "{limits:?}");
    }
}

// ===== what counts as a drop =====

#[tokio::test(start_paused = true)]
async fn overload_is_a_drop_a_bad_request_is_not() {
    let layer = LimitLayer::builder("drops")
        .classify(HttpClassifier)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|status: u16| async move {
        match status {
            0 => Err::<Response<()>, BoxError>(rampart::bulkhead::BulkheadFull::new().into()),
            1 => Err("connection reset by a bad request".into()),
            s => {
                let mut response = Response::new(());
                *response.status_mut() = StatusCode::from_u16(s).unwrap();
                Ok(response)
            }
        }
    }));
    for (status, drops) in [(200, 0), (500, 0), (1, 0), (503, 1), (429, 2), (0, 3)] {
        let _ = svc.ready().await.unwrap().call(status).await;
        assert_eq!(handle.dropped(), drops, "after {status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_cut_off_by_a_timeout_above_is_a_drop() {
    let limit = LimitLayer::builder("cut-off").build().unwrap();
    let handle = limit.handle();
    let timeout = rampart::timeout::TimeoutLayer::builder("cut-off")
        .timeout(ms(50))
        .build()
        .unwrap();
    let mut svc = timeout.layer(limit.layer(service_fn(|_: ()| async {
        sleep(ms(100)).await;
        Ok::<_, BoxError>(())
    })));
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout);
    assert_eq!(handle.dropped(), 1);
    assert_eq!(handle.in_flight(), 0);
    // A caller walking away is not a drop.
    let call = svc.ready().await.unwrap().call(());
    drop(call);
    assert_eq!((handle.dropped(), handle.in_flight()), (1, 0));
}

// ===== the bounded wait =====

#[tokio::test(start_paused = true)]
async fn max_wait_waits_for_a_freed_permit_then_gives_up() {
    let layer = LimitLayer::builder("wait")
        .algorithm(Fixed::new(1))
        .max_wait(ms(100))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|hold: u64| async move {
        sleep(ms(hold)).await;
        Ok::<_, BoxError>(hold)
    }));
    let first = tokio::spawn(svc.ready_oneshot_clone().call(60));
    tokio::task::yield_now().await;
    assert_eq!(handle.in_flight(), 1);
    // Waits 60 ms for the first call's permit.
    let started = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(200).await.unwrap(), 200);
    assert_eq!(started.elapsed(), ms(260));
    first.await.unwrap().unwrap();

    let holder = tokio::spawn(svc.ready_oneshot_clone().call(1000));
    tokio::task::yield_now().await;
    let started = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(err.is::<LimitExceeded>());
    assert_eq!(started.elapsed(), ms(100), "gave up after max_wait");
    assert_eq!((handle.waiting(), handle.rejected()), (0, 1));
    holder.await.unwrap().unwrap();
}

// ===== configuration, registry, errors =====

#[test]
fn bad_options_are_named() {
    let err = LimitLayer::builder("")
        .algorithm(Vegas::new().smoothing(2.0))
        .min_window(ms(10))
        .min_samples(5)
        .max_waiting(3)
        .partition("a", 0.7)
        .partition("a", 0.7)
        .partition("unknown", 0.1)
        .build()
        .unwrap_err();
    for field in [
        "name",
        "smoothing",
        "min_window",
        "min_samples",
        "max_waiting",
        "partition",
    ] {
        assert!(err.names(field), "{field}: {err}");
    }
    let message = err.to_string();
    assert!(message.contains("needs partition_by"), "{message}");
    assert!(message.contains("declared twice"), "{message}");
    assert!(message.contains("add up to at most 1"), "{message}");

    let err = LimitLayer::builder("wait")
        .max_wait(ms(10))
        .partition("a", 0.5)
        .partition_by(tenant_of)
        .build()
        .unwrap_err();
    assert!(err.names("max_wait"));
}

#[test]
fn limits_are_listed_in_their_registry() {
    let registry = Registry::new();
    let layer = LimitLayer::builder("listed")
        .algorithm(Gradient2::new())
        .registry(&registry)
        .build()
        .unwrap();
    let listed = registry.limits();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name(), listed[0].limit(), listed[0].in_flight()),
        ("listed", 20, 0)
    );
    drop((layer, listed));
    assert!(registry.limits().is_empty());
}

#[test]
fn rejections_are_rejections_for_every_layer() {
    for e in [
        BoxError::from(LimitExceeded::new()),
        BoxError::from(PartitionLimitExceeded::new()),
    ] {
        assert_eq!(ErrorKind::of(&e), ErrorKind::LimitExceeded);
        assert!(ErrorKind::LimitExceeded.is_rejection());
    }
}

// ===== on a server =====

#[cfg(feature = "axum")]
#[tokio::test(start_paused = true)]
async fn an_axum_router_answers_503_past_the_limit_and_429_past_a_share() {
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::{routing::get, Router};
    use tower::ServiceBuilder;

    let limit = LimitLayer::builder("api")
        .algorithm(Fixed::new(2))
        .partition("gold", 0.5)
        .partition_by(|request: &Request<Body>| {
            request
                .headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
        })
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                sleep(ms(100)).await;
                "done"
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(rampart::axum::error_response))
                .layer(limit),
        );
    let get = |tenant: &str| {
        Request::get("/")
            .header("x-tenant", tenant)
            .body(Body::empty())
            .unwrap()
    };
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.clone().oneshot(get("gold"))))
        .collect();
    tokio::task::yield_now().await;
    let response = app.clone().oneshot(get("gold")).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.headers()["x-rampart-error"],
        "partition_limit_exceeded"
    );
    let response = app.clone().oneshot(get("nobody")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-rampart-error"], "limit_exceeded");
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status(), StatusCode::OK);
    }
}
