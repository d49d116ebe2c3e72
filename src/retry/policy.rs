//! What counts as a failure, and what may be retried.

use super::RetryBudgetExhaustedMarker;
use crate::circuit_breaker::Outcome;
use crate::{BoxError, ErrorKind};
use std::error::Error as StdError;
use std::io;
use std::time::{Duration, SystemTime};

/// Decides whether a call's result may be retried, and (for a balancer)
/// whether it says the endpoint is healthy (for outlier ejection). The
/// [retry layer](super::RetryLayer) and the [balancer](crate::balance)
/// take the same policies.
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
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a retry policy for requests `{Req}` answered by `{Res}`",
    label = "needs `Policy<{Req}, {Res}>`",
    note = "`HttpPolicy` fits `http::Request<B>` answered by `http::Response<B2>`; `DefaultPolicy` fits any types",
    note = "see `rampart::troubleshooting`"
)]
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

    /// How long the dependency asked the caller to wait before trying
    /// again (HTTP's `Retry-After`), if it did. The
    /// [retry layer](super::RetryLayer) waits at least that long before a
    /// retry, and does not retry at all when it is longer than its
    /// [`max_retry_after`](super::Builder::max_retry_after) (Envoy's rule
    /// for rate-limited retries). The balancer, which retries on another
    /// instance, does not read it. Default: `None`.
    fn retry_after(&self, result: &Result<Res, BoxError>) -> Option<Duration> {
        let _ = result;
        None
    }

    /// Whether `request` may be sent twice at once: a
    /// [hedged request](crate::hedge) goes out only if so. Default: `false`
    /// (a policy that knows nothing of the request cannot tell);
    /// [`HttpPolicy`] says yes for idempotent methods.
    fn may_send_twice(&self, request: &Req) -> bool {
        let _ = request;
        false
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
/// idempotent request again is safe) but a passed deadline (which no policy
/// retries: see [`crate::retry`]), a 502, 503 or 504 response, or a 429
/// that says when to come back (`Retry-After`; without it a rate-limited
/// server gets no retry).
///
/// [`retry_after`](Policy::retry_after) reads `Retry-After` on a 429 or a
/// 503, in seconds or as an HTTP date (RFC 9110 §10.2.3).
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
            Ok(response) => match response.status().as_u16() {
                502..=504 => true,
                429 => retry_after_header(response).is_some(),
                _ => false,
            },
            Err(_) => true,
        }
    }

    fn may_send_twice(&self, request: &http::Request<B>) -> bool {
        request.method().is_idempotent()
    }

    fn retry_after(&self, result: &Result<http::Response<RB>, BoxError>) -> Option<Duration> {
        match result {
            Ok(response) if matches!(response.status().as_u16(), 429 | 503) => {
                retry_after_header(response)
            }
            _ => None,
        }
    }

    /// Inserts a [`RetryBudgetExhaustedMarker`] into the response's
    /// extensions (which may allocate their map, on this path only).
    fn on_retry_budget_exhausted(&self, response: &mut http::Response<RB>) {
        response.extensions_mut().insert(RetryBudgetExhaustedMarker);
    }
}

/// The wait a response's `Retry-After` asks for: delta-seconds, or an
/// HTTP date (a date in the past asks for no wait). `None` if absent or
/// unreadable.
fn retry_after_header<B>(response: &http::Response<B>) -> Option<Duration> {
    let value = response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
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

    fn answer(status: u16, retry_after: Option<&str>) -> Result<http::Response<()>, BoxError> {
        let mut response = http::Response::builder().status(status);
        if let Some(value) = retry_after {
            response = response.header(http::header::RETRY_AFTER, value);
        }
        Ok(response.body(()).unwrap())
    }

    #[test]
    fn http_reads_retry_after_on_429_and_503_only() {
        let retry_after = |status, value| {
            Policy::<http::Request<()>, _>::retry_after(&HttpPolicy, &answer(status, value))
        };
        assert_eq!(retry_after(503, Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(429, Some(" 120 ")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(502, Some("3")),
            None,
            "not a status that sets it"
        );
        assert_eq!(retry_after(503, None), None);
        assert_eq!(retry_after(503, Some("soon")), None, "unreadable");
        // A date in the past asks for no wait; one in the future for about
        // the time until it.
        assert_eq!(
            retry_after(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let wait = retry_after(429, Some(&later)).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }

    #[test]
    fn http_retries_a_429_only_when_told_when() {
        let get = http::Request::get("/").body(()).unwrap();
        assert!(HttpPolicy.is_retryable(&get, &answer(429, Some("1"))));
        assert!(!HttpPolicy.is_retryable(&get, &answer(429, None)));
        let post = http::Request::post("/").body(()).unwrap();
        assert!(!HttpPolicy.is_retryable(&post, &answer(429, Some("1"))));
    }
}
