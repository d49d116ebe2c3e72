//! The fallback layer: causes, failures of the fallback, and its cap.

use rampart::bulkhead::BulkheadLayer;
use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::fallback::{FallbackFailed, FallbackLayer, FallbackRejected};
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::sleep;
use tower::{Service, ServiceBuilder, ServiceExt};

#[derive(Debug, Clone, Copy)]
enum Req {
    Ok,
    Fail,
    Hang,
}

fn dependency() -> tower::util::BoxCloneService<Req, String, BoxError> {
    tower::util::BoxCloneService::new(tower::service_fn(|req: Req| async move {
        match req {
            Req::Ok => Ok("personal picks".to_string()),
            Req::Fail => Err::<String, BoxError>("connection refused".into()),
            Req::Hang => std::future::pending().await,
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn serves_the_fallback_only_when_the_call_fails() {
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let layer = FallbackLayer::builder("recs")
        .fallback_sync(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok("popular titles".to_string())
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new().layer(layer).service(dependency());
    assert_eq!(
        svc.ready().await.unwrap().call(Req::Ok).await.unwrap(),
        "personal picks"
    );
    assert_eq!(called.load(Ordering::SeqCst), 0);
    assert_eq!(
        svc.ready().await.unwrap().call(Req::Fail).await.unwrap(),
        "popular titles"
    );
    assert_eq!(
        (handle.successes(), handle.failures(), handle.rejections()),
        (1, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_fallback_is_told_why_it_runs() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let fallback = FallbackLayer::builder("why")
        .fallback(move |cause| {
            s.lock()
                .unwrap()
                .push((cause.kind(), cause.error().to_string()));
            async { Ok("fallback".to_string()) }
        })
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::builder("why").build().unwrap();
    let breaker_handle = breaker.handle();
    let mut svc = ServiceBuilder::new()
        .layer(fallback)
        .layer(breaker)
        .layer(
            BulkheadLayer::builder("why")
                .max_concurrent(1)
                .build()
                .unwrap(),
        )
        .layer(
            TimeoutLayer::builder("why")
                .timeout(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .service(dependency());

    svc.ready().await.unwrap().call(Req::Fail).await.unwrap();
    svc.ready().await.unwrap().call(Req::Hang).await.unwrap();
    // Hold the bulkhead's only slot with a hanging call, then call again.
    let mut other = svc.clone();
    let hung = tokio::spawn(async move { other.ready().await.unwrap().call(Req::Hang).await });
    tokio::task::yield_now().await;
    let mut third = svc.clone();
    let rejected = third.ready().await.unwrap().call(Req::Ok).await.unwrap();
    assert_eq!(rejected, "fallback");
    hung.await.unwrap().unwrap();
    breaker_handle.force_open();
    svc.ready().await.unwrap().call(Req::Ok).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let kinds: Vec<_> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Inner,
            ErrorKind::Timeout,
            ErrorKind::BulkheadFull,
            ErrorKind::Timeout,
            ErrorKind::CircuitOpen
        ]
    );
    assert_eq!(seen[0].1, "connection refused");
}

#[tokio::test(start_paused = true)]
async fn a_failing_fallback_reports_both_errors() {
    let layer = FallbackLayer::builder("both")
        .fallback_sync(|_| Err::<String, BoxError>("cache empty".into()))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new().layer(layer).service(dependency());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Req::Fail)
        .await
        .unwrap_err();
    let failed = err
        .downcast_ref::<FallbackFailed>()
        .expect("FallbackFailed");
    assert_eq!(failed.cause().to_string(), "connection refused");
    assert_eq!(failed.fallback_error().to_string(), "cache empty");
    assert_eq!(
        err.to_string(),
        "fallback failed: cache empty (it ran because: connection refused)"
    );
    assert_eq!(ErrorKind::of(&err), ErrorKind::Inner);
    assert_eq!(handle.failures(), 1);
}

#[tokio::test(start_paused = true)]
async fn too_many_fallbacks_at_once_are_rejected() {
    let layer = FallbackLayer::builder("cap")
        .max_concurrent(1)
        .fallback(|_| async {
            sleep(Duration::from_secs(1)).await;
            Ok("slow fallback".to_string())
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(dependency());
    let mut a = svc.clone();
    let first = tokio::spawn(async move { a.ready().await.unwrap().call(Req::Fail).await });
    tokio::task::yield_now().await;
    assert_eq!(handle.running(), 1);
    let mut b = svc.clone();
    let err = b.ready().await.unwrap().call(Req::Fail).await.unwrap_err();
    let rejected = err
        .downcast_ref::<FallbackRejected>()
        .expect("FallbackRejected");
    assert_eq!(rejected.cause().to_string(), "connection refused");
    assert_eq!(first.await.unwrap().unwrap(), "slow fallback");
    assert_eq!(
        (handle.successes(), handle.rejections(), handle.running()),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_during_its_fallback_frees_the_place() {
    let layer = FallbackLayer::builder("drop")
        .max_concurrent(1)
        .fallback(|_| async { std::future::pending::<Result<String, BoxError>>().await })
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new().layer(layer).service(dependency());
    let call = svc.ready().await.unwrap().call(Req::Fail);
    let timed = tokio::time::timeout(Duration::from_millis(10), call).await;
    assert!(timed.is_err());
    assert_eq!(handle.running(), 0);
}

#[test]
fn bad_options_are_config_errors_naming_their_field() {
    let err = FallbackLayer::builder("x")
        .max_concurrent(0)
        .fallback_sync(|_| Ok::<_, BoxError>(()))
        .build()
        .unwrap_err();
    assert!(err.names("max_concurrent"), "{err}");
    let err = FallbackLayer::builder("")
        .fallback_sync(|_| Ok::<_, BoxError>(()))
        .build()
        .unwrap_err();
    assert!(err.names("name"), "{err}");
}
