//! Exponential backoff with full jitter.

use crate::error::{ConfigError, Validator};
use std::time::Duration;

/// How long to wait before a retry: a random time between zero and
/// `base × 2^(retry - 1)`, capped at `max` ("full jitter", so that clients
/// retrying at once spread out instead of arriving together).
///
/// ```
/// use rampart::retry::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))?;
/// for _ in 0..100 {
///     assert!(backoff.delay(1) <= Duration::from_millis(10));
///     assert!(backoff.delay(20) <= Duration::from_secs(1));
/// }
/// assert_eq!(Backoff::none().delay(3), Duration::ZERO);
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

/// Default first backoff bound.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(10);
/// Default cap on a backoff.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Backoff {
    /// Waits up to `base` before the first retry, doubling up to `max`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless `0 < base <= max <= 1 hour`.
    pub fn exponential(base: Duration, max: Duration) -> Result<Backoff, ConfigError> {
        let mut v = Validator::new("backoff".into());
        v.check(base > Duration::ZERO, "base", || {
            format!("must be positive, got {base:?}")
        });
        v.check(
            max >= base && max <= Duration::from_secs(3600),
            "max",
            || format!("must be from base ({base:?}) to an hour, got {max:?}"),
        );
        v.finish()?;
        Ok(Backoff { base, max })
    }

    /// No waiting: retry at once.
    pub const fn none() -> Backoff {
        Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let factor = 2f64.powi(retry.saturating_sub(1).min(62) as i32);
        let bound = self.base.as_secs_f64() * factor;
        let bound = bound.min(self.max.as_secs_f64());
        Duration::from_secs_f64(bound * crate::internal::rng::unit())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: DEFAULT_BACKOFF_BASE,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}
