//! The count-based rolling window: the last N calls.

use super::histogram::{bucket_of, AtomicHistogram, BUCKETS};
use super::{Category, Counts, LatencySnapshot, Record, LATENCY_SUM, SLOW, TALLIES};
use std::sync::atomic::{AtomicU64, Ordering};

/// A slot holds one call: bit 0 says it is taken, bits 1..4 the category,
/// bit 4 the slow flag, bit 5 whether it was timed, bits 16.. the latency
/// in µs (saturating at 2^48).
const TAKEN: u64 = 1;
const SLOW_BIT: u64 = 1 << 4;
const TIMED_BIT: u64 = 1 << 5;
const LATENCY_SHIFT: u32 = 16;

fn encode(record: &Record) -> u64 {
    let latency = record.latency.map_or(0, |us| {
        TIMED_BIT | us.min(u64::MAX >> LATENCY_SHIFT) << LATENCY_SHIFT
    });
    TAKEN | (record.category as u64) << 1 | if record.slow { SLOW_BIT } else { 0 } | latency
}

/// The outcomes of the last `size` calls.
///
/// Only calls that count toward rates are kept (successes, failures,
/// timeouts, rejections beneath the breaker): an ignored call or a
/// short-circuit does not push a real outcome out of the window.
///
/// Every record takes the next slot from one shared counter, so threads
/// recording at once contend on it; the time-based window, sharded per
/// thread, is the one to choose when many threads share a breaker.
#[derive(Debug)]
pub(crate) struct CountWindow {
    next: AtomicU64,
    slots: Box<[AtomicU64]>,
    tallies: [AtomicU64; TALLIES],
    latencies: AtomicHistogram,
}

impl CountWindow {
    pub(crate) fn new(size: usize) -> Self {
        assert!(size > 0, "validated by the builder");
        CountWindow {
            next: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            tallies: std::array::from_fn(|_| AtomicU64::new(0)),
            latencies: AtomicHistogram::new(),
        }
    }

    /// Puts `record` in the window, pushing out the oldest call once full.
    #[inline]
    pub(crate) fn record(&self, record: Record) {
        if matches!(
            record.category,
            Category::Ignored | Category::ShortCircuited
        ) {
            return;
        }
        let entry = encode(&record);
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        self.apply(entry, true);
        let old = self.slots[slot as usize].swap(entry, Ordering::AcqRel);
        self.apply(old, false);
    }

    /// Adds (or removes) one slot's worth of tallies.
    fn apply(&self, entry: u64, add: bool) {
        if entry & TAKEN == 0 {
            return;
        }
        let bump = |a: &AtomicU64, n: u64| {
            if add {
                a.fetch_add(n, Ordering::Relaxed);
            } else {
                a.fetch_sub(n, Ordering::Relaxed);
            }
        };
        bump(&self.tallies[((entry >> 1) & 0b111) as usize], 1);
        if entry & SLOW_BIT != 0 {
            bump(&self.tallies[SLOW], 1);
        }
        if entry & TIMED_BIT == 0 {
            return;
        }
        let latency = entry >> LATENCY_SHIFT;
        bump(&self.tallies[LATENCY_SUM], latency);
        if add {
            self.latencies.add(bucket_of(latency));
        } else {
            self.latencies.sub(bucket_of(latency));
        }
    }

    /// How many calls the window holds when full.
    pub(crate) fn size(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts::from_tallies(&std::array::from_fn(|i| {
            self.tallies[i].load(Ordering::Relaxed)
        }))
    }

    pub(crate) fn latencies(&self) -> LatencySnapshot {
        LatencySnapshot::new(
            (0..BUCKETS).map(|b| self.latencies.load(b)).collect(),
            self.tallies[LATENCY_SUM].load(Ordering::Relaxed),
        )
    }

    /// Empties the window.
    pub(crate) fn reset(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::AcqRel);
            self.apply(old, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn a_call_not_timed_is_counted_and_has_no_latency() {
        let w = CountWindow::new(2);
        w.record(Record::call(Category::Success, false, 100));
        w.record(Record::tally(Category::Failure));
        assert_eq!((w.counts().successes, w.counts().failures), (1, 1));
        let latencies = w.latencies();
        assert_eq!((latencies.count(), latencies.mean().as_micros()), (1, 100));
        // Pushed out, it takes nothing from the latencies either.
        w.record(Record::call(Category::Success, false, 300));
        w.record(Record::call(Category::Success, false, 500));
        let latencies = w.latencies();
        assert_eq!((latencies.count(), latencies.mean().as_micros()), (2, 400));
    }

    #[test]
    fn keeps_the_last_n_calls() {
        let w = CountWindow::new(3);
        w.record(Record::call(Category::Failure, true, 100));
        w.record(Record::call(Category::Success, false, 200));
        w.record(Record::call(Category::Ignored, false, 200));
        w.record(Record::short_circuit());
        w.record(Record::call(Category::Timeout, false, 300));
        let c = w.counts();
        assert_eq!((c.failures, c.successes, c.timeouts, c.slow), (1, 1, 1, 1));
        w.record(Record::call(Category::Success, false, 400));
        let c = w.counts();
        assert_eq!((c.failures, c.successes, c.timeouts, c.slow), (0, 2, 1, 0));
        assert_eq!(w.latencies().mean().as_micros(), 300);
        w.reset();
        assert_eq!(w.counts(), Counts::default());
        assert_eq!(w.latencies().count(), 0);
    }

    #[test]
    fn many_threads_keep_counts_consistent() {
        let w = std::sync::Arc::new(CountWindow::new(100));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        let cat = if (i + t) % 2 == 0 {
                            Category::Failure
                        } else {
                            Category::Success
                        };
                        w.record(Record::call(cat, false, i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Whatever the interleaving, the tallies describe exactly the ring.
        let c = w.counts();
        assert_eq!(c.calls(), 100);
        let in_ring: Vec<u64> = w.slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        let failures = in_ring
            .iter()
            .filter(|&&e| (e >> 1) & 0b111 == Category::Failure as u64)
            .count();
        assert_eq!(c.failures, failures as u64);
        assert_eq!(w.latencies().count(), 100);
    }

    fn category() -> impl Strategy<Value = Category> {
        prop_oneof![
            Just(Category::Success),
            Just(Category::Failure),
            Just(Category::Timeout),
            Just(Category::Rejected),
            Just(Category::Ignored),
        ]
    }

    proptest! {
        #[test]
        fn matches_the_sequential_model(
            size in 1usize..20,
            calls in proptest::collection::vec((category(), any::<bool>(), 0u64..1_000_000), 0..200),
        ) {
            let w = CountWindow::new(size);
            let mut model: VecDeque<Record> = VecDeque::new();
            for (cat, slow, latency) in calls {
                let r = Record::call(cat, slow, latency);
                w.record(r);
                if cat != Category::Ignored {
                    model.push_back(r);
                    if model.len() > size {
                        model.pop_front();
                    }
                }
                let count = |c: Category| model.iter().filter(|r| r.category == c).count() as u64;
                let expected = Counts {
                    successes: count(Category::Success),
                    failures: count(Category::Failure),
                    timeouts: count(Category::Timeout),
                    rejections: count(Category::Rejected),
                    ignored: 0,
                    short_circuited: 0,
                    slow: model.iter().filter(|r| r.slow).count() as u64,
                };
                prop_assert_eq!(w.counts(), expected);
                let sum: u64 = model.iter().map(|r| r.latency.unwrap()).sum();
                prop_assert_eq!(w.latencies().mean().as_micros() as u64, if model.is_empty() { 0 } else { sum / model.len() as u64 });
            }
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Record(Record),
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        let record = (
            prop_oneof![category(), Just(Category::ShortCircuited)],
            any::<bool>(),
            prop_oneof![
                0u64..10_000,
                0u64..10_000_000_000,
                (1u64 << 48)..u64::MAX,
                Just(u64::MAX)
            ],
        )
            .prop_map(|(category, slow, latency)| {
                Op::Record(if category == Category::ShortCircuited {
                    Record::short_circuit()
                } else {
                    Record::call(category, slow, latency)
                })
            });
        prop_oneof![12 => record, 1 => Just(Op::Reset)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// With resets, short-circuits and latencies past the slot's 48
        /// bits: the counts and the whole latency histogram are those of
        /// the last `size` outcomes in a `VecDeque` (ignored calls and
        /// short-circuits never enter it; a latency is kept saturated at
        /// 2^48 - 1 µs, 8.9 years).
        #[test]
        fn matches_the_last_n_outcomes(
            size in prop_oneof![1usize..4, 4usize..40],
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let w = CountWindow::new(size);
            let mut last: VecDeque<Record> = VecDeque::with_capacity(size + 1);
            for op in ops {
                match op {
                    Op::Record(r) => {
                        w.record(r);
                        if !matches!(r.category, Category::Ignored | Category::ShortCircuited) {
                            last.push_back(r);
                            if last.len() > size {
                                last.pop_front();
                            }
                        }
                    }
                    Op::Reset => {
                        w.reset();
                        last.clear();
                    }
                }
                let mut expected = Counts::default();
                let mut histogram = vec![0u32; BUCKETS];
                let mut sum = 0u64;
                for r in &last {
                    *match r.category {
                        Category::Success => &mut expected.successes,
                        Category::Failure => &mut expected.failures,
                        Category::Timeout => &mut expected.timeouts,
                        _ => &mut expected.rejections,
                    } += 1;
                    expected.slow += u64::from(r.slow);
                    let latency = r.latency.unwrap().min((1 << 48) - 1);
                    histogram[bucket_of(latency)] += 1;
                    sum += latency;
                }
                prop_assert_eq!(w.counts(), expected, "after {:?}", op);
                prop_assert_eq!(w.latencies(), LatencySnapshot::new(histogram, sum), "after {:?}", op);
            }
        }
    }
}
