//! The coalescer's own failure.

/// As many callers as [`max_waiters`](super::Builder::max_waiters) were
/// already waiting for the call in flight for this key: this one was
/// rejected at once, without calling the dependency.
///
/// Zero-sized; a rejection:
/// [`ErrorKind::BulkheadFull`](crate::ErrorKind::BulkheadFull).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("too many callers waiting for the same call")]
#[non_exhaustive]
pub struct WaitersFull;

impl WaitersFull {
    /// A new `WaitersFull` error.
    pub const fn new() -> Self {
        WaitersFull
    }
}
