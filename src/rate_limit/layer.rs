//! The rate limit layer, and how it takes a key from a request.

use super::config::Builder;
use super::handle::RateLimitHandle;
use super::service::RateLimit;
use super::state::Shared;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in a [`RateLimit`]; all services built from one layer,
/// or from its clones, share one limit (or one set of limits per key).
///
/// Built with [`RateLimitLayer::builder`]; see the [module docs](super).
#[derive(Clone)]
pub struct RateLimitLayer<K = (), F = Unkeyed> {
    shared: Arc<Shared<K>>,
    key: F,
}

impl RateLimitLayer {
    /// Starts a rate limit named `name` (its metrics label and log field);
    /// [`rate`](Builder::rate) is required.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }
}

impl<K, F> RateLimitLayer<K, F> {
    pub(crate) fn from_parts(shared: Arc<Shared<K>>, key: F) -> Self {
        RateLimitLayer { shared, key }
    }

    /// A handle to read the limit's settings and keys.
    pub fn handle(&self) -> RateLimitHandle
    where
        K: Send + Sync + 'static,
    {
        RateLimitHandle::new(self.shared.clone())
    }
}

impl<S, K, F: Clone> Layer<S> for RateLimitLayer<K, F> {
    type Service = RateLimit<S, K, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.shared.clone(), self.key.clone())
    }
}

impl<K, F> fmt::Debug for RateLimitLayer<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limit", &self.shared)
            .finish_non_exhaustive()
    }
}

/// The key of a limit that is not per key: every call shares one limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unkeyed;

/// Takes a limit's key from a request: implemented by every
/// `Fn(&Req) -> K` closure, and by [`Unkeyed`] (every request, the key
/// `()`).
pub trait KeyOf<Req, K> {
    /// The key of `request`.
    fn key_of(&self, request: &Req) -> K;
}

impl<Req> KeyOf<Req, ()> for Unkeyed {
    #[inline]
    fn key_of(&self, _: &Req) {}
}

impl<Req, K, F> KeyOf<Req, K> for F
where
    F: Fn(&Req) -> K,
{
    #[inline]
    fn key_of(&self, request: &Req) -> K {
        self(request)
    }
}
