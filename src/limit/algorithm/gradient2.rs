//! The gradient of the RTT against its long-term average, as a
//! concurrency limit.

use super::{check_limits, Algorithm, Sample, MAX_LIMIT};
use crate::error::{ConfigError, Validator};

/// Gradient2 (Netflix's `Gradient2Limit`): compares each window's RTT with
/// an exponential average of past ones, and shrinks the limit in
/// proportion when the RTT rises past a tolerance.
///
/// With `L` the limit, `short` the window's RTT and `long` the long-term
/// RTT:
///
/// - `long` is an exponential moving average with factor `2/(n + 1)`,
///   `n` = `long_window` samples, after a plain mean over the first 10;
/// - when `long/short > 2` (the service got much faster, as after a spell
///   of overload), `long` is cut to 95 % at once instead of waiting for the
///   average to come down;
/// - fewer than half the permits in use (`in_flight < L/2`): no change;
/// - else `gradient = clamp(rtt_tolerance·long/short, 0.5, 1.0)`,
///   `new = L·gradient + queue_size`, `L ← (1 − smoothing)·L +
///   smoothing·new`, kept within `[min_limit, max_limit]`.
///
/// So the limit grows by `queue_size·smoothing` (0.8) per window while
/// the RTT stays under `rtt_tolerance` (1.5) times its average, and
/// shrinks by up to half a step per window past that.
///
/// Defaults are Netflix's: initial limit 20, min 20, max 200, smoothing
/// 0.2, queue size 4, RTT tolerance 1.5, long window 600 samples.
///
/// Three properties of the real algorithm, kept as they are:
///
/// - It settles where the RTT is about `rtt_tolerance / (1 − queue_size/L)`
///   times its long-term average: 1.6× with the defaults at `L` = 50. A
///   service whose latency rises slowly past its capacity is held well past
///   it; a lower tolerance holds it closer (1.2: about 1.3×).
/// - Under a steady overload the limit keeps creeping up: the long-term
///   average follows the RTT up, and the gradient goes back to 1
///   (Netflix/concurrency-limits issue 134).
/// - A drop does not count: Gradient2 reads only the RTT (issue 176 there).
///   [`Vegas`](super::Vegas) and [`Aimd`](super::Aimd) react to drops.
///
/// Measured against `examples/adaptive_limit.rs`'s server (capacity 50,
/// then 15 % slower per request past it; 100 ms windows): the defaults
/// reach 55 at 6 s and creep on to 56 to 57, with a p99 1.7× rising to 2.0×
/// the unloaded one by 13 s;
/// `rtt_tolerance(1.2)` settles at 51 to 54 within 4 s, p99 about 1.5×.
///
/// ```
/// use rampart::limit::{Gradient2, LimitLayer};
///
/// let layer = LimitLayer::builder("api")
///     .algorithm(Gradient2::new().max_limit(100))
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gradient2 {
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
    smoothing: f64,
    queue_size: usize,
    rtt_tolerance: f64,
    long_window: usize,
    estimated: f64,
    long_rtt: ExpAverage,
}

/// Netflix's `ExpAvgMeasurement`: a plain mean over the first `warmup`
/// samples, an exponential average after.
#[derive(Debug, Clone)]
struct ExpAverage {
    value: f64,
    sum: f64,
    count: usize,
    warmup: usize,
}

/// Samples averaged plainly before the exponential average starts
/// (Netflix's fixed 10).
const WARMUP: usize = 10;

impl ExpAverage {
    fn add(&mut self, sample: f64, window: usize) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.sum += sample;
            self.value = self.sum / self.count as f64;
        } else {
            let factor = 2.0 / (window as f64 + 1.0);
            self.value = self.value * (1.0 - factor) + sample * factor;
        }
        self.value
    }
}

impl Default for Gradient2 {
    fn default() -> Self {
        Gradient2::new()
    }
}

impl Gradient2 {
    /// Gradient2 with Netflix's defaults.
    pub fn new() -> Self {
        Gradient2 {
            initial_limit: 20,
            min_limit: 20,
            max_limit: 200,
            smoothing: 0.2,
            queue_size: 4,
            rtt_tolerance: 1.5,
            long_window: 600,
            estimated: 20.0,
            long_rtt: ExpAverage {
                value: 0.0,
                sum: 0.0,
                count: 0,
                warmup: WARMUP,
            },
        }
    }

    /// The limit before the first sample. Default 20; from `min_limit` to
    /// `max_limit`.
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self.estimated = limit as f64;
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

    /// How much of each new estimate is taken. Default 0.2; in (0, 1].
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Calls allowed to queue: what the limit grows by (times `smoothing`)
    /// per window while the RTT is steady. Default 4.
    pub fn queue_size(mut self, size: usize) -> Self {
        self.queue_size = size;
        self
    }

    /// How far the RTT may rise over its long-term average before the
    /// limit shrinks: 1.5 (the default) lets it rise by half; at least 1.
    pub fn rtt_tolerance(mut self, tolerance: f64) -> Self {
        self.rtt_tolerance = tolerance;
        self
    }

    /// The long-term RTT's averaging window, in samples (windows).
    /// Default 600; at least 1.
    pub fn long_window(mut self, samples: usize) -> Self {
        self.long_window = samples;
        self
    }

    /// The long-term RTT, in seconds (0 before the first sample).
    pub fn long_rtt(&self) -> f64 {
        self.long_rtt.value
    }
}

impl Algorithm for Gradient2 {
    fn initial_limit(&self) -> usize {
        self.initial_limit
    }

    fn update(&mut self, sample: Sample) -> usize {
        let short = sample.rtt.as_secs_f64();
        if short == 0.0 {
            return self.estimated as usize;
        }
        let long = self.long_rtt.add(short, self.long_window);
        if long / short > 2.0 {
            // Netflix decays the measurement, while this sample's gradient
            // still uses the value before the decay.
            self.long_rtt.value *= 0.95;
        }
        if (sample.in_flight as f64) < self.estimated / 2.0 {
            return self.estimated as usize;
        }
        let gradient = (self.rtt_tolerance * long / short).clamp(0.5, 1.0);
        let new = self.estimated * gradient + self.queue_size as f64;
        let new = self.estimated * (1.0 - self.smoothing) + new * self.smoothing;
        self.estimated = new.clamp(self.min_limit as f64, self.max_limit as f64);
        self.estimated as usize
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Validator::new("Gradient2 limit".into());
        check_limits(&mut v, self.min_limit, self.initial_limit, self.max_limit);
        v.check(
            self.smoothing > 0.0 && self.smoothing <= 1.0,
            "smoothing",
            || format!("must be in (0, 1], got {}", self.smoothing),
        );
        v.check(
            self.rtt_tolerance >= 1.0 && self.rtt_tolerance.is_finite(),
            "rtt_tolerance",
            || format!("must be at least 1, got {}", self.rtt_tolerance),
        );
        v.check(self.long_window >= 1, "long_window", || {
            "must be at least 1, got 0".into()
        });
        v.check(self.queue_size <= MAX_LIMIT, "queue_size", || {
            format!("must be at most {MAX_LIMIT}, got {}", self.queue_size)
        });
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn grows_by_queue_size_times_smoothing_while_the_rtt_is_steady() {
        let mut g = Gradient2::new();
        // gradient = clamp(1.5·10/10) = 1: new = 20 + 4 = 24;
        // L = 0.8·20 + 0.2·24 = 20.8.
        assert_eq!(g.update(Sample::new(ms(10), 20, false)), 20);
        assert!(close(g.estimated, 20.8));
        // L = 20.8 + 0.8 = 21.6, then 22.4: the limit reported is ⌊L⌋.
        assert_eq!(g.update(Sample::new(ms(10), 20, false)), 21);
        assert_eq!(g.update(Sample::new(ms(10), 21, false)), 22);
        assert!(close(g.estimated, 22.4));
    }

    #[test]
    fn shrinks_in_proportion_past_the_tolerance() {
        let mut g = Gradient2::new().initial_limit(100);
        for _ in 0..10 {
            g.update(Sample::new(ms(10), 100, false)); // warm-up mean: 10 ms
        }
        let before = g.estimated;
        // long = EMA: 10 + (30 − 10)·2/601 = 10.0666 ms; gradient =
        // 1.5·10.0666/30 = 0.50333; new = L·0.50333 + 4;
        // L ← 0.8·L + 0.2·new.
        let long = 0.010 + (0.030 - 0.010) * 2.0 / 601.0;
        let gradient = 1.5 * long / 0.030;
        let expected = 0.8 * before + 0.2 * (before * gradient + 4.0);
        g.update(Sample::new(ms(30), 100, false));
        assert!(close(g.long_rtt(), long));
        assert!(
            close(g.estimated, expected),
            "{} vs {expected}",
            g.estimated
        );
        // An RTT of 4× the average: the gradient is held at 0.5.
        let before = g.estimated;
        let long = g.long_rtt() * (1.0 - 2.0 / 601.0) + 0.080 * 2.0 / 601.0;
        g.update(Sample::new(ms(80), 100, false));
        assert!(close(
            g.estimated,
            0.8 * before + 0.2 * (before * 0.5 + 4.0)
        ));
        assert!(close(g.long_rtt(), long));
    }

    #[test]
    fn the_long_rtt_is_a_plain_mean_for_ten_samples_then_exponential() {
        let mut g = Gradient2::new();
        for (i, rtt) in [10u64, 20, 30, 40, 50, 60, 70, 80, 90, 100]
            .iter()
            .enumerate()
        {
            g.update(Sample::new(ms(*rtt), 20, false));
            let n = (i + 1) as f64;
            let mean = (1..=i as u64 + 1).map(|k| 0.010 * k as f64).sum::<f64>() / n;
            assert!(close(g.long_rtt(), mean));
        }
        // Mean 55 ms; the 11th sample enters with factor 2/601.
        g.update(Sample::new(ms(100), 20, false));
        assert!(close(g.long_rtt(), 0.055 + (0.100 - 0.055) * 2.0 / 601.0));
    }

    #[test]
    fn the_long_rtt_decays_when_the_service_gets_much_faster() {
        let mut g = Gradient2::new().initial_limit(50);
        for _ in 0..10 {
            g.update(Sample::new(ms(100), 50, false));
        }
        // long = 100 + (40 − 100)·2/601 = 99.8 ms; long/short = 2.495 > 2:
        // long ← 95 % of that. The gradient (1.5·99.8/40, held at 1) still
        // used the value before the cut.
        let long = 0.100 + (0.040 - 0.100) * 2.0 / 601.0;
        let before = g.estimated;
        g.update(Sample::new(ms(40), 50, false));
        assert!(close(g.long_rtt(), long * 0.95));
        assert!(close(g.estimated, before + 0.8));
    }

    #[test]
    fn no_change_while_fewer_than_half_the_permits_are_in_use() {
        let mut g = Gradient2::new().initial_limit(40);
        // 19 < 40/2: unchanged, even with a steady RTT.
        assert_eq!(g.update(Sample::new(ms(10), 19, false)), 40);
        assert!(close(g.estimated, 40.0));
        // The long RTT is still fed.
        assert!(close(g.long_rtt(), 0.010));
        // 20 = 40/2 counts as in use.
        g.update(Sample::new(ms(10), 20, false));
        assert!(close(g.estimated, 40.8));
    }

    #[test]
    fn a_drop_alone_changes_nothing() {
        let mut a = Gradient2::new();
        let mut b = Gradient2::new();
        for _ in 0..5 {
            a.update(Sample::new(ms(10), 20, true));
            b.update(Sample::new(ms(10), 20, false));
        }
        assert!(close(a.estimated, b.estimated));
    }

    #[test]
    fn stays_within_min_and_max() {
        let mut g = Gradient2::new().initial_limit(200);
        g.update(Sample::new(ms(10), 200, false));
        assert_eq!(g.estimated, 200.0, "200.8 held at max 200");
        let mut g = Gradient2::new();
        for _ in 0..10 {
            g.update(Sample::new(ms(10), 20, false)); // 20 → 28
        }
        assert!(close(g.estimated, 28.0));
        // 10× the average: gradient 0.5, so L ← 0.8·L + 0.2·(0.5·L + 4):
        // 26.0, 24.2, 22.58, 21.122, then 19.81, held at min 20.
        for expected in [26.0, 24.2, 22.58, 21.122] {
            g.update(Sample::new(ms(100), 28, false));
            assert!(
                close(g.estimated, expected),
                "{} vs {expected}",
                g.estimated
            );
        }
        g.update(Sample::new(ms(100), 28, false));
        assert_eq!(g.estimated, 20.0);
    }

    #[test]
    fn rejects_options_out_of_range() {
        let err = Gradient2::new()
            .min_limit(0)
            .smoothing(0.0)
            .rtt_tolerance(0.9)
            .long_window(0)
            .validate()
            .unwrap_err();
        for field in ["min_limit", "smoothing", "rtt_tolerance", "long_window"] {
            assert!(err.names(field), "{field}");
        }
        let err = Gradient2::new().initial_limit(10).validate().unwrap_err();
        assert!(err.names("initial_limit"), "below min_limit 20");
        assert!(Gradient2::new().validate().is_ok());
    }
}
