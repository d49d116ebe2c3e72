//! The hedge service.

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::internal::clock::Reading;
use crate::retry::Policy;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Hedges slow calls to its inner service; made by a
/// [`HedgeLayer`](super::HedgeLayer).
///
/// `S: Clone` and `Req: Clone`: a hedge is a copy of the request sent
/// through a clone of the service, readied first.
pub struct Hedge<S, P> {
    inner: S,
    shared: Arc<Shared<P>>,
}

impl<S, P> Hedge<S, P> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<P>>) -> Self {
        Hedge { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, P, Req> Service<Req> for Hedge<S, P>
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
        let shared = &self.shared;
        // One clock read: the cap's deposit, the delay and the start.
        let now = tokio::time::Instant::now();
        shared.cap.deposit_at(Reading::Tokio(now));
        let hedge = if shared.policy.may_send_twice(&request) {
            shared
                .tracker
                .delay(now)
                // No hedge that the caller's deadline would cut off first.
                .filter(|delay| !crate::internal::deadline::leaves_no_time_for(*delay))
                .map(|delay| (self.inner.clone(), request.clone(), delay))
        } else {
            None
        };
        let first = self.inner.call(request);
        ResponseFuture::new(shared.clone(), first, hedge, now)
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Hedge<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}
