//! The deadline's own failure.

/// The call's deadline passed: either before the call (rejected at once,
/// the dependency not called) or while it ran (cut off, its future
/// dropped at that moment).
///
/// Zero-sized, so it never allocates. [`ErrorKind::of`](crate::ErrorKind::of)
/// says [`ErrorKind::DeadlineExceeded`](crate::ErrorKind::DeadlineExceeded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("deadline exceeded")]
#[non_exhaustive]
pub struct DeadlineExceeded;

impl DeadlineExceeded {
    /// A new `DeadlineExceeded` error.
    pub const fn new() -> Self {
        DeadlineExceeded
    }
}
