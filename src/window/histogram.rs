//! A log-linear latency histogram with bounded memory.
//!
//! Latencies are microseconds; each power of two is split into 8 equal
//! buckets, so a reported percentile is within 6.25 % of the true value
//! (values under 8 µs are exact). 304 buckets cover up to 2^40 µs (12.7
//! days); longer latencies land in the last bucket.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
const MAX_MSB: u32 = 39;

/// Number of buckets in every latency histogram.
pub(crate) const BUCKETS: usize = ((MAX_MSB - SUB_BITS + 2) as usize) * SUB as usize;

/// The percentiles the Hystrix dashboard shows, in its order.
pub const DASHBOARD_PERCENTILES: [f64; 9] = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 100.0];

/// The bucket a latency of `us` microseconds falls in.
#[inline]
pub(crate) fn bucket_of(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let us = us.min((1 << (MAX_MSB + 1)) - 1);
    let msb = 63 - us.leading_zeros();
    let sub = (us >> (msb - SUB_BITS)) & (SUB - 1);
    ((msb - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The smallest latency in bucket `i`, and the bucket's width.
fn bucket_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let msb = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = i % SUB;
    let width = 1u64 << (msb - SUB_BITS);
    ((SUB + sub) * width, width)
}

/// The value reported for bucket `i`: its midpoint.
fn bucket_value(i: usize) -> u64 {
    let (low, width) = bucket_bounds(i);
    low + (width - 1) / 2
}

/// Cumulative bucket counts, bumped lock-free.
///
/// Counts wrap at 2^32; readers take differences with wrapping arithmetic,
/// so a window stays exact as long as it holds fewer than 2^32 calls.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    buckets: Box<[AtomicU32]>,
}

impl AtomicHistogram {
    pub(crate) fn new() -> Self {
        AtomicHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// A histogram that keeps nothing: adds are dropped and every bucket
    /// reads 0. For windows of which there are very many (a breaker per
    /// key), where 1.2 KB a histogram, a dozen per window, is most of
    /// the memory a key takes.
    pub(crate) fn disabled() -> Self {
        AtomicHistogram {
            buckets: Box::new([]),
        }
    }

    /// Whether it keeps counts (see [`disabled`](Self::disabled)).
    pub(crate) fn enabled(&self) -> bool {
        !self.buckets.is_empty()
    }

    // `get` rather than indexing: the same bounds check, which a disabled
    // histogram fails on purpose.
    #[inline]
    pub(crate) fn add(&self, bucket: usize) {
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn sub(&self, bucket: usize) {
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn load(&self, bucket: usize) -> u32 {
        self.buckets
            .get(bucket)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    pub(crate) fn store(&self, bucket: usize, value: u32) {
        if let Some(count) = self.buckets.get(bucket) {
            count.store(value, Ordering::Relaxed);
        }
    }
}

/// The latencies of the calls in a window: count, mean and percentiles.
///
/// ```
/// # use rampart::window::LatencySnapshot;
/// let empty = LatencySnapshot::default();
/// assert_eq!(empty.count(), 0);
/// assert_eq!(empty.percentile(99.0), std::time::Duration::ZERO);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    buckets: Vec<u32>,
    count: u64,
    sum_us: u64,
}

impl LatencySnapshot {
    pub(crate) fn new(buckets: Vec<u32>, sum_us: u64) -> Self {
        let count = buckets.iter().map(|&c| u64::from(c)).sum();
        LatencySnapshot {
            buckets,
            count,
            sum_us,
        }
    }

    /// These latencies with `out` taken out and `in` put in their place,
    /// bucket by bucket (never below zero): a command's total latencies
    /// are its dependency's, with those of the calls a fallback served
    /// replaced by their totals.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn replacing(&self, out: &LatencySnapshot, inn: &LatencySnapshot) -> Self {
        let at = |s: &LatencySnapshot, i: usize| s.buckets.get(i).copied().unwrap_or(0);
        let buckets = (0..BUCKETS)
            .map(|i| {
                at(self, i)
                    .saturating_sub(at(out, i))
                    .saturating_add(at(inn, i))
            })
            .collect();
        let sum = self.sum_us.saturating_sub(out.sum_us) + inn.sum_us;
        LatencySnapshot::new(buckets, sum)
    }

    /// The sum of the recorded values, in whole microseconds: the
    /// collapser records batch sizes in this slot and reads their total.
    #[cfg(feature = "collapse")]
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn sum_micros(&self) -> u64 {
        self.sum_us
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean latency (exact, not bucketed), or zero when empty.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.sum_us / self.count)
    }

    /// The latency at percentile `p` (0 to 100, clamped), within 6.25 %.
    ///
    /// Percentile 0 is the smallest recorded latency, 100 the largest.
    /// Zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
        // Nearest rank: the smallest value with at least p % of values at or below it.
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Duration::from_micros(bucket_value(i));
            }
        }
        Duration::from_micros(bucket_value(self.buckets.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket_of(us);
            assert!(b == last || b == last + 1, "gap at {us}");
            let (low, width) = bucket_bounds(b);
            assert!(low <= us && us < low + width, "{us} outside bucket {b}");
            last = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    proptest! {
        #[test]
        fn reported_value_is_within_6_25_percent(us in 0u64..(1 << 40)) {
            let v = bucket_value(bucket_of(us)) as f64;
            prop_assert!((v - us as f64).abs() <= us as f64 * 0.0625 + 0.5);
        }
    }

    #[test]
    fn percentiles_follow_nearest_rank() {
        let mut buckets = vec![0u32; BUCKETS];
        // 100 calls at 1..=100 ms.
        let mut sum = 0;
        for ms in 1..=100u64 {
            buckets[bucket_of(ms * 1000)] += 1;
            sum += ms * 1000;
        }
        let s = LatencySnapshot::new(buckets, sum);
        assert_eq!(s.count(), 100);
        assert_eq!(s.mean(), Duration::from_micros(50_500));
        let close = |p: f64, want_ms: f64| {
            let got = s.percentile(p).as_secs_f64() * 1000.0;
            assert!(
                (got - want_ms).abs() <= want_ms * 0.0625,
                "p{p}: {got} ms, want {want_ms}"
            );
        };
        close(0.0, 1.0);
        close(50.0, 50.0);
        close(99.0, 99.0);
        close(99.5, 100.0);
        close(100.0, 100.0);
    }
}
