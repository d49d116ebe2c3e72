//! Options for a cache, and the builder that validates them.

use super::layer::CacheLayer;
use super::stats::Stats;
use super::store::Store;
use crate::error::{ConfigError, Validator};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Default time to live of a cached response: 1 s.
///
/// Hystrix's request cache lives as long as one request context (an
/// incoming request, typically well under a second); a second keeps a
/// cache shared across requests about as fresh. Choose yours.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);
/// Default bound on entries: 10 000.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

const MIN_TTL: Duration = Duration::from_millis(1);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_MAX_ENTRIES: u64 = 1 << 32;

/// Builds a [`CacheLayer`]; start with [`CacheLayer::builder`].
pub struct Builder<F, K, Res> {
    name: String,
    key: F,
    ttl: Duration,
    max_entries: u64,
    cache_errors: bool,
    _types: PhantomData<fn(K) -> Res>,
}

impl<F, K, Res> Builder<F, K, Res> {
    pub(super) fn new(name: String, key: F) -> Self {
        Builder {
            name,
            key,
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            cache_errors: false,
            _types: PhantomData,
        }
    }

    /// How long a response is served from the cache after it was
    /// received. Default 1 s ([`DEFAULT_TTL`]); from 1 ms to 24 h.
    /// Measured on tokio's clock (a paused test clock drives it).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The most responses kept; past it, the least recently used goes
    /// first. Default 10 000; from 1 to 2^32. moka evicts in its
    /// housekeeping, so the count may overshoot briefly under a burst of
    /// inserts.
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    /// Keeps errors too, for the time to live: each caller then gets the
    /// same error, a [`SharedError`](crate::error::SharedError). Default:
    /// off, errors are never cached (the next call tries again).
    pub fn cache_errors(mut self) -> Self {
        self.cache_errors = true;
        self
    }

    /// Checks every option and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<CacheLayer<F, K, Res>, ConfigError>
    where
        K: Hash + Eq + Send + Sync + 'static,
        Res: Clone + Send + Sync + 'static,
    {
        let mut v = Validator::new(format!("cache {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        let ttl = self.ttl;
        v.check((MIN_TTL..=MAX_TTL).contains(&ttl), "ttl", || {
            format!("must be from 1 ms to 24 h, got {ttl:?}")
        });
        let max = self.max_entries;
        v.check((1..=MAX_MAX_ENTRIES).contains(&max), "max_entries", || {
            format!("must be from 1 to {MAX_MAX_ENTRIES}, got {max}")
        });
        v.finish()?;
        let stats = Arc::new(Stats::new(self.name.into(), ttl, max));
        let store = Arc::new(Store::new(stats, self.cache_errors));
        Ok(CacheLayer::new(Arc::new(self.key), store))
    }
}

impl<F, K, Res> fmt::Debug for Builder<F, K, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("cache_errors", &self.cache_errors)
            .finish_non_exhaustive()
    }
}
