//! The bulkhead's own failure.

/// The bulkhead was full: the call was rejected without reaching the
/// dependency (at once, or after waiting `max_wait` for a slot). A full
/// pool answers [`PoolFull`](super::pool::PoolFull) instead, naming it.
///
/// Zero-sized, so rejecting never allocates. Recognise it in a boxed error
/// with [`ErrorKind::of`](crate::ErrorKind::of).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead is full")]
#[non_exhaustive]
pub struct BulkheadFull;

impl BulkheadFull {
    /// A new `BulkheadFull` error.
    pub const fn new() -> Self {
        BulkheadFull
    }
}
