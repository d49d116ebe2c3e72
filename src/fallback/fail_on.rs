//! Responses that are failures: turned into errors, so that a fallback
//! (and a retry) sees them.

use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A response the dependency sent that the caller calls a failure (an HTTP
/// 500, say), carried as an error: made by [`FailOn`], usually through
/// [`CommandBuilder::fail_on`](crate::command::CommandBuilder::fail_on).
///
/// [`ErrorKind::of`](crate::ErrorKind::of) says
/// [`Inner`](crate::ErrorKind::Inner): the dependency's own failure. A
/// fallback reads the response back from its
/// [`Cause`](super::Cause) with [`FailedResponse::of`].
pub struct FailedResponse<R> {
    response: R,
}

impl<R: 'static> FailedResponse<R> {
    /// The response inside `error`, if it is a `FailedResponse<R>`.
    pub fn of(error: &BoxError) -> Option<&R> {
        error
            .downcast_ref::<FailedResponse<R>>()
            .map(|f| &f.response)
    }

    /// The response itself.
    pub fn response(&self) -> &R {
        &self.response
    }

    /// Unwraps the response.
    pub fn into_response(self) -> R {
        self.response
    }
}

impl<R> fmt::Debug for FailedResponse<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedResponse").finish_non_exhaustive()
    }
}

impl<R> fmt::Display for FailedResponse<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the dependency answered with a response counted as a failure")
    }
}

impl<R> std::error::Error for FailedResponse<R> {}

/// Turns the responses `predicate` calls failures into
/// [`FailedResponse`] errors; see [`FailOn`].
pub struct FailOnLayer<F> {
    predicate: Arc<F>,
}

impl<F> FailOnLayer<F> {
    /// Fails the responses for which `predicate` is true, e.g.
    /// `|response: &http::Response<B>| response.status().is_server_error()`.
    pub fn new(predicate: F) -> Self {
        FailOnLayer {
            predicate: Arc::new(predicate),
        }
    }
}

impl<F> Clone for FailOnLayer<F> {
    fn clone(&self) -> Self {
        FailOnLayer {
            predicate: self.predicate.clone(),
        }
    }
}

impl<F> fmt::Debug for FailOnLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailOnLayer").finish_non_exhaustive()
    }
}

impl<S, F> Layer<S> for FailOnLayer<F> {
    type Service = FailOn<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        FailOn {
            inner,
            predicate: self.predicate.clone(),
        }
    }
}

/// Turns responses its predicate calls failures into [`FailedResponse`]
/// errors, so the layers above (a breaker, a retry, a fallback) treat them
/// as the failed calls they are. Other responses and errors pass as they
/// are. A failed response costs one allocation (its box as an error).
pub struct FailOn<S, F> {
    inner: S,
    predicate: Arc<F>,
}

impl<S: Clone, F> Clone for FailOn<S, F> {
    fn clone(&self) -> Self {
        FailOn {
            inner: self.inner.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for FailOn<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailOn")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, Req> Service<Req> for FailOn<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: Send + Sync + 'static,
    F: Fn(&S::Response) -> bool,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = FailOnFuture<S::Future, F>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        FailOnFuture {
            response: self.inner.call(request),
            predicate: self.predicate.clone(),
        }
    }
}

pin_project! {
    /// Response future of [`FailOn`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner call.
    pub struct FailOnFuture<Fut, F> {
        #[pin]
        response: Fut,
        predicate: Arc<F>,
    }
}

impl<Fut, F> fmt::Debug for FailOnFuture<Fut, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FailOnFuture")
    }
}

impl<Fut, F, R, E> Future for FailOnFuture<Fut, F>
where
    Fut: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    R: Send + Sync + 'static,
    F: Fn(&R) -> bool,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.response.poll(cx)).map_err(Into::into)?;
        if (this.predicate)(&response) {
            return Poll::Ready(Err(Box::new(FailedResponse { response })));
        }
        Poll::Ready(Ok(response))
    }
}
