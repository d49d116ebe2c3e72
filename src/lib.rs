//! # rampart
//!
//! Fault tolerance for [tower] services: the Netflix recipe (Hystrix's
//! circuit breaker around every dependency call) as composable, lock-free,
//! allocation-free layers.
//!
//! | module | what it gives |
//! |---|---|
//! | [`circuit_breaker`] | a rolling-window circuit breaker: failure-rate, slow-call and consecutive-failure rules, half-open probes, manual control |
//! | [`window`] | the rolling statistics beneath it: counts and latency percentiles |
//! | [`metrics`] | the metric names rampart reports through the `metrics` facade |
//! | [`error`] | rampart's own failures, [`ErrorKind`], [`ConfigError`] |
//!
//! Bulkheads, timeouts, fallbacks, the Hystrix-style `Command` facade, retries
//! and load balancing are not in this release yet; see the README's roadmap.
//!
//! Every layer's error type is [`BoxError`], so rampart layers drop into any
//! tower stack; [`ErrorKind::of`] tells a rejection from a timeout from the
//! dependency's own failure. All time comes from `tokio::time`, so tests run
//! on a paused clock.
//!
//! ```
//! use rampart::circuit_breaker::CircuitBreakerLayer;
//! use tower::ServiceBuilder;
//! # let inner = tower::service_fn(|_: ()| async { Ok::<_, rampart::BoxError>(()) });
//!
//! let breaker = CircuitBreakerLayer::builder("recommendations").build()?;
//! let service = ServiceBuilder::new().layer(breaker).service(inner);
//! # Ok::<(), rampart::ConfigError>(())
//! ```
//!
//! [tower]: https://docs.rs/tower

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

#[cfg(feature = "balance")]
pub mod balance;
#[cfg(feature = "bulkhead")]
pub mod bulkhead;
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
pub(crate) mod clock;
#[cfg(feature = "command")]
pub mod command;
pub mod error;
#[cfg(feature = "fallback")]
pub mod fallback;
pub mod metrics;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(feature = "retry")]
pub(crate) mod rng;
pub(crate) mod shard;
#[cfg(any(feature = "bulkhead", feature = "fallback"))]
pub(crate) mod slots;
#[cfg(feature = "timeout")]
pub mod timeout;
pub mod window;

#[cfg(feature = "command")]
pub use command::{Command, CommandLayer};
pub use error::{BoxError, ConfigError, ErrorKind};

/// The README's code blocks, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
