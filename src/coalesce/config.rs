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

/// Builds a [`CoalesceLayer`]; start with [`CoalesceLayer::builder`].
pub struct Builder<Req, F, K> {
    name: String,
    key: F,
    max_waiters: usize,
    _types: PhantomData<fn(&Req) -> K>,
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
    pub fn build(self) -> Result<CoalesceLayer<Req, F, K>, ConfigError> {
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

impl<Req, F, K> fmt::Debug for Builder<Req, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("max_waiters", &self.max_waiters)
            .finish_non_exhaustive()
    }
}
