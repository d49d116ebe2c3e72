//! The timeout layer, on a paused clock.

use rampart::circuit_breaker::{CircuitBreakerLayer, State};
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Sets its flag when dropped: shows the inner future was cancelled.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn sleeper(
    dropped: Arc<AtomicBool>,
) -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    tower::service_fn(move |ms: u64| {
        let flag = DropFlag(dropped.clone());
        async move {
            let _flag = flag;
            sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        }
    })
}

fn layer(ms: u64) -> TimeoutLayer {
    TimeoutLayer::builder("t")
        .timeout(Duration::from_millis(ms))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_answer_at_the_deadline_wins_and_one_after_it_times_out() {
    let mut svc = ServiceBuilder::new()
        .layer(layer(250))
        .service(sleeper(Arc::default()));
    assert_eq!(svc.ready().await.unwrap().call(250).await.unwrap(), 250);

    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(251).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout);
    assert_eq!(err.to_string(), "request timed out");
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn the_inner_call_is_cancelled_at_the_deadline() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut svc = ServiceBuilder::new()
        .layer(layer(100))
        .service(sleeper(dropped.clone()));
    let mut call = std::pin::pin!(svc.ready().await.unwrap().call(10_000));
    let err = call.as_mut().await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the inner future outlived the deadline"
    );
    // Polled again, it keeps saying so.
    assert_eq!(ErrorKind::of(&call.await.unwrap_err()), ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_drops_the_inner_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut svc = ServiceBuilder::new()
        .layer(layer(100))
        .service(sleeper(dropped.clone()));
    let call = svc.ready().await.unwrap().call(50);
    drop(call);
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn timeouts_beneath_a_breaker_count_as_failures() {
    let breaker = CircuitBreakerLayer::builder("b")
        .min_calls(5)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let mut svc = ServiceBuilder::new()
        .layer(breaker)
        .layer(layer(100))
        .service(sleeper(Arc::default()));
    for _ in 0..5 {
        svc.ready().await.unwrap().call(1_000).await.unwrap_err();
    }
    assert_eq!(handle.state(), State::Open);
    let counts = handle.rolling_counts();
    assert_eq!((counts.timeouts, counts.failures), (5, 0));
}

#[test]
fn bad_options_are_config_errors_naming_their_field() {
    let err = TimeoutLayer::builder("t")
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.names("timeout"), "{err}");
    assert!(err.to_string().contains("got 0ns"), "{err}");
    let err = TimeoutLayer::builder("").build().unwrap_err();
    assert!(err.names("name"), "{err}");
}
