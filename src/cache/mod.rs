//! A response cache (Hystrix's request cache): a repeated call within the
//! time to live is answered from the first answer, without reaching the
//! dependency.
//!
//! [`CacheLayer`] keeps responses by key (a function of the request) in a
//! [moka](https://docs.rs/moka) cache:
//!
//! - **Time to live**: a response is served for [`ttl`](Builder::ttl)
//!   after it was received (default 1 s), read from tokio's clock.
//! - **Bounded**: at most [`max_entries`](Builder::max_entries) responses
//!   (default 10 000); past it the least recently used goes first.
//! - **Errors are not kept** unless [`cache_errors`](Builder::cache_errors)
//!   says so; then each caller gets the same error as a
//!   [`SharedError`](crate::error::SharedError).
//! - **Off unless configured**: nothing is cached without the layer.
//! - Responses are `Clone` (each hit is a clone: put large ones in an
//!   `Arc`). Concurrent misses for one key each call the dependency; put
//!   a [coalescer](crate::coalesce) beneath the cache to make them one
//!   call.
//! - **Counted**: `rampart_events_total{layer="cache",event="hit"|"miss"}`
//!   and the [`CacheHandle`]; in a [`Command`](crate::Command) (with
//!   [`cache`](crate::command::CommandBuilder::cache)) the stream reports
//!   hits as the command's `rollingCountResponsesFromCache` and
//!   `propertyValue_requestCacheEnabled` as `true`.
//!
//! ```
//! use rampart::cache::CacheLayer;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let counted = calls.clone();
//! let ratings = service_fn(move |title: u32| {
//!     counted.fetch_add(1, Ordering::SeqCst);
//!     async move { Ok::<_, rampart::BoxError>(title % 5) }
//! });
//! let cache = CacheLayer::builder("RatingsGet", |title: &u32| *title)
//!     .ttl(Duration::from_secs(30))
//!     .max_entries(1_000)
//!     .build()?;
//! let handle = cache.handle();
//! let svc = ServiceBuilder::new().layer(cache).service(ratings);
//!
//! assert_eq!(svc.clone().oneshot(7).await?, 2);
//! assert_eq!(svc.clone().oneshot(7).await?, 2); // from the cache
//! tokio::time::advance(Duration::from_secs(30)).await;
//! assert_eq!(svc.clone().oneshot(7).await?, 2); // expired: called again
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! assert_eq!((handle.hits(), handle.misses()), (1, 2));
//! # Ok(())
//! # }
//! ```
//!
//! # Where it goes in a command
//!
//! [`CommandBuilder::cache`](crate::command::CommandBuilder::cache) puts
//! it beneath the fallback and above the retries and the breaker:
//!
//! ```text
//!  caller → Fallback → Cache → (Retry) → CircuitBreaker → Bulkhead → Timeout → dependency
//! ```
//!
//! so a hit reaches neither the breaker nor the bulkhead (it says nothing
//! of the dependency's health, as Hystrix's `RESPONSE_FROM_CACHE` does
//! not count toward the error percentage), and a fallback's answer is
//! never cached (the next call tries the dependency again).
//!
//! # Cancel safety
//!
//! A hit is answered at once. Dropping a miss drops its inner call, and
//! nothing is cached for it.
//!
//! # Why moka, and which of it
//!
//! moka is a well-kept concurrent cache (TinyLFU or LRU, sized, timed).
//! rampart uses its synchronous cache only (`features = ["sync"]`): a
//! lookup never waits, so moka's `future` feature (an async lock and
//! event listeners) would add build time for nothing. Expiry is checked
//! against tokio's clock on every hit (one clock read); moka's own time
//! to live, on the real clock, frees entries nobody reads again.

mod config;
mod future;
mod handle;
mod layer;
mod service;
mod stats;
mod store;

pub use config::{Builder, DEFAULT_MAX_ENTRIES, DEFAULT_TTL};
pub use future::ResponseFuture;
pub use handle::CacheHandle;
pub use layer::CacheLayer;
pub use service::Cache;
pub(crate) use stats::Stats;
