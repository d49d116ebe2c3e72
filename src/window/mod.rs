//! Rolling statistics: what happened in the last N seconds, or the last N calls.
//!
//! Two windows share one vocabulary ([`Counts`], [`LatencySnapshot`]):
//!
//! - a **time-based** window (Hystrix's rolling window; default 10 s in 10
//!   buckets): counts and a latency histogram over the buckets that cover the
//!   last window duration, the current bucket included;
//! - a **count-based** window (resilience4j's sliding window): the outcomes and
//!   latencies of the last N calls.
//!
//! Recording is lock-free. The time-based window keeps monotonically growing
//! totals in per-thread shards (each on its own cache line, so two threads
//! recording at once do not fight over one line) and, at each bucket boundary,
//! a mark of those totals; a window's counts are the totals now minus the mark
//! at its start. No bucket is ever zeroed while someone may be writing to it,
//! so no count is lost: a call recorded during a bucket change can only be
//! credited to the neighbouring bucket. The count-based window swaps each
//! outcome into a ring slot and adds the new outcome, subtracting the one it
//! replaced, so its counts always describe exactly the calls in the ring.

mod count;
mod histogram;
#[cfg(feature = "bulkhead")]
mod max;
mod time;

pub(crate) use count::CountWindow;
pub use histogram::{LatencySnapshot, DASHBOARD_PERCENTILES};
#[cfg(feature = "bulkhead")]
pub(crate) use max::RollingMax;
pub(crate) use time::TimeWindow;

/// What one recorded event was. `Slow` is not a category but a flag on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Success = 0,
    Failure = 1,
    Timeout = 2,
    Rejected = 3,
    Ignored = 4,
    ShortCircuited = 5,
}

/// Index of the slow-call tally next to the categories.
const SLOW: usize = 6;
/// Index of the latency sum (microseconds) next to the tallies.
const LATENCY_SUM: usize = 7;
/// Tallies kept per shard and per mark: six categories, slow, latency sum.
const TALLIES: usize = 8;

/// How many events of each kind a window holds.
///
/// `calls()` is what rates are computed over: successes, failures, timeouts
/// and rejections by a bulkhead beneath the breaker. Ignored calls (the
/// classifier said the dependency was not at fault) and the breaker's own
/// short-circuits are tallied but never count toward a rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls classified as a success.
    pub successes: u64,
    /// Calls classified as a failure (other than timeouts and rejections).
    pub failures: u64,
    /// Calls that failed with a timeout.
    pub timeouts: u64,
    /// Calls rejected by a bulkhead or concurrency limit beneath the breaker.
    pub rejections: u64,
    /// Calls the classifier ignored (e.g. a 404: not the dependency's fault).
    pub ignored: u64,
    /// Calls the breaker itself rejected without calling the dependency.
    pub short_circuited: u64,
    /// Calls (successful or not, ignored ones excepted) slower than the
    /// slow-call bound.
    pub slow: u64,
}

impl Counts {
    /// Calls that count toward the rates: successes, failures, timeouts and
    /// rejections beneath the breaker.
    pub fn calls(&self) -> u64 {
        self.successes + self.failed()
    }

    /// Calls that count as failed: failures, timeouts and rejections.
    pub fn failed(&self) -> u64 {
        self.failures + self.timeouts + self.rejections
    }

    /// `failed() / calls()`, or 0 when there were no calls.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failed(), self.calls())
    }

    /// `slow / calls()`, or 0 when there were no calls.
    pub fn slow_call_rate(&self) -> f64 {
        ratio(self.slow, self.calls())
    }

    pub(crate) fn from_tallies(t: &[u64; TALLIES]) -> Counts {
        Counts {
            successes: t[Category::Success as usize],
            failures: t[Category::Failure as usize],
            timeouts: t[Category::Timeout as usize],
            rejections: t[Category::Rejected as usize],
            ignored: t[Category::Ignored as usize],
            short_circuited: t[Category::ShortCircuited as usize],
            slow: t[SLOW],
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A recorded call, as the windows see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) category: Category,
    pub(crate) slow: bool,
    /// Latency in microseconds; `None` for short-circuits (nothing was called).
    pub(crate) latency: Option<u64>,
}

impl Record {
    pub(crate) fn call(category: Category, slow: bool, latency: u64) -> Record {
        Record {
            category,
            // An ignored call says nothing about the dependency, slow or not.
            slow: slow && category != Category::Ignored,
            latency: Some(latency),
        }
    }

    /// A bare tally, no latency: for counting events that are not calls,
    /// and calls that were not timed.
    pub(crate) fn tally(category: Category) -> Record {
        Record {
            category,
            slow: false,
            latency: None,
        }
    }

    pub(crate) fn short_circuit() -> Record {
        Record {
            category: Category::ShortCircuited,
            slow: false,
            latency: None,
        }
    }
}
