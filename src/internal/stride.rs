//! Timing one call in a stride: two clock reads cost more than a closed
//! breaker's or an admitted limit's whole bookkeeping, so under load only
//! some calls are timed, enough for the latencies read from them. Shared
//! by the circuit breaker and the adaptive limit, which each decide, at
//! the start of their own window, how many calls it held.

/// About how many calls a window are timed under load (Hystrix's rolling
/// percentile keeps 100 a bucket, `metrics.rollingPercentile.bucketSize`);
/// every call is timed while a window holds fewer.
pub(crate) const TIMED_PER_WINDOW: u64 = 100;

/// Under load, one call in at most this many is timed.
pub(crate) const MAX_STRIDE: u64 = 64;

/// `stride − 1` for about `target` timed calls out of `calls`: the stride
/// is the largest power of two not above `calls / target`, from 1 to
/// [`MAX_STRIDE`], so that a call is timed when a draw (or an admission
/// count) has none of the mask's bits set.
#[inline]
pub(crate) fn mask(calls: u64, target: u64) -> u64 {
    let stride = (calls / target.max(1)).clamp(1, MAX_STRIDE);
    (1 << stride.ilog2()) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stride_is_a_power_of_two_from_1_to_64() {
        assert_eq!(mask(0, 100), 0);
        assert_eq!(mask(199, 100), 0);
        assert_eq!(mask(200, 100), 1);
        assert_eq!(mask(2_000, 100), 15, "20 → 16");
        assert_eq!(mask(6_400, 100), 63);
        assert_eq!(mask(u64::MAX, 100), 63);
        assert_eq!(mask(500, 0), 63, "no target: a zero one is taken as 1");
    }
}
