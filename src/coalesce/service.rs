//! The coalescing service.

use super::config::{ShareErrors, SuccessesOnly};
use super::flight::Flight;
use super::future::{ResponseFuture, SuccessesOnlyFuture};
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
/// flight. `M` is what joined callers get of a failed call
/// ([`ShareErrors`] or [`SuccessesOnly`]).
pub struct Coalesce<S, Req, F, K, M = ShareErrors>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    inner: S,
    key: Arc<F>,
    max_waiters: usize,
    table: Arc<Table<K, Flight<S::Future>>>,
    _types: PhantomData<fn(Req) -> M>,
}

impl<S, Req, F, K, M> Coalesce<S, Req, F, K, M>
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
            _types: PhantomData,
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

impl<S, Req, F, K, M> Clone for Coalesce<S, Req, F, K, M>
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
            _types: PhantomData,
        }
    }
}

impl<S, Req, F, K> Service<Req> for Coalesce<S, Req, F, K, ShareErrors>
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

impl<S, Req, F, K> Service<Req> for Coalesce<S, Req, F, K, SuccessesOnly>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: Clone,
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = SuccessesOnlyFuture<S, Req, K>;

    /// As with shared errors: the inner service's readiness.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        let inner = &mut self.inner;
        // Taken only if this caller starts the call; a caller who joins
        // keeps its request, to call on its own if the call fails.
        let mut request = Some(request);
        let joined = self.table.join_or_start(&key, self.max_waiters, || {
            let request = request.take().expect("the request is taken once");
            Flight::new(inner.call(request)).shared()
        });
        match (joined, request) {
            (Some((flight, id, _)), None) => SuccessesOnlyFuture::started(ResponseFuture::waiting(
                flight,
                id,
                key,
                self.table.clone(),
            )),
            (Some((flight, id, _)), Some(request)) => {
                let share = ResponseFuture::waiting(flight, id, key.clone(), self.table.clone());
                // The clone is readied when it is needed: this caller's
                // readiness stays with `inner`, for the next call.
                let own = (
                    self.inner.clone(),
                    request,
                    key,
                    self.table.clone(),
                    self.max_waiters,
                );
                SuccessesOnlyFuture::joined(share, own)
            }
            (None, _) => SuccessesOnlyFuture::started(ResponseFuture::full()),
        }
    }
}

impl<S, Req, F, K, M> fmt::Debug for Coalesce<S, Req, F, K, M>
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
