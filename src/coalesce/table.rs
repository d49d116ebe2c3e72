//! The calls in flight, by key, and the statistics of one coalescer.

use crate::metrics::{debug_enabled, event_counter, TARGET_COALESCE};
use futures_util::future::{Shared, WeakShared};
use metrics::Counter;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The `layer` label and field of the coalescer's metrics and events.
pub(super) const LAYER: &str = "coalesce";

/// The calls in flight of one coalesced service (and its clones).
pub(crate) struct Table<K, F: Future> {
    flights: Mutex<Flights<K, F>>,
    pub(super) stats: Arc<Stats>,
}

struct Flights<K, F: Future> {
    by_key: HashMap<K, Entry<F>>,
    /// Tells a flight from a later one for the same key.
    next: u64,
}

struct Entry<F: Future> {
    id: u64,
    joined: usize,
    flight: WeakShared<F>,
}

impl<K: Hash + Eq, F: Future> Table<K, F> {
    pub(super) fn new(stats: Arc<Stats>) -> Self {
        Table {
            flights: Mutex::new(Flights {
                by_key: HashMap::new(),
                next: 0,
            }),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Flights<K, F>> {
        // A panic never leaves the map half-written (each change is one
        // insert or remove): a poisoned lock still holds a sound map.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key`, or, with none (or a dead one), runs
    /// `start` and lists the flight it returns; all under one lock, so two
    /// callers of one key never both start. Returns the flight, its id and
    /// whether this caller started it; `None` when `max_waiters` callers
    /// have joined it already.
    pub(super) fn join_or_start(
        &self,
        key: &K,
        max_waiters: usize,
        start: impl FnOnce() -> Shared<F>,
    ) -> Option<(Shared<F>, u64, bool)>
    where
        K: Clone,
    {
        let mut flights = self.lock();
        if let Some(entry) = flights.by_key.get_mut(key) {
            if let Some(flight) = entry.flight.upgrade() {
                if entry.joined >= max_waiters {
                    drop(flights);
                    self.stats.rejected();
                    return None;
                }
                entry.joined += 1;
                let id = entry.id;
                drop(flights);
                self.stats.joined();
                return Some((flight, id, false));
            }
        }
        flights.next += 1;
        let id = flights.next;
        let flight = start();
        let weak = flight.downgrade().expect("a new flight has not completed");
        flights.by_key.insert(
            key.clone(),
            Entry {
                id,
                joined: 0,
                flight: weak,
            },
        );
        drop(flights);
        self.stats.called();
        Some((flight, id, true))
    }

    /// Forgets flight `id` of `key` once it has answered: later callers
    /// start a new call.
    pub(super) fn landed(&self, key: &K, id: u64) {
        let mut flights = self.lock();
        if flights.by_key.get(key).is_some_and(|e| e.id == id) {
            flights.by_key.remove(key);
        }
    }

    /// Forgets flight `id` of `key` if every caller has gone (and the call
    /// with them), so an abandoned key leaves nothing behind.
    pub(super) fn abandon(&self, key: &K, id: u64) {
        let mut flights = self.lock();
        let gone = flights
            .by_key
            .get(key)
            .is_some_and(|e| e.id == id && e.flight.upgrade().is_none());
        if gone {
            flights.by_key.remove(key);
        }
    }

    /// Calls in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.lock().by_key.len()
    }
}

/// Counts of one coalescer, shared with its handles.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: Arc<str>,
    pub(crate) max_waiters: usize,
    calls: AtomicU64,
    joined: AtomicU64,
    rejected: AtomicU64,
    retried: AtomicU64,
    call_counter: Counter,
    joined_counter: Counter,
    rejected_counter: Counter,
    retried_counter: Counter,
}

impl Stats {
    pub(super) fn new(name: Arc<str>, max_waiters: usize) -> Self {
        Stats {
            call_counter: event_counter(LAYER, &name, "call"),
            joined_counter: event_counter(LAYER, &name, "joined"),
            rejected_counter: event_counter(LAYER, &name, "rejected"),
            retried_counter: event_counter(LAYER, &name, "retried"),
            name,
            max_waiters,
            calls: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }

    fn called(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.call_counter.increment(1);
    }

    fn joined(&self) {
        self.joined.fetch_add(1, Ordering::Relaxed);
        self.joined_counter.increment(1);
    }

    fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.rejected_counter.increment(1);
        if debug_enabled() {
            rejected_event(&self.name);
        }
    }

    /// A joined caller of a failed call calls again (successes only).
    pub(super) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        self.retried_counter.increment(1);
    }

    pub(super) fn retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    pub(super) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    pub(super) fn joins(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }
    pub(super) fn rejections(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

#[cold]
#[inline(never)]
fn rejected_event(name: &str) {
    tracing::debug!(
        target: TARGET_COALESCE,
        layer = LAYER,
        name,
        event = "rejected",
        "coalescer rejected a call: too many callers waiting for the same call"
    );
}
