//! What one cache did: hits and misses, for its handle, the stream and
//! metrics.

use crate::metrics::event_counter;
use metrics::Counter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `layer` label and field of the cache's metrics and events.
pub(super) const LAYER: &str = "cache";

/// Shared by a cache layer, its services and handles, and a command
/// that holds it (for the stream).
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: Arc<str>,
    pub(crate) ttl: Duration,
    pub(crate) max_entries: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    hit_counter: Counter,
    miss_counter: Counter,
}

impl Stats {
    pub(super) fn new(name: Arc<str>, ttl: Duration, max_entries: u64) -> Self {
        Stats {
            hit_counter: event_counter(LAYER, &name, "hit"),
            miss_counter: event_counter(LAYER, &name, "miss"),
            name,
            ttl,
            max_entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.hit_counter.increment(1);
    }

    #[inline]
    pub(super) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.miss_counter.increment(1);
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(crate) fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}
