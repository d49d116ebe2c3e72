//! rampart's errors as HTTP responses, for axum (feature `axum`).
//!
//! # Why the layer's error must be handled
//!
//! axum serves only services that cannot fail: every request must end in a
//! response, so a [`Router`](::axum::Router)'s routes have
//! `Error = Infallible`. rampart's layers follow tower's convention instead:
//! a rejected or timed-out call ends in an error, of type [`BoxError`]. Put
//! one directly on a router and the compiler refuses:
//!
//! ```text
//! error[E0277]: the trait bound `Infallible: From<Box<(dyn std::error::Error + Send + Sync + 'static)>>` is not satisfied
//! ```
//!
//! The fix is axum's [`HandleErrorLayer`] above the rampart layers: it turns
//! each error into a response, and its own error is `Infallible`.
//! [`error_response`] is made for it; [`error_response_with`] also sends
//! `Retry-After` from a circuit breaker; [`ErrorResponse`] is the mapping
//! itself, for a handler of your own.
//!
//! # Example
//!
//! A bulkhead and a timeout in front of every route:
//!
//! ```
//! use axum::error_handling::HandleErrorLayer;
//! use axum::{routing::get, Router};
//! use rampart::bulkhead::BulkheadLayer;
//! use rampart::timeout::TimeoutLayer;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let app = Router::new()
//!     .route("/slow", get(|| async {
//!         tokio::time::sleep(Duration::from_secs(5)).await;
//!         "done"
//!     }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(HandleErrorLayer::new(rampart::axum::error_response)) // errors → responses
//!             .layer(BulkheadLayer::builder("api").max_concurrent(100).build()?)
//!             .layer(TimeoutLayer::builder("api").timeout(Duration::from_secs(1)).build()?),
//!     );
//!
//! let request = http::Request::get("/slow").body(axum::body::Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), http::StatusCode::GATEWAY_TIMEOUT);
//! assert_eq!(response.headers()["x-rampart-error"], "timeout");
//! # Ok(())
//! # }
//! ```
//!
//! `Router::layer` puts the stack in front of every route and of the
//! fallback (a 404 then takes a bulkhead slot too); `Router::route_layer`
//! only in front of the routes. Every service a layer builds shares the
//! layer's bulkhead (or breaker), so the bound above holds across all routes;
//! build one layer per route for one bound per route.
//!
//! # The mapping
//!
//! By [`ErrorKind::of`], so a rampart error wrapped by another layer, and
//! tower's and tokio's own timeout and load-shedding errors, map too:
//!
//! | error | status | `x-rampart-error` | body |
//! |---|---|---|---|
//! | [`CircuitOpen`](ErrorKind::CircuitOpen) | 503 Service Unavailable, with `Retry-After` through [`error_response_with`] | `circuit_open` | `circuit open` |
//! | [`BulkheadFull`](ErrorKind::BulkheadFull) (a pool or tower's `LoadShed` too) | 503 | `bulkhead_full` | `bulkhead full` |
//! | [`RateLimited`](ErrorKind::RateLimited) | 429 Too Many Requests, with `Retry-After` from the error | `rate_limited` | `rate limited` |
//! | [`RetryBudgetExhausted`](ErrorKind::RetryBudgetExhausted) | 503 | `retry_budget_exhausted` | `retry budget exhausted` |
//! | [`NoHealthyEndpoint`](ErrorKind::NoHealthyEndpoint) | 503 | `no_healthy_endpoint` | `no healthy endpoint` |
//! | [`LimitExceeded`](ErrorKind::LimitExceeded): an adaptive limit's `LimitExceeded` | 503 | `limit_exceeded` | `limit exceeded` |
//! | [`LimitExceeded`](ErrorKind::LimitExceeded): a partition over its share (`PartitionLimitExceeded`) | 429 Too Many Requests | `partition_limit_exceeded` | `too many requests` |
//! | [`Timeout`](ErrorKind::Timeout) | 504 Gateway Timeout | `timeout` | `timed out` |
//! | [`DeadlineExceeded`](ErrorKind::DeadlineExceeded) | 504 | `deadline_exceeded` | `deadline exceeded` |
//! | [`Panicked`](ErrorKind::Panicked) | 500 Internal Server Error | `panicked` | `panicked` |
//! | [`FallbackRejected`](ErrorKind::FallbackRejected) | as its cause, the call's own error | as its cause | as its cause |
//! | anything else ([`Inner`](ErrorKind::Inner)) | 500 | none | `internal server error` |
//!
//! Where the statuses come from (RFC 9110, section 15.6): 503 says the
//! server cannot handle the request *now* and a client may try again later,
//! which is what a rejection by an open breaker, a full bulkhead, a reached
//! concurrency limit, a spent retry budget or an empty endpoint set means;
//! 429 (RFC 6585, section 4) says *this client* sends too much, which is
//! what a partition over its guaranteed share of a limit means (the
//! server is not down: other partitions are served); 504 says a server did not
//! get a timely answer from what it depends on, which is what rampart's
//! timeout bounds. (408 Request Timeout, which tower-http's timeout sends,
//! says the *client* was too slow to send its request.) The bodies are
//! `text/plain; charset=utf-8`. An error's own text is never sent: it may
//! say more than a client should see. To log it, wrap the function:
//! `|err: BoxError| async move { tracing::warn!(%err); rampart::axum::error_response(err).await }`.
//!
//! `Retry-After` is in whole seconds, rounded up (RFC 9110, section 10.2.3,
//! has no fractions), and only sent when the breaker is open on a clock:
//! a half-open breaker with every probe place taken waits for its probes,
//! and a forced-open one for a person, so neither knows when to come back.
//! [`CircuitOpen`](crate::circuit_breaker::CircuitOpen) does not carry the
//! time itself: it is zero-sized so that a rejection never allocates, and
//! the time is read from the breaker's handle instead.
//!
//! A rate limit's rejection ([`RateLimited`](ErrorKind::RateLimited),
//! feature `rate-limit`) is different: the server is fine, *this* client
//! (or tenant, or everyone) sent too many requests, which is 429 Too Many
//! Requests (RFC 6585, section 4). The error carries when its next permit
//! comes, so [`ErrorResponse::new`] (and so [`error_response`]) sends
//! `Retry-After` for it without being told: rounded up, a client that
//! obeys it finds its permit there.
//!
//! An adaptive limit's rejections (feature `limit`) need no setup of
//! their own either: `LimitExceeded` answers 503 like a full bulkhead, and
//! a partition over its share (`PartitionLimitExceeded`) 429, with no
//! `Retry-After` (a limit has no clock to tell when a permit frees).
//! `rampart::limit`'s module docs show a limit with partitions in front of
//! a router.
//!
//! [`HandleErrorLayer`]: ::axum::error_handling::HandleErrorLayer

use crate::error::AsDynError;
use crate::{BoxError, ErrorKind};
use ::axum::http::header::RETRY_AFTER;
use ::axum::http::{HeaderName, HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The header naming what rampart refused or gave up on:
/// `x-rampart-error: circuit_open` (values in the [module docs](self)).
///
/// Lets a client, a load balancer's log or a test tell rampart's 503 from
/// the application's own.
pub const ERROR_HEADER: HeaderName = HeaderName::from_static("x-rampart-error");

/// For axum's [`HandleErrorLayer`]: the response for a layer's error.
///
/// `HandleErrorLayer::new(rampart::axum::error_response)`; the
/// [module docs](self) give the mapping. A circuit-open answer carries no
/// `Retry-After` here: this function does not know the breaker. Use
/// [`error_response_with`] for that.
///
/// [`HandleErrorLayer`]: ::axum::error_handling::HandleErrorLayer
pub async fn error_response(error: BoxError) -> Response {
    ErrorResponse::new(&error).into_response()
}

/// For axum's [`HandleErrorLayer`]: like [`error_response`], and a
/// circuit-open answer also says when to come back, in `Retry-After`, from
/// `breaker`'s remaining open time
/// ([`retry_after`](crate::circuit_breaker::CircuitBreakerHandle::retry_after)).
///
/// Needs the `circuit-breaker` feature too.
///
/// ```
/// use axum::error_handling::HandleErrorLayer;
/// use axum::{routing::get, Router};
/// use rampart::circuit_breaker::CircuitBreakerLayer;
/// use tower::ServiceBuilder;
///
/// let breaker = CircuitBreakerLayer::builder("api").build()?;
/// let app: Router = Router::new().route("/", get(|| async { "hello" })).route_layer(
///     ServiceBuilder::new()
///         .layer(HandleErrorLayer::new(rampart::axum::error_response_with(breaker.handle())))
///         .layer(breaker),
/// );
/// # Ok::<(), rampart::ConfigError>(())
/// ```
///
/// With a [`Command`](crate::Command), pass
/// [`CommandLayer::breaker`](crate::CommandLayer::breaker). Only this
/// breaker is asked: a circuit-open error from another breaker (say one per
/// endpoint, beneath a balancer) gets the time this one reports, which is
/// none unless it is open too.
///
/// [`HandleErrorLayer`]: ::axum::error_handling::HandleErrorLayer
#[cfg(feature = "circuit-breaker")]
pub fn error_response_with(
    breaker: crate::circuit_breaker::CircuitBreakerHandle,
) -> impl Fn(BoxError) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |error| {
        let response = ErrorResponse::new(&error);
        let response = if response.kind() == ErrorKind::CircuitOpen {
            response.retry_after(breaker.retry_after())
        } else {
            response
        };
        std::future::ready(response.into_response())
    }
}

/// The response for one of rampart's errors: a status, a short plain-text
/// body, [`ERROR_HEADER`] and, if set, `Retry-After`.
///
/// An [`IntoResponse`], so an error handler of your own can return it, or
/// read its [`status`](Self::status) and [`kind`](Self::kind) to build a
/// body of its own (JSON, a page):
///
/// ```
/// use axum::response::IntoResponse;
/// use http::StatusCode;
/// use rampart::axum::ErrorResponse;
/// use rampart::circuit_breaker::CircuitOpen;
/// use rampart::BoxError;
/// use std::time::Duration;
///
/// let error: BoxError = CircuitOpen::new().into();
/// let response = ErrorResponse::new(&error)
///     .retry_after(Duration::from_millis(2_500))
///     .into_response();
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(response.headers()["retry-after"], "3"); // rounded up
/// assert_eq!(response.headers()["x-rampart-error"], "circuit_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorResponse {
    kind: ErrorKind,
    /// A partition over its share of a limit: 429 rather than 503.
    over_share: bool,
    retry_after: Option<Duration>,
}

impl ErrorResponse {
    /// The response for `error` (a [`BoxError`] or a `dyn Error`), as the
    /// [module docs](self) map it; with `Retry-After` only for a rate
    /// limit's rejection, which carries its time.
    pub fn new<E: AsDynError + ?Sized>(error: &E) -> Self {
        let error = error.as_dyn_error();
        let kind = super::kind_of(error);
        ErrorResponse {
            kind,
            over_share: kind == ErrorKind::LimitExceeded && super::is_over_share(error),
            retry_after: match kind {
                #[cfg(feature = "rate-limit")]
                ErrorKind::RateLimited => crate::rate_limit::retry_after_in(error),
                _ => None,
            },
        }
    }

    /// Sends `Retry-After` with `after` in whole seconds, rounded up
    /// (`None`: no header). Sent whatever the status; meant for a 503.
    pub fn retry_after(mut self, after: impl Into<Option<Duration>>) -> Self {
        self.retry_after = after.into();
        self
    }

    /// What the response describes: the error's [`ErrorKind`], or for a
    /// [`FallbackRejected`](ErrorKind::FallbackRejected), its cause's.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The status: 503, 429, 504 or 500 (see the [module docs](self)).
    pub fn status(&self) -> StatusCode {
        describe(self.kind, self.over_share).status
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let Description { status, code, body } = describe(self.kind, self.over_share);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if let Some(code) = code {
            headers.insert(ERROR_HEADER, HeaderValue::from_static(code));
        }
        if let Some(after) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(whole_seconds_up(after)));
        }
        response
    }
}

/// One row of the module docs' table.
struct Description {
    status: StatusCode,
    /// The [`ERROR_HEADER`] value; `None` for an error that is not rampart's.
    code: Option<&'static str>,
    body: &'static str,
}

fn describe(kind: ErrorKind, over_share: bool) -> Description {
    let (status, code, body) = match kind {
        ErrorKind::CircuitOpen => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("circuit_open"),
            "circuit open",
        ),
        ErrorKind::BulkheadFull => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("bulkhead_full"),
            "bulkhead full",
        ),
        ErrorKind::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            Some("rate_limited"),
            "rate limited",
        ),
        ErrorKind::RetryBudgetExhausted => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("retry_budget_exhausted"),
            "retry budget exhausted",
        ),
        ErrorKind::NoHealthyEndpoint => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("no_healthy_endpoint"),
            "no healthy endpoint",
        ),
        ErrorKind::LimitExceeded if over_share => (
            StatusCode::TOO_MANY_REQUESTS,
            Some("partition_limit_exceeded"),
            "too many requests",
        ),
        ErrorKind::LimitExceeded => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("limit_exceeded"),
            "limit exceeded",
        ),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, Some("timeout"), "timed out"),
        ErrorKind::DeadlineExceeded => (
            StatusCode::GATEWAY_TIMEOUT,
            Some("deadline_exceeded"),
            "deadline exceeded",
        ),
        ErrorKind::Panicked => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("panicked"),
            "panicked",
        ),
        // `kind_of` answers with the cause's kind; one whose cause could not
        // be read is an error like any other.
        ErrorKind::FallbackRejected | ErrorKind::Inner => (
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal server error",
        ),
    };
    Description { status, code, body }
}

/// `Retry-After` has no fractions: 2.5 s is "3", so a client that obeys
/// never comes back early.
fn whole_seconds_up(after: Duration) -> u64 {
    // Saturating: `Duration::MAX` has a fraction too (found by a user trial).
    after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_nanos(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(5)), 5);
        assert_eq!(whole_seconds_up(Duration::from_millis(5_001)), 6);
        assert_eq!(whole_seconds_up(Duration::MAX), u64::MAX);
    }

    #[cfg(feature = "limit")]
    #[test]
    fn a_limit_answers_503_and_a_partition_over_its_share_429() {
        let error: BoxError = crate::limit::LimitExceeded::new().into();
        let response = ErrorResponse::new(&error);
        assert_eq!(response.kind(), ErrorKind::LimitExceeded);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = response.into_response();
        assert_eq!(response.headers()[ERROR_HEADER], "limit_exceeded");

        let error: BoxError = crate::limit::PartitionLimitExceeded::new().into();
        let response = ErrorResponse::new(&error);
        assert_eq!(response.kind(), ErrorKind::LimitExceeded);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let response = response.into_response();
        assert_eq!(response.headers()[ERROR_HEADER], "partition_limit_exceeded");
    }

    #[cfg(feature = "rate-limit")]
    #[test]
    fn a_rate_limit_is_answered_429_with_its_own_retry_after() {
        let error: BoxError =
            crate::rate_limit::RateLimited::new(Duration::from_millis(1_200)).into();
        let response = ErrorResponse::new(&error);
        assert_eq!(response.kind(), ErrorKind::RateLimited);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let response = response.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[ERROR_HEADER], "rate_limited");
        // Other errors get no Retry-After unless told.
        let error: BoxError = "boom".into();
        assert!(ErrorResponse::new(&error)
            .into_response()
            .headers()
            .get(RETRY_AFTER)
            .is_none());
    }

    #[cfg(all(feature = "rate-limit", feature = "fallback"))]
    #[test]
    fn a_rejected_fallback_over_a_rate_limit_still_says_when_to_come_back() {
        let cause: BoxError = crate::rate_limit::RateLimited::new(Duration::from_secs(3)).into();
        let error: BoxError = crate::fallback::FallbackRejected::new(cause).into();
        let response = ErrorResponse::new(&error).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
    }

    #[cfg(feature = "fallback")]
    #[test]
    fn a_rejected_fallback_is_answered_as_its_cause() {
        // tower's load shedding: a full bulkhead to `ErrorKind`.
        let cause: BoxError = tower::load_shed::error::Overloaded::new().into();
        let error: BoxError = crate::fallback::FallbackRejected::new(cause).into();
        assert_eq!(ErrorKind::of(&error), ErrorKind::FallbackRejected);
        let response = ErrorResponse::new(&error);
        assert_eq!(response.kind(), ErrorKind::BulkheadFull);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
