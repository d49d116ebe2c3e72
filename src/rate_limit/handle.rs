//! Reading a rate limit's settings and keys.

use super::state::Report;
use std::sync::Arc;
use std::time::Duration;

/// A cloneable view of one rate limit, for dashboards, admin endpoints and
/// tests; listed by [`Registry::rate_limits`](crate::registry::Registry::rate_limits).
///
/// ```
/// use rampart::rate_limit::RateLimitLayer;
/// use std::time::Duration;
///
/// let layer = RateLimitLayer::builder("api").rate(100, Duration::from_secs(1)).build()?;
/// let handle = layer.handle();
/// assert_eq!(handle.rate(), (100, Duration::from_secs(1)));
/// assert_eq!(handle.burst(), 100);
/// assert_eq!(handle.keys(), None); // one limit for all calls
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitHandle {
    shared: Arc<dyn Report>,
}

impl RateLimitHandle {
    pub(crate) fn new(shared: Arc<dyn Report>) -> Self {
        RateLimitHandle { shared }
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Calls per period, as given to [`rate`](super::Builder::rate).
    pub fn rate(&self) -> (u32, Duration) {
        let s = self.shared.settings();
        (s.calls, s.period)
    }

    /// The burst: calls that may go through at once after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.shared.settings().burst
    }

    /// How long a call over the limit may wait for its permit (`None`:
    /// rejected at once).
    pub fn max_wait(&self) -> Option<Duration> {
        self.shared.settings().max_wait
    }

    /// For a limit per key, the keys it holds state for now; `None` for
    /// one limit for all calls.
    pub fn keys(&self) -> Option<usize> {
        self.shared.keys()
    }

    /// For a limit per key, its bound on keys.
    pub fn max_keys(&self) -> Option<usize> {
        self.shared.settings().max_keys
    }

    /// Keys forgotten because the bound was reached (keys forgotten
    /// because their allowance was full again are not counted: that loses
    /// nothing).
    pub fn evicted(&self) -> u64 {
        self.shared.evicted()
    }
}
