//! The timeout service.

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::internal::clock::Clock;
use crate::metrics::{debug_enabled, TARGET_TIMEOUT};
use crate::BoxError;
use metrics::Counter;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Fails a call with [`Elapsed`](super::Elapsed) when the inner service has
/// not answered within the timeout, and cancels it (drops its future) at
/// that moment; made by [`TimeoutLayer`](super::TimeoutLayer).
///
/// The deadline runs from `call` (beneath a circuit breaker, as in a
/// command, from the breaker's `call`, whose clock read the timeout
/// shares: nanoseconds earlier, one read fewer). Readiness is the inner service's: waiting
/// in `poll_ready` is not timed (put a bulkhead with `max_wait` above to
/// bound that). Beneath a circuit breaker, a timeout counts as a failure.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    shared: Arc<Shared>,
    clock: Clock,
    timed_out: Counter,
}

impl<S> Timeout<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, clock: Clock, timed_out: Counter) -> Self {
        Timeout {
            inner,
            shared,
            clock,
            timed_out,
        }
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

impl<S, Request> Service<Request> for Timeout<S>
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
        let own = self.clock.instant_after(self.shared.timeout());
        // The earlier of its own and the caller's deadline, if one is in
        // force: past the caller's, nobody waits for the answer.
        let (deadline, by_caller) = match crate::internal::deadline::current() {
            Some(caller) if caller < own => (caller, true),
            _ => (own, false),
        };
        // The future names the timeout in its event only if someone listens:
        // cloning the name on every call would write a shared reference
        // count, where asking costs a load and a branch.
        let name = if debug_enabled() {
            listened_to(&self.shared.name)
        } else {
            None
        };
        ResponseFuture::new(
            self.inner.call(request),
            deadline,
            by_caller,
            self.timed_out.clone(),
            name,
        )
    }
}

/// The name for a call's future, if its timeout event is enabled.
#[cold]
#[inline(never)]
fn listened_to(name: &Arc<str>) -> Option<Arc<str>> {
    tracing::enabled!(target: TARGET_TIMEOUT, tracing::Level::DEBUG).then(|| name.clone())
}
