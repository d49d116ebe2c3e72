//! The rate limit service.

use super::future::ResponseFuture;
use super::handle::RateLimitHandle;
use super::layer::{KeyOf, Unkeyed};
use super::state::{comes_in_time, NotYet, Shared};
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Lets calls through at a bounded rate (GCRA), for all calls or per key,
/// and refuses or delays the rest; made by
/// [`RateLimitLayer`](super::RateLimitLayer).
///
/// `poll_ready` is the inner service's: the limit is asked in `call`, where
/// the request (and so its key) is known. A call over the limit resolves
/// to [`RateLimited`](super::RateLimited) without reaching the inner
/// service, or, with `max_wait`, waits in its response future and then
/// goes through or is refused. A call that waits takes the inner service
/// made ready for it along (and leaves a clone in its place, which the
/// next `poll_ready` readies), which is why the inner service must be
/// `Clone`.
pub struct RateLimit<S, K = (), F = Unkeyed> {
    inner: S,
    shared: Arc<Shared<K>>,
    key: F,
}

// ===== impl RateLimit =====

impl<S, K, F> RateLimit<S, K, F> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<K>>, key: F) -> Self {
        RateLimit { inner, shared, key }
    }

    /// A handle to the limit this service shares.
    pub fn handle(&self) -> RateLimitHandle
    where
        K: Send + Sync + 'static,
    {
        RateLimitHandle::new(self.shared.clone())
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

impl<S, K, F, Request> Service<Request> for RateLimit<S, K, F>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
    F: KeyOf<Request, K>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Request, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let key = self.key.key_of(&request);
        match self.shared.check(&key) {
            Ok(()) => ResponseFuture::called(self.inner.call(request)),
            Err(not_yet) => self.not_yet(request, key, not_yet),
        }
    }
}

impl<S, K, F> RateLimit<S, K, F> {
    /// Over the limit: wait if the permit comes within `max_wait` and
    /// before the caller's deadline, else refuse.
    #[cold]
    fn not_yet<Request>(
        &mut self,
        request: Request,
        key: K,
        not_yet: NotYet,
    ) -> ResponseFuture<S, Request, K>
    where
        S: Service<Request> + Clone,
    {
        let next = self.shared.instant(not_yet);
        if let Some(max_wait) = self.shared.settings.max_wait {
            let now = tokio::time::Instant::now();
            let deadline = now + max_wait;
            if comes_in_time(next, deadline) {
                // The ready inner goes with the call; its clone stays, to
                // be made ready for the next one.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::waiting(
                    ready,
                    request,
                    key,
                    self.shared.clone(),
                    next,
                    deadline,
                );
            }
        }
        ResponseFuture::rejected(self.shared.reject(next))
    }
}

impl<S: Clone, K, F: Clone> Clone for RateLimit<S, K, F> {
    fn clone(&self) -> Self {
        RateLimit::new(self.inner.clone(), self.shared.clone(), self.key.clone())
    }
}

impl<S: fmt::Debug, K, F> fmt::Debug for RateLimit<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limit", &self.shared)
            .finish_non_exhaustive()
    }
}
