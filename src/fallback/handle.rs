//! Reading what a fallback did.

use super::stats::Stats;
use crate::config::{show_off, Layer};
use crate::error::ConfigError;
use std::sync::Arc;

/// A cloneable view of one fallback layer's counts since it was built.
#[derive(Debug, Clone)]
pub struct FallbackHandle {
    stats: Arc<Stats>,
}

impl FallbackHandle {
    pub(crate) fn new(stats: Arc<Stats>) -> Self {
        FallbackHandle { stats }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.stats.name
    }

    /// Fallbacks that produced a response.
    pub fn successes(&self) -> u64 {
        self.stats.successes()
    }

    /// Fallbacks that failed too.
    pub fn failures(&self) -> u64 {
        self.stats.failures()
    }

    /// Fallbacks not run because too many were running.
    pub fn rejections(&self) -> u64 {
        self.stats.rejections()
    }

    /// Failed calls that had no fallback to run (the error went to the
    /// caller as it was; Hystrix's `FALLBACK_MISSING`).
    pub fn missing(&self) -> u64 {
        self.stats.missing()
    }

    /// A command's fallback activity over its breaker's time window.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn rolling(&self) -> Option<super::stats::Rolling> {
        self.stats.rolling()
    }

    /// The cap on fallbacks running at once; `None` when uncapped.
    pub fn max_concurrent(&self) -> Option<usize> {
        self.stats.max_concurrent()
    }

    /// Fallbacks running now.
    pub fn running(&self) -> usize {
        self.stats.running()
    }

    /// Whether fallbacks run (Hystrix's `fallback.enabled`); true unless
    /// switched off live.
    pub fn enabled(&self) -> bool {
        self.stats.enabled()
    }

    /// Switches fallbacks on or off from the next failed call on; while
    /// off, a failed call's error goes to the caller as it is, counted
    /// nowhere here. Fallbacks already running finish. A handle's value
    /// wins over what a [source](crate::config::Source) says until
    /// [`clear_overrides`](Self::clear_overrides).
    ///
    /// ```
    /// use rampart::fallback::FallbackLayer;
    ///
    /// let layer = FallbackLayer::builder("ratings")
    ///     .fallback_sync(|_| Ok::<_, rampart::BoxError>("cached ratings"))
    ///     .build()?;
    /// let fallback = layer.handle();
    /// fallback.set_enabled(false)?;
    /// assert!(!fallback.enabled());
    /// fallback.set_max_concurrent(Some(3))?;
    /// assert_eq!(fallback.max_concurrent(), Some(3));
    /// assert!(fallback.set_max_concurrent(Some(0)).is_err()); // as the builder
    /// fallback.clear_overrides();
    /// assert!(fallback.enabled());
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// None in practice; a [`ConfigError`] is kept for symmetry with the
    /// other setters.
    pub fn set_enabled(&self, enabled: bool) -> Result<(), ConfigError> {
        let text = enabled.to_string();
        self.stats
            .change(Layer::Handle, &[("fallback_enabled", Some(&text))], false)
    }

    /// The cap on fallbacks running at once, from 1; `None`: uncapped.
    /// Lowered, fallbacks already running above it finish.
    ///
    /// # Errors
    ///
    /// As [`Builder::max_concurrent`](super::Builder::max_concurrent) at
    /// build time; the old cap stays.
    pub fn set_max_concurrent(&self, max: Option<usize>) -> Result<(), ConfigError> {
        let text = show_off(max, |n| n.to_string());
        self.stats.change(
            Layer::Handle,
            &[("fallback_max_concurrent", Some(&text))],
            false,
        )
    }

    /// Drops the values this fallback's handles set: it takes what the
    /// sources say again, or its built values.
    pub fn clear_overrides(&self) {
        let _ = self.stats.change(
            Layer::Handle,
            &[
                ("fallback_enabled", None),
                ("fallback_max_concurrent", None),
            ],
            false,
        );
    }
}
