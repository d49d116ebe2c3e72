//! Pool isolation: each call runs on a bounded pool of threads of its own
//! (Hystrix's thread pools).
//!
//! See [`Pool`]. Prefer the semaphore [`Bulkhead`](super::Bulkhead) unless
//! the dependency's client may block its thread.
//!
//! # Example
//!
//! ```
//! use rampart::bulkhead::pool::PoolLayer;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let pool = PoolLayer::builder("legacy-client").size(4).queue(2).build()?;
//! let handle = pool.handle();
//! let mut svc = ServiceBuilder::new().layer(pool).service(service_fn(|n: u64| async move {
//!     // A client that blocks its thread; on the pool it cannot stall the caller.
//!     std::thread::sleep(std::time::Duration::from_millis(n));
//!     Ok::<_, rampart::BoxError>(n)
//! }));
//! assert_eq!(svc.ready().await?.call(1).await?, 1);
//! assert_eq!(handle.completed(), 1);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod future;
mod handle;
mod layer;
mod service;
mod state;

pub use config::{Builder, DEFAULT_QUEUE, DEFAULT_SIZE};
pub use error::PoolFull;
pub use future::ResponseFuture;
pub use handle::PoolHandle;
pub use layer::PoolLayer;
pub use service::Pool;
pub(crate) use state::Shared;
