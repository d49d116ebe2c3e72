//! Rate limits: at most so many calls per period, for all calls or per key
//! (a tenant, a client, a route), on [governor]'s GCRA.
//!
//! A bulkhead bounds how many calls run *at once*; a rate limit bounds how
//! many *start* per unit of time, whatever they take: a quota granted to a
//! tenant, a server shielding itself from one noisy client, a client
//! keeping under the rate a provider allows. A call over the limit is
//! rejected at once with [`RateLimited`], which says when to come back
//! ([`retry_after`](RateLimited::retry_after);
//! [`rampart::axum`](crate::axum) answers it with `429 Too Many
//! Requests` and `Retry-After`), or, with
//! [`max_wait`](Builder::max_wait), waits for its permit up to a bound.
//!
//! # Example
//!
//! ```
//! use rampart::rate_limit::{RateLimitLayer, RateLimited};
//! use rampart::ErrorKind;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! // 2 calls per second, in bursts of at most 2 (not a bound on calls in flight).
//! let limit = RateLimitLayer::builder("geocoding")
//!     .rate(2, Duration::from_secs(1))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(limit)
//!     .service(service_fn(|_: ()| async { Ok::<_, rampart::BoxError>("here") }));
//!
//! svc.ready().await?.call(()).await?;
//! svc.ready().await?.call(()).await?;
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::RateLimited);
//! // One permit comes back every 500 ms.
//! let retry_after = err.downcast_ref::<RateLimited>().unwrap().retry_after();
//! assert_eq!(retry_after, Duration::from_millis(500));
//! # Ok(())
//! # }
//! ```
//!
//! # Where it goes in a stack
//!
//! - **A server shielding itself**: in front of its handlers, keyed by
//!   tenant or client; [`rampart::axum`](crate::axum) answers a rejection
//!   with `429` and `Retry-After`.
//! - **A client keeping under a provider's rate**: beneath the
//!   [retry layer](crate::retry) and above the
//!   [circuit breaker](crate::circuit_breaker):
//!
//! ```text
//!  caller → Retry → RateLimit → CircuitBreaker → Timeout → dependency
//! ```
//!
//! The retry layer reads a rejection's `retry_after` as a `Retry-After`:
//! the retry waits for the permit, or, past its
//! [`max_retry_after`](crate::retry::Builder::max_retry_after), is not
//! made. Beneath the breaker, a rejection would count as the
//! dependency's failure (as Hystrix counts a full bulkhead's) and could
//! open the breaker on a healthy dependency. Beneath a
//! [deadline](crate::deadline), a permit that comes after the caller's
//! deadline is not waited for.
//!
//! # The rule: GCRA
//!
//! [`rate(calls, period)`](Builder::rate) lets one permit come back every
//! `period / calls` (the emission interval *T*), and up to
//! [`burst`](Builder::burst) *B* permits pile up while nobody calls (the
//! tolerance τ = (*B* − 1) · *T*). A call at time *t* is let through when
//! *t* ≥ TAT − τ, where TAT, the theoretical arrival time, is when the
//! permits already handed out would have come back at the rate; letting
//! it through moves TAT to max(TAT, *t*) + *T*. Otherwise the call's
//! permit comes at TAT − τ, which is what `retry_after` says. This is the
//! Generic Cell Rate Algorithm of ATM networks (ITU-T I.371), a token
//! bucket of *B* tokens refilled one every *T*, kept in one word of state
//! per key. The algorithm is governor's; rampart brings the clock
//! (the component clock of the crate docs' "Time": tests on a paused clock
//! drive it) and the store of
//! keys (bounded, below).
//!
//! By default the burst is the whole rate: after a quiet second, a limit
//! of 100 per second lets 100 calls through at once, then one every 10 ms
//! (resilience4j and governor's `Quota` do the same). `burst(1)` spaces
//! every call out.
//!
//! # Waiting
//!
//! With [`max_wait`](Builder::max_wait), a call whose permit comes within
//! the bound waits for it in its response future (a `tokio::time::Sleep`
//! inside the future: no allocation), then looks again: if another call
//! took the permit meanwhile, it waits for the next one while that still
//! comes in time, and is rejected when it no longer does. Beneath a
//! [deadline](crate::deadline), a permit that comes after the caller's
//! deadline is not waited for: the call is rejected at once, its
//! `retry_after` saying when the permit comes. Waiters are not queued in
//! order. Dropping a waiting call is safe at any point: a permit
//! is only taken by the call it lets through.
//!
//! # Memory per key
//!
//! With [`key`](Builder::key), each key has its own limit: one 8-byte word
//! beside the key in a sharded hash map (dashmap). A key whose permits are
//! all back (its TAT is past) holds nothing a new key would not, so it can
//! be forgotten without changing any decision. No call pays for that on
//! its own: a call whose key is known only reads the map. A call whose
//! key is new inserts it, and every so often such a call sweeps the map:
//!
//! - when the map has doubled since the last sweep (from 1024 keys on),
//!   every key whose permits are all back is forgotten: the map holds
//!   about the keys seen within one burst's refill time (`period / calls
//!   × burst`), at an amortized O(1) per new key;
//! - when the map reaches [`max_keys`](Builder::max_keys) (default
//!   100 000) even so, the keys nearest to a full allowance are forgotten
//!   too, down to 7/8 of the bound (so the next such sweep is at least
//!   `max_keys / 8` new keys away); each is then let through as a new key
//!   would be, and a `keys_evicted` warning says so. Memory stays bounded
//!   whatever the keys: a flood of new ones costs those keys' remaining
//!   debt, not the process.
//!
//! A sweep takes each map shard's write lock in turn, so calls whose keys
//! share that shard wait while it is swept; its time grows with the keys
//! held, and a sweep comes only every so many new keys.
//!
//! # Cost
//!
//! One limit for all calls: a clock read and a compare-and-swap on one
//! word, no lock, no allocation. Per key: a hash, a map shard's read lock
//! and the same compare-and-swap; no allocation for a key already held.
//! A rejection allocates its error (it carries the time to come back).
//! See `benches/keyed.rs`.
//!
//! # Metrics and events
//!
//! `rampart_events_total{layer="rate_limit"}` with `event` `admitted`,
//! `waited` and `rejected`; `rampart_rate_limit_keys`; a `debug` event per
//! rejection and a `warn` when keys are forgotten over the bound, under the
//! target `rampart::rate_limit` (see [`crate::metrics`]).
//!
//! [governor]: https://docs.rs/governor

mod config;
mod error;
mod future;
mod handle;
mod layer;
mod service;
mod state;

pub use config::{Builder, DEFAULT_MAX_KEYS};
pub(crate) use error::retry_after_in;
pub use error::RateLimited;
pub use future::ResponseFuture;
pub use handle::RateLimitHandle;
pub use layer::{KeyOf, RateLimitLayer, Unkeyed};
pub use service::RateLimit;
pub(crate) use state::Report;
