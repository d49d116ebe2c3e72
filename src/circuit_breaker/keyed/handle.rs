//! Reading and steering every key's breaker.

use super::super::handle::CircuitBreakerHandle;
use super::state::Keyed;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// A cloneable handle to the breakers of one
/// [`KeyedCircuitBreakerLayer`](super::KeyedCircuitBreakerLayer): list
/// every key's breaker, read or force one.
///
/// ```
/// use rampart::circuit_breaker::{CircuitBreakerLayer, State};
///
/// let layer = CircuitBreakerLayer::builder("hosts")
///     .keyed(|host: &&str| host.to_string())
///     .build()?;
/// let hosts = layer.handle();
/// assert!(hosts.get(&"a.example".to_string()).is_none()); // no call yet
///
/// // Force one host's breaker open before any call, from an admin endpoint.
/// hosts.breaker(&"b.example".to_string()).force_open();
/// assert_eq!(hosts.len(), 1);
/// let (key, breaker) = &hosts.breakers()[0];
/// assert_eq!(key, "b.example");
/// assert_eq!(breaker.name(), "hosts/\"b.example\"");
/// assert_eq!(breaker.state(), State::ForcedOpen);
/// # Ok::<(), rampart::ConfigError>(())
/// ```
pub struct KeyedCircuitBreakerHandle<K> {
    keyed: Arc<Keyed<K>>,
}

impl<K> KeyedCircuitBreakerHandle<K> {
    pub(crate) fn new(keyed: Arc<Keyed<K>>) -> Self {
        KeyedCircuitBreakerHandle { keyed }
    }

    /// The layer's name; each key's breaker is named `name/key`, with the
    /// key in its `Debug` form.
    pub fn name(&self) -> &str {
        &self.keyed.name
    }

    /// The bound on keys.
    pub fn max_keys(&self) -> usize {
        self.keyed.max_keys()
    }

    /// Keys forgotten, with their breakers, because the bound was reached.
    pub fn evicted(&self) -> u64 {
        self.keyed.evicted()
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug> KeyedCircuitBreakerHandle<K> {
    /// Keys held now.
    pub fn len(&self) -> usize {
        self.keyed.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `key`'s breaker, if the key is held.
    pub fn get(&self, key: &K) -> Option<CircuitBreakerHandle> {
        self.keyed.get(key).map(CircuitBreakerHandle::new)
    }

    /// `key`'s breaker, made now (closed) if the key is not held: to force
    /// a key open or closed before its first call.
    pub fn breaker(&self, key: &K) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.keyed.breaker(key))
    }

    /// Every key held and its breaker, in no set order.
    pub fn breakers(&self) -> Vec<(K, CircuitBreakerHandle)> {
        self.keyed.all()
    }

    /// Forgets `key` and its breaker's state; its next call starts over
    /// with a closed breaker. Returns whether it was held.
    pub fn remove(&self, key: &K) -> bool {
        self.keyed.remove(key)
    }
}

impl<K> Clone for KeyedCircuitBreakerHandle<K> {
    fn clone(&self) -> Self {
        KeyedCircuitBreakerHandle {
            keyed: self.keyed.clone(),
        }
    }
}

impl<K> fmt::Debug for KeyedCircuitBreakerHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyedCircuitBreakerHandle")
            .field(&self.keyed)
            .finish()
    }
}
