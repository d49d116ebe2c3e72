//! Bulkheads: bound how much of the caller one dependency can tie up.
//!
//! A slow dependency holds on to every call made to it. Without a bound,
//! calls pile up until the caller runs out of memory, sockets or tasks, and
//! every feature fails, not just the one that needs the slow dependency.
//! A bulkhead (Hystrix's semaphore isolation) lets at most
//! [`max_concurrent`](Builder::max_concurrent) calls through at once; the
//! next is rejected with [`BulkheadFull`] at once, or after waiting up to
//! [`max_wait`](Builder::max_wait) for a slot.
//!
//! When the dependency's client may block its thread, [`pool`] runs calls
//! on a pool of threads of their own instead (Hystrix's thread pools).
//!
//! Beneath a [circuit breaker](crate::circuit_breaker), rejections count as
//! failures, as in Hystrix: a dependency that keeps its bulkhead full is
//! unhealthy.
//!
//! # Example
//!
//! ```
//! use rampart::bulkhead::BulkheadLayer;
//! use rampart::ErrorKind;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let bulkhead = BulkheadLayer::builder("ratings").max_concurrent(1).build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(bulkhead)
//!     .service(service_fn(|_: ()| std::future::pending::<Result<(), rampart::BoxError>>()));
//!
//! let _stuck = svc.ready().await?.call(()); // holds the only slot
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
//! # Ok(())
//! # }
//! ```
//!
//! The call path takes no lock and allocates nothing: slots are counted
//! with atomics, and waiting (only with `max_wait`) is the one path that
//! allocates its timer. Waiters are woken in no strict order.

mod config;
mod error;
mod future;
mod handle;
mod layer;
pub mod pool;
mod service;
mod state;

pub use config::{Builder, DEFAULT_MAX_CONCURRENT};
pub use error::BulkheadFull;
pub use future::ResponseFuture;
pub use handle::BulkheadHandle;
pub use layer::BulkheadLayer;
pub use service::Bulkhead;
pub(crate) use state::Shared;
