//! Retries refused.

use crate::BoxError;

/// A call failed and could have been retried, but the retry budget was
/// spent: the call's own error, with that noted.
///
/// [`ErrorKind::of`](crate::ErrorKind::of) reports
/// [`ErrorKind::RetryBudgetExhausted`](crate::ErrorKind::RetryBudgetExhausted);
/// the original error is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("retry budget exhausted; last attempt failed: {source}")]
pub struct RetryBudgetExhausted {
    source: BoxError,
}

impl RetryBudgetExhausted {
    pub(crate) fn new(source: BoxError) -> Self {
        RetryBudgetExhausted { source }
    }

    /// The last attempt's error.
    pub fn last_error(&self) -> &BoxError {
        &self.source
    }
}

/// Marks a response that could have been retried but was not, for want of
/// retry budget: [`HttpPolicy`](super::HttpPolicy) inserts it into the
/// `http::Extensions` of such a response (say a 503), in the retry layer
/// and in the balancer, and the response reaches the caller as it is.
/// (A retry not started because the caller's deadline would pass first
/// leaves no mark.)
///
/// The response's counterpart of the error [`RetryBudgetExhausted`], for
/// results that are not errors. Zero-sized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryBudgetExhaustedMarker;
