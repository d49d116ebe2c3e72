//! rampart
pub mod error;
pub(crate) mod clock;
pub mod window;
pub use error::{BoxError, ConfigError, ErrorKind};
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
