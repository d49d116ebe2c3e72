//! Reading what a fallback did.

use super::stats::Stats;
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

    /// Fallbacks running now (0 when uncapped: only capped ones are counted).
    pub fn running(&self) -> usize {
        self.stats.running()
    }
}
