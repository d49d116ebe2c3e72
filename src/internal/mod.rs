//! The shared internals every layer builds on, in one place: the clock,
//! per-thread shards, lock-free slots, the atomics loom model-checks, and
//! a fast random source. Nothing here is public.

pub(crate) mod cancel;
pub(crate) mod clock;
pub(crate) mod deadline;
#[cfg(any(feature = "circuit-breaker", feature = "fallback"))]
pub(crate) mod handoff;
#[cfg(any(feature = "circuit-breaker", feature = "rate-limit"))]
pub(crate) mod keyed;
pub(crate) mod notify;
#[cfg(any(feature = "circuit-breaker", feature = "retry", feature = "limit"))]
pub(crate) mod rng;
pub(crate) mod shard;
#[cfg(any(feature = "bulkhead", feature = "fallback"))]
pub(crate) mod slots;
#[cfg(any(feature = "circuit-breaker", feature = "limit"))]
pub(crate) mod stride;
pub(crate) mod sync;
