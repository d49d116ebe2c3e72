//! The deadline service.

use super::future::ResponseFuture;
use super::layer::DeadlineLayer;
use super::request::WithDeadline;
use super::Deadline;
use crate::BoxError;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_service::Service;

/// Holds calls to their deadline; made by a [`DeadlineLayer`].
///
/// `S: Clone`: a call rejected at once gives back what the readied inner
/// service reserved by swapping in a fresh clone of it, as a
/// [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker) does for a
/// short-circuit.
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S> DeadlineService<S> {
    pub(crate) fn new(inner: S, layer: DeadlineLayer) -> Self {
        DeadlineService { inner, layer }
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

impl<S, Req> Service<Req> for DeadlineService<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: WithDeadline,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let now = Instant::now();
        let deadline = [
            request.deadline(now).map(|d| d.instant()),
            crate::internal::deadline::current(),
            self.layer.budget.map(|budget| now + budget),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(deadline) = deadline else {
            return ResponseFuture::unbounded(self.inner.call(request));
        };
        if deadline <= now {
            // Rejected at once: the readied service is dropped uncalled,
            // freeing what it reserved.
            let fresh = self.inner.clone();
            drop(std::mem::replace(&mut self.inner, fresh));
            self.layer.rejected.increment(1);
            return ResponseFuture::rejected();
        }
        request.set_deadline(Deadline::at(deadline), now);
        let inner = &mut self.inner;
        let response = crate::internal::deadline::within(deadline, || inner.call(request));
        ResponseFuture::bounded(response, deadline, self.layer.cut.clone())
    }
}
