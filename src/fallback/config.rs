//! Options for a fallback, and the builder that validates them.

use super::cause::Cause;
use super::function::{AsyncFallback, SyncFallback};
use super::layer::FallbackLayer;
use super::stats::Stats;
use crate::error::{ConfigError, Validator};
use crate::BoxError;
use std::future::Future;
use std::sync::Arc;

/// Default cap on fallbacks running at once (Hystrix
/// `fallback.isolation.semaphore.maxConcurrentRequests`).
pub const DEFAULT_MAX_CONCURRENT: usize = 10;

/// Not chosen yet: [`Builder::fallback`] or [`Builder::fallback_sync`] must
/// be called before `build`.
#[derive(Debug, Clone, Copy)]
pub struct Unset;

/// Builds a [`FallbackLayer`].
#[derive(Debug, Clone)]
pub struct Builder<FB = Unset> {
    name: String,
    max_concurrent: Option<usize>,
    contain_panics: bool,
    registry: Option<crate::registry::Registry>,
    fallback: FB,
}

impl Builder<Unset> {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            max_concurrent: Some(DEFAULT_MAX_CONCURRENT),
            contain_panics: false,
            registry: None,
            fallback: Unset,
        }
    }

    /// An async fallback: `|cause| async { ... }`.
    ///
    /// The closure gets the [`Cause`] by reference; copy out what the
    /// future needs (e.g. `cause.kind()`) before the `async` block.
    pub fn fallback<F, Fut, Res>(self, fallback: F) -> Builder<AsyncFallback<F>>
    where
        F: Fn(&Cause) -> Fut,
        Fut: Future<Output = Result<Res, BoxError>>,
    {
        self.with(AsyncFallback(fallback))
    }

    /// A sync fallback: `|cause| Ok(response)`.
    pub fn fallback_sync<F, Res>(self, fallback: F) -> Builder<SyncFallback<F>>
    where
        F: Fn(&Cause) -> Result<Res, BoxError>,
    {
        self.with(SyncFallback(fallback))
    }

    fn with<FB>(self, fallback: FB) -> Builder<FB> {
        Builder {
            name: self.name,
            max_concurrent: self.max_concurrent,
            contain_panics: self.contain_panics,
            registry: self.registry,
            fallback,
        }
    }
}

impl<FB> Builder<FB> {
    /// At most this many fallbacks run at once; when more are needed, the
    /// call fails with [`FallbackRejected`](super::FallbackRejected).
    /// `None` removes the cap.
    ///
    /// Default 10; valid from 1.
    pub fn max_concurrent(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_concurrent = max.into();
        self
    }

    /// The [`Registry`](crate::registry::Registry) to list this component
    /// in. Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// A fallback that panics (in its closure or its future) fails with
    /// [`FallbackFailed`](super::FallbackFailed) whose fallback error is
    /// [`Panicked`](crate::catch_panic::Panicked), instead of unwinding to
    /// the caller. Either way the panic counts as a fallback failure and
    /// frees its place under the cap. Default: off (the panic unwinds).
    pub fn contain_panics(mut self) -> Self {
        self.contain_panics = true;
        self
    }
}

macro_rules! build {
    ($ty:ident) => {
        impl<F> Builder<$ty<F>> {
            /// Checks the options and builds the layer.
            ///
            /// # Errors
            ///
            /// A [`ConfigError`] listing each option outside its valid range.
            pub fn build(self) -> Result<FallbackLayer<$ty<F>>, ConfigError> {
                let stats = stats_for(
                    &self.name,
                    self.max_concurrent,
                    self.registry.as_ref(),
                    None,
                )?;
                Ok(FallbackLayer::from_parts(
                    self.fallback,
                    stats,
                    self.contain_panics,
                ))
            }
        }
    };
}
build!(AsyncFallback);
build!(SyncFallback);

/// Validates a fallback's options and makes its stats.
pub(crate) fn stats_for(
    name: &str,
    max_concurrent: Option<usize>,
    registry: Option<&crate::registry::Registry>,
    window: Option<(
        crate::internal::clock::Clock,
        crate::internal::clock::Micros,
        usize,
    )>,
) -> Result<Arc<Stats>, ConfigError> {
    validate(name, max_concurrent)?;
    let stats = Arc::new(Stats::new(name.into(), max_concurrent, window));
    match registry {
        Some(registry) => registry.register_configurable(&stats),
        None => crate::registry::Registry::global().register_configurable(&stats),
    }
    Ok(stats)
}

/// The builder's checks, shared with live changes.
pub(crate) fn validate(name: &str, max_concurrent: Option<usize>) -> Result<(), ConfigError> {
    let mut v = Validator::new(format!("fallback {name:?}"));
    v.check(!name.is_empty(), "name", || "must not be empty".into());
    if let Some(max) = max_concurrent {
        v.check(max >= 1, "max_concurrent", || {
            "must be at least 1, got 0".into()
        });
    }
    v.finish()
}
