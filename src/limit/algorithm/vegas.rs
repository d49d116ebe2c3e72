//! TCP Vegas's queue estimate as a concurrency limit.

use super::{log10_root, Algorithm, Sample, MAX_LIMIT};
use crate::error::{ConfigError, Validator};
use std::time::Duration;

/// Vegas (Netflix's `VegasLimit`): estimates how many calls are queueing
/// from how much slower they are than the fastest seen, and keeps that
/// queue small.
///
/// With `L` the limit, `rtt` the window's RTT and `rtt_noload` the lowest
/// RTT seen:
///
/// - `queue = ⌈L·(1 − rtt_noload/rtt)⌉`, `lg = max(1, ⌊log10 L⌋)`,
///   `α = 3·lg`, `β = 6·lg`, `threshold = lg`;
/// - a window with a drop: `L − lg`;
/// - else, fewer than half the permits in use (`in_flight·2 < L`): no
///   change (an idle service says nothing about how much it could take);
/// - else `queue ≤ threshold` (no queue): `L + β`; `queue < α`: `L + lg`;
///   `queue > β`: `L − lg`; otherwise no change;
/// - the result is kept within `[1, max_limit]`, then smoothed:
///   `L ← (1 − smoothing)·L + smoothing·new`.
///
/// A sample faster than `rtt_noload` only lowers `rtt_noload`; the very
/// first sets it. Every `probe_multiplier·L` samples or so (jittered by a
/// factor drawn from 0.5 to 1), one sample's RTT *replaces* `rtt_noload`,
/// so that a service that got slower for good is measured afresh rather
/// than held to an RTT it can no longer reach.
///
/// Defaults are Netflix's: initial limit 20, max 1000, smoothing 1.0,
/// probe multiplier 30. Netflix lets α, β, the threshold and the steps be
/// replaced by functions of the limit; rampart keeps its log10 defaults.
///
/// ```
/// use rampart::limit::{LimitLayer, Vegas};
///
/// let layer = LimitLayer::builder("api")
///     .algorithm(Vegas::new().max_limit(500))
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Vegas {
    initial_limit: usize,
    max_limit: usize,
    smoothing: f64,
    probe_multiplier: usize,
    estimated: f64,
    rtt_noload: Option<Duration>,
    probe_count: usize,
    probe_jitter: f64,
}

impl Default for Vegas {
    fn default() -> Self {
        Vegas::new()
    }
}

impl Vegas {
    /// Vegas with Netflix's defaults.
    pub fn new() -> Self {
        Vegas {
            initial_limit: 20,
            max_limit: 1000,
            smoothing: 1.0,
            probe_multiplier: 30,
            estimated: 20.0,
            rtt_noload: None,
            probe_count: 0,
            probe_jitter: probe_jitter(),
        }
    }

    /// The limit before the first sample. Default 20; from 1 to
    /// `max_limit`.
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self.estimated = limit as f64;
        self
    }

    /// The highest limit. Default 1000; from 1 to 2^24.
    pub fn max_limit(mut self, limit: usize) -> Self {
        self.max_limit = limit;
        self
    }

    /// How much of each new estimate is taken: 1.0 (the default) takes it
    /// whole; in (0, 1].
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// `rtt_noload` is measured afresh about every `multiplier × limit`
    /// samples (windows). Default 30; at least 1.
    pub fn probe_multiplier(mut self, multiplier: usize) -> Self {
        self.probe_multiplier = multiplier;
        self
    }

    /// The lowest RTT seen (or last probed), if any sample came yet.
    pub fn rtt_noload(&self) -> Option<Duration> {
        self.rtt_noload
    }

    /// The next probe's jitter, fixed (tests only: it is random otherwise).
    #[cfg(test)]
    pub(crate) fn with_probe_jitter(mut self, jitter: f64) -> Self {
        self.probe_jitter = jitter;
        self
    }

    fn should_probe(&self) -> bool {
        self.probe_jitter * self.probe_multiplier as f64 * self.estimated <= self.probe_count as f64
    }

    fn update_estimated(&mut self, rtt: Duration, rtt_noload: Duration, sample: Sample) {
        let limit = self.estimated;
        let queue = (limit * (1.0 - rtt_noload.as_secs_f64() / rtt.as_secs_f64())).ceil();
        let lg = log10_root(limit as usize) as f64;
        let new = if sample.dropped {
            limit - lg
        } else if (sample.in_flight as f64) * 2.0 < limit {
            return;
        } else {
            let (alpha, beta, threshold) = (3.0 * lg, 6.0 * lg, lg);
            if queue <= threshold {
                limit + beta
            } else if queue < alpha {
                limit + lg
            } else if queue > beta {
                limit - lg
            } else {
                return;
            }
        };
        let new = new.clamp(1.0, self.max_limit as f64);
        self.estimated = (1.0 - self.smoothing) * limit + self.smoothing * new;
    }
}

impl Algorithm for Vegas {
    fn initial_limit(&self) -> usize {
        self.initial_limit
    }

    fn update(&mut self, sample: Sample) -> usize {
        let rtt = sample.rtt;
        if rtt.is_zero() {
            // Netflix refuses an RTT of 0; the limiter never sends one.
            return self.estimated as usize;
        }
        self.probe_count += 1;
        if self.should_probe() {
            self.probe_jitter = probe_jitter();
            self.probe_count = 0;
            self.rtt_noload = Some(rtt);
            return self.estimated as usize;
        }
        match self.rtt_noload {
            Some(noload) if rtt >= noload => self.update_estimated(rtt, noload, sample),
            _ => self.rtt_noload = Some(rtt),
        }
        self.estimated as usize
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Validator::new("Vegas limit".into());
        v.check(
            (1..=MAX_LIMIT).contains(&self.max_limit),
            "max_limit",
            || format!("must be from 1 to {MAX_LIMIT}, got {}", self.max_limit),
        );
        v.check(
            self.initial_limit >= 1 && self.initial_limit <= self.max_limit,
            "initial_limit",
            || {
                format!(
                    "must be from 1 to max_limit ({}), got {}",
                    self.max_limit, self.initial_limit
                )
            },
        );
        v.check(
            self.smoothing > 0.0 && self.smoothing <= 1.0,
            "smoothing",
            || format!("must be in (0, 1], got {}", self.smoothing),
        );
        v.check(self.probe_multiplier >= 1, "probe_multiplier", || {
            "must be at least 1, got 0".into()
        });
        v.finish()
    }
}

/// Netflix draws it uniformly from [0.5, 1).
fn probe_jitter() -> f64 {
    0.5 + 0.5 * crate::internal::rng::unit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A Vegas that never probes within a test, unless told to.
    fn vegas() -> Vegas {
        Vegas::new().with_probe_jitter(1.0)
    }

    #[test]
    fn first_sample_sets_the_noload_rtt_and_keeps_the_limit() {
        let mut v = vegas();
        assert_eq!(v.update(Sample::new(ms(10), 20, false)), 20);
        assert_eq!(v.rtt_noload(), Some(ms(10)));
        // Faster: only the no-load RTT moves.
        assert_eq!(v.update(Sample::new(ms(8), 20, false)), 20);
        assert_eq!(v.rtt_noload(), Some(ms(8)));
    }

    #[test]
    fn each_band_of_the_queue_estimate_step_by_step() {
        let mut v = vegas();
        v.update(Sample::new(ms(100), 20, false)); // rtt_noload = 100 ms
                                                   // L = 20, lg = 1, α = 3, β = 6, threshold = 1.
                                                   // rtt 100: queue = ⌈20·0⌉ = 0 ≤ 1 → L + β = 26.
        assert_eq!(v.update(Sample::new(ms(100), 20, false)), 26);
        // L = 26: rtt 105 → queue = ⌈26·(1 − 100/105)⌉ = ⌈1.24⌉ = 2 < α → L + lg = 27.
        assert_eq!(v.update(Sample::new(ms(105), 26, false)), 27);
        // L = 27: rtt 115 → queue = ⌈27·0.1304⌉ = ⌈3.52⌉ = 4: α ≤ 4 ≤ β → unchanged.
        assert_eq!(v.update(Sample::new(ms(115), 27, false)), 27);
        // rtt 150 → queue = ⌈27·(1/3)⌉ = 9 > β → L − lg = 26.
        assert_eq!(v.update(Sample::new(ms(150), 27, false)), 26);
        // A drop, whatever the RTT: L − lg = 25.
        assert_eq!(v.update(Sample::new(ms(100), 26, true)), 25);
        // Fewer than half the permits in use (12·2 < 25): unchanged, even
        // with no queue at all.
        assert_eq!(v.update(Sample::new(ms(100), 12, false)), 25);
        // Exactly half counts as in use: 13·2 ≥ 25 → L + β = 31.
        assert_eq!(v.update(Sample::new(ms(100), 13, false)), 31);
    }

    #[test]
    fn thresholds_scale_with_log10_of_the_limit() {
        let mut v = vegas().initial_limit(150);
        v.update(Sample::new(ms(100), 150, false));
        // L = 150: lg = 2, α = 6, β = 12, threshold = 2.
        // queue = ⌈150·(1 − 100/101)⌉ = ⌈1.49⌉ = 2 ≤ 2 → L + 12 = 162.
        assert_eq!(v.update(Sample::new(ms(101), 150, false)), 162);
        // queue = ⌈162·(1 − 100/103)⌉ = ⌈4.72⌉ = 5 < 6 → L + 2 = 164.
        assert_eq!(v.update(Sample::new(ms(103), 162, false)), 164);
        // queue = ⌈164·(1 − 100/110)⌉ = ⌈14.9⌉ = 15 > 12 → L − 2 = 162.
        assert_eq!(v.update(Sample::new(ms(110), 164, false)), 162);
        // A drop: L − 2 = 160.
        assert_eq!(v.update(Sample::new(ms(100), 162, true)), 160);
    }

    #[test]
    fn stays_within_one_and_max_limit() {
        let mut v = vegas().initial_limit(995).max_limit(1000);
        v.update(Sample::new(ms(10), 995, false));
        // No queue: lg = 2, 995 + β (12) = 1007, capped at 1000.
        assert_eq!(v.update(Sample::new(ms(10), 995, false)), 1000);

        let mut v = vegas().initial_limit(1);
        v.update(Sample::new(ms(10), 1, false));
        // A drop at 1: 1 − 1 = 0, kept at 1.
        assert_eq!(v.update(Sample::new(ms(10), 1, true)), 1);
    }

    #[test]
    fn smoothing_takes_part_of_each_step() {
        let mut v = vegas().smoothing(0.5);
        v.update(Sample::new(ms(100), 20, false));
        // new = 26; L = 0.5·20 + 0.5·26 = 23.
        assert_eq!(v.update(Sample::new(ms(100), 20, false)), 23);
        // new = 23 + 6 = 29; L = 0.5·23 + 0.5·29 = 26.
        assert_eq!(v.update(Sample::new(ms(100), 23, false)), 26);
    }

    #[test]
    fn probes_the_noload_rtt_afresh_every_multiplier_times_limit_samples() {
        // jitter 0.5, multiplier 2, L = 4 → a probe at sample 0.5·2·4 = 4.
        let mut v = Vegas::new()
            .initial_limit(4)
            .probe_multiplier(2)
            .with_probe_jitter(0.5);
        assert_eq!(v.update(Sample::new(ms(10), 4, false)), 4); // 1: sets noload 10
        assert_eq!(v.update(Sample::new(ms(10), 4, false)), 10); // 2: no queue, + 6
        v.probe_jitter = 0.5 * 4.0 / 10.0; // keep the probe at sample 4 now that L = 10
                                           // 3: queue = ⌈10·(1 − 10/20)⌉ = 5 (α = 3 ≤ 5 ≤ 6): unchanged.
        assert_eq!(v.update(Sample::new(ms(20), 10, false)), 10);
        // 4: the probe: rtt_noload is replaced by this sample's, higher or
        // not, and the limit is left as it is.
        assert_eq!(v.update(Sample::new(ms(20), 10, false)), 10);
        assert_eq!(v.rtt_noload(), Some(ms(20)));
        // 5: measured against the probed 20 ms: no queue → + 6.
        assert_eq!(v.update(Sample::new(ms(20), 10, false)), 16);
    }

    #[test]
    fn rejects_options_out_of_range() {
        let err = Vegas::new()
            .max_limit(0)
            .smoothing(1.5)
            .probe_multiplier(0)
            .validate()
            .unwrap_err();
        assert!(err.names("max_limit"));
        assert!(err.names("initial_limit"));
        assert!(err.names("smoothing"));
        assert!(err.names("probe_multiplier"));
        assert!(Vegas::new().validate().is_ok());
    }
}
