//! The fallback service.

use super::function::FallbackFn;
use super::future::ResponseFuture;
use super::stats::Shared;
use crate::internal::shard::Lanes;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Serves a fallback response when a call fails, so a failing dependency
/// degrades a feature instead of failing the request; made by
/// [`FallbackLayer`](super::FallbackLayer).
///
/// Every error reaches the fallback with its [`Cause`](super::Cause): put
/// it above a breaker, a bulkhead and a timeout to cover short-circuits,
/// rejections, timeouts and failures alike. Errors from `poll_ready` are
/// not calls and pass through.
pub struct Fallback<S, FB> {
    inner: S,
    shared: Arc<Lanes<Shared<FB>>>,
}

impl<S, FB> Fallback<S, FB> {
    pub(crate) fn new(inner: S, shared: Arc<Lanes<Shared<FB>>>) -> Self {
        Fallback { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, FB, Request> Service<Request> for Fallback<S, FB>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    FB: FallbackFn<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, FB, FB::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture::new(self.inner.call(request), self.shared.pick())
    }
}

impl<S: Clone, FB> Clone for Fallback<S, FB> {
    fn clone(&self) -> Self {
        Fallback::new(self.inner.clone(), self.shared.clone())
    }
}

impl<S: fmt::Debug, FB> fmt::Debug for Fallback<S, FB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("name", &self.shared.shared().stats.name)
            .finish()
    }
}
