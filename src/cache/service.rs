//! The cache service.

use super::future::ResponseFuture;
use super::store::Store;
use crate::BoxError;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Answers from its cache when it can, else calls its inner service and
/// keeps the response; made by a [`CacheLayer`](super::CacheLayer).
pub struct Cache<S, F, K, Res> {
    inner: S,
    key: Arc<F>,
    store: Arc<Store<K, Res>>,
}

impl<S, F, K, Res> Cache<S, F, K, Res> {
    pub(super) fn new(inner: S, key: Arc<F>, store: Arc<Store<K, Res>>) -> Self {
        Cache { inner, key, store }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, F, K, Res> Clone for Cache<S, F, K, Res> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            key: self.key.clone(),
            store: self.store.clone(),
        }
    }
}

impl<S, F, K, Req> Service<Req> for Cache<S, F, K, S::Response>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: Clone + Send + Sync + 'static,
    F: Fn(&Req) -> K,
    K: Hash + Eq + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, K, S::Response>;

    /// The inner service's readiness (a hit waits for it too: rampart's
    /// breakers, and bulkheads without `max_wait`, are always ready).
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        if let Some(value) = self.store.get(&key) {
            self.store.stats.hit();
            return ResponseFuture::hit(value);
        }
        self.store.stats.miss();
        ResponseFuture::miss(self.inner.call(request), key, self.store.clone())
    }
}

impl<S: fmt::Debug, F, K, Res> fmt::Debug for Cache<S, F, K, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .field("name", &self.store.stats.name)
            .finish_non_exhaustive()
    }
}
