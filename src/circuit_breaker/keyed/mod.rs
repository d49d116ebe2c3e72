//! One circuit breaker per key: see the [parent module's
//! docs](super#one-breaker-per-key).

mod handle;
mod layer;
mod service;
mod state;

pub use handle::KeyedCircuitBreakerHandle;
pub use layer::{Builder, KeyedCircuitBreakerLayer, DEFAULT_MAX_KEYS};
pub use service::KeyedCircuitBreaker;
pub(crate) use state::Report;
