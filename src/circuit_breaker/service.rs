//! The circuit breaker service.

use super::classify::{Classify, DefaultClassifier};
use super::future::ResponseFuture;
use super::handle::CircuitBreakerHandle;
use super::state::{Breaker, Permit};
use crate::shard::Lanes;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Rejects calls to a failing dependency so it can recover and callers fail
/// fast; made by [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// `poll_ready` never fails because the breaker is open (tower treats a
/// readiness error as fatal). While the breaker rejects calls, `poll_ready`
/// is ready at once without waiting on the inner service, and the next
/// `call` resolves to [`CircuitOpen`](super::CircuitOpen).
pub struct CircuitBreaker<S, C = DefaultClassifier> {
    inner: S,
    breaker: Arc<Lanes<Breaker>>,
    classify: C,
    /// `poll_ready` saw the breaker rejecting and did not wait for `inner`:
    /// the next call is rejected.
    reject_next: bool,
}

// ===== impl CircuitBreaker =====

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Lanes<Breaker>>, classify: C) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            classify,
            reject_next: false,
        }
    }

    /// A handle to the breaker this service shares.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breaker.shared().clone())
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

impl<S, C, Request> Service<Request> for CircuitBreaker<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.breaker.shared().would_reject() {
            self.reject_next = true;
            return Poll::Ready(Ok(()));
        }
        self.reject_next = false;
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let breaker = self.breaker.shared();
        let permit = if std::mem::take(&mut self.reject_next) {
            None
        } else {
            breaker.acquire()
        };
        match permit {
            None => {
                breaker.reject();
                ResponseFuture::rejected()
            }
            Some(Permit::Uncounted) => ResponseFuture::uncounted(self.inner.call(request)),
            Some(permit) => {
                let started = breaker.now();
                ResponseFuture::admitted(
                    self.inner.call(request),
                    self.breaker.pick(),
                    permit,
                    started,
                    self.classify.clone(),
                )
            }
        }
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        // A clone has not been polled ready: it must not inherit a rejection.
        CircuitBreaker::new(
            self.inner.clone(),
            self.breaker.clone(),
            self.classify.clone(),
        )
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", self.breaker.shared())
            .finish_non_exhaustive()
    }
}
