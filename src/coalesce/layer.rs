//! The coalesce layer.

use super::config::{Builder, ShareErrors, Types};
use super::handle::CoalesceHandle;
use super::service::Coalesce;
use super::table::{Stats, Table};
use crate::BoxError;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use tower_layer::Layer;
use tower_service::Service;

/// Makes identical calls in flight one call; see the [module docs](super).
///
/// `Req` is the request type, taken from the key function; `M` what
/// joined callers get of a failed call ([`ShareErrors`] by default, or
/// [`SuccessesOnly`](super::SuccessesOnly)).
pub struct CoalesceLayer<Req, F, K, M = ShareErrors> {
    key: Arc<F>,
    stats: Arc<Stats>,
    _types: Types<Req, K, M>,
}

impl<Req, F, K> CoalesceLayer<Req, F, K>
where
    F: Fn(&Req) -> K,
{
    /// Starts a coalescer named `name` (for metrics) keyed by `key`, a
    /// function of the request: calls whose keys are equal while one of
    /// them is in flight are one call. At most 1000 callers join one call.
    pub fn builder(name: impl Into<String>, key: F) -> Builder<Req, F, K> {
        Builder::new(name.into(), key)
    }
}

impl<Req, F, K, M> CoalesceLayer<Req, F, K, M> {
    pub(super) fn new(key: Arc<F>, stats: Arc<Stats>) -> Self {
        CoalesceLayer {
            key,
            stats,
            _types: PhantomData,
        }
    }

    /// A handle to read the coalescer's counts.
    pub fn handle(&self) -> CoalesceHandle {
        CoalesceHandle::new(self.stats.clone())
    }
}

impl<Req, F, K, M> Clone for CoalesceLayer<Req, F, K, M> {
    fn clone(&self) -> Self {
        CoalesceLayer::new(self.key.clone(), self.stats.clone())
    }
}

impl<S, Req, F, K, M> Layer<S> for CoalesceLayer<Req, F, K, M>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    type Service = Coalesce<S, Req, F, K, M>;

    /// Wraps `inner`; the service and its clones share the calls in
    /// flight (each `layer` call has its own).
    fn layer(&self, inner: S) -> Self::Service {
        Coalesce::new(
            inner,
            self.key.clone(),
            Arc::new(Table::new(self.stats.clone())),
        )
    }
}

impl<Req, F, K, M> fmt::Debug for CoalesceLayer<Req, F, K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceLayer")
            .field("name", &self.stats.name)
            .field("max_waiters", &self.stats.max_waiters)
            .finish_non_exhaustive()
    }
}
