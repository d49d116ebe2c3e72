//! What a fallback is: a closure, sync or async, from a cause to a response.

use super::cause::Cause;
use crate::BoxError;
use std::fmt;
use std::future::{ready, Future, Ready};

/// Produces a response (or an error) in place of a failed call.
///
/// Made from closures by [`Builder::fallback`](super::Builder::fallback)
/// (async) and [`Builder::fallback_sync`](super::Builder::fallback_sync);
/// implement it by hand only for reusable fallbacks. Returning `None` lets
/// the call's error through untouched.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a fallback for responses of type `{Res}`",
    label = "this fallback must return `Result<{Res}, rampart::BoxError>`",
    note = "a fallback answers in place of the service: it returns the service's own response type",
    note = "see `rampart::troubleshooting`"
)]
pub trait FallbackFn<Res> {
    /// The fallback's future.
    type Future: Future<Output = Result<Res, BoxError>>;

    /// Starts the fallback for a call that failed because of `cause`.
    fn recover(&self, cause: &Cause) -> Option<Self::Future>;
}

/// An async fallback closure: `Fn(&Cause) -> impl Future<Output = Result<Res, BoxError>>`.
#[derive(Clone, Copy)]
pub struct AsyncFallback<F>(pub(crate) F);

/// A sync fallback closure: `Fn(&Cause) -> Result<Res, BoxError>`.
#[derive(Clone, Copy)]
pub struct SyncFallback<F>(pub(crate) F);

/// No fallback: errors pass through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl<F, Fut, Res> FallbackFn<Res> for AsyncFallback<F>
where
    F: Fn(&Cause) -> Fut,
    Fut: Future<Output = Result<Res, BoxError>>,
{
    type Future = Fut;

    #[inline]
    fn recover(&self, cause: &Cause) -> Option<Fut> {
        Some((self.0)(cause))
    }
}

impl<F, Res> FallbackFn<Res> for SyncFallback<F>
where
    F: Fn(&Cause) -> Result<Res, BoxError>,
{
    type Future = Ready<Result<Res, BoxError>>;

    #[inline]
    fn recover(&self, cause: &Cause) -> Option<Self::Future> {
        Some(ready((self.0)(cause)))
    }
}

impl<Res> FallbackFn<Res> for NoFallback {
    type Future = Ready<Result<Res, BoxError>>;

    #[inline]
    fn recover(&self, _: &Cause) -> Option<Self::Future> {
        None
    }
}

impl<F> fmt::Debug for AsyncFallback<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncFallback")
    }
}

impl<F> fmt::Debug for SyncFallback<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncFallback")
    }
}
