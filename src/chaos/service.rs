//! The chaos service.

use super::faults::{Abort, AbortKind};
use super::future::{ResponseFuture, Then};
use super::state::{Decision, Shared};
use crate::BoxError;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Injects the faults of its [`ChaosLayer`](super::ChaosLayer) into calls
/// while enabled; made by the layer.
///
/// Disabled, a call costs one relaxed atomic load and goes straight to the
/// inner service. Enabled, each request the predicate selects draws its
/// delay and its abort. An aborted call (other than a
/// [cut](super::Abort::cut_mid_response), which calls) never reaches the inner service:
/// its readiness is given back by swapping in a fresh clone of it (as a
/// [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker) does for a
/// rejection), hence `S: Clone`. A delayed call keeps the readied service
/// and calls it when the delay is over, so whatever it reserved (a
/// bulkhead slot beneath) is held meanwhile, as a slow call would hold it.
pub struct Chaos<S, Req, Res> {
    inner: S,
    shared: Arc<Shared<Req, Res>>,
}

impl<S, Req, Res> Chaos<S, Req, Res> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<Req, Res>>) -> Self {
        Chaos { inner, shared }
    }

    /// A handle to switch and re-tune the layer at run time.
    pub fn handle(&self) -> super::ChaosHandle<Req, Res> {
        super::ChaosHandle {
            shared: self.shared.clone(),
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

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, Req, Res> Clone for Chaos<S, Req, Res> {
    fn clone(&self) -> Self {
        Chaos {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, Req, Res> Service<Req> for Chaos<S, Req, Res>
where
    S: Service<Req, Response = Res> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, Res>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        if !self.shared.enabled.load(Ordering::Relaxed) {
            return ResponseFuture::passing(self.inner.call(request));
        }
        self.inject(request)
    }
}

impl<S, Req, Res> Chaos<S, Req, Res>
where
    S: Service<Req, Response = Res> + Clone,
    S::Error: Into<BoxError>,
{
    /// The enabled path, kept out of `call` so the disabled one stays small.
    #[inline(never)]
    fn inject(&mut self, request: Req) -> ResponseFuture<S::Future, S, Req, Res> {
        let Decision::Inject { delay, abort } = self.shared.decide(&request) else {
            return ResponseFuture::passing(self.inner.call(request));
        };
        // The readied inner service leaves `self` either way: called after
        // the delay, or dropped here (an aborted call never reaches it),
        // freeing what it reserved.
        let fresh = self.inner.clone();
        let readied = std::mem::replace(&mut self.inner, fresh);
        let then = match abort {
            None => Then::Call(readied, request, None),
            Some(Abort(AbortKind::Cut(cut))) => Then::Call(readied, request, Some(cut)),
            Some(abort) => Then::Abort(abort),
        };
        ResponseFuture::injected(delay, then)
    }
}

impl<S: fmt::Debug, Req, Res> fmt::Debug for Chaos<S, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("enabled", &self.shared.enabled.load(Ordering::Relaxed))
            .finish()
    }
}
