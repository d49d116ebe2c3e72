//! The limiter's own failures.

/// The concurrency limit was reached: the call was rejected without
/// reaching the service (at once, or after waiting
/// [`max_wait`](super::Builder::max_wait) for a permit). Also the answer
/// for calls of no declared partition when the whole limit is in use.
///
/// Zero-sized, so rejecting never allocates. Recognise it in a boxed error
/// with [`ErrorKind::of`](crate::ErrorKind::of) (it is
/// [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded)); the
/// limit and its use are read from the
/// [`LimitHandle`](super::LimitHandle). `rampart::axum` answers it with 503
/// Service Unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("concurrency limit exceeded")]
#[non_exhaustive]
pub struct LimitExceeded;

impl LimitExceeded {
    /// A new `LimitExceeded` error.
    pub const fn new() -> Self {
        LimitExceeded
    }
}

/// The whole limit was in use and the call's partition already held its
/// guaranteed share: its callers send more than their share. The call was
/// rejected without reaching the service.
///
/// Zero-sized like [`LimitExceeded`], and also
/// [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded);
/// `rampart::axum` answers it with 429 Too Many Requests, since it is the
/// caller's traffic that is over its share, not the server that is down.
/// Which partition: the [`LimitHandle`](super::LimitHandle)'s
/// [`partitions`](super::LimitHandle::partitions) count rejections per
/// partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("partition is over its share of the concurrency limit")]
#[non_exhaustive]
pub struct PartitionLimitExceeded;

impl PartitionLimitExceeded {
    /// A new `PartitionLimitExceeded` error.
    pub const fn new() -> Self {
        PartitionLimitExceeded
    }
}
