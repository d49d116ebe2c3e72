//! The breaker's own failure.

/// The circuit breaker rejected the call without calling the dependency: it
/// is open, forced open, or half-open with every probe place taken.
///
/// Zero-sized, so boxing it into a [`BoxError`](crate::BoxError) does not
/// allocate and a rejection costs no allocation. To learn which breaker and
/// for how long, ask its [`CircuitBreakerHandle`](super::CircuitBreakerHandle)
/// ([`state`](super::CircuitBreakerHandle::state),
/// [`retry_after`](super::CircuitBreakerHandle::retry_after)); to recognise it
/// in a boxed error, use [`ErrorKind::of`](crate::ErrorKind::of).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open")]
#[non_exhaustive]
pub struct CircuitOpen;

impl CircuitOpen {
    /// A new `CircuitOpen` error.
    pub const fn new() -> Self {
        CircuitOpen
    }
}
