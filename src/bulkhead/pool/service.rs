//! The pool service.

use super::future::ResponseFuture;
use super::handle::PoolHandle;
use super::state::Shared;
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Runs each call's future on a pool of threads of its own, so a dependency
/// that blocks its thread or hogs its executor cannot stall the caller;
/// made by [`PoolLayer`](super::PoolLayer). Hystrix's thread-pool isolation.
///
/// The inner service is called on the caller's task; the future it returns
/// runs on the pool. At most `size` run at once and `queue` wait; a call
/// beyond that resolves to [`BulkheadFull`](crate::bulkhead::BulkheadFull)
/// at once, without handing the request to the inner service. Readiness is
/// the inner service's.
///
/// Isolation has a price the semaphore [`Bulkhead`](crate::bulkhead::Bulkhead)
/// does not pay: the future must be `Send + 'static`, and each call spawns a
/// task and crosses threads (two allocations: the task, and the flag that
/// tells it when a timeout above gave up on it).
pub struct Pool<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Pool<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Pool { inner, shared }
    }

    /// A handle to the pool this service shares.
    pub fn handle(&self) -> PoolHandle {
        PoolHandle::new(self.shared.clone())
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

impl<S, Request> Service<Request> for Pool<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Rejected before the request reaches the inner service: a client
        // that starts its work in `call` must not have started it.
        let Some(place) = self.shared.admit() else {
            return ResponseFuture::new(None, self.shared.clone());
        };
        let job = self.inner.call(request);
        ResponseFuture::new(Some(self.shared.spawn(place, job)), self.shared.clone())
    }
}

impl<S: Clone> Clone for Pool<S> {
    fn clone(&self) -> Self {
        Pool::new(self.inner.clone(), self.shared.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}
