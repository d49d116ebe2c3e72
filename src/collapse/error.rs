//! The collapser's own failures.

use crate::error::SharedError;
use std::error::Error as StdError;
use std::fmt;

/// The batch call this request was in failed: the batch service returned
/// an error (or was not ready with one, or panicked). Every caller in the
/// batch gets one, all sharing the batch's error.
///
/// Its [`source`](StdError::source) is the batch's error, so
/// [`ErrorKind::of`](crate::ErrorKind::of) classifies that: a batch cut off
/// by a timeout beneath the collapser is [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)
/// for each of its callers, a short-circuited one
/// [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen).
#[derive(Debug, Clone)]
pub struct BatchFailed {
    error: SharedError,
}

impl BatchFailed {
    pub(crate) fn new(error: SharedError) -> Self {
        BatchFailed { error }
    }

    /// The batch's error, shared by every caller of the batch.
    pub fn error(&self) -> &SharedError {
        &self.error
    }
}

impl fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the batch call failed")
    }
}

impl StdError for BatchFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

/// The batch call succeeded but its response had no item for this
/// request: with [`InOrder`](super::InOrder), the response was shorter
/// than the batch; with [`ByKey`](super::ByKey), no item had this
/// request's key. Only this caller fails; the others get their items.
///
/// Zero-sized; [`ErrorKind::Inner`](crate::ErrorKind::Inner) (the
/// dependency's answer lacked it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("the batch response had no item for this request")]
#[non_exhaustive]
pub struct MissingItem;

impl MissingItem {
    /// A new `MissingItem` error.
    pub const fn new() -> Self {
        MissingItem
    }
}

/// The collapser's batching task is gone, so the request was not sent:
/// the runtime it ran on shut down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("the collapser's batching task is gone (its runtime shut down)")]
#[non_exhaustive]
pub struct CollapserClosed;

impl CollapserClosed {
    /// A new `CollapserClosed` error.
    pub const fn new() -> Self {
        CollapserClosed
    }
}
