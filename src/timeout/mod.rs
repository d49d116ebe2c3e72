//! Per-call timeouts with a typed error.
//!
//! A dependency that hangs holds its caller's resources for as long as it
//! hangs. A timeout bounds that: the call fails with [`Elapsed`] at the
//! deadline and the inner future is dropped, cancelling the work.
//!
//! Beneath a [circuit breaker](crate::circuit_breaker), a timeout counts as
//! a failure (tallied as a timeout), as in Hystrix.
//!
//! # Example
//!
//! ```
//! use rampart::timeout::TimeoutLayer;
//! use rampart::ErrorKind;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let timeout = TimeoutLayer::builder("ratings").timeout(Duration::from_millis(250)).build()?;
//! let mut svc = ServiceBuilder::new().layer(timeout).service(service_fn(|_: ()| async {
//!     tokio::time::sleep(Duration::from_secs(10)).await; // a hung dependency
//!     Ok::<_, rampart::BoxError>("too late")
//! }));
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod future;
mod layer;
mod service;

pub use config::{Builder, DEFAULT_TIMEOUT};
pub use error::Elapsed;
pub use future::ResponseFuture;
pub(crate) use layer::Shared as TimeoutShared;
pub use layer::TimeoutLayer;
pub use service::Timeout;
