//! A concurrent map of state kept per key (a breaker per host, a rate
//! limit per tenant) with a bound on its keys, shared by the keyed circuit
//! breakers and the keyed rate limits.
//!
//! A hit costs a hash, a shard's read lock and a probe (dashmap), and
//! allocates nothing. Eviction never runs on a hit: it runs on the insert
//! path only, which already allocates, and in batches, so its cost is
//! spread over many inserts:
//!
//! - the map counts its inserts; when an insert brings the count past a
//!   mark, that inserting call sweeps (one sweep at a time; a call that
//!   finds a sweep running goes on without one);
//! - a sweep first drops what its owner calls idle (a rate limit's keys
//!   whose allowance is full again: forgetting them loses nothing), then,
//!   while more than `max` keys are left, the keys of lowest rank (least
//!   recently used, or nearest to a full allowance) down to 7/8 of `max`,
//!   so the next forced eviction is at least `max / 8` inserts away;
//! - the mark is then `max`, or with `early` sweeps, twice the keys left
//!   (at least 1024, at most `max`): idle keys are reclaimed as the map
//!   doubles, at an amortized O(1) per insert.
//!
//! The count is kept with relaxed atomics and re-read after each sweep:
//! inserts racing a sweep may leave the map a few keys (at most one per
//! racing thread) over `max` until the next sweep.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The fewest keys an early sweep waits for: below it, sweeping costs more
/// than the memory it could give back.
const MIN_EARLY_SWEEP: usize = 1024;

/// What [`KeyedMap::get_or_insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The key was there.
    Hit,
    /// The key is new.
    New,
    /// The key is new, and the map is due a [sweep](KeyedMap::sweep).
    SweepDue,
}

pub(crate) struct KeyedMap<K, V> {
    map: DashMap<K, V>,
    /// Keys held, about: +1 per insert, re-read after each sweep.
    len: AtomicUsize,
    /// An insert that brings `len` past this sweeps.
    next_sweep: AtomicUsize,
    max: usize,
    early: bool,
    sweeping: AtomicBool,
    /// Keys evicted over the bound (idle ones not included).
    evicted: AtomicU64,
}

impl<K: Hash + Eq, V> KeyedMap<K, V> {
    /// A map of at most `max` keys (at least 1); with `early`, idle keys
    /// are swept each time the map doubles, not only at the bound.
    pub(crate) fn new(max: usize, early: bool) -> Self {
        let max = max.max(1);
        KeyedMap {
            map: DashMap::new(),
            len: AtomicUsize::new(0),
            next_sweep: AtomicUsize::new(if early { MIN_EARLY_SWEEP.min(max) } else { max }),
            max,
            early,
            sweeping: AtomicBool::new(false),
            evicted: AtomicU64::new(0),
        }
    }

    /// `f` on the value for `key`, if present. Allocates nothing.
    #[inline]
    pub(crate) fn get<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.map.get(key).map(|v| f(&*v))
    }

    /// `f` on the value for `key`, inserting `make()` first if absent.
    /// Also says whether it inserted, and whether a sweep is due: the
    /// caller then calls [`sweep`](Self::sweep), with no reference into
    /// the map held.
    #[inline]
    pub(crate) fn get_or_insert<R>(
        &self,
        key: &K,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> (R, Insert)
    where
        K: Clone,
    {
        if let Some(v) = self.map.get(key) {
            return (f(&*v), Insert::Hit);
        }
        self.insert_slow(key, make, f)
    }

    #[cold]
    fn insert_slow<R>(
        &self,
        key: &K,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> (R, Insert)
    where
        K: Clone,
    {
        let (result, inserted) = match self.map.entry(key.clone()) {
            // Inserted by another thread since the look-up above.
            Entry::Occupied(held) => (f(held.get()), false),
            Entry::Vacant(place) => (f(&*place.insert(make())), true),
        };
        if !inserted {
            return (result, Insert::Hit);
        }
        let due =
            self.len.fetch_add(1, Ordering::Relaxed) + 1 > self.next_sweep.load(Ordering::Relaxed);
        (result, if due { Insert::SweepDue } else { Insert::New })
    }

    /// Drops every key `idle` says may go, then, if more than the bound
    /// are left, those of lowest `rank` (ties in no set order) down to 7/8
    /// of the bound; never `keep`, the key whose insert made the sweep due
    /// (on a paused clock every rank may tie, and the call that made a key
    /// must find it). Returns the keys it dropped, idle ones included; 0
    /// if another sweep was running.
    pub(crate) fn sweep<R: Ord + Copy>(
        &self,
        keep: &K,
        idle: impl Fn(&V) -> bool,
        rank: impl Fn(&V) -> R,
    ) -> usize {
        if self.sweeping.swap(true, Ordering::Acquire) {
            return 0;
        }
        let before = self.map.len();
        self.map.retain(|k, v| k == keep || !idle(v));
        let mut len = self.map.len();
        if len > self.max {
            let target = self.max - self.max / 8;
            let cut = len - target;
            let mut ranks: Vec<R> = (self.map.iter())
                .filter(|e| e.key() != keep)
                .map(|e| rank(e.value()))
                .collect();
            // Keys may have come or gone since `len` was read: cut what
            // the ranks read now say.
            let cut = cut.min(ranks.len());
            if cut > 0 {
                let threshold = *ranks.select_nth_unstable(cut - 1).1;
                let below = ranks.iter().filter(|&&r| r < threshold).count();
                // Exactly `cut` go: all below the threshold, and as many
                // at it as make up the rest.
                let mut at_threshold = cut - below;
                self.map.retain(|k, v| {
                    let r = rank(v);
                    if k == keep {
                        true
                    } else if r < threshold {
                        false
                    } else if r == threshold && at_threshold > 0 {
                        at_threshold -= 1;
                        false
                    } else {
                        true
                    }
                });
                self.evicted.fetch_add(cut as u64, Ordering::Relaxed);
            }
            len = self.map.len();
        }
        let dropped = before.saturating_sub(len);
        if dropped > 0 {
            self.map.shrink_to_fit();
        }
        self.len.store(len, Ordering::Relaxed);
        let next = if self.early {
            (2 * len).clamp(MIN_EARLY_SWEEP.min(self.max), self.max)
        } else {
            self.max
        };
        self.next_sweep.store(next, Ordering::Relaxed);
        self.sweeping.store(false, Ordering::Release);
        dropped
    }

    /// Keys held now (takes each shard's read lock in turn).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Removes `key`; returns its value if it was there.
    pub(crate) fn remove(&self, key: &K) -> Option<V> {
        let (_, v) = self.map.remove(key)?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(v)
    }

    /// `f` on every key and value (each shard read-locked in turn).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for entry in self.map.iter() {
            f(entry.key(), entry.value());
        }
    }
}

impl<K, V> KeyedMap<K, V> {
    /// The bound on keys.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Keys evicted over the bound since the map was made.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl<K, V> std::fmt::Debug for KeyedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedMap")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `key` with rank `rank`, sweeping when due, as the owners do.
    fn insert(map: &KeyedMap<u32, u64>, key: u32, rank: u64) {
        let (_, insert) = map.get_or_insert(&key, || rank, |_| ());
        if insert == Insert::SweepDue {
            map.sweep(&key, |_| false, |&r| r);
        }
    }

    #[test]
    fn evicts_the_lowest_ranks_down_to_seven_eighths_of_the_bound() {
        let map = KeyedMap::new(16, false);
        for key in 0..16 {
            insert(&map, key, u64::from(key));
        }
        assert_eq!(map.len(), 16);
        // The 17th key is one too many: 16 − 16/8 = 14 stay, the three
        // of lowest rank go.
        insert(&map, 16, 16);
        assert_eq!(map.len(), 14);
        assert_eq!(map.evicted(), 3);
        for gone in 0..3 {
            assert!(map.get(&gone, |_| ()).is_none(), "key {gone} stayed");
        }
        assert!(map.get(&3, |_| ()).is_some());
        assert!(map.get(&16, |_| ()).is_some());
    }

    #[test]
    fn ties_at_the_cut_still_evict_exactly_enough() {
        let map = KeyedMap::new(8, false);
        // Nine keys of one rank: 8 − 8/8 = 7 stay; two go, not all nine.
        for key in 0..9 {
            insert(&map, key, 7);
        }
        assert_eq!(map.len(), 7);
        assert_eq!(map.evicted(), 2);
    }

    #[test]
    fn early_sweeps_drop_idle_keys_as_the_map_doubles() {
        let map: KeyedMap<u32, u64> = KeyedMap::new(1 << 20, true);
        let mut sweeps = 0;
        for key in 0..5000u32 {
            let (_, insert) = map.get_or_insert(&key, || u64::from(key), |_| ());
            if insert == Insert::SweepDue {
                sweeps += 1;
                // Even keys are idle.
                map.sweep(&key, |&r| r % 2 == 0, |&r| r);
            }
        }
        // Sweeps at 1025 keys, then as the map doubles again.
        assert!(sweeps >= 2, "{sweeps} sweeps");
        assert!(map.len() < 5000, "{} keys", map.len());
        assert_eq!(map.evicted(), 0, "idle keys are not counted as evicted");
    }

    #[test]
    fn the_key_being_inserted_is_never_evicted() {
        // Every rank ties (a paused clock): the new key stays, whatever
        // order the map holds them in.
        for max in [1, 2, 8] {
            let map = KeyedMap::new(max, false);
            for key in 0..=max as u32 {
                insert(&map, key, 7);
                assert!(map.get(&key, |_| ()).is_some(), "max {max}, key {key}");
            }
        }
    }

    #[test]
    fn a_bound_of_one_keeps_the_newest_key() {
        let map = KeyedMap::new(1, false);
        insert(&map, 1, 1);
        insert(&map, 2, 2);
        assert!(map.get(&1, |_| ()).is_none());
        assert!(map.get(&2, |_| ()).is_some());
    }
}
