//! Options for a coalescer, and the builder that validates them.

use super::layer::CoalesceLayer;
use super::table::Stats;
use crate::error::{ConfigError, Validator};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// Default bound on the callers that may join one call in flight: 1000.
pub const DEFAULT_MAX_WAITERS: usize = 1000;

const MAX_MAX_WAITERS: usize = 1 << 24;

/// What the callers who joined a call get when it fails (the default):
/// its error, shared, as every caller gets its answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShareErrors;

/// What the callers who joined a call get when it fails, set by
/// [`Builder::successes_only`]: not its error, but a call of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct SuccessesOnly;

/// The types a builder and a layer are for, without holding any.
pub(super) type Types<Req, K, M> = PhantomData<fn(&Req) -> (K, M)>;

/// Builds a [`CoalesceLayer`]; start with [`CoalesceLayer::builder`].
///
/// `M` is what joined callers get of a failed call: [`ShareErrors`] (the
/// default) or [`SuccessesOnly`].
pub struct Builder<Req, F, K, M = ShareErrors> {
    name: String,
    key: F,
    max_waiters: usize,
    _types: Types<Req, K, M>,
}

impl<Req, F, K> Builder<Req, F, K> {
    pub(super) fn new(name: String, key: F) -> Self {
        Builder {
            name,
            key,
            max_waiters: DEFAULT_MAX_WAITERS,
            _types: PhantomData,
        }
    }

    /// Shares only successes: a caller who joined a call that then
    /// fails does not get its error, but calls the inner service itself
    /// with its own request (callers in that position coalesce again
    /// among themselves: one of them calls, the others join it). That
    /// second call's outcome is final, error included, so a failing
    /// dependency sees at most one more call per key than with shared
    /// errors, never a storm. The caller who started the failed call gets
    /// its error, as before.
    ///
    /// Use it when an error is the caller's own rather than the key's
    /// (a request-scoped timeout, a deadline, credentials in the request);
    /// keep shared errors when a failure says the key cannot be answered
    /// now, where calling again only adds load.
    ///
    /// The service must be `Clone` (a joined caller keeps a clone, and its
    /// own request, until the call it joined answers), and a rejection by
    /// [`max_waiters`](Self::max_waiters) stays final. Each call again is
    /// counted as `retried` (see
    /// [`CoalesceHandle::retried`](super::CoalesceHandle::retried)).
    pub fn successes_only(self) -> Builder<Req, F, K, SuccessesOnly> {
        Builder {
            name: self.name,
            key: self.key,
            max_waiters: self.max_waiters,
            _types: PhantomData,
        }
    }
}

impl<Req, F, K, M> Builder<Req, F, K, M> {
    /// How many callers may join one call in flight (besides the one that
    /// started it); the next is rejected at once with
    /// [`WaitersFull`](super::WaitersFull), so a hot key cannot pile up
    /// callers without bound. Default 1000; from 1 to 2^24.
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.max_waiters = max;
        self
    }

    /// Checks every option and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<CoalesceLayer<Req, F, K, M>, ConfigError> {
        let mut v = Validator::new(format!("coalescer {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        let max = self.max_waiters;
        v.check((1..=MAX_MAX_WAITERS).contains(&max), "max_waiters", || {
            format!("must be from 1 to {MAX_MAX_WAITERS}, got {max}")
        });
        v.finish()?;
        Ok(CoalesceLayer::new(
            Arc::new(self.key),
            Arc::new(Stats::new(self.name.into(), max)),
        ))
    }
}

impl<Req, F, K, M> fmt::Debug for Builder<Req, F, K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("max_waiters", &self.max_waiters)
            .finish_non_exhaustive()
    }
}
