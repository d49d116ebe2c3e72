//! Deciding what a call's result says about the limited service's load.

use crate::{BoxError, ErrorKind};

/// What a call's result tells the limit (Netflix's listener calls
/// `onSuccess`, `onDropped`, `onIgnore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call was served: its round-trip time is a sample.
    Success,
    /// The service was overloaded: rejected, timed out, or answered with
    /// an overload response. The window is marked as having a drop (Vegas
    /// and AIMD back off), and the round-trip time is a sample too.
    Dropped,
    /// Says nothing about load (a bad request, the service's own failure):
    /// not a sample.
    Ignored,
}

/// Classifies a call's result for the limit; any
/// `Fn(&Result<Res, BoxError>) -> Outcome` is one.
///
/// The error is already a [`BoxError`] (the limiter's own error type), so
/// [`ErrorKind::of`] reads it. The default is [`DefaultClassifier`]; for
/// HTTP responses, [`HttpClassifier`] also counts a 503 or a 429 as a drop.
///
/// ```
/// use rampart::limit::{LimitLayer, Outcome};
/// use rampart::BoxError;
///
/// // A gRPC-style status in the response: RESOURCE_EXHAUSTED is a drop.
/// let layer = LimitLayer::builder("api")
///     .classify(|result: &Result<(u32, String), BoxError>| match result {
///         Ok((8, _)) => Outcome::Dropped,
///         Ok(_) => Outcome::Success,
///         Err(_) => Outcome::Ignored,
///     })
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify a call's `Result<{Res}, rampart::BoxError>`",
    label = "this classifier must take `&Result<{Res}, rampart::BoxError>`",
    note = "the limiter boxes the inner service's error first: write `|result: &Result<Response, rampart::BoxError>| ...`"
)]
pub trait Classify<Res> {
    /// The outcome of one call.
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome;
}

impl<F, Res> Classify<Res> for F
where
    F: Fn(&Result<Res, BoxError>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome {
        self(result)
    }
}

/// `Ok` is a success; an error is a drop when it is an overload signal
/// (a timeout, a deadline passed, or a rejection by a layer beneath: a
/// full bulkhead, an open breaker, another limit) and ignored otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<Res> Classify<Res> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => error_outcome(e),
        }
    }
}

/// What an error says: see [`DefaultClassifier`].
#[cold]
pub(crate) fn error_outcome(error: &BoxError) -> Outcome {
    match ErrorKind::of(error) {
        ErrorKind::Timeout | ErrorKind::DeadlineExceeded => Outcome::Dropped,
        kind if kind.is_rejection() => Outcome::Dropped,
        _ => Outcome::Ignored,
    }
}

/// For `http::Response`s: a 503 Service Unavailable or a 429 Too Many
/// Requests is a drop (the server shed the call), any other response a
/// success; errors as [`DefaultClassifier`] says (feature `http`).
///
/// A 5xx other than 503 is the server's failure, not its load, so it
/// still counts as a success (a sample of how long the server took).
///
/// ```
/// use rampart::limit::{Aimd, HttpClassifier, LimitLayer};
///
/// let layer = LimitLayer::builder("ratings-client")
///     .algorithm(Aimd::new())
///     .classify(HttpClassifier)
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpClassifier;

#[cfg(feature = "http")]
impl<B> Classify<http::Response<B>> for HttpClassifier {
    #[inline]
    fn classify(&self, result: &Result<http::Response<B>, BoxError>) -> Outcome {
        match result {
            Ok(response) => match response.status() {
                http::StatusCode::SERVICE_UNAVAILABLE | http::StatusCode::TOO_MANY_REQUESTS => {
                    Outcome::Dropped
                }
                _ => Outcome::Success,
            },
            Err(e) => error_outcome(e),
        }
    }
}
