//! The chaos layer: off by default, the faults it injects, their rates,
//! determinism under a seed, run-time switching, and that an injected
//! abort never keeps what the inner service reserved. On a paused clock.

use rampart::chaos::{Abort, ChaosLayer, Delay, Faults};
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

type Svc = tower::util::BoxCloneService<u32, &'static str, BoxError>;

/// A dependency that counts the calls that reach it.
fn dependency(reached: Arc<AtomicUsize>) -> Svc {
    Svc::new(service_fn(move |_: u32| {
        reached.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("answer") }
    }))
}

async fn call<S>(svc: &mut S, request: u32) -> Result<&'static str, BoxError>
where
    S: Service<u32, Response = &'static str, Error = BoxError>,
{
    svc.ready().await?.call(request).await
}

#[tokio::test(start_paused = true)]
async fn it_does_nothing_until_enabled() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = ChaosLayer::builder("off")
        .abort(Abort::error(|| "injected"), 100.0)
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency(reached.clone()));
    for n in 0..100 {
        assert_eq!(call(&mut svc, n).await.unwrap(), "answer");
    }
    assert_eq!(reached.load(Ordering::SeqCst), 100);
    assert_eq!(layer.handle().injected_aborts(), 0);

    layer.handle().enable();
    assert_eq!(call(&mut svc, 0).await.unwrap_err().to_string(), "injected");
    layer.handle().disable();
    assert_eq!(call(&mut svc, 0).await.unwrap(), "answer");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        101,
        "the abort never called"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delay_comes_before_the_call_and_with_an_abort_instead_of_it() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = ChaosLayer::builder("slow")
        .delay(Delay::fixed(Duration::from_millis(300)), 100.0)
        .enabled(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency(reached.clone()));
    let started = Instant::now();
    assert_eq!(call(&mut svc, 1).await.unwrap(), "answer");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    layer
        .handle()
        .set_faults(
            Faults::new()
                .delay(Delay::fixed(Duration::from_millis(200)), 100.0)
                .abort(Abort::response(|| "503 injected"), 100.0),
        )
        .unwrap();
    let started = Instant::now();
    assert_eq!(call(&mut svc, 2).await.unwrap(), "503 injected");
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "answered instead of calling"
    );
    assert_eq!(layer.handle().injected_delays(), 2);
    assert_eq!(layer.handle().injected_aborts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hang_is_ended_by_the_timeout_above() {
    let layer = ChaosLayer::builder("hang")
        .abort(Abort::hang(), 100.0)
        .enabled(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder("hang")
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .layer(layer)
        .service(dependency(Arc::default()));
    let started = Instant::now();
    let error = call(&mut svc, 0).await.unwrap_err();
    assert_eq!(ErrorKind::of(&error), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn only_selected_requests_meet_faults_at_about_their_percentage() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = ChaosLayer::builder("some")
        .abort(Abort::error(|| "injected"), 30.0)
        // Only even requests (a tenant, a header, a path in real use).
        .when(|request: &u32| request % 2 == 0)
        .seed(1)
        .enabled(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency(reached.clone()));
    let (mut even_failed, mut odd_failed) = (0, 0);
    for n in 0..20_000u32 {
        if call(&mut svc, n).await.is_err() {
            if n % 2 == 0 {
                even_failed += 1;
            } else {
                odd_failed += 1;
            }
        }
    }
    assert_eq!(odd_failed, 0, "unselected requests pass untouched");
    // 30 % of 10 000, within 4 standard deviations (46 each); seeded, so
    // the count is the same on every run.
    assert!((2_817..3_183).contains(&even_failed), "{even_failed}");
    assert_eq!(layer.handle().injected_aborts(), even_failed);
}

/// Which of 500 requests a layer with `seed` aborts and how long it
/// delays each.
async fn pattern(seed: u64) -> Vec<(bool, Duration)> {
    let layer = ChaosLayer::builder("seeded")
        .delay(
            Delay::log_normal(Duration::from_millis(20), Duration::from_millis(500)),
            50.0,
        )
        .abort(Abort::error(|| "injected"), 20.0)
        .seed(seed)
        .enabled(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(dependency(Arc::default()));
    let mut out = Vec::new();
    for n in 0..500 {
        let started = Instant::now();
        let failed = call(&mut svc, n).await.is_err();
        out.push((failed, started.elapsed()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_seed_makes_the_same_faults_run_after_run() {
    let first = pattern(42).await;
    assert_eq!(first, pattern(42).await);
    assert_ne!(first, pattern(43).await);
    let delayed = first.iter().filter(|(_, d)| !d.is_zero()).count();
    assert!(
        (200..300).contains(&delayed),
        "about half delayed: {delayed}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_gives_back_what_the_inner_service_reserved() {
    // A concurrency limit of 1 beneath the chaos layer takes its permit in
    // poll_ready. Were the aborted call to keep the readied service, the
    // permit would stay with `aborting` and `other` would wait forever.
    let layer = ChaosLayer::builder("limited")
        .abort(Abort::error(|| "injected"), 100.0)
        .enabled(true)
        .build()
        .unwrap();
    let limited = ServiceBuilder::new()
        .concurrency_limit(1)
        .service(dependency(Arc::default()));
    let mut aborting = layer.layer(limited.clone());
    let mut other = layer.layer(limited);
    assert!(call(&mut aborting, 1).await.is_err());
    layer.handle().disable();
    let answered = tokio::time::timeout(Duration::from_secs(1), call(&mut other, 2)).await;
    assert_eq!(
        answered.expect("the permit was given back").unwrap(),
        "answer"
    );
    drop(aborting);
}

#[test]
fn bad_faults_are_config_errors_at_build_and_on_a_live_change() {
    let error = ChaosLayer::<u32, ()>::builder("")
        .delay(
            Delay::uniform(Duration::from_secs(2), Duration::from_secs(1)),
            150.0,
        )
        .abort(Abort::hang(), -1.0)
        .build()
        .unwrap_err()
        .to_string();
    for field in ["name", "delay", "delay_percent", "abort_percent"] {
        assert!(error.contains(field), "{field} in {error}");
    }

    let layer = ChaosLayer::<u32, ()>::builder("live")
        .delay(Delay::fixed(Duration::from_millis(5)), 10.0)
        .build()
        .unwrap();
    let bad = Faults::new().delay(
        Delay::log_normal(Duration::ZERO, Duration::from_millis(1)),
        f64::NAN,
    );
    let error = layer.handle().set_faults(bad).unwrap_err().to_string();
    assert!(error.contains("delay_percent"), "{error}");
    assert!(error.contains("log-normal"), "{error}");
    let kept = layer.handle().faults();
    assert_eq!(
        format!("{kept:?}"),
        format!(
            "{:?}",
            Faults::<u32, ()>::new().delay(Delay::fixed(Duration::from_millis(5)), 10.0)
        )
    );
}

#[tokio::test(start_paused = true)]
async fn injected_faults_are_counted_with_an_injected_label() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are taken when the layer is built: build it under the recorder.
    let layer = metrics::with_local_recorder(&recorder, || {
        ChaosLayer::builder("counted")
            .abort(Abort::error(|| "injected"), 100.0)
            .enabled(true)
            .build()
            .unwrap()
    });
    let mut svc = layer.layer(dependency(Arc::default()));
    for n in 0..3 {
        assert!(call(&mut svc, n).await.is_err());
    }
    let counted: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "rampart_events_total")
        .map(|(key, _, _, value)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (labels, value)
        })
        .collect();
    let aborts = counted
        .iter()
        .find(|(labels, _)| labels.contains(&("event".into(), "abort_injected".into())))
        .expect("an abort_injected counter");
    assert!(aborts.0.contains(&("injected".into(), "true".into())));
    assert!(aborts.0.contains(&("layer".into(), "chaos".into())));
    assert_eq!(aborts.1, DebugValue::Counter(3));
}

type HttpResponse = http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>>;

/// A dependency answering with a 5000-byte body, or failing when asked to.
fn http_dependency(
    reached: Arc<AtomicUsize>,
) -> tower::util::BoxCloneService<bool, HttpResponse, BoxError> {
    tower::util::BoxCloneService::new(service_fn(move |fail: bool| {
        reached.fetch_add(1, Ordering::SeqCst);
        async move {
            use http_body_util::BodyExt;
            if fail {
                return Err::<HttpResponse, BoxError>("refused".into());
            }
            let body = http_body_util::Full::new(bytes::Bytes::from(vec![b'x'; 5000]));
            Ok(http::Response::new(
                body.map_err(|never| match never {}).boxed(),
            ))
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn a_cut_calls_the_dependency_after_the_delay_and_cuts_only_responses() {
    use http_body_util::BodyExt;
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = ChaosLayer::builder("cut")
        .delay(Delay::fixed(Duration::from_millis(100)), 100.0)
        .abort(Abort::cut_mid_response(1200), 100.0)
        .enabled(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(http_dependency(reached.clone()));

    let started = Instant::now();
    let response = svc.ready().await.unwrap().call(false).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "a cut calls the dependency"
    );
    let err = response.into_body().collect().await.unwrap_err();
    let cut = err.downcast_ref::<rampart::chaos::ConnectionCut>().unwrap();
    assert_eq!(cut.after_bytes(), 1200);

    // The dependency's own error passes through as it is.
    let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(err.to_string(), "refused");
    assert_eq!(reached.load(Ordering::SeqCst), 2);
    assert_eq!(layer.handle().injected_aborts(), 2);
}
