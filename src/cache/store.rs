//! The entries: moka's cache, with expiry read from tokio's clock.

use super::stats::Stats;
use crate::error::SharedError;
use moka::policy::EvictionPolicy;
use std::hash::Hash;
use std::sync::Arc;
use tokio::time::Instant;

/// One response kept, and when.
#[derive(Clone)]
pub(super) struct Entry<Res> {
    at: Instant,
    value: Result<Res, SharedError>,
}

/// The cache proper, shared by a layer's services, its handles and the
/// response futures of misses (which fill it).
pub(crate) struct Store<K, Res> {
    entries: moka::sync::Cache<K, Entry<Res>>,
    pub(super) cache_errors: bool,
    pub(super) stats: Arc<Stats>,
}

impl<K, Res> Store<K, Res>
where
    K: Hash + Eq + Send + Sync + 'static,
    Res: Clone + Send + Sync + 'static,
{
    pub(super) fn new(stats: Arc<Stats>, cache_errors: bool) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(stats.max_entries)
            // Least recently used out first, as the issue of a bounded
            // response cache asks (moka's default admits by frequency).
            .eviction_policy(EvictionPolicy::lru())
            // moka's own clock frees entries nobody reads again; the
            // expiry callers see is read from tokio's clock below, which
            // tests pause and advance.
            .time_to_live(stats.ttl)
            .build();
        Store {
            entries,
            cache_errors,
            stats,
        }
    }

    /// The response kept for `key`, if one younger than the time to live.
    #[inline]
    pub(super) fn get(&self, key: &K) -> Option<Result<Res, SharedError>> {
        let entry = self.entries.get(key)?;
        if entry.at.elapsed() >= self.stats.ttl {
            self.entries.invalidate(key);
            return None;
        }
        Some(entry.value)
    }

    pub(super) fn insert(&self, key: K, value: Result<Res, SharedError>) {
        self.entries.insert(
            key,
            Entry {
                at: Instant::now(),
                value,
            },
        );
    }

    pub(super) fn invalidate(&self, key: &K) {
        self.entries.invalidate(key);
    }

    pub(super) fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }

    pub(super) fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    pub(super) fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }
}
