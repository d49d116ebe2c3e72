//! Deciding whether a call's result says the dependency is healthy.

/// How a call's result counts toward the breaker's rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed: counts toward the failure rate and the
    /// consecutive-failure count, and fails a half-open probe.
    Failure,
    /// Not the dependency's fault (a bad request, a 404): counted apart and
    /// never toward a rate. A half-open probe that is ignored gives its place
    /// to the next call.
    Ignored,
}

/// Classifies a call's result; any `Fn(&Result<Res, E>) -> Outcome` is one.
///
/// The default, [`DefaultClassifier`], counts every `Ok` as a success and
/// every `Err` as a failure. Errors are told apart further when counted: a
/// timeout ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)) is tallied as a
/// timeout and a rejection by a layer beneath the breaker as a rejection; both
/// still count as failures, as in Hystrix.
///
/// ```
/// use rampart::circuit_breaker::{CircuitBreakerLayer, Outcome};
///
/// // HTTP: a 5xx is the dependency's failure, a 4xx is the caller's.
/// let layer = CircuitBreakerLayer::builder("ratings")
///     .classify(|result: &Result<http::Response<String>, std::io::Error>| match result {
///         Ok(response) if response.status().is_server_error() => Outcome::Failure,
///         Ok(response) if response.status().is_client_error() => Outcome::Ignored,
///         Ok(_) => Outcome::Success,
///         Err(_) => Outcome::Failure,
///     })
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify a call's `Result<{Res}, {E}>`",
    label = "this classifier must take `&Result<{Res}, {E}>`",
    note = "inside a `Command` (or above a timeout or bulkhead) the error type is `rampart::BoxError`: write `|result: &Result<Response, rampart::BoxError>| ...`",
    note = "see `rampart::troubleshooting`"
)]
pub trait Classify<Res, E> {
    /// The outcome of one call.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        self(result)
    }
}

/// `Ok` is a success, `Err` a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<Res, E> Classify<Res, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}
