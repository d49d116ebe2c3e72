//! Coalescing of identical calls in flight ("single flight"): while a call
//! for a key is in flight, later callers with the same key wait for its
//! answer instead of calling.
//!
//! When a hot key's cache entry expires, or a thousand requests ask for
//! the same thing at once, only one call need reach the dependency.
//! [`CoalesceLayer`] keys calls by a function of the request:
//!
//! - **One call per key in flight**: the first caller's request is sent;
//!   callers with an equal key, while it is in flight, join it and get a
//!   clone of its answer (so responses are `Clone`; put large ones in an
//!   `Arc`). Once it has answered, the next caller starts a new call:
//!   this coalesces, it does not cache (see [`cache`](crate::cache)).
//! - **Errors are shared too**: every caller of a failed call gets its
//!   error as a [`SharedError`](crate::error::SharedError), which
//!   [`ErrorKind::of`](crate::ErrorKind::of) sees through (a shared
//!   timeout is a timeout). A panic in the call is shared as
//!   [`Panicked`](crate::catch_panic::Panicked). Or, with
//!   [`successes_only`](Builder::successes_only), only answers are
//!   shared: a caller who joined a call that fails makes a call of its
//!   own instead.
//! - **Bounded**: at most [`max_waiters`](Builder::max_waiters) callers
//!   join one call (default 1000); the next is rejected at once with
//!   [`WaitersFull`] ([`ErrorKind::BulkheadFull`](crate::ErrorKind::BulkheadFull)).
//! - **Counted**: `rampart_events_total{layer="coalesce",event="call"|"joined"|"rejected"|"retried"}`
//!   and the [`CoalesceHandle`].
//!
//! Keys must identify the answer: two requests with equal keys must be
//! answerable by one response (the requests of the callers who join are
//! dropped unsent).
//!
//! ```
//! use rampart::coalesce::CoalesceLayer;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let counted = calls.clone();
//! let profile = service_fn(move |user: String| {
//!     counted.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         tokio::time::sleep(Duration::from_millis(50)).await;
//!         Ok::<_, rampart::BoxError>(format!("profile of {user}"))
//!     }
//! });
//! let coalesce = CoalesceLayer::builder("ProfileGet", |user: &String| user.clone()).build()?;
//! let svc = ServiceBuilder::new().layer(coalesce).service(profile);
//!
//! let (a, b) = tokio::join!(
//!     svc.clone().oneshot("ada".to_string()),
//!     svc.clone().oneshot("ada".to_string()),
//! );
//! assert_eq!(a?, b?);
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Cancel safety
//!
//! The call runs as long as one of its callers waits: the caller that
//! started it may drop its future without cancelling the call for the
//! others (whichever caller is polled drives the call; no task is
//! spawned). When the last caller drops its future, the call is dropped
//! too, and the key is forgotten.
//!
//! # Costs
//!
//! A call that finds no other in flight: the key function, one lock of
//! the table to list the call and one to forget it, and the shared
//! future's allocations (its state, and its waker list). A caller that
//! joins: the key function, a lock, a clone of the answer. Each `layer`
//! call has its own table; clones of the service share it.
//!
//! The inner service's `call` runs under the table's lock (by tower's
//! contract it only makes the call's future), so that two callers of one
//! key never both call; so do the key's `Hash`, `Eq`, `Clone` and `Drop`.
//! None of them may call the same coalescer, or its handle's `in_flight`,
//! before returning: the lock is not reentrant. The call's future runs
//! outside it.

mod config;
mod error;
mod flight;
mod future;
mod handle;
mod layer;
mod service;
mod table;

pub use config::{Builder, ShareErrors, SuccessesOnly, DEFAULT_MAX_WAITERS};
pub use error::WaitersFull;
pub use flight::Flight;
pub use future::{ResponseFuture, SuccessesOnlyFuture};
pub use handle::CoalesceHandle;
pub use layer::CoalesceLayer;
pub use service::Coalesce;
