//! The largest value seen over a rolling time window (Hystrix's "rolling
//! max active threads").

use crate::internal::clock::Micros;
use std::sync::atomic::{AtomicU64, Ordering};

/// Each bucket packs the bucket number it belongs to (high 32 bits, wrapping)
/// with the largest value recorded in it (low 32 bits), so a stale bucket is
/// recognised and replaced in one compare-and-swap: lock-free, and no value
/// recorded for the current bucket is ever lost to a reset.
#[derive(Debug)]
pub(crate) struct RollingMax {
    bucket_len: Micros,
    buckets: Box<[AtomicU64]>,
}

const EMPTY: u64 = u64::MAX;

fn pack(bucket: u64, value: u32) -> u64 {
    (bucket & 0xFFFF_FFFF) << 32 | u64::from(value)
}

impl RollingMax {
    pub(crate) fn new(bucket_len: Micros, buckets: usize) -> Self {
        RollingMax {
            bucket_len,
            buckets: (0..buckets).map(|_| AtomicU64::new(EMPTY)).collect(),
        }
    }

    pub(crate) fn record(&self, now: Micros, value: u32) {
        let bucket = now / self.bucket_len;
        let slot = &self.buckets[(bucket % self.buckets.len() as u64) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let same_bucket = current != EMPTY && current >> 32 == bucket & 0xFFFF_FFFF;
            if same_bucket && (current & 0xFFFF_FFFF) as u32 >= value {
                return;
            }
            match slot.compare_exchange_weak(
                current,
                pack(bucket, value),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => current = now,
            }
        }
    }

    /// The largest value recorded in the window that ends at `now`.
    pub(crate) fn max(&self, now: Micros) -> u32 {
        let bucket = now / self.bucket_len;
        let len = self.buckets.len() as u64;
        let oldest = bucket.saturating_sub(len - 1);
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|&v| v != EMPTY)
            .filter(|&v| {
                // Reconstruct the full bucket number from its low 32 bits.
                let low = v >> 32;
                let candidate = (bucket & !0xFFFF_FFFF) | low;
                let b = if candidate > bucket {
                    candidate.wrapping_sub(1 << 32)
                } else {
                    candidate
                };
                b >= oldest && b <= bucket
            })
            .map(|v| (v & 0xFFFF_FFFF) as u32)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_max_of_the_last_buckets() {
        let m = RollingMax::new(1_000_000, 10);
        m.record(0, 3);
        m.record(500_000, 7);
        m.record(2_000_000, 5);
        assert_eq!(m.max(2_000_000), 7);
        assert_eq!(m.max(9_999_999), 7);
        assert_eq!(
            m.max(10_000_000),
            5,
            "the bucket at 0 s holding 7 dropped out"
        );
        assert_eq!(m.max(12_000_000), 0);
        // A slot reused by a later bucket starts over.
        m.record(20_000_000, 1);
        assert_eq!(m.max(20_000_000), 1);
    }

    #[test]
    fn many_threads_leave_the_true_max() {
        let m = std::sync::Arc::new(RollingMax::new(1_000_000, 10));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for v in 0..10_000u32 {
                        m.record(0, v * 4 + t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.max(0), 39_999);
    }
}
