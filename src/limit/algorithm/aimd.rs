//! Additive increase, multiplicative decrease: TCP Reno's rule as a
//! concurrency limit.

use super::{check_limits, Algorithm, Sample};
use crate::error::{ConfigError, Validator};
use std::time::Duration;

/// AIMD (Netflix's `AIMDLimit`): one more permit per window while nothing
/// is dropped, a tenth fewer on a drop.
///
/// With `L` the limit:
///
/// - a window with a drop, or whose RTT is past `timeout`:
///   `L ← ⌊L·backoff_ratio⌋`;
/// - else, if at least half the permits are in use (`in_flight·2 ≥ L`):
///   `L ← L + 1`; otherwise no change;
/// - kept within `[min_limit, max_limit]`.
///
/// Defaults are Netflix's: initial limit 20, min 20, max 200, backoff
/// ratio 0.9, timeout 5 s. With the default minimum equal to the initial
/// limit, the limit never goes below 20: set `min_limit` lower for a
/// limit that can back off further. Netflix recommends AIMD on clients,
/// where drops (timeouts, 503s from the server's own limit) are the clearest
/// signal.
///
/// ```
/// use rampart::limit::{Aimd, LimitLayer};
/// use std::time::Duration;
///
/// let layer = LimitLayer::builder("ratings-client")
///     .algorithm(Aimd::new().min_limit(1).timeout(Duration::from_secs(2)))
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Aimd {
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
    backoff_ratio: f64,
    timeout: Duration,
    limit: usize,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd::new()
    }
}

impl Aimd {
    /// AIMD with Netflix's defaults.
    pub fn new() -> Self {
        Aimd {
            initial_limit: 20,
            min_limit: 20,
            max_limit: 200,
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
            limit: 20,
        }
    }

    /// The limit before the first sample. Default 20; from `min_limit` to
    /// `max_limit`.
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self.limit = limit;
        self
    }

    /// The lowest limit. Default 20; at least 1.
    pub fn min_limit(mut self, limit: usize) -> Self {
        self.min_limit = limit;
        self
    }

    /// The highest limit. Default 200; up to 2^24.
    pub fn max_limit(mut self, limit: usize) -> Self {
        self.max_limit = limit;
        self
    }

    /// What the limit is multiplied by on a drop. Default 0.9; in
    /// [0.5, 1), as Netflix requires.
    pub fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// A window whose RTT is past this counts as a drop. Default 5 s; more
    /// than 0.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Algorithm for Aimd {
    fn initial_limit(&self) -> usize {
        self.initial_limit
    }

    fn update(&mut self, sample: Sample) -> usize {
        let mut limit = self.limit;
        if sample.dropped || sample.rtt > self.timeout {
            limit = (limit as f64 * self.backoff_ratio) as usize;
        } else if sample.in_flight * 2 >= limit {
            limit += 1;
        }
        self.limit = limit.clamp(self.min_limit, self.max_limit);
        self.limit
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Validator::new("AIMD limit".into());
        check_limits(&mut v, self.min_limit, self.initial_limit, self.max_limit);
        v.check(
            (0.5..1.0).contains(&self.backoff_ratio),
            "backoff_ratio",
            || format!("must be in [0.5, 1), got {}", self.backoff_ratio),
        );
        v.check(!self.timeout.is_zero(), "timeout", || {
            "must be more than 0".into()
        });
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn adds_one_per_window_in_use_and_backs_off_on_a_drop() {
        let mut a = Aimd::new().min_limit(1);
        assert_eq!(a.update(Sample::new(ms(10), 10, false)), 21, "10·2 ≥ 20");
        assert_eq!(a.update(Sample::new(ms(10), 11, false)), 22);
        // 10·2 < 22: not in use enough, unchanged.
        assert_eq!(a.update(Sample::new(ms(10), 10, false)), 22);
        // A drop: ⌊22·0.9⌋ = 19.
        assert_eq!(a.update(Sample::new(ms(10), 22, true)), 19);
        // An RTT past the timeout (5 s) counts as a drop: ⌊19·0.9⌋ = 17.
        assert_eq!(a.update(Sample::new(ms(5001), 19, false)), 17);
        // Exactly the timeout does not.
        assert_eq!(a.update(Sample::new(ms(5000), 17, false)), 18);
    }

    #[test]
    fn stays_within_min_and_max() {
        // Netflix's defaults: a drop at 20 gives 18, held at min 20.
        let mut a = Aimd::new();
        assert_eq!(a.update(Sample::new(ms(10), 20, true)), 20);
        let mut a = Aimd::new().initial_limit(200);
        assert_eq!(a.update(Sample::new(ms(10), 200, false)), 200);
        let mut a = Aimd::new().min_limit(1).initial_limit(1);
        // ⌊1·0.9⌋ = 0, held at 1.
        assert_eq!(a.update(Sample::new(ms(10), 1, true)), 1);
    }

    #[test]
    fn rejects_options_out_of_range() {
        let err = Aimd::new()
            .backoff_ratio(1.0)
            .timeout(Duration::ZERO)
            .max_limit(10)
            .validate()
            .unwrap_err();
        assert!(err.names("backoff_ratio"));
        assert!(err.names("timeout"));
        assert!(err.names("min_limit"), "min 20 above max 10");
        assert!(err.names("initial_limit"));
        assert!(Aimd::new().backoff_ratio(0.5).validate().is_ok());
        assert!(Aimd::new().backoff_ratio(0.49).validate().is_err());
    }
}
