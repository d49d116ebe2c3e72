//! A rampart circuit breaker as a `reqwest_middleware::Middleware`.

use crate::circuit_breaker::{
    Breaker, CircuitBreaker, CircuitBreakerHandle, CircuitOpen, Classify, Outcome,
};
use crate::internal::shard::Lanes;
use crate::BoxError;
use ::reqwest::{Request, Response};
use http::Extensions;
use reqwest_middleware::{Error, Middleware, Next};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Runs every request of a [`reqwest_middleware::ClientWithMiddleware`]
/// through a rampart circuit breaker: users of `reqwest-middleware` add
/// rampart in one line.
///
/// ```
/// use rampart::circuit_breaker::CircuitBreakerLayer;
/// use rampart::reqwest::CircuitBreakerMiddleware;
/// use rampart::ErrorKind;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rampart::BoxError> {
/// let breaker = CircuitBreakerLayer::builder("catalog").build()?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(CircuitBreakerMiddleware::new(breaker.handle()))
///     .build();
///
/// // Open (here by hand): calls fail at once, and nothing is sent.
/// breaker.handle().force_open();
/// let error = client.get("http://10.0.0.7/catalog").send().await.unwrap_err();
/// assert_eq!(ErrorKind::of(&error), ErrorKind::CircuitOpen);
/// # Ok(())
/// # }
/// ```
///
/// It takes the breaker's [`CircuitBreakerHandle`]: the breaker is built
/// and validated by
/// [`CircuitBreakerLayer::builder`](crate::circuit_breaker::CircuitBreakerLayer::builder),
/// with all its options
/// (windows, trip rules, open time, probes, listeners), and may be shared
/// with tower stacks (a [`Command`](crate::Command)'s
/// [`breaker`](crate::CommandLayer::breaker)), a dashboard or an admin
/// endpoint, which read and force it through the same handle.
///
/// # What counts as a failure
///
/// By default ([`ServerErrorsAsFailures`]), a response with a 5xx status
/// and every error are failures; every other response is a success. The
/// breaker layer's own classifier, if it was built with one, is not used
/// here (it judges another service's results): give the middleware its
/// own with [`classify`](Self::classify). A response is returned to the
/// caller as it is, whatever its outcome.
///
/// # When the breaker rejects
///
/// The request does not reach the rest of the chain nor the server, and
/// the call fails at once with
/// [`reqwest_middleware::Error::Middleware`] carrying a
/// [`CircuitOpen`]. [`ErrorKind::of`](crate::ErrorKind::of) takes the
/// `reqwest_middleware::Error` itself (or a `BoxError` made from it) and
/// says [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen); the
/// error's own `is_middleware()` is `true`. Errors of the rest of the
/// chain, and reqwest's own, come back as they were.
///
/// # A breaker, or a whole `Command`
///
/// A middleware gets the rest of the chain as a [`Next`] that borrows the
/// client: it can be called only within `handle`, not moved to a task or
/// a thread of its own. The breaker needs neither, so it runs here whole:
/// half-open probes, a dropped probe counting as failed, metrics, events,
/// the registry. For a timeout, a bulkhead and a fallback around the
/// breaker, use [`CommandMiddleware`](super::CommandMiddleware) (feature
/// `command` too): it takes a command with semaphore isolation, as pool
/// isolation would need to move the call onto a pool thread.
///
/// Put it before a retry middleware (`reqwest-retry`) to count each call
/// once, after it to count each attempt.
pub struct CircuitBreakerMiddleware<C = ServerErrorsAsFailures> {
    breaker: Arc<Lanes<Breaker>>,
    classify: C,
}

impl CircuitBreakerMiddleware {
    /// A middleware running calls through the breaker behind `breaker`,
    /// with 5xx responses and errors counted as failures.
    pub fn new(breaker: CircuitBreakerHandle) -> Self {
        CircuitBreakerMiddleware {
            breaker: Arc::new(Lanes::new(breaker.shared().clone())),
            classify: ServerErrorsAsFailures,
        }
    }
}

impl<C> CircuitBreakerMiddleware<C> {
    /// Judges each call's result with `classify` instead: any
    /// `Fn(&Result<reqwest::Response, reqwest_middleware::Error>) -> Outcome`
    /// (or a named type implementing [`Classify`]). Default
    /// [`ServerErrorsAsFailures`].
    ///
    /// ```
    /// use rampart::circuit_breaker::{CircuitBreakerLayer, Outcome};
    /// use rampart::reqwest::CircuitBreakerMiddleware;
    ///
    /// // 5xx and 429 are failures; other 4xx are the caller's and ignored.
    /// fn classify(result: &reqwest_middleware::Result<reqwest::Response>) -> Outcome {
    ///     match result {
    ///         Ok(r) if r.status().is_server_error() || r.status() == 429 => Outcome::Failure,
    ///         Ok(r) if r.status().is_client_error() => Outcome::Ignored,
    ///         Ok(_) => Outcome::Success,
    ///         Err(_) => Outcome::Failure,
    ///     }
    /// }
    /// let breaker = CircuitBreakerLayer::builder("catalog").build()?;
    /// let middleware = CircuitBreakerMiddleware::new(breaker.handle()).classify(classify);
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerMiddleware<C2>
    where
        C2: Classify<Response, Error>,
    {
        CircuitBreakerMiddleware {
            breaker: self.breaker,
            classify,
        }
    }

    /// A handle to the breaker: read its state and rates, or force it.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breaker.shared().clone())
    }
}

impl<C> fmt::Debug for CircuitBreakerMiddleware<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerMiddleware")
            .field("breaker", self.breaker.shared())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl<C> Middleware for CircuitBreakerMiddleware<C>
where
    C: Classify<Response, Error> + Clone + Send + Sync + 'static,
{
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut breaker =
            CircuitBreaker::new(Chain(next), self.breaker.clone(), self.classify.clone());
        // Ready at once: the rest of the chain always is, and a rejection
        // is ready too (the call then resolves to `CircuitOpen`).
        std::future::poll_fn(|cx| {
            Service::<(Request, &mut Extensions)>::poll_ready(&mut breaker, cx)
        })
        .await
        .map_err(into_middleware_error)?;
        breaker
            .call((request, extensions))
            .await
            .map_err(into_middleware_error)
    }
}

/// What `Next::run` returns.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The rest of the middleware chain as a tower service, for the breaker to
/// wrap. Called once, within `handle`.
#[derive(Clone)]
pub(super) struct Chain<'a>(pub(super) Next<'a>);

impl<'a> Service<(Request, &'a mut Extensions)> for Chain<'a> {
    type Response = Response;
    type Error = Error;
    type Future = BoxFuture<'a, reqwest_middleware::Result<Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (request, extensions): (Request, &'a mut Extensions)) -> Self::Future {
        self.0.clone().run(request, extensions)
    }
}

/// A rampart layer's error back as the chain's: the chain's own error as
/// it was; rampart's own failures as a middleware error.
pub(super) fn into_middleware_error(error: BoxError) -> Error {
    let error = match error.downcast::<Error>() {
        Ok(error) => return *error,
        Err(error) => error,
    };
    match error.downcast::<CircuitOpen>() {
        // Not boxed again: anyhow then shows the `CircuitOpen` itself, for
        // `ErrorKind::of` and for `anyhow::Error::downcast_ref`.
        Ok(open) => Error::Middleware(anyhow::Error::new(*open)),
        Err(other) => Error::Middleware(anyhow::Error::new(Carried(other))),
    }
}

/// A rampart error inside a `reqwest_middleware::Error`, shown as itself.
///
/// `anyhow::Error::from_boxed` would hide the boxed error's type from
/// `source()` chains (its wrapper forwards to the boxed error's *own*
/// source); this wrapper is transparent too, but
/// [`ErrorKind::of`](crate::ErrorKind::of) looks inside it.
#[derive(Debug)]
pub(crate) struct Carried(pub(crate) BoxError);

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Carried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The default classifier of [`CircuitBreakerMiddleware`]: a 5xx response
/// or any error is a failure, any other response a success (a 4xx is the
/// caller's mistake, not the server's failure, but not ignored either: it
/// proves the server answers).
///
/// Generic over the error type, so the same classifier also suits a
/// breaker or a [`Command`](crate::Command) over a `reqwest::Client` (whose
/// error is `reqwest::Error`, or `BoxError` inside a command).
///
/// It is tower-http's `ServerErrorsAsFailures` rule (a breaker classifier
/// in `rampart::tower_http`, feature `tower-http`) for a
/// `reqwest::Response`, which is not an `http::Response`. Over a
/// [`ReqwestEndpoint`](super::ReqwestEndpoint), whose responses are
/// `http::Response<Bytes>`, tower-http's classifier fits as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrorsAsFailures;

impl<E> Classify<Response, E> for ServerErrorsAsFailures {
    fn classify(&self, result: &Result<Response, E>) -> Outcome {
        match result {
            Ok(response) if response.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}
