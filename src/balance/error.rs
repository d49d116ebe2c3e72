//! The balancer's own failure.

/// The balancer had no endpoint to send the call to: the set is empty
/// (discovery has not delivered any, or removed them all).
///
/// Zero-sized; recognise it with [`ErrorKind::of`](crate::ErrorKind::of).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("no endpoint to send the call to")]
pub struct NoHealthyEndpoint {
    _p: (),
}

impl NoHealthyEndpoint {
    /// A new `NoHealthyEndpoint` error.
    pub const fn new() -> Self {
        NoHealthyEndpoint { _p: () }
    }
}
