//! The breakers of a keyed layer: one per key, in a map bounded by least
//! recent use.

use super::super::config::Listener;
use super::super::handle::CircuitBreakerHandle;
use super::super::state::{Breaker, Permit, Settings};
use crate::internal::clock::{Clock, Micros};
use crate::internal::keyed::{Insert, KeyedMap};
use crate::internal::shard::{Lane, Lanes};
use crate::metrics::TARGET_CIRCUIT_BREAKER;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// Every breaker of one keyed layer, shared by the services built from it.
pub(crate) struct Keyed<K> {
    pub(crate) name: Arc<str>,
    settings: Settings,
    listeners: Arc<[Listener]>,
    map: KeyedMap<K, Slot>,
    clock: Clock,
}

/// One key's breaker, and when it was made.
struct Slot {
    breaker: Lanes<Breaker>,
    /// When the breaker was made, on the keyed layer's clock (the
    /// breaker's own clock starts then).
    born: Micros,
}

impl Slot {
    /// When it was last used, on the keyed layer's clock: least recently
    /// used first. The breaker notes the time its calls read anyway.
    fn rank(&self) -> Micros {
        self.born + self.breaker.shared().last_used()
    }
}

/// What a call with a key was told.
pub(crate) enum Admit {
    /// Rejected, and counted as short-circuited.
    Rejected,
    /// The key's breaker is disabled: nothing measured.
    Uncounted,
    /// Let through; the outcome goes to `breaker`.
    Admitted {
        breaker: Arc<Lane<Breaker>>,
        permit: Permit,
        started: Micros,
    },
}

impl<K> Keyed<K> {
    pub(crate) fn new(
        name: Arc<str>,
        settings: Settings,
        listeners: Arc<[Listener]>,
        max_keys: usize,
    ) -> Self
    where
        K: Hash + Eq,
    {
        Keyed {
            name,
            settings,
            listeners,
            map: KeyedMap::new(max_keys, false),
            clock: Clock::new(),
        }
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.map.max()
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.map.evicted()
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug> Keyed<K> {
    /// A new key's breaker: named `name/key` (the key in its `Debug`
    /// form), on a lean window (one shard, no latency histograms).
    #[cold]
    fn make(&self, key: &K) -> Slot {
        let name = format!("{}/{key:?}", self.name);
        let breaker = Breaker::for_key(
            name.into(),
            self.settings.clone(),
            self.listeners.iter().cloned().collect(),
        );
        Slot {
            breaker: Lanes::new(Arc::new(breaker)),
            born: self.clock.now(),
        }
    }

    /// Admits or rejects a call with `key`, making its breaker first if
    /// the key is new.
    ///
    /// The map's lock is held only to find the breaker: admission may
    /// move it to half-open, and the listeners told of that may read the
    /// map themselves (a handle's `get`).
    #[inline]
    pub(crate) fn admit(&self, key: &K) -> Admit {
        let (breaker, insert) =
            self.map
                .get_or_insert(key, || self.make(key), |slot| slot.breaker.pick());
        if insert == Insert::SweepDue {
            self.sweep(key);
        }
        let decision = breaker.acquire();
        // One read serves the key's last use, the rejection or the start
        // (a forced-open decision read none).
        let now = match decision {
            Err(Some(now)) => now,
            Err(None) | Ok(_) => breaker.now(),
        };
        breaker.touch(now);
        match decision {
            Err(_) => {
                breaker.reject(now);
                Admit::Rejected
            }
            Ok(Permit::Uncounted) => Admit::Uncounted,
            Ok(permit) => Admit::Admitted {
                breaker,
                permit,
                started: now,
            },
        }
    }

    /// `key`'s breaker, made now if the key is new.
    pub(crate) fn breaker(&self, key: &K) -> Arc<Breaker> {
        let (breaker, insert) =
            self.map
                .get_or_insert(key, || self.make(key), |slot| slot.breaker.shared().clone());
        if insert == Insert::SweepDue {
            self.sweep(key);
        }
        breaker
    }

    /// Over the bound: the least recently used keys go, with their state.
    #[cold]
    fn sweep(&self, inserted: &K) {
        let evicted = self.map.sweep(inserted, |_| false, Slot::rank);
        if evicted > 0 {
            tracing::info!(
                target: TARGET_CIRCUIT_BREAKER,
                layer = "circuit_breaker",
                name = &*self.name,
                event = "keys_evicted",
                evicted,
                max_keys = self.map.max(),
                "keyed circuit breaker at its key bound: least recently used keys forgotten"
            );
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<Arc<Breaker>> {
        self.map.get(key, |slot| slot.breaker.shared().clone())
    }

    pub(crate) fn remove(&self, key: &K) -> bool {
        self.map.remove(key).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every key and its breaker, in no set order.
    pub(crate) fn all(&self) -> Vec<(K, CircuitBreakerHandle)> {
        let mut all = Vec::new();
        self.map.for_each(|key, slot| {
            all.push((
                key.clone(),
                CircuitBreakerHandle::new(slot.breaker.shared().clone()),
            ));
        });
        all
    }
}

impl<K> fmt::Debug for Keyed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("name", &self.name)
            .field("max_keys", &self.map.max())
            .finish_non_exhaustive()
    }
}

/// The registry's view of a keyed layer, whatever its key type: its
/// breakers, for [`Registry::breakers`](crate::registry::Registry::breakers)
/// and so the stream.
pub(crate) trait Report: Send + Sync {
    fn breakers(&self) -> Vec<CircuitBreakerHandle>;
}

impl<K: Hash + Eq + Clone + fmt::Debug + Send + Sync> Report for Keyed<K> {
    fn breakers(&self) -> Vec<CircuitBreakerHandle> {
        let mut breakers: Vec<_> = self.all().into_iter().map(|(_, b)| b).collect();
        breakers.sort_by(|a, b| a.name().cmp(b.name()));
        breakers
    }
}
