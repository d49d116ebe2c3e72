//! The balancer's own failure.

/// The balancer had no endpoint to send the call to: the set is empty
/// (discovery has not delivered any, or removed them all).
///
/// Zero-sized; recognise it with [`ErrorKind::of`](crate::ErrorKind::of).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("no endpoint to send the call to")]
#[non_exhaustive]
pub struct NoHealthyEndpoint;

impl NoHealthyEndpoint {
    /// A new `NoHealthyEndpoint` error.
    pub const fn new() -> Self {
        NoHealthyEndpoint
    }
}
