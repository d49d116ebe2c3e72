//! What collapsing, coalescing and caching cost, over services that answer
//! at once.
//!
//! - `collapse/per_item`: 100 single calls made at once on a current-thread
//!   runtime through a collapser (max batch 100, so the batch goes as soon
//!   as it is full and no timer fires) over a bulk service that answers at
//!   once; criterion's throughput is items, so the time shown per element
//!   is the collapser's cost per item (its oneshot, its place in the
//!   queue, its share of the batch's `Vec`s and task). `collapse/direct`
//!   is the same 100 ids in one direct call of the bulk service, for
//!   reference.
//! - `coalesce/no_duplicate`: one call after another, each with a key of
//!   its own (nothing in flight to join), over a no-op service, driven by
//!   hand on a no-op waker; `coalesce/bare` is the no-op service alone.
//! - `cache/hit`, `cache/miss`: a cache hit, and a miss that fills the
//!   cache (a new key each call, the cache bounded to 10 000 entries),
//!   over the same no-op service.
//!
//! Run: `cargo bench --all-features --bench collapse`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::join_all;
use futures::task::noop_waker_ref;
use rampart::cache::CacheLayer;
use rampart::coalesce::CoalesceLayer;
use rampart::collapse::CollapseLayer;
use rampart::registry::Registry;
use rampart::BoxError;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

const ITEMS: u64 = 100;

fn noop(
) -> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>> + Clone
{
    service_fn(|key: u64| ready(Ok::<_, BoxError>(key)))
}

/// One call driven by hand: every service here is ready and answers at once.
fn drive<S: Service<u64>>(svc: &mut S, request: u64) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    match pin!(svc.call(request)).poll(&mut cx) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => unreachable!("answers at once"),
    }
}

fn collapse(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let bulk = service_fn(|ids: Vec<u64>| ready(Ok::<_, BoxError>(ids)));
    let layer: CollapseLayer<u64> = CollapseLayer::builder("bench-collapse")
        .registry(&Registry::new())
        .window(Duration::from_millis(10))
        .max_batch(ITEMS as usize)
        .build()
        .unwrap();
    let handle = layer.handle();
    let collapsed = runtime.block_on(async { layer.layer(bulk) });

    let mut g = c.benchmark_group("collapse");
    g.throughput(Throughput::Elements(ITEMS));
    g.bench_function("per_item", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let calls = (0..ITEMS).map(|id| collapsed.clone().oneshot(id));
                black_box(join_all(calls).await);
            })
        })
    });
    g.bench_function("direct", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ids: Vec<u64> = (0..ITEMS).collect();
                black_box(bulk.oneshot(ids).await.unwrap());
            })
        })
    });
    g.finish();
    assert_eq!(
        handle.requests_batched(),
        handle.batches() * ITEMS,
        "every batch was full: no window waited"
    );
}

fn coalesce(c: &mut Criterion) {
    let mut g = c.benchmark_group("coalesce");
    let mut bare = noop();
    let mut key = 0u64;
    g.bench_function("bare", |b| {
        b.iter(|| {
            key += 1;
            black_box(drive(&mut bare, key))
        })
    });
    let layer = CoalesceLayer::builder("bench-coalesce", |key: &u64| *key)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut coalesced = layer.layer(noop());
    g.bench_function("no_duplicate", |b| {
        b.iter(|| {
            key += 1;
            black_box(drive(&mut coalesced, key))
        })
    });
    g.finish();
    assert_eq!(handle.joined(), 0);
    assert_eq!(coalesced.in_flight(), 0);
}

fn cache(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // The cache reads tokio's clock: stay inside a runtime.
    let _inside = runtime.enter();
    let mut g = c.benchmark_group("cache");
    let layer = CacheLayer::builder("bench-cache", |key: &u64| *key)
        .ttl(Duration::from_secs(3600))
        .max_entries(10_000)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut cached = layer.layer(noop());
    drive(&mut cached, 7);
    g.bench_function("hit", |b| b.iter(|| black_box(drive(&mut cached, 7))));
    let mut key = 1_000_000u64;
    g.bench_function("miss", |b| {
        b.iter(|| {
            key += 1;
            black_box(drive(&mut cached, key))
        })
    });
    g.finish();
    assert!(handle.hits() > 0 && handle.misses() > 1);
}

criterion_group!(benches, collapse, coalesce, cache);
criterion_main!(benches);
