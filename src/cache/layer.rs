//! The cache layer.

use super::config::Builder;
use super::handle::CacheHandle;
use super::service::Cache;
use super::store::Store;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Serves repeated calls from a cache of responses by key; see the
/// [module docs](super).
///
/// Every service built from one layer (or its clones) shares one cache.
pub struct CacheLayer<F, K, Res> {
    key: Arc<F>,
    store: Arc<Store<K, Res>>,
}

impl<F, K, Res> CacheLayer<F, K, Res> {
    /// Starts a cache named `name` (for metrics) keyed by `key`, a
    /// function of the request (`|request: &Req| -> K`), keeping responses
    /// for 1 s, at most 10 000 of them, and no errors.
    pub fn builder<Req>(name: impl Into<String>, key: F) -> Builder<F, K, Res>
    where
        F: Fn(&Req) -> K,
    {
        Builder::new(name.into(), key)
    }

    pub(super) fn new(key: Arc<F>, store: Arc<Store<K, Res>>) -> Self {
        CacheLayer { key, store }
    }

    /// A handle to read the cache's counts and drop entries.
    pub fn handle(&self) -> CacheHandle<K, Res> {
        CacheHandle::new(self.store.clone())
    }

    /// What a command holding this cache reports to the stream.
    #[cfg(feature = "command")]
    pub(crate) fn stats(&self) -> &Arc<super::Stats> {
        &self.store.stats
    }
}

impl<F, K, Res> Clone for CacheLayer<F, K, Res> {
    fn clone(&self) -> Self {
        CacheLayer {
            key: self.key.clone(),
            store: self.store.clone(),
        }
    }
}

impl<S, F, K, Res> Layer<S> for CacheLayer<F, K, Res> {
    type Service = Cache<S, F, K, Res>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::new(inner, self.key.clone(), self.store.clone())
    }
}

impl<F, K, Res> fmt::Debug for CacheLayer<F, K, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("name", &self.store.stats.name)
            .field("ttl", &self.store.stats.ttl)
            .field("max_entries", &self.store.stats.max_entries)
            .finish_non_exhaustive()
    }
}
