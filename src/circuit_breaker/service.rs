//! The circuit breaker service.

use super::classify::{Classify, DefaultClassifier};
use super::future::ResponseFuture;
use super::handle::CircuitBreakerHandle;
use super::state::{Breaker, Permit};
use crate::internal::shard::Lanes;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Rejects calls to a failing dependency so it can recover and callers fail
/// fast; made by [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// `poll_ready` is where the breaker admits the next call: when it rejects,
/// `poll_ready` is ready at once without waiting on the inner service (it
/// never fails because the breaker is open: tower treats a readiness error
/// as fatal), and the next `call` resolves to
/// [`CircuitOpen`](super::CircuitOpen). When it admits, `poll_ready` waits
/// for the inner service, so a bulkhead beneath is only asked for a slot
/// for a call that will be made. A half-open probe place taken by a
/// service that is dropped before its call is given back.
pub struct CircuitBreaker<S, C = DefaultClassifier> {
    inner: S,
    breaker: Arc<Lanes<Breaker>>,
    classify: C,
    admission: Admission,
}

/// What `poll_ready` decided for the next call.
enum Admission {
    Idle,
    Admitted(Permit),
    Probe(ProbePlace),
    Rejected,
}

/// A half-open probe place, given back if dropped unused.
struct ProbePlace {
    breaker: Arc<Breaker>,
    permit: Option<Permit>,
}

impl ProbePlace {
    fn take(mut self) -> Permit {
        self.permit.take().expect("taken once")
    }
}

impl Drop for ProbePlace {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.release(permit);
        }
    }
}

// ===== impl CircuitBreaker =====

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Lanes<Breaker>>, classify: C) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            classify,
            admission: Admission::Idle,
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
        // A rejection is looked at again on every poll: the open time may
        // have run out since (a Buffer worker polls long before it calls).
        if let Admission::Idle | Admission::Rejected = self.admission {
            let breaker = self.breaker.shared();
            self.admission = match breaker.acquire() {
                None => Admission::Rejected,
                Some(permit @ Permit::Probe { .. }) => Admission::Probe(ProbePlace {
                    breaker: breaker.clone(),
                    permit: Some(permit),
                }),
                Some(permit) => Admission::Admitted(permit),
            };
        }
        match self.admission {
            Admission::Rejected => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let breaker = self.breaker.shared();
        let permit = match std::mem::replace(&mut self.admission, Admission::Idle) {
            // Admitted when polled, but the breaker has changed state since
            // (a Buffer worker polls long before it calls): decide again.
            Admission::Admitted(permit) if !breaker.is_current(permit) => breaker.acquire(),
            Admission::Admitted(permit) => Some(permit),
            Admission::Probe(place) => Some(place.take()),
            Admission::Rejected => None,
            // `call` without `poll_ready`: decide now.
            Admission::Idle => breaker.acquire(),
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
        // A clone has not been polled ready: it inherits no admission.
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
