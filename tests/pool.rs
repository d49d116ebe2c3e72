//! Pool isolation: blocking dependencies on their own threads.
//!
//! The jobs block real pool threads on std channels, so these tests use the
//! real clock; nothing waits on time, only on channels.

use rampart::bulkhead::pool::PoolLayer;
use rampart::{BoxError, ErrorKind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc as tmpsc;
use tower::{Service, ServiceBuilder, ServiceExt};

/// A job that tells the test it started, then blocks its thread until the
/// test releases it.
#[derive(Clone)]
struct Blocking {
    started: tmpsc::UnboundedSender<u32>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

fn blocking_service(
    b: Blocking,
) -> impl Service<
    u32,
    Response = u32,
    Error = BoxError,
    Future = impl std::future::Future<Output = Result<u32, BoxError>> + Send + 'static,
> + Clone {
    tower::service_fn(move |n: u32| {
        let b = b.clone();
        async move {
            b.started.send(n).unwrap();
            // Blocks the thread, as a synchronous client would.
            b.release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
                .unwrap();
            Ok::<_, BoxError>(n)
        }
    })
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_calls_cannot_stall_the_caller_and_overflow_is_rejected() {
    let pool = PoolLayer::builder("legacy")
        .size(2)
        .queue(1)
        .build()
        .unwrap();
    let handle = pool.handle();
    let (started_tx, mut started) = tmpsc::unbounded_channel();
    let (release, release_rx) = mpsc::channel();
    let svc = ServiceBuilder::new()
        .layer(pool)
        .service(blocking_service(Blocking {
            started: started_tx,
            release: Arc::new(Mutex::new(release_rx)),
        }));

    // Two calls block both pool threads; the caller's single-threaded
    // runtime keeps running (this test would hang otherwise).
    let mut calls = Vec::new();
    for n in 0..3 {
        let mut svc = svc.clone();
        calls.push(tokio::spawn(async move {
            svc.ready().await.unwrap().call(n).await
        }));
    }
    let mut first_two = [started.recv().await.unwrap(), started.recv().await.unwrap()];
    first_two.sort();
    assert_eq!(handle.active(), 2);
    // The third waits in the queue; a fourth finds no place.
    let mut fourth = svc.clone();
    let err = fourth.ready().await.unwrap().call(9).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    assert_eq!((handle.queued(), handle.rejected()), (1, 1));

    for _ in 0..3 {
        release.send(()).unwrap();
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap().unwrap());
    }
    assert_eq!(results, [0, 1, 2]);
    assert_eq!(
        (handle.active(), handle.queued(), handle.completed()),
        (0, 0, 3)
    );
    assert_eq!(handle.rolling_max_active(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_queued_call_frees_its_place() {
    let pool = PoolLayer::builder("drop").size(1).queue(1).build().unwrap();
    let handle = pool.handle();
    let (started_tx, mut started) = tmpsc::unbounded_channel();
    let (release, release_rx) = mpsc::channel();
    let mut svc = ServiceBuilder::new()
        .layer(pool)
        .service(blocking_service(Blocking {
            started: started_tx,
            release: Arc::new(Mutex::new(release_rx)),
        }));
    let running = svc.ready().await.unwrap().call(1);
    let running = tokio::spawn(running);
    assert_eq!(started.recv().await, Some(1));
    let queued = svc.ready().await.unwrap().call(2);
    assert_eq!(handle.queued(), 1);
    // Dropped while the only thread is blocked (no pool thread could drop
    // the aborted job): its place is free at once, for another call.
    drop(queued);
    assert_eq!(handle.queued(), 0);
    let next = tokio::spawn(svc.ready().await.unwrap().call(3));
    assert_eq!(handle.queued(), 1);
    release.send(()).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), 1);
    assert_eq!(started.recv().await, Some(3), "the dropped call never ran");
    release.send(()).unwrap();
    assert_eq!(next.await.unwrap().unwrap(), 3);
    assert_eq!(handle.completed(), 2);
    assert_eq!((handle.active(), handle.queued()), (0, 0));
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_job_is_an_error_and_the_pool_goes_on() {
    let pool = PoolLayer::builder("panics").size(1).build().unwrap();
    let mut svc =
        ServiceBuilder::new()
            .layer(pool)
            .service(tower::service_fn(|n: u32| async move {
                assert!(n != 0, "dependency client bug");
                Ok::<_, BoxError>(n)
            }));
    let err = svc.ready().await.unwrap().call(0).await.unwrap_err();
    assert!(err.to_string().contains("panic"), "{err}");
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
}

#[test]
fn bad_options_are_config_errors_naming_their_field() {
    for (field, builder) in [
        ("size", PoolLayer::builder("p").size(0)),
        ("size", PoolLayer::builder("p").size(5000)),
        ("queue", PoolLayer::builder("p").queue(usize::MAX)),
        ("name", PoolLayer::builder("")),
    ] {
        let err = builder.build().unwrap_err();
        assert!(err.names(field), "{err}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_outlives_the_service_that_made_it() {
    // `oneshot` drops the service right after `call`: the pool must live on
    // until the call is answered.
    let pool = PoolLayer::builder("oneshot").size(1).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(pool)
        .service(tower::service_fn(|n: u32| async move {
            tokio::task::yield_now().await;
            Ok::<_, BoxError>(n + 1)
        }));
    assert_eq!(svc.oneshot(41).await.unwrap(), 42);
}
