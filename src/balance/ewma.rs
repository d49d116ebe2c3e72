//! Peak-EWMA latency: reacts at once to a slow response, forgets it slowly.
//!
//! tower's `PeakEwma` keeps its estimate behind a `Mutex`; this one keeps it
//! in two atomics. Concurrent updates race benignly (the last writer wins),
//! which only blurs an estimate that is an estimate anyway.

use crate::internal::clock::Micros;
use std::sync::atomic::{AtomicU64, Ordering};

/// A failure at least doubles the estimate.
const FAILURE_PENALTY: f64 = 2.0;
/// ... up to a minute (a longer observed latency still counts in full).
const MAX_PENALTY: f64 = 60e6;

#[derive(Debug)]
pub(crate) struct PeakEwma {
    /// The estimate in µs, as `f64` bits.
    estimate: AtomicU64,
    /// When the estimate was last updated.
    updated: AtomicU64,
    /// `1 / decay`, so the hot path multiplies instead of dividing.
    per_decay: f64,
}

/// `e^-x` for `x >= 0`. Between two responses a few milliseconds apart `x`
/// is tiny, and a short series is exact to 1e-5 there and far cheaper than
/// `f64::exp` on the selection path; larger `x` (an idle endpoint) pays for
/// the real thing. Below 1e-3 (a millisecond against the default 10 s
/// decay) the first term alone is exact to 5e-7 and shortens the chain of
/// dependent multiplications P2C waits on twice per pick: 4 ns of its
/// 109 (criterion, `perf/`).
#[inline]
fn decay_factor(x: f64) -> f64 {
    if x < 1e-3 {
        1.0 - x
    } else if x < 0.1 {
        1.0 - x + 0.5 * x * x - x * x * x * (1.0 / 6.0)
    } else {
        (-x).exp()
    }
}

impl PeakEwma {
    /// Starts at `initial` µs; an old estimate loses weight with time
    /// constant `decay` µs.
    pub(crate) fn new(initial: f64, decay: Micros, now: Micros) -> Self {
        PeakEwma {
            estimate: AtomicU64::new(initial.to_bits()),
            updated: AtomicU64::new(now),
            per_decay: 1.0 / decay.max(1) as f64,
        }
    }

    /// Folds in a response time of `rtt` µs observed at `now`.
    pub(crate) fn record(&self, now: Micros, rtt: u64) {
        let rtt = rtt as f64;
        let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed));
        let next = if rtt > estimate {
            // Peak: a slow response counts in full, at once.
            rtt
        } else {
            let elapsed = now.saturating_sub(self.updated.load(Ordering::Relaxed)) as f64;
            let w = decay_factor(elapsed * self.per_decay);
            estimate * w + rtt * (1.0 - w)
        };
        self.estimate.store(next.to_bits(), Ordering::Relaxed);
        self.updated.store(now, Ordering::Relaxed);
    }

    /// Folds in a failure (or a timeout) after `rtt` µs: evidence that the
    /// endpoint is bad, never that it is fast. The estimate becomes a peak
    /// of at least `rtt` and at least [`FAILURE_PENALTY`] times what it was
    /// (capped at [`MAX_PENALTY`] µs), so each failure in a row raises it
    /// further and no failure lowers it.
    pub(crate) fn penalize(&self, now: Micros, rtt: u64) {
        let estimate = self.estimate(now);
        let penalized = (estimate * FAILURE_PENALTY).min(MAX_PENALTY).max(estimate);
        let next = penalized.max(rtt as f64);
        self.estimate.store(next.to_bits(), Ordering::Relaxed);
        self.updated.store(now, Ordering::Relaxed);
    }

    /// Folds in an attempt cancelled after `elapsed` µs without an answer:
    /// a lower bound on its latency, so it counts only if it is above the
    /// estimate (an attempt cut short sooner says nothing).
    pub(crate) fn at_least(&self, now: Micros, elapsed: u64) {
        if elapsed as f64 > self.estimate(now) {
            self.record(now, elapsed);
        }
    }

    /// Starts over at `initial` µs (an endpoint back from ejection: whatever
    /// it learned before, and the silence since, say nothing of it now).
    pub(crate) fn reset(&self, initial: f64, now: Micros) {
        self.estimate.store(initial.to_bits(), Ordering::Relaxed);
        self.updated.store(now, Ordering::Relaxed);
    }

    /// The estimate at `now`, decayed since the last response so that an
    /// endpoint nobody picks because it was slow is tried again in time.
    #[inline]
    pub(crate) fn estimate(&self, now: Micros) -> f64 {
        let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed));
        let elapsed = now.saturating_sub(self.updated.load(Ordering::Relaxed)) as f64;
        estimate * decay_factor(elapsed * self.per_decay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_at_once_and_decays_slowly() {
        let e = PeakEwma::new(1_000.0, 10_000_000, 0);
        e.record(0, 50_000);
        assert_eq!(e.estimate(0), 50_000.0, "a slow response counts at once");
        e.record(1_000, 1_000);
        assert!(
            e.estimate(1_000) > 45_000.0,
            "one fast response barely moves it"
        );
        assert!(
            e.estimate(60_000_000) < 200.0,
            "a minute of silence forgets it"
        );
    }

    #[test]
    fn a_failure_raises_the_estimate_and_never_lowers_it() {
        let e = PeakEwma::new(30_000.0, 10_000_000, 0);
        e.penalize(0, 100);
        assert_eq!(e.estimate(0), 60_000.0, "a fast failure doubles it");
        e.penalize(0, 500_000);
        assert_eq!(e.estimate(0), 500_000.0, "a slow one counts in full");
        for _ in 0..100 {
            e.penalize(0, 0);
        }
        assert_eq!(e.estimate(0), MAX_PENALTY, "capped");
        // A cancelled attempt is a lower bound: only above the estimate.
        let e = PeakEwma::new(30_000.0, 10_000_000, 0);
        e.at_least(0, 10_000);
        assert_eq!(e.estimate(0), 30_000.0);
        e.at_least(0, 200_000);
        assert_eq!(e.estimate(0), 200_000.0);
    }

    #[test]
    fn decay_factor_tracks_exp() {
        let small = (0..100).map(|i| i as f64 * 2e-5); // the first-order tier
        let larger = (0..100).map(|i| i as f64 / 20.0);
        for x in small
            .chain(larger)
            .chain([1e-3 - 1e-12, 1e-3, 0.1 - 1e-12, 0.1])
        {
            let (got, want) = (decay_factor(x), (-x).exp());
            let tolerance = if x < 1e-3 { 5e-7 } else { 1e-5 };
            assert!((got - want).abs() < tolerance, "x={x}: {got} vs {want}");
        }
    }
}
