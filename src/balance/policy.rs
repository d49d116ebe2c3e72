//! What counts as a failure, and what may be retried.

use crate::circuit_breaker::Outcome;
use crate::retry::RetryBudgetExhaustedMarker;
use crate::{BoxError, ErrorKind};
use std::error::Error as StdError;
use std::io;

/// Decides, for a balancer, whether a result says the endpoint is healthy
/// (for outlier ejection) and whether the call may be retried elsewhere.
///
/// [`DefaultPolicy`] suits any request type; [`HttpPolicy`] suits
/// `http::Request`/`http::Response` clients. Implement it for your own.
///
/// # When the retry budget says no
///
/// A call whose last attempt could have been retried but for the retry
/// budget ends with that attempt's result, told apart so:
///
/// - an error comes back wrapped in
///   [`RetryBudgetExhausted`](crate::retry::RetryBudgetExhausted)
///   ([`ErrorKind::of`] says
///   [`ErrorKind::RetryBudgetExhausted`]; the attempt's own error is its
///   source);
/// - a response (say a 503) comes back as it is, after
///   [`on_retry_budget_exhausted`](Policy::on_retry_budget_exhausted) has
///   had a chance to mark it: [`HttpPolicy`] inserts a
///   [`RetryBudgetExhaustedMarker`] into its extensions.
pub trait Policy<Req, Res>: Send + Sync + 'static {
    /// Whether `result` counts against the endpoint's health. Default:
    /// every `Err` is a failure.
    fn outcome(&self, result: &Result<Res, BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }

    /// Whether `request`, having ended in `result`, may be sent again.
    fn is_retryable(&self, request: &Req, result: &Result<Res, BoxError>) -> bool;

    /// Called on a response that [`is_retryable`](Policy::is_retryable)
    /// allowed to retry but that the retry budget kept from it, just before
    /// it is returned to the caller: mark it here if the caller should be
    /// able to tell. Default: does nothing.
    fn on_retry_budget_exhausted(&self, response: &mut Res) {
        let _ = response;
    }
}

/// Retries every request, but only after errors that say the endpoint never
/// received it: a refused connection, a connection that was never made, or
/// a rejection by a breaker or bulkhead on the endpoint.
///
/// It knows nothing of the request, so it never retries an error after
/// which the endpoint may have received and acted on it: a connection reset
/// or aborted mid-call, a broken pipe, a timeout. Use a policy that knows
/// which requests are idempotent ([`HttpPolicy`]) to retry those.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl<Req, Res> Policy<Req, Res> for DefaultPolicy {
    fn is_retryable(&self, _: &Req, result: &Result<Res, BoxError>) -> bool {
        result.as_ref().err().is_some_and(is_retryable_error)
    }
}

/// HTTP: 5xx responses and errors are failures; only idempotent requests
/// (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) are retried: after any error
/// (no response came back, e.g. the connection closed mid-answer; sending an
/// idempotent request again is safe) or a 502, 503 or 504 response.
///
/// A 502, 503 or 504 that the retry budget kept from being retried comes
/// back with a [`RetryBudgetExhaustedMarker`] in its extensions:
///
/// ```
/// use rampart::retry::RetryBudgetExhaustedMarker;
/// # let response = http::Response::new(());
/// if response.extensions().get::<RetryBudgetExhaustedMarker>().is_some() {
///     // A retry was warranted, and refused: the dependency is failing
///     // widely, or this client retries too much.
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpPolicy;

impl<B, RB> Policy<http::Request<B>, http::Response<RB>> for HttpPolicy {
    fn outcome(&self, result: &Result<http::Response<RB>, BoxError>) -> Outcome {
        match result {
            Ok(response) if response.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }

    fn is_retryable(
        &self,
        request: &http::Request<B>,
        result: &Result<http::Response<RB>, BoxError>,
    ) -> bool {
        if !request.method().is_idempotent() {
            return false;
        }
        match result {
            Ok(response) => matches!(response.status().as_u16(), 502..=504),
            Err(_) => true,
        }
    }

    /// Inserts a [`RetryBudgetExhaustedMarker`] into the response's
    /// extensions (which may allocate their map, on this path only).
    fn on_retry_budget_exhausted(&self, response: &mut http::Response<RB>) {
        response.extensions_mut().insert(RetryBudgetExhaustedMarker);
    }
}

/// Errors that prove the endpoint never received the request: a refused
/// or never-made connection anywhere in the chain, or a rejection by a
/// resilience layer on the endpoint. (A reset, an abort, a broken pipe or a
/// timeout may come after the endpoint received the request.)
pub(crate) fn is_retryable_error(error: &BoxError) -> bool {
    if ErrorKind::of(error).is_rejection() {
        return true;
    }
    let mut next: Option<&(dyn StdError + 'static)> = Some(&**error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected
            ) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_anywhere_in_the_chain_are_retryable() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Wrapper(#[source] io::Error);
        let refused: BoxError = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused)).into();
        assert!(is_retryable_error(&refused));
        let other: BoxError = io::Error::from(io::ErrorKind::InvalidData).into();
        assert!(!is_retryable_error(&other));
        // The endpoint may have received the request before these.
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::TimedOut,
        ] {
            let maybe_received: BoxError = Wrapper(io::Error::from(kind)).into();
            assert!(!is_retryable_error(&maybe_received), "{kind:?}");
        }
        let timed_out: BoxError = tower::timeout::error::Elapsed::new().into();
        assert!(!is_retryable_error(&timed_out));
    }

    #[test]
    fn http_retries_idempotent_requests_on_503_only() {
        let get = http::Request::get("/").body(()).unwrap();
        let post = http::Request::post("/").body(()).unwrap();
        let unavailable: Result<http::Response<()>, BoxError> =
            Ok(http::Response::builder().status(503).body(()).unwrap());
        let not_found: Result<http::Response<()>, BoxError> =
            Ok(http::Response::builder().status(404).body(()).unwrap());
        assert!(HttpPolicy.is_retryable(&get, &unavailable));
        assert!(!HttpPolicy.is_retryable(&post, &unavailable));
        assert!(!HttpPolicy.is_retryable(&get, &not_found));
        // No response at all (the connection closed mid-answer): a GET may
        // be sent again, whatever the error says.
        let cut_off: Result<http::Response<()>, BoxError> =
            Err("connection closed before message completed".into());
        assert!(HttpPolicy.is_retryable(&get, &cut_off));
        assert!(!HttpPolicy.is_retryable(&post, &cut_off));
        assert_eq!(
            Policy::<http::Request<()>, _>::outcome(&HttpPolicy, &unavailable),
            Outcome::Failure
        );
        assert_eq!(
            Policy::<http::Request<()>, _>::outcome(&HttpPolicy, &not_found),
            Outcome::Success
        );
    }
}
