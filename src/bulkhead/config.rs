//! Options for a bulkhead, and the builder that validates them.

use super::layer::BulkheadLayer;
use super::state::Shared;
use crate::error::{ConfigError, Validator};
use std::sync::Arc;
use std::time::Duration;

/// Default maximum of concurrent calls (Hystrix
/// `execution.isolation.semaphore.maxConcurrentRequests`).
pub const DEFAULT_MAX_CONCURRENT: usize = 10;

const MAX_CONCURRENT: usize = 1 << 24;
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Builds a [`BulkheadLayer`]; every option is checked by [`build`](Builder::build).
///
/// By default at most 10 calls run at once and the 11th is rejected at once,
/// as with Hystrix's semaphore isolation.
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    max_concurrent: usize,
    max_wait: Option<Duration>,
    max_waiting: Option<usize>,
    registry: Option<crate::registry::Registry>,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_wait: None,
            max_waiting: None,
            registry: None,
        }
    }

    /// The [`Registry`](crate::registry::Registry) to list this component
    /// in. Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Calls allowed in flight at once. Default 10; valid from 1 to 2^24.
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// Lets a call wait this long for a slot before it is rejected (in
    /// `poll_ready`, so the caller's readiness reflects the wait).
    ///
    /// Off by default (a full bulkhead rejects at once); valid from 1 µs to
    /// an hour.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// How many calls may wait for a slot at once; the next is rejected at
    /// once. Needs `max_wait`.
    ///
    /// Default: as many as `max_concurrent`; valid from 1.
    pub fn max_waiting(mut self, max_waiting: usize) -> Self {
        self.max_waiting = Some(max_waiting);
        self
    }

    /// Checks every option and builds the layer. Every service built from
    /// the layer, or from its clones, shares one set of slots.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<BulkheadLayer, ConfigError> {
        let options = BulkheadOptions {
            max_concurrent: self.max_concurrent,
            max_wait: self.max_wait,
            max_waiting: self.max_waiting,
        };
        validate(&self.name, &options)?;
        let shared = Shared::new(self.name.into(), options);
        let shared = Arc::new(shared);
        self.registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register_configurable(&shared);
        Ok(BulkheadLayer::from_shared(shared))
    }
}

/// A bulkhead's options, as built or as changed live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BulkheadOptions {
    pub(crate) max_concurrent: usize,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) max_waiting: Option<usize>,
}

/// The builder's checks, shared with live changes.
pub(crate) fn validate(name: &str, o: &BulkheadOptions) -> Result<(), ConfigError> {
    let mut v = Validator::new(format!("bulkhead {name:?}"));
    v.check(!name.is_empty(), "name", || "must not be empty".into());
    v.check(
        (1..=MAX_CONCURRENT).contains(&o.max_concurrent),
        "max_concurrent",
        || {
            format!(
                "must be from 1 to {MAX_CONCURRENT}, got {}",
                o.max_concurrent
            )
        },
    );
    if let Some(wait) = o.max_wait {
        v.check(
            wait >= Duration::from_micros(1) && wait <= MAX_WAIT,
            "max_wait",
            || format!("must be from 1 µs to an hour, got {wait:?}"),
        );
    }
    if let Some(n) = o.max_waiting {
        v.check(n >= 1, "max_waiting", || "must be at least 1, got 0".into());
        v.check(o.max_wait.is_some(), "max_waiting", || {
            "needs max_wait: without it a full bulkhead rejects at once".into()
        });
    }
    v.finish()
}
