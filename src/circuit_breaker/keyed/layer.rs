//! The keyed breaker's builder and layer.

use super::super::classify::DefaultClassifier;
use super::super::config::Builder as BreakerBuilder;
use super::super::layer::CircuitBreakerLayer;
use super::handle::KeyedCircuitBreakerHandle;
use super::service::KeyedCircuitBreaker;
use super::state::{Keyed, Report};
use crate::error::{ConfigError, Validator};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use tower_layer::Layer;

/// Default bound on the keys (and so breakers) of a keyed layer. Each
/// key's breaker takes about 2.2 KB (measured by `benches/keyed.rs`: its
/// rolling window's counts; it keeps no latency histograms), so 1000 keys
/// take about 2.2 MB.
pub const DEFAULT_MAX_KEYS: usize = 1000;

const MAX_KEYS: usize = 1 << 24;

/// Builds a [`KeyedCircuitBreakerLayer`]: made by
/// [`circuit_breaker::Builder::keyed`](super::super::Builder::keyed), with
/// the breaker's options already set.
pub struct Builder<K, F, C = DefaultClassifier> {
    breaker: BreakerBuilder<C>,
    key: F,
    max_keys: usize,
    _key: PhantomData<fn() -> K>,
}

impl<K, F, C> Builder<K, F, C> {
    pub(crate) fn new(breaker: BreakerBuilder<C>, key: F) -> Self {
        Builder {
            breaker,
            key,
            max_keys: DEFAULT_MAX_KEYS,
            _key: PhantomData,
        }
    }

    /// The most keys held at once; past it, the least recently used keys
    /// are forgotten with their breakers' state (an open breaker
    /// included: its key starts over closed).
    ///
    /// Default 1000 ([`DEFAULT_MAX_KEYS`]); valid from 1 to 2^24.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Checks every option and builds the layer. Every service built from
    /// the layer, or from its clones, shares one breaker per key.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range,
    /// the breaker's included.
    pub fn build(self) -> Result<KeyedCircuitBreakerLayer<K, F, C>, ConfigError>
    where
        K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
    {
        let mut v = Validator::new(format!("keyed circuit breaker {:?}", self.breaker.name()));
        v.check((1..=MAX_KEYS).contains(&self.max_keys), "max_keys", || {
            format!("must be from 1 to {MAX_KEYS}, got {}", self.max_keys)
        });
        let parts = v.absorb(self.breaker.into_parts());
        v.finish()?;
        let parts = parts.expect("validated");
        let keyed = Arc::new(Keyed::new(
            parts.name.into(),
            parts.settings,
            parts.listeners.into(),
            self.max_keys,
        ));
        let report: Arc<dyn Report> = keyed.clone();
        parts
            .registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register_keyed_breakers(&report);
        Ok(KeyedCircuitBreakerLayer {
            keyed,
            key: self.key,
            classify: parts.classify,
        })
    }
}

impl<K, F, C> fmt::Debug for Builder<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("breaker", &self.breaker)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

/// Wraps services in a [`KeyedCircuitBreaker`]: one circuit breaker per
/// key taken from each request, all with the same settings. All services
/// built from one layer, or from its clones, share the breakers.
///
/// Built with [`circuit_breaker::Builder::keyed`](super::super::Builder::keyed);
/// see the [module docs](super::super#one-breaker-per-key).
#[derive(Clone)]
pub struct KeyedCircuitBreakerLayer<K, F, C = DefaultClassifier> {
    keyed: Arc<Keyed<K>>,
    key: F,
    classify: C,
}

impl<K, F, C> KeyedCircuitBreakerLayer<K, F, C> {
    /// A handle to every key's breaker: list them, read one, force one.
    pub fn handle(&self) -> KeyedCircuitBreakerHandle<K> {
        KeyedCircuitBreakerHandle::new(self.keyed.clone())
    }

    /// A plain [`CircuitBreakerLayer`] over `key`'s breaker (made now if
    /// the key is new): for a service that always calls with one key, such
    /// as a balancer's endpoint (see the [module docs](super::super#breakers-for-a-balancers-endpoints)).
    ///
    /// The breaker stays this layer's while it is among the `max_keys`
    /// most recently used: a call through the returned layer does not
    /// count as a use, and once the key is forgotten, the returned layer
    /// keeps a breaker the handle no longer lists. Give a layer that
    /// serves a balancer's endpoints a bound above their number.
    pub fn for_key(&self, key: &K) -> CircuitBreakerLayer<C>
    where
        K: Hash + Eq + Clone + fmt::Debug,
        C: Clone,
    {
        CircuitBreakerLayer::from_parts(self.keyed.breaker(key), self.classify.clone())
    }
}

impl<S, K, F: Clone, C: Clone> Layer<S> for KeyedCircuitBreakerLayer<K, F, C> {
    type Service = KeyedCircuitBreaker<S, K, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker::new(
            inner,
            self.keyed.clone(),
            self.key.clone(),
            self.classify.clone(),
        )
    }
}

impl<K, F, C> fmt::Debug for KeyedCircuitBreakerLayer<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("breakers", &self.keyed)
            .finish_non_exhaustive()
    }
}
