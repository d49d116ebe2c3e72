//! The catch-panic service.

use super::error::Panicked;
use super::future::ResponseFuture;
use crate::BoxError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};
use tower_service::Service;

/// Turns a panic in the inner service's `call` or response future into a
/// [`Panicked`] error; made by [`CatchPanicLayer`](super::CatchPanicLayer).
///
/// A panic in `poll_ready` is not caught: it is not a call, and a service
/// that panics there is broken for every call, not failing one.
///
/// The inner service and its future are assumed unwind-safe (as tokio
/// assumes of a task): after a panic the future is dropped and never
/// polled again; the service is used again for later calls.
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
    contain: bool,
}

impl<S> CatchPanic<S> {
    pub(crate) fn new(inner: S, contain: bool) -> Self {
        CatchPanic { inner, contain }
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

impl<S, Request> Service<Request> for CatchPanic<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        if !self.contain {
            return ResponseFuture::new(self.inner.call(request), false);
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(response) => ResponseFuture::new(response, true),
            Err(payload) => ResponseFuture::panicked(Panicked::from_payload(&*payload)),
        }
    }
}
