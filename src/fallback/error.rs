//! Failures of the fallback itself.

use crate::BoxError;

/// The call failed and so did its fallback: both errors, in one.
///
/// Its [`source`](std::error::Error::source) is the call's error, so
/// [`ErrorKind::of`](crate::ErrorKind::of) reports why the fallback ran.
#[derive(Debug, thiserror::Error)]
#[error("fallback failed: {fallback} (it ran because: {cause})")]
pub struct FallbackFailed {
    #[source]
    cause: BoxError,
    fallback: BoxError,
}

impl FallbackFailed {
    pub(crate) fn new(cause: BoxError, fallback: BoxError) -> Self {
        FallbackFailed { cause, fallback }
    }

    /// The error the call failed with.
    pub fn cause(&self) -> &BoxError {
        &self.cause
    }

    /// The error the fallback failed with.
    pub fn fallback_error(&self) -> &BoxError {
        &self.fallback
    }
}

/// The call failed, and its fallback was not run because too many fallbacks
/// were running already (Hystrix's `FALLBACK_REJECTION`).
///
/// Its [`source`](std::error::Error::source) is the call's error.
#[derive(Debug, thiserror::Error)]
#[error("fallback rejected: too many fallbacks running (it was needed because: {cause})")]
pub struct FallbackRejected {
    #[source]
    cause: BoxError,
}

impl FallbackRejected {
    pub(crate) fn new(cause: BoxError) -> Self {
        FallbackRejected { cause }
    }

    /// The error the call failed with.
    pub fn cause(&self) -> &BoxError {
        &self.cause
    }
}
