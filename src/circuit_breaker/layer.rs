//! The circuit breaker layer.

use super::classify::DefaultClassifier;
use super::config::Builder;
use super::handle::CircuitBreakerHandle;
use super::service::CircuitBreaker;
use super::state::Breaker;
use crate::internal::shard::Lanes;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in a [`CircuitBreaker`]; all services built from one layer,
/// or from its clones, share one breaker.
///
/// Built with [`CircuitBreakerLayer::builder`]; see the
/// [module docs](super) for an example.
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    breaker: Arc<Lanes<Breaker>>,
    classify: C,
}

impl CircuitBreakerLayer {
    /// Starts a breaker named `name` (its metrics label and log field) with
    /// Hystrix's defaults.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }
}

impl<C> CircuitBreakerLayer<C> {
    pub(crate) fn from_parts(breaker: Arc<Breaker>, classify: C) -> Self {
        CircuitBreakerLayer {
            breaker: Arc::new(Lanes::new(breaker)),
            classify,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Breaker> {
        self.breaker.shared()
    }

    /// A handle to the shared breaker: read its state and rates, or force it.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breaker.shared().clone())
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.breaker.clone(), self.classify.clone())
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", self.breaker.shared())
            .finish_non_exhaustive()
    }
}
