//! Fallbacks: a response to serve when a call fails.
//!
//! Netflix's recipe degrades a feature instead of failing the page: when
//! the recommendations service is down, show popular titles. A fallback
//! closure, sync or async, gets the [`Cause`] (short-circuited, rejected,
//! timed out, or failed, with the error) and returns the response to serve
//! instead, or an error. When the fallback fails too, the call fails with
//! [`FallbackFailed`], which carries both errors.
//!
//! The fallback runs when the call ends in an error. A response the
//! dependency sent (an HTTP 500, say) is not an error to this layer, even
//! when a circuit breaker beneath counts it as a failure: turn such
//! responses into errors beneath the fallback with a [`FailOnLayer`] (in a
//! command: [`fail_on`](crate::command::CommandBuilder::fail_on)) if it
//! should serve them too; the fallback reads the response back with
//! [`FailedResponse::of`].
//!
//! A hyper client's `Response<Incoming>` cannot be built by a fallback
//! (only hyper makes an `Incoming`). Box the body beneath the fallback
//! (`response.map(|body| body.map_err(Into::into).boxed())`, an
//! `http_body_util::combinators::BoxBody<Bytes, BoxError>`), and the
//! fallback answers with a body of its own of the same type
//! (`Full::new(bytes).map_err(|never| match never {}).boxed()`); the
//! server's body still streams. `tests/fallback_hyper.rs` does this against
//! a real server.
//!
//! At most [`max_concurrent`](Builder::max_concurrent) fallbacks run at once
//! (Hystrix's default: 10), so a slow fallback cannot pile up either; over
//! the cap, the call fails with [`FallbackRejected`].
//!
//! # Example
//!
//! ```
//! use rampart::fallback::FallbackLayer;
//! use rampart::ErrorKind;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let fallback = FallbackLayer::builder("recommendations")
//!     .fallback(|cause| {
//!         let why = cause.kind();
//!         async move { Ok(format!("popular titles (because: {why})")) }
//!     })
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(fallback)
//!     .service(service_fn(|_: ()| async { Err::<String, _>("connection refused") }));
//! let titles = svc.ready().await?.call(()).await?;
//! assert_eq!(titles, "popular titles (because: inner service failed)");
//! # Ok(())
//! # }
//! ```

mod cause;
mod config;
mod error;
mod fail_on;
mod function;
mod future;
mod handle;
mod layer;
mod service;
mod stats;

pub use cause::Cause;
pub(crate) use config::stats_for;
pub use config::{Builder, Unset, DEFAULT_MAX_CONCURRENT};
pub use error::{FallbackFailed, FallbackRejected};
pub use fail_on::{FailOn, FailOnFuture, FailOnLayer, FailedResponse};
pub use function::{AsyncFallback, FallbackFn, NoFallback, SyncFallback};
pub use future::ResponseFuture;
pub use handle::FallbackHandle;
pub use layer::FallbackLayer;
pub use service::Fallback;
pub(crate) use stats::Stats;
