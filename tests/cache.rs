//! The response cache on a paused clock: hits, expiry, least-recently-used
//! eviction, errors (not kept unless asked), invalidation, and its place in
//! a command (a hit reaches no breaker; a fallback's answer is not kept).

use rampart::cache::{CacheHandle, CacheLayer};
use rampart::error::SharedError;
use rampart::registry::Registry;
use rampart::{BoxError, Command, ErrorKind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Ratings by title: `title * 10`, failing for titles over 100; counts
/// calls.
fn ratings(calls: &Arc<AtomicU32>) -> impl Service<u32, Response = u32, Error = BoxError> + Clone {
    let calls = calls.clone();
    service_fn(move |title: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if title > 100 {
                return Err::<u32, BoxError>(format!("no title {title}").into());
            }
            Ok(title * 10)
        }
    })
}

fn cache(ttl: Duration, max_entries: u64) -> CacheLayer<impl Fn(&u32) -> u32 + Clone, u32, u32> {
    CacheLayer::builder("RatingsGet", |title: &u32| *title)
        .ttl(ttl)
        .max_entries(max_entries)
        .build()
        .unwrap()
}

async fn get<S>(svc: &S, title: u32) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError> + Clone,
{
    svc.clone().oneshot(title).await
}

fn counts(handle: &CacheHandle<u32, u32>) -> (u64, u64) {
    (handle.hits(), handle.misses())
}

#[tokio::test(start_paused = true)]
async fn a_repeated_call_is_answered_from_the_cache_until_its_time_to_live_ends() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = cache(SECS(30), 100);
    let handle = layer.handle();
    let svc = layer.layer(ratings(&calls));

    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(get(&svc, 8).await.unwrap(), 80);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(counts(&handle), (1, 2));

    tokio::time::advance(SECS(29)).await;
    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "29 s old: still fresh");
    tokio::time::advance(SECS(1)).await;
    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "30 s old: expired, called again"
    );
    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "and kept afresh");
    assert_eq!(counts(&handle), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn past_its_bound_the_least_recently_used_entry_goes_first() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = cache(SECS(60), 2);
    let handle = layer.handle();
    let svc = layer.layer(ratings(&calls));

    get(&svc, 1).await.unwrap();
    get(&svc, 2).await.unwrap();
    handle.run_pending_tasks();
    get(&svc, 1).await.unwrap(); // 1 is now more recently used than 2
    handle.run_pending_tasks();
    get(&svc, 3).await.unwrap(); // over the bound: 2 goes
    handle.run_pending_tasks();
    assert_eq!(handle.entry_count(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    get(&svc, 1).await.unwrap();
    get(&svc, 3).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "1 and 3 were kept");
    get(&svc, 2).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4, "2 was evicted");
}

#[tokio::test(start_paused = true)]
async fn errors_are_not_kept_unless_asked_and_then_shared() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = cache(SECS(30), 100).layer(ratings(&calls));
    assert!(get(&svc, 404).await.is_err());
    assert!(get(&svc, 404).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "each call tried again");

    let calls = Arc::new(AtomicU32::new(0));
    let layer = CacheLayer::builder("RatingsGet", |title: &u32| *title)
        .ttl(SECS(30))
        .cache_errors()
        .build()
        .unwrap();
    let svc = layer.layer(ratings(&calls));
    let first = get(&svc, 404).await.unwrap_err();
    let second = get(&svc, 404).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the error was kept");
    assert!(first.is::<SharedError>() && second.is::<SharedError>());
    assert_eq!(second.to_string(), "no title 404");
    assert_eq!(ErrorKind::of(&second), ErrorKind::Inner);
    tokio::time::advance(SECS(30)).await;
    assert!(get(&svc, 404).await.is_err());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "and it expires like a response"
    );
}

#[tokio::test(start_paused = true)]
async fn invalidation_drops_one_entry_or_all() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = cache(SECS(60), 100);
    let handle = layer.handle();
    let svc = layer.layer(ratings(&calls));
    get(&svc, 1).await.unwrap();
    get(&svc, 2).await.unwrap();
    handle.invalidate(&1);
    get(&svc, 1).await.unwrap();
    get(&svc, 2).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    handle.invalidate_all();
    get(&svc, 1).await.unwrap();
    get(&svc, 2).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn in_a_command_a_hit_reaches_no_breaker_and_a_fallback_is_never_kept() {
    let registry = Registry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let layer = cache(SECS(60), 100);
    let handle = layer.handle();
    let command = Command::builder("RatingsGet")
        .registry(&registry)
        .cache(layer)
        .fallback_sync(|_cause| Ok(0))
        .build()
        .unwrap();
    let breaker = command.breaker();
    let svc = command.layer(ratings(&calls));

    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    assert_eq!(get(&svc, 7).await.unwrap(), 70);
    let counts_now = breaker.rolling_counts();
    assert_eq!(
        counts_now.successes, 1,
        "the hits did not reach the breaker"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A failure is served by the fallback, above the cache: not kept.
    assert_eq!(get(&svc, 404).await.unwrap(), 0);
    assert_eq!(get(&svc, 404).await.unwrap(), 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the fallback's 0 was not cached"
    );
    assert_eq!(breaker.rolling_counts().failures, 2);

    let listed = &registry.commands()[0];
    assert!(listed.has_cache());
    assert_eq!(listed.cache_hits(), 2);
    assert_eq!(counts(&handle), (2, 3));
}

#[test]
fn every_bad_option_is_a_config_error_naming_its_field() {
    let err = CacheLayer::<_, u32, u32>::builder("", |n: &u32| *n)
        .ttl(Duration::ZERO)
        .max_entries(0)
        .build()
        .unwrap_err();
    for field in ["name", "ttl", "max_entries"] {
        assert!(err.names(field), "{err}");
    }
}
