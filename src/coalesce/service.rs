//! The coalescing service.

use super::flight::Flight;
use super::future::ResponseFuture;
use super::table::Table;
use crate::BoxError;
use futures_util::FutureExt;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Makes identical calls in flight one call; made by a
/// [`CoalesceLayer`](super::CoalesceLayer). Clones share the calls in
/// flight.
pub struct Coalesce<S, Req, F, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    inner: S,
    key: Arc<F>,
    max_waiters: usize,
    table: Arc<Table<K, Flight<S::Future>>>,
    _request: PhantomData<fn(Req)>,
}

impl<S, Req, F, K> Coalesce<S, Req, F, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    pub(super) fn new(inner: S, key: Arc<F>, table: Arc<Table<K, Flight<S::Future>>>) -> Self {
        Coalesce {
            max_waiters: table.stats.max_waiters,
            inner,
            key,
            table,
            _request: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Calls in flight now, one per key.
    pub fn in_flight(&self) -> usize {
        self.table.in_flight()
    }
}

impl<S, Req, F, K> Clone for Coalesce<S, Req, F, K>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    fn clone(&self) -> Self {
        Coalesce {
            inner: self.inner.clone(),
            key: self.key.clone(),
            max_waiters: self.max_waiters,
            table: self.table.clone(),
            _request: PhantomData,
        }
    }
}

impl<S, Req, F, K> Service<Req> for Coalesce<S, Req, F, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: Clone,
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, K>;

    /// The inner service's readiness. A caller that joins a call in
    /// flight does not use it: the next call does.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        let inner = &mut self.inner;
        // The inner service is called under the table's lock (a call only
        // makes its future), so two callers of one key never both call.
        let joined = self.table.join_or_start(&key, self.max_waiters, || {
            Flight::new(inner.call(request)).shared()
        });
        match joined {
            Some((flight, id, _)) => ResponseFuture::waiting(flight, id, key, self.table.clone()),
            None => ResponseFuture::full(),
        }
    }
}

impl<S, Req, F, K> fmt::Debug for Coalesce<S, Req, F, K>
where
    S: Service<Req> + fmt::Debug,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalesce")
            .field("inner", &self.inner)
            .field("name", &self.table.stats.name)
            .finish_non_exhaustive()
    }
}
