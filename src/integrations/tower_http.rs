//! tower-http's response classifiers as circuit-breaker classifiers
//! (feature `tower-http`).
//!
//! tower-http decides whether an HTTP or gRPC call failed with its
//! [`ClassifyResponse`] trait (its `TraceLayer` and metrics layers use it);
//! rampart's breaker decides with [`Classify`]. With this feature,
//! tower-http's stock classifiers are breaker classifiers as they are:
//! [`ServerErrorsAsFailures`], [`GrpcErrorsAsFailures`] and
//! [`StatusInRangeAsFailures`]. Any other `ClassifyResponse` (your own, or
//! one wrapped in `map_failure_class`) goes through [`Classifier`].
//!
//! ```
//! use rampart::circuit_breaker::{CircuitBreakerLayer, State};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_http::classify::ServerErrorsAsFailures;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let breaker = CircuitBreakerLayer::builder("ratings")
//!     .classify(ServerErrorsAsFailures::new()) // a 5xx is a failure
//!     .consecutive_failures(3)
//!     .build()?;
//! let handle = breaker.handle();
//! let mut ratings = ServiceBuilder::new().layer(breaker).service(service_fn(|_: ()| async {
//!     http::Response::builder().status(503).body(()).map_err(rampart::BoxError::from)
//! }));
//!
//! for _ in 0..3 {
//!     let response = ratings.ready().await?.call(()).await?; // the 503 itself
//!     assert_eq!(response.status(), 503);
//! }
//! assert_eq!(handle.state(), State::Open);
//! # Ok(())
//! # }
//! ```
//!
//! In a [`Command`](crate::Command):
//! `.breaker(|b| b.classify(GrpcErrorsAsFailures::new()))`.
//!
//! # From tower-http's classes to [`Outcome`]s
//!
//! | tower-http says | the breaker counts |
//! |---|---|
//! | `Ready(Ok(()))` | [`Success`](Outcome::Success) |
//! | `Ready(Err(_))` (a 5xx; a non-OK `grpc-status` in the headers) | [`Failure`](Outcome::Failure) |
//! | `RequiresEos(_)` (a gRPC response whose status comes in trailers) | [`Success`](Outcome::Success) |
//! | the service's error (no response at all) | [`Failure`](Outcome::Failure), as tower-http's `classify_error` has it |
//!
//! The breaker records a call when its response head arrives, before any
//! body is read, so it cannot wait for trailers: a gRPC status sent only in
//! trailers, after a streamed body, is not seen. A *trailers-only* response
//! carries its status in the headers and is seen; that is how gRPC servers
//! (tonic among them) answer a call that fails before sending a message, so
//! a unary call's `UNAVAILABLE` counts. For a streaming call whose failure
//! must count, classify the end of the stream yourself.
//!
//! tower-http has two classes where rampart has three: nothing here answers
//! [`Ignored`](Outcome::Ignored). `ServerErrorsAsFailures` counts a 4xx as a
//! success; to count it apart (not the dependency's fault, and no half-open
//! probe decided by it), write a closure ([`Classify`] shows one). Whether
//! a gRPC code is the caller's fault is set with
//! [`GrpcErrorsAsFailures::with_success`] (say `GrpcCode::InvalidArgument`),
//! which then counts it as a success.
//!
//! Classifying never allocates: tower-http's `classify_response` takes its
//! classifier by value, so each call clones it (the stock ones are a few
//! bytes), and `classify_error`, which formats the error into a `String`,
//! is never called.
//!
//! `SharedClassifier` (what `TraceLayer` takes) makes a classifier per
//! request, which a breaker has no use for: pass the classifier inside it.

use crate::circuit_breaker::{Classify, Outcome};
use ::tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, GrpcErrorsAsFailures, ServerErrorsAsFailures,
    StatusInRangeAsFailures,
};
use http::Response;

/// Counts a 5xx as a failure, any other status as a success, and an error
/// as a failure.
impl<B, E> Classify<Response<B>, E> for ServerErrorsAsFailures {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        classify_with(self, result)
    }
}

/// Counts a `grpc-status` other than OK (and the codes added with
/// `with_success`) in the response headers as a failure, and an error as a
/// failure; a response whose status comes in trailers as a success (see the
/// [module docs](self)).
impl<B, E> Classify<Response<B>, E> for GrpcErrorsAsFailures {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        classify_with(self, result)
    }
}

/// Counts a status in the range as a failure, any other as a success, and
/// an error as a failure.
impl<B, E> Classify<Response<B>, E> for StatusInRangeAsFailures {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        classify_with(self, result)
    }
}

/// Any tower-http [`ClassifyResponse`] as a breaker classifier, mapped as
/// the [module docs](self) say.
///
/// For the stock classifiers this is not needed (they are classifiers
/// already); it is for others, such as one with `map_failure_class` or your
/// own:
///
/// ```
/// use rampart::circuit_breaker::CircuitBreakerLayer;
/// use rampart::tower_http::Classifier;
/// use tower_http::classify::{ClassifyResponse, ServerErrorsAsFailures};
///
/// let classifier = ServerErrorsAsFailures::new().map_failure_class(|class| class.to_string());
/// let breaker = CircuitBreakerLayer::builder("ratings")
///     .classify(Classifier::new(classifier))
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Classifier<C> {
    inner: C,
}

impl<C> Classifier<C> {
    /// Wraps `classifier`.
    pub const fn new(classifier: C) -> Self {
        Classifier { inner: classifier }
    }

    /// The tower-http classifier inside.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The tower-http classifier inside.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C, B, E> Classify<Response<B>, E> for Classifier<C>
where
    C: ClassifyResponse + Clone,
{
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        classify_with(&self.inner, result)
    }
}

/// The one mapping, from the module docs' table.
#[inline]
fn classify_with<C, B, E>(classifier: &C, result: &Result<Response<B>, E>) -> Outcome
where
    C: ClassifyResponse + Clone,
{
    match result {
        Ok(response) => match classifier.clone().classify_response(response) {
            ClassifiedResponse::Ready(Ok(())) => Outcome::Success,
            ClassifiedResponse::Ready(Err(_)) => Outcome::Failure,
            ClassifiedResponse::RequiresEos(_) => Outcome::Success,
        },
        Err(_) => Outcome::Failure,
    }
}
