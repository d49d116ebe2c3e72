//! When to send a hedge: a fixed delay, or a percentile of recent latency.

use crate::error::Validator;
use crate::internal::clock::{micros, Clock};
use crate::window::{Category, Record, TimeWindow};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Default percentile of recent latency after which a hedge is sent (p95,
/// as Finagle and tower).
pub const DEFAULT_PERCENTILE: f64 = 95.0;
/// Default number of recent successful calls needed before a percentile
/// delay hedges at all.
pub const DEFAULT_MIN_SAMPLES: u64 = 100;

/// The span of "recent" latency, and how often the percentile is
/// recomputed from it.
const WINDOW: Duration = Duration::from_secs(10);
const BUCKETS: usize = 10;
const PERIOD: Duration = Duration::from_secs(1);

/// How long a call runs before a hedge is sent.
///
/// ```
/// use rampart::hedge::HedgeDelay;
/// use std::time::Duration;
///
/// let fixed = HedgeDelay::fixed(Duration::from_millis(50));
/// // Once slower than 95 % of the last 10 s of successful calls, after 100 of them.
/// let adaptive = HedgeDelay::percentile(95.0);
/// let careful = HedgeDelay::percentile(99.0).min_samples(1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeDelay(Kind);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Fixed(Duration),
    Percentile { p: f64, min_samples: u64 },
}

impl HedgeDelay {
    /// Always `delay` (at most an hour). Zero sends the copies at once
    /// (Dean and Barroso's "tied requests"), still within the extra-load
    /// cap.
    pub fn fixed(delay: Duration) -> Self {
        HedgeDelay(Kind::Fixed(delay))
    }

    /// The `p`th percentile (0 < p < 100) of the latency of the successful
    /// calls of the last 10 s, recomputed every second; no hedging until
    /// [`min_samples`](Self::min_samples) calls are in the window (default
    /// 100). Latencies are bucketed (within 6.25 %).
    pub fn percentile(p: f64) -> Self {
        HedgeDelay(Kind::Percentile {
            p,
            min_samples: DEFAULT_MIN_SAMPLES,
        })
    }

    /// For a percentile delay: how many calls the window must hold before
    /// hedging starts (1 to 10 000 000). No effect on a fixed delay.
    pub fn min_samples(self, n: u64) -> Self {
        match self.0 {
            Kind::Percentile { p, .. } => HedgeDelay(Kind::Percentile { p, min_samples: n }),
            fixed => HedgeDelay(fixed),
        }
    }

    pub(crate) fn check(&self, v: &mut Validator) {
        match self.0 {
            Kind::Fixed(d) => v.check(d <= Duration::from_secs(3600), "delay", || {
                format!("must be at most an hour, got {d:?}")
            }),
            Kind::Percentile { p, min_samples } => {
                v.check(p > 0.0 && p < 100.0, "percentile", || {
                    format!("must be between 0 and 100 (exclusive), got {p}")
                });
                v.check(
                    (1..=10_000_000).contains(&min_samples),
                    "min_samples",
                    || format!("must be from 1 to 10000000, got {min_samples}"),
                );
            }
        }
    }
}

impl Default for HedgeDelay {
    /// [`HedgeDelay::percentile`] at p95.
    fn default() -> Self {
        HedgeDelay::percentile(DEFAULT_PERCENTILE)
    }
}

/// No delay known yet: do not hedge.
const UNKNOWN: u64 = u64::MAX;

/// The delay in force, and what it is computed from.
pub(crate) enum Tracker {
    Fixed(Duration),
    Percentile {
        p: f64,
        min_samples: u64,
        clock: Clock,
        window: TimeWindow,
        /// The delay in microseconds, or `UNKNOWN`.
        delay: AtomicU64,
        /// When to recompute it next.
        next: AtomicU64,
    },
}

impl Tracker {
    pub(crate) fn new(delay: HedgeDelay) -> Self {
        match delay.0 {
            Kind::Fixed(d) => Tracker::Fixed(d),
            Kind::Percentile { p, min_samples } => {
                let clock = Clock::new();
                Tracker::Percentile {
                    p,
                    min_samples,
                    window: TimeWindow::new(micros(WINDOW / BUCKETS as u32), BUCKETS, clock.now()),
                    clock,
                    delay: AtomicU64::new(UNKNOWN),
                    next: AtomicU64::new(0),
                }
            }
        }
    }

    /// Whether successful calls' latencies are wanted.
    pub(crate) fn measures(&self) -> bool {
        matches!(self, Tracker::Percentile { .. })
    }

    /// The delay before a hedge, at `now`; `None`: do not hedge.
    pub(crate) fn delay(&self, now: Instant) -> Option<Duration> {
        match self {
            Tracker::Fixed(d) => Some(*d),
            Tracker::Percentile {
                p,
                min_samples,
                clock,
                window,
                delay,
                next,
            } => {
                let at = clock.at(now);
                // One caller a period recomputes; the others read the last.
                let due = next.load(Ordering::Relaxed);
                if at >= due
                    && next
                        .compare_exchange(
                            due,
                            at + micros(PERIOD),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    let latencies = window.latencies(at);
                    let value = if latencies.count() >= *min_samples {
                        micros(latencies.percentile(*p))
                    } else {
                        UNKNOWN
                    };
                    delay.store(value, Ordering::Relaxed);
                }
                match delay.load(Ordering::Relaxed) {
                    UNKNOWN => None,
                    us => Some(Duration::from_micros(us)),
                }
            }
        }
    }

    /// Records a successful call's latency.
    pub(crate) fn record(&self, now: Instant, latency: Duration) {
        if let Tracker::Percentile { clock, window, .. } = self {
            let record = Record::call(Category::Success, false, micros(latency));
            window.record(clock.at(now), record);
        }
    }
}
