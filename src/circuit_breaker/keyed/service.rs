//! The keyed circuit breaker service.

use super::super::classify::{Classify, DefaultClassifier};
use super::super::future::ResponseFuture;
use super::super::service::CallGuard;
use super::handle::KeyedCircuitBreakerHandle;
use super::state::{Admit, Keyed};
use crate::BoxError;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// One circuit breaker per key taken from each request; made by
/// [`KeyedCircuitBreakerLayer`](super::KeyedCircuitBreakerLayer).
///
/// `poll_ready` is the inner service's: the key, and so the breaker, is
/// known only in `call`, which admits or rejects the call there (a
/// rejected call resolves to [`CircuitOpen`](crate::circuit_breaker::CircuitOpen)).
/// When it rejects, whatever the inner service reserved when it was made
/// ready (a bulkhead slot, a `Buffer` place) is given back by replacing it
/// with a clone of itself, as [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker)
/// does: this is why the inner service must be `Clone`.
///
/// A half-open key lets its probes through in `call`; a probe's outcome
/// and the rest of each key's life are a plain breaker's (see the
/// [module docs](crate::circuit_breaker)), panics in the inner service
/// included.
pub struct KeyedCircuitBreaker<S, K, F, C = DefaultClassifier> {
    inner: S,
    keyed: Arc<Keyed<K>>,
    key: F,
    classify: C,
    /// Whether `inner.poll_ready` was called since the inner's last `call`.
    inner_armed: bool,
}

// ===== impl KeyedCircuitBreaker =====

impl<S, K, F, C> KeyedCircuitBreaker<S, K, F, C> {
    pub(crate) fn new(inner: S, keyed: Arc<Keyed<K>>, key: F, classify: C) -> Self {
        KeyedCircuitBreaker {
            inner,
            keyed,
            key,
            classify,
            inner_armed: false,
        }
    }

    /// A handle to the breakers this service shares.
    pub fn handle(&self) -> KeyedCircuitBreakerHandle<K> {
        KeyedCircuitBreakerHandle::new(self.keyed.clone())
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

impl<S, K, F, C, Request> Service<Request> for KeyedCircuitBreaker<S, K, F, C>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone + fmt::Debug,
    F: Fn(&Request) -> K,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner_armed = true;
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let key = (self.key)(&request);
        match self.keyed.admit(&key) {
            Admit::Rejected => {
                // Give back what the inner reserved for this call.
                if std::mem::take(&mut self.inner_armed) {
                    self.inner = self.inner.clone();
                }
                ResponseFuture::rejected()
            }
            Admit::Uncounted => {
                self.inner_armed = false;
                ResponseFuture::uncounted(self.inner.call(request))
            }
            Admit::Admitted {
                breaker,
                permit,
                started,
            } => {
                self.inner_armed = false;
                let guard = CallGuard {
                    breaker: &breaker,
                    permit,
                    started,
                };
                let response = self.inner.call(request);
                std::mem::forget(guard);
                ResponseFuture::admitted(response, breaker, permit, started, self.classify.clone())
            }
        }
    }
}

impl<S: Clone, K, F: Clone, C: Clone> Clone for KeyedCircuitBreaker<S, K, F, C> {
    fn clone(&self) -> Self {
        KeyedCircuitBreaker::new(
            self.inner.clone(),
            self.keyed.clone(),
            self.key.clone(),
            self.classify.clone(),
        )
    }
}

impl<S: fmt::Debug, K, F, C> fmt::Debug for KeyedCircuitBreaker<S, K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("breakers", &self.keyed)
            .finish_non_exhaustive()
    }
}
