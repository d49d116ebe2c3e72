//! Reading a cache's counts, and dropping its entries.

use super::store::Store;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// A cloneable handle to one cache: its counts since it was built, and
/// invalidation (after a write to the dependency, say). From
/// [`CacheLayer::handle`](super::CacheLayer::handle).
pub struct CacheHandle<K, Res> {
    store: Arc<Store<K, Res>>,
}

impl<K, Res> CacheHandle<K, Res> {
    pub(super) fn new(store: Arc<Store<K, Res>>) -> Self {
        CacheHandle { store }
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.store.stats.name
    }

    /// The time to live of its entries.
    pub fn ttl(&self) -> Duration {
        self.store.stats.ttl
    }

    /// Calls answered from the cache (Hystrix's `RESPONSE_FROM_CACHE`).
    pub fn hits(&self) -> u64 {
        self.store.stats.hits()
    }

    /// Calls that went to the inner service.
    pub fn misses(&self) -> u64 {
        self.store.stats.misses()
    }
}

impl<K, Res> CacheHandle<K, Res>
where
    K: Hash + Eq + Send + Sync + 'static,
    Res: Clone + Send + Sync + 'static,
{
    /// Drops the response kept for `key`: the next call for it calls the
    /// inner service.
    pub fn invalidate(&self, key: &K) {
        self.store.invalidate(key);
    }

    /// Drops every response kept.
    pub fn invalidate_all(&self) {
        self.store.invalidate_all();
    }

    /// About how many responses are kept: moka counts in its
    /// housekeeping, which [`run_pending_tasks`](Self::run_pending_tasks)
    /// runs now.
    pub fn entry_count(&self) -> u64 {
        self.store.entry_count()
    }

    /// Runs moka's pending housekeeping now (evictions past the bound,
    /// removal of expired and invalidated entries, the entry count), which
    /// it otherwise runs now and then as entries are read and written.
    pub fn run_pending_tasks(&self) {
        self.store.run_pending_tasks();
    }
}

impl<K, Res> Clone for CacheHandle<K, Res> {
    fn clone(&self) -> Self {
        CacheHandle {
            store: self.store.clone(),
        }
    }
}

impl<K, Res> fmt::Debug for CacheHandle<K, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle")
            .field("name", &self.name())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish_non_exhaustive()
    }
}
