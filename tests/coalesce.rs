//! The coalescer on a paused clock: identical calls in flight become one,
//! answers and errors are shared, the caller that started a call may
//! leave without cancelling it, and the waiters per key are bounded.

use rampart::coalesce::{CoalesceHandle, CoalesceLayer, WaitersFull};
use rampart::error::SharedError;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A dependency that answers `profile of NAME` after `wait`, failing for
/// names starting with "bad", counting calls made and calls dropped
/// before they answered.
#[derive(Clone, Default)]
struct Dependency {
    calls: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

struct Unfinished(Arc<AtomicUsize>, bool);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Dependency {
    fn service(
        &self,
        wait: Duration,
    ) -> impl Service<String, Response = String, Error = BoxError, Future: Send> + Clone + Send + 'static
    {
        let this = self.clone();
        service_fn(move |name: String| {
            this.calls.fetch_add(1, Ordering::SeqCst);
            let guard = Unfinished(this.dropped.clone(), false);
            async move {
                let mut guard = guard;
                tokio::time::sleep(wait).await;
                guard.1 = true;
                if name.starts_with("bad") {
                    if name == "bad panic" {
                        panic!("the dependency fell over");
                    }
                    return Err::<String, BoxError>(format!("no profile for {name}").into());
                }
                Ok(format!("profile of {name}"))
            }
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn layer(max_waiters: usize) -> CoalesceLayer<String, impl Fn(&String) -> String + Clone, String> {
    CoalesceLayer::builder("ProfileGet", |name: &String| name.clone())
        .max_waiters(max_waiters)
        .build()
        .unwrap()
}

fn spawn_calls<S>(svc: &S, names: &[&str]) -> Vec<tokio::task::JoinHandle<Result<String, BoxError>>>
where
    S: Service<String, Response = String, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    names
        .iter()
        .map(|name| tokio::spawn(svc.clone().oneshot(name.to_string())))
        .collect()
}

async fn join(
    calls: Vec<tokio::task::JoinHandle<Result<String, BoxError>>>,
) -> Vec<Result<String, BoxError>> {
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

fn counts(handle: &CoalesceHandle) -> (u64, u64, u64) {
    (handle.calls(), handle.joined(), handle.rejected())
}

#[tokio::test(start_paused = true)]
async fn concurrent_identical_keys_make_one_call_and_each_caller_gets_the_answer() {
    let dependency = Dependency::default();
    let layer = layer(1000);
    let handle = layer.handle();
    let svc = layer.layer(dependency.service(MS(50)));

    let start = Instant::now();
    let got = join(spawn_calls(&svc, &["ada", "ada", "bob", "ada", "bob"])).await;
    let got: Vec<String> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        got,
        [
            "profile of ada",
            "profile of ada",
            "profile of bob",
            "profile of ada",
            "profile of bob"
        ]
    );
    assert_eq!(dependency.calls(), 2, "one call per key");
    assert_eq!(start.elapsed(), MS(50));
    assert_eq!(counts(&handle), (2, 3, 0));
    assert_eq!(svc.in_flight(), 0, "answered calls are forgotten");
}

#[tokio::test(start_paused = true)]
async fn it_coalesces_but_does_not_cache_a_later_call_calls_again() {
    let dependency = Dependency::default();
    let svc = layer(1000).layer(dependency.service(MS(50)));
    let first = join(spawn_calls(&svc, &["ada", "ada"])).await;
    assert!(first.iter().all(Result::is_ok));
    let later = join(spawn_calls(&svc, &["ada"])).await;
    assert_eq!(later[0].as_ref().unwrap(), "profile of ada");
    assert_eq!(dependency.calls(), 2);

    // A caller arriving while a call is in flight joins it midway, and is
    // answered when it lands.
    let early = spawn_calls(&svc, &["ada"]);
    tokio::time::sleep(MS(30)).await;
    let start = Instant::now();
    let late = join(spawn_calls(&svc, &["ada"])).await;
    assert_eq!(start.elapsed(), MS(20));
    assert!(late[0].is_ok() && join(early).await[0].is_ok());
    assert_eq!(dependency.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_error_is_shared_with_every_caller_and_classified_as_the_original() {
    let dependency = Dependency::default();
    let svc = layer(1000).layer(dependency.service(MS(10)));
    let got = join(spawn_calls(&svc, &["bad bob", "bad bob", "bad bob"])).await;
    assert_eq!(dependency.calls(), 1);
    for result in got {
        let error = result.unwrap_err();
        assert_eq!(error.to_string(), "no profile for bad bob");
        assert_eq!(ErrorKind::of(&error), ErrorKind::Inner);
        assert!(error.is::<SharedError>());
    }

    // A timeout beneath is a timeout for each caller.
    let timeout = rampart::timeout::TimeoutLayer::builder("profile")
        .timeout(MS(5))
        .build()
        .unwrap();
    let svc = layer(1000).layer(timeout.layer(dependency.service(MS(10))));
    for result in join(spawn_calls(&svc, &["ada", "ada"])).await {
        assert_eq!(ErrorKind::of(&result.unwrap_err()), ErrorKind::Timeout);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_call_is_shared_as_an_error_not_a_panic_in_every_caller() {
    let dependency = Dependency::default();
    let svc = layer(1000).layer(dependency.service(MS(10)));
    for result in join(spawn_calls(&svc, &["bad panic", "bad panic"])).await {
        assert_eq!(ErrorKind::of(&result.unwrap_err()), ErrorKind::Panicked);
    }
    assert_eq!(dependency.calls(), 1);
    // The key is free again.
    assert!(join(spawn_calls(&svc, &["ada"])).await[0].is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_caller_that_started_a_call_may_leave_without_cancelling_it() {
    let dependency = Dependency::default();
    let svc = layer(1000).layer(dependency.service(MS(50)));

    // The first caller gives up after 10 ms; the second, which joined,
    // still gets the answer of the same call.
    let quitter = tokio::spawn(tokio::time::timeout(
        MS(10),
        svc.clone().oneshot("ada".into()),
    ));
    tokio::time::sleep(MS(1)).await;
    let start = Instant::now();
    let stayer = join(spawn_calls(&svc, &["ada"])).await;
    assert!(
        quitter.await.unwrap().is_err(),
        "the first caller timed out"
    );
    assert_eq!(stayer[0].as_ref().unwrap(), "profile of ada");
    assert_eq!(
        start.elapsed(),
        MS(49),
        "the first call's answer, not a new call"
    );
    assert_eq!((dependency.calls(), dependency.dropped()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn when_every_caller_leaves_the_call_is_dropped_and_the_key_forgotten() {
    let dependency = Dependency::default();
    let svc = layer(1000).layer(dependency.service(MS(50)));
    let a = tokio::time::timeout(MS(10), svc.clone().oneshot("ada".into()));
    let b = tokio::time::timeout(MS(20), svc.clone().oneshot("ada".into()));
    let (a, b) = tokio::join!(a, b);
    assert!(a.is_err() && b.is_err());
    assert_eq!(
        (dependency.calls(), dependency.dropped()),
        (1, 1),
        "nobody wanted it: dropped"
    );
    assert_eq!(svc.in_flight(), 0);
    // The next caller starts afresh.
    assert!(join(spawn_calls(&svc, &["ada"])).await[0].is_ok());
    assert_eq!(dependency.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_per_key_are_bounded_and_the_next_is_rejected_at_once() {
    let dependency = Dependency::default();
    let layer = layer(2);
    let handle = layer.handle();
    let svc = layer.layer(dependency.service(MS(50)));
    let got = join(spawn_calls(&svc, &["ada", "ada", "ada", "ada", "bob"])).await;
    assert!(got[0].is_ok() && got[1].is_ok() && got[2].is_ok() && got[4].is_ok());
    let rejected = got[3].as_ref().unwrap_err();
    assert!(rejected.is::<WaitersFull>());
    assert_eq!(ErrorKind::of(rejected), ErrorKind::BulkheadFull);
    assert_eq!(counts(&handle), (2, 2, 1));
    assert_eq!(dependency.calls(), 2);
}

#[test]
fn every_bad_option_is_a_config_error_naming_its_field() {
    let err = CoalesceLayer::builder("", |n: &u32| *n)
        .max_waiters(0)
        .build()
        .unwrap_err();
    assert!(err.names("name") && err.names("max_waiters"), "{err}");
}

/// A dependency whose first `failures` calls fail after `wait`; later
/// calls answer `answer N` (N counting calls from 1).
fn failing_first(
    failures: usize,
    wait: Duration,
    calls: Arc<AtomicUsize>,
) -> impl Service<String, Response = String, Error = BoxError, Future: Send> + Clone + Send + 'static
{
    service_fn(move |_: String| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(wait).await;
            if n <= failures {
                return Err::<String, BoxError>(format!("call {n} failed").into());
            }
            Ok(format!("answer {n}"))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn successes_only_joined_callers_of_a_failed_call_call_again_as_one() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CoalesceLayer::builder("ProfileGet", |name: &String| name.clone())
        .successes_only()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(failing_first(1, MS(50), calls.clone()));

    let start = Instant::now();
    let got = join(spawn_calls(&svc, &["ada"; 5])).await;
    // The caller who started the failed call gets its error...
    let first = got[0].as_ref().unwrap_err();
    assert_eq!(first.to_string(), "call 1 failed");
    // ...the four who joined it call again, coalesced among themselves:
    // one second call, whose answer they all get.
    for answer in &got[1..] {
        assert_eq!(answer.as_ref().unwrap(), "answer 2");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        start.elapsed(),
        MS(100),
        "the second call follows the first"
    );
    assert_eq!(handle.retried(), 4);
    // 4 joined the first call; of the 4 calling again, 1 called, 3 joined.
    assert_eq!(counts(&handle), (2, 7, 0));
    assert_eq!(svc.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn successes_only_the_second_failure_is_final_for_everyone() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CoalesceLayer::builder("ProfileGet", |name: &String| name.clone())
        .successes_only()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(failing_first(usize::MAX, MS(50), calls.clone()));

    let got = join(spawn_calls(&svc, &["ada"; 4])).await;
    assert_eq!(got[0].as_ref().unwrap_err().to_string(), "call 1 failed");
    for err in &got[1..] {
        // The second call's error, shared among those who made it.
        let err = err.as_ref().unwrap_err();
        assert_eq!(err.to_string(), "call 2 failed");
        assert!(err.is::<SharedError>(), "{err:?}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "at most one more call per key than with shared errors, no storm"
    );
    assert_eq!(handle.retried(), 3);
}

#[tokio::test(start_paused = true)]
async fn shared_errors_by_default_no_caller_calls_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = layer(1000);
    let handle = layer.handle();
    let svc = layer.layer(failing_first(1, MS(50), calls.clone()));

    let got = join(spawn_calls(&svc, &["ada"; 3])).await;
    assert!(got.iter().all(Result::is_err));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(handle.retried(), 0);
}
