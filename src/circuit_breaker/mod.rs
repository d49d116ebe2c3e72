//! A rolling-window circuit breaker: Hystrix's semantics, as a tower layer.
//!
//! A breaker watches the calls to one dependency. When too many fail (or are
//! slow) it **opens**: calls are rejected at once with [`CircuitOpen`],
//! without reaching the dependency, so the dependency can recover and
//! callers fail fast (and fall back) instead of queueing behind timeouts.
//! After [`open_for`](Builder::open_for) it turns **half-open** and lets
//! [`probes`](Builder::probes) calls through; if all succeed it **closes**
//! with an empty window, if one fails it opens again (for longer, with
//! [`open_for_max`](Builder::open_for_max)).
//!
//! # Trip rules
//!
//! Any enabled rule trips the breaker:
//! - failure rate ≥ [`failure_rate`](Builder::failure_rate) (default 50 %)
//!   once the window holds ≥ [`min_calls`](Builder::min_calls) (default 20);
//! - slow-call rate ≥ the rate given to [`slow_call`](Builder::slow_call),
//!   with the same minimum;
//! - [`consecutive_failures`](Builder::consecutive_failures) in a row.
//!
//! What counts as a failure is decided by a [`Classify`] closure (by default
//! every `Err`). Timeouts and rejections by a bulkhead beneath the breaker
//! are failures, as in Hystrix; the breaker's own rejections never are.
//!
//! # Example
//!
//! ```
//! use rampart::circuit_breaker::{CircuitBreakerLayer, State};
//! use rampart::ErrorKind;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let layer = CircuitBreakerLayer::builder("recommendations")
//!     .min_calls(4)
//!     .open_for(Duration::from_secs(5))
//!     .build()?;
//! let handle = layer.handle();
//!
//! // A dependency that always fails.
//! let inner = service_fn(|_: ()| async { Err::<(), _>("connection refused") });
//! let mut svc = ServiceBuilder::new().layer(layer).service(inner);
//!
//! for _ in 0..4 {
//!     let _ = svc.ready().await?.call(()).await;
//! }
//! assert_eq!(handle.state(), State::Open);
//!
//! // Now calls fail fast without reaching the dependency.
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! Admitting a call in the closed state is one atomic load; recording it
//! touches only counters private to the calling thread's shard. Neither
//! path allocates or takes a lock. See the README's benchmark table.

mod classify;
mod config;
mod error;
mod events;
mod future;
mod handle;
mod layer;
mod service;
mod state;
mod telemetry;

pub use classify::{Classify, DefaultClassifier, Outcome};
pub use config::{
    Builder, Window, DEFAULT_BUCKETS, DEFAULT_FAILURE_RATE, DEFAULT_MIN_CALLS, DEFAULT_OPEN_FOR,
    DEFAULT_PROBES, DEFAULT_PROBE_TIMEOUT, DEFAULT_WINDOW,
};
pub use error::CircuitOpen;
pub use events::{State, StateChange, TransitionReason};
pub use future::ResponseFuture;
pub use handle::CircuitBreakerHandle;
pub use layer::CircuitBreakerLayer;
pub use service::CircuitBreaker;
pub(crate) use state::Breaker;
