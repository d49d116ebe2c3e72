//! The retry service.

use super::future::ResponseFuture;
use super::layer::Shared;
use super::policy::Policy;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Retries failed calls to its inner service; made by a
/// [`RetryLayer`](super::RetryLayer), whose docs give the rules.
///
/// `S: Clone`: a retry is sent through a clone of the inner service, made
/// when the call starts (as tower's `Retry` does), and readied before each
/// retry.
pub struct Retry<S, P> {
    inner: S,
    shared: Arc<Shared<P>>,
}

impl<S, P> Retry<S, P> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<P>>) -> Self {
        Retry { inner, shared }
    }

    /// A handle to read the layer's counts.
    pub fn handle(&self) -> super::RetryHandle {
        super::RetryHandle::of(&self.shared)
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

impl<S: Clone, P> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, P, Req> Service<Req> for Retry<S, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, P, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.shared.budget.deposit();
        // The readied service makes the first attempt; a clone stays for
        // the retries, with a copy of the request.
        let retries = (self.shared.max_attempts > 1).then(|| (self.inner.clone(), request.clone()));
        let response = self.inner.call(request);
        ResponseFuture::new(self.shared.clone(), response, retries)
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}
