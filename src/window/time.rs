//! The time-based rolling window.

use super::histogram::{bucket_of, AtomicHistogram, BUCKETS};
use super::{Counts, LatencySnapshot, Record, LATENCY_SUM, SLOW, TALLIES};
use crate::internal::clock::Micros;
use crate::internal::shard::{shard_count, thread_hint};
// loom's under `--cfg rampart_loom`, for the retry budget's model; the
// latency histograms keep std atomics (hundreds per window, and no
// decision reads them).
use crate::internal::sync::{AtomicU64, Ordering};

/// Totals since creation, for the threads that map to one shard.
///
/// Aligned so that two shards never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    tallies: [AtomicU64; TALLIES],
    latencies: AtomicHistogram,
}

/// The totals of all shards at the start of one bucket.
#[derive(Debug)]
struct Mark {
    tallies: [AtomicU64; TALLIES],
    latencies: AtomicHistogram,
}

/// The summed totals of all shards at one moment.
struct Totals {
    tallies: [u64; TALLIES],
    latencies: [u32; BUCKETS],
}

/// A rolling window of `buckets` buckets of `bucket_len` microseconds each.
///
/// The window at time `t` covers the bucket holding `t` and the `buckets - 1`
/// before it: Hystrix's rolling window, which drops a whole bucket at a time.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_len: Micros,
    /// The latest bucket anyone has started (bucket number = time / bucket_len).
    current: AtomicU64,
    /// When the bucket after `current` starts (µs): a time before it is
    /// in `current` (or older), found without a division.
    next_start: AtomicU64,
    /// The latest bucket whose marks are all written: readers start their
    /// window from this one, never from a bucket still being marked.
    published: AtomicU64,
    shards: Box<[Shard]>,
    /// `marks[b % len]` holds the totals at the start of bucket `b`.
    marks: Box<[Mark]>,
}

impl TimeWindow {
    /// A window of `buckets` buckets of `bucket_len` µs, starting at time `now`.
    pub(crate) fn new(bucket_len: Micros, buckets: usize, now: Micros) -> Self {
        Self::build(
            bucket_len,
            buckets,
            now,
            shard_count(),
            AtomicHistogram::new,
        )
    }

    /// A window for one of very many (a breaker per key): one shard, since
    /// each is written by few threads at once, and counts and the latency
    /// sum but no latency histograms, which would be most of its memory
    /// (its [`latencies`](Self::latencies) read empty).
    pub(crate) fn lean(bucket_len: Micros, buckets: usize, now: Micros) -> Self {
        Self::build(bucket_len, buckets, now, 1, AtomicHistogram::disabled)
    }

    fn build(
        bucket_len: Micros,
        buckets: usize,
        now: Micros,
        shards: usize,
        histogram: fn() -> AtomicHistogram,
    ) -> Self {
        assert!(bucket_len > 0 && buckets > 0, "validated by the builder");
        debug_assert!(shards.is_power_of_two());
        let zeros = || std::array::from_fn(|_| AtomicU64::new(0));
        TimeWindow {
            bucket_len,
            current: AtomicU64::new(now / bucket_len),
            next_start: AtomicU64::new((now / bucket_len + 1).saturating_mul(bucket_len)),
            published: AtomicU64::new(now / bucket_len),
            shards: (0..shards)
                .map(|_| Shard {
                    tallies: zeros(),
                    latencies: histogram(),
                })
                .collect(),
            marks: (0..buckets)
                .map(|_| Mark {
                    tallies: zeros(),
                    latencies: histogram(),
                })
                .collect(),
        }
    }

    /// How many buckets make the window.
    #[cfg_attr(not(feature = "command"), allow(dead_code))]
    pub(crate) fn buckets(&self) -> usize {
        self.marks.len()
    }

    /// The length of one bucket.
    pub(crate) fn bucket_len(&self) -> Micros {
        self.bucket_len
    }

    /// Records one event at time `now`. Returns the number of the bucket
    /// it went into: the one `now` falls in (time / bucket length), or a
    /// later one already started when `now` is older.
    #[inline]
    pub(crate) fn record(&self, now: Micros, record: Record) -> u64 {
        // Nearly every event falls in the latest bucket started: known by
        // a comparison, where the division cost a closed breaker's call
        // 3 of its 36 ns.
        let bucket = if now < self.next_start.load(Ordering::Acquire) {
            self.current.load(Ordering::Acquire)
        } else {
            let bucket = now / self.bucket_len;
            self.advance(bucket);
            bucket
        };
        self.tally(record);
        bucket
    }

    #[inline]
    fn tally(&self, record: Record) {
        let shard = &self.shards[thread_hint() & (self.shards.len() - 1)];
        shard.tallies[record.category as usize].fetch_add(1, Ordering::Relaxed);
        if record.slow {
            shard.tallies[SLOW].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(us) = record.latency {
            shard.tallies[LATENCY_SUM].fetch_add(us, Ordering::Relaxed);
            shard.latencies.add(bucket_of(us));
        }
    }

    /// The counts in the window that ends at `now`.
    pub(crate) fn counts(&self, now: Micros) -> Counts {
        self.advance(now / self.bucket_len);
        let start = &self.marks[self.start_index()];
        let mut tallies = [0u64; TALLIES];
        for (i, t) in tallies.iter_mut().enumerate() {
            let total: u64 = self
                .shards
                .iter()
                .map(|s| s.tallies[i].load(Ordering::Relaxed))
                .sum();
            *t = total.saturating_sub(start.tallies[i].load(Ordering::Relaxed));
        }
        Counts::from_tallies(&tallies)
    }

    /// The latencies of the calls in the window that ends at `now`; none
    /// for a [`lean`](Self::lean) window.
    pub(crate) fn latencies(&self, now: Micros) -> LatencySnapshot {
        self.advance(now / self.bucket_len);
        let start = &self.marks[self.start_index()];
        if !start.latencies.enabled() {
            return LatencySnapshot::default();
        }
        let totals = self.totals();
        let buckets = (0..BUCKETS)
            .map(|b| totals.latencies[b].wrapping_sub(start.latencies.load(b)))
            .collect();
        let sum = totals.tallies[LATENCY_SUM]
            .saturating_sub(start.tallies[LATENCY_SUM].load(Ordering::Relaxed));
        LatencySnapshot::new(buckets, sum)
    }

    /// The calls (as [`Counts::calls`] counts them) in the bucket before
    /// the latest one whose start is marked: the last full bucket, once a
    /// bucket has started. 0 for a window of one bucket, which keeps no
    /// earlier bucket's mark.
    pub(crate) fn last_bucket_calls(&self) -> u64 {
        let len = self.marks.len() as u64;
        let published = self.published.load(Ordering::Acquire);
        if len < 2 || published == 0 {
            return 0;
        }
        let newer = &self.marks[(published % len) as usize];
        let older = &self.marks[((published - 1) % len) as usize];
        let tallies = std::array::from_fn(|i| {
            let at = |mark: &Mark| mark.tallies[i].load(Ordering::Relaxed);
            at(newer).saturating_sub(at(older))
        });
        Counts::from_tallies(&tallies).calls()
    }

    /// Empties the window: from `now` on it counts only what comes after.
    pub(crate) fn reset(&self, now: Micros) {
        self.advance(now / self.bucket_len);
        let totals = self.totals();
        for mark in self.marks.iter() {
            store(mark, &totals);
        }
    }

    /// The mark at the start of the window: that of the oldest bucket still
    /// in it, `published - len + 1`, which shares a slot with `published + 1`.
    /// While another thread is still marking a newer bucket, the window
    /// ends one bucket early: never a mark half written.
    fn start_index(&self) -> usize {
        let published = self.published.load(Ordering::Acquire);
        ((published + 1) % self.marks.len() as u64) as usize
    }

    /// Moves the window to `bucket`, marking the buckets that start on the way.
    #[inline]
    fn advance(&self, bucket: u64) {
        let current = self.current.load(Ordering::Acquire);
        if bucket > current {
            self.advance_slow(current, bucket);
        }
    }

    #[cold]
    fn advance_slow(&self, current: u64, bucket: u64) {
        // One thread wins the move and writes the marks; a call recorded by
        // another thread meanwhile may be credited to either bucket, but is
        // never lost.
        if self
            .current
            .compare_exchange(current, bucket, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // After `current`: whoever reads the new start reads the new bucket.
        self.next_start.fetch_max(
            (bucket + 1).saturating_mul(self.bucket_len),
            Ordering::AcqRel,
        );
        let totals = self.totals();
        // Nothing happened in buckets that were skipped: they all start with
        // the same totals. Only the last `len` of them are still kept.
        let len = self.marks.len() as u64;
        let first = (current + 1).max(bucket.saturating_sub(len - 1));
        for b in first..=bucket {
            store(&self.marks[(b % len) as usize], &totals);
        }
        self.published.fetch_max(bucket, Ordering::AcqRel);
    }

    fn totals(&self) -> Totals {
        let mut tallies = [0u64; TALLIES];
        // On the stack: a call that starts a bucket computes these and must
        // not allocate.
        let mut latencies = [0u32; BUCKETS];
        for shard in self.shards.iter() {
            for (t, a) in tallies.iter_mut().zip(&shard.tallies) {
                *t += a.load(Ordering::Relaxed);
            }
            if shard.latencies.enabled() {
                for (b, l) in latencies.iter_mut().enumerate() {
                    *l = l.wrapping_add(shard.latencies.load(b));
                }
            }
        }
        Totals { tallies, latencies }
    }
}

fn store(mark: &Mark, totals: &Totals) {
    for (a, &t) in mark.tallies.iter().zip(&totals.tallies) {
        a.store(t, Ordering::Relaxed);
    }
    if mark.latencies.enabled() {
        for (b, &l) in totals.latencies.iter().enumerate() {
            mark.latencies.store(b, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Category;
    use proptest::prelude::*;

    fn call(category: Category, latency: u64) -> Record {
        Record::call(category, false, latency)
    }

    #[test]
    fn a_lean_window_counts_and_sums_but_keeps_no_latency_distribution() {
        let w = TimeWindow::lean(100_000, 10, 0);
        w.record(0, call(Category::Success, 300));
        w.record(150_000, call(Category::Failure, 500));
        let counts = w.counts(150_000);
        assert_eq!((counts.successes, counts.failures), (1, 1));
        assert_eq!(w.latencies(150_000), LatencySnapshot::default());
        // The window still rolls: past its 1 s, nothing is left.
        assert_eq!(w.counts(1_200_000).calls(), 0);
    }

    #[test]
    fn counts_only_the_last_buckets() {
        // 10 buckets of 1 s.
        let w = TimeWindow::new(1_000_000, 10, 0);
        w.record(0, call(Category::Failure, 10));
        w.record(4_500_000, call(Category::Success, 10));
        w.record(9_999_999, call(Category::Success, 10));
        assert_eq!(w.counts(9_999_999).calls(), 3);
        // At 10 s the first bucket (0..1 s) drops out.
        let c = w.counts(10_000_000);
        assert_eq!((c.successes, c.failures), (2, 0));
        // At 14.5 s the bucket 4..5 s drops out too.
        assert_eq!(w.counts(14_500_000).successes, 1);
        // Long idle: everything is gone.
        assert_eq!(w.counts(60_000_000), Counts::default());
    }

    #[test]
    fn reset_forgets_everything_before() {
        let w = TimeWindow::new(1_000_000, 10, 0);
        w.record(100, call(Category::Failure, 10));
        w.reset(200);
        w.record(300, call(Category::Success, 10));
        let c = w.counts(300);
        assert_eq!((c.successes, c.failures), (1, 0));
        assert_eq!(w.latencies(300).count(), 1);
        // Nor does the forgotten failure come back as buckets rotate.
        assert_eq!(w.counts(5_000_000).failures, 0);
    }

    #[test]
    fn latencies_roll_with_the_window() {
        let w = TimeWindow::new(1_000_000, 2, 0);
        w.record(0, call(Category::Success, 5_000));
        w.record(1_000_000, call(Category::Success, 7_000));
        let l = w.latencies(1_500_000);
        assert_eq!(l.count(), 2);
        assert_eq!(l.mean().as_micros(), 6_000);
        let l = w.latencies(2_000_000);
        assert_eq!(l.count(), 1);
        let p100 = l.percentile(100.0).as_micros() as f64;
        assert!((p100 - 7_000.0).abs() <= 7_000.0 * 0.0625, "{p100}");
    }

    #[test]
    fn many_threads_lose_no_count() {
        let w = std::sync::Arc::new(TimeWindow::new(1_000_000, 10, 0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        // All threads cross the same bucket boundaries.
                        let now = i * 500;
                        let cat = if (i + t) % 3 == 0 {
                            Category::Failure
                        } else {
                            Category::Success
                        };
                        w.record(now, Record::call(cat, i % 7 == 0, i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // 5 s of traffic fits in the 10 s window: every call is in it.
        let c = w.counts(4_999_500);
        assert_eq!(c.calls(), 40_000);
        let expected_failures: u64 = (0..4u64)
            .map(|t| (0..10_000u64).filter(|i| (i + t) % 3 == 0).count() as u64)
            .sum();
        assert_eq!(c.failures, expected_failures);
        assert_eq!(
            c.slow,
            4 * (0..10_000u64).filter(|i| i % 7 == 0).count() as u64
        );
        assert_eq!(w.latencies(4_999_500).count(), 40_000);
    }

    /// The reference model: every event kept with its time.
    fn model_counts(
        events: &[(u64, Category, bool)],
        now: u64,
        bucket_len: u64,
        buckets: u64,
        reset_before: usize,
    ) -> Counts {
        let bucket = now / bucket_len;
        let first = (bucket + 1).saturating_sub(buckets);
        let mut c = Counts::default();
        for &(t, cat, slow) in &events[reset_before..] {
            if t / bucket_len < first {
                continue;
            }
            match cat {
                Category::Success => c.successes += 1,
                Category::Failure => c.failures += 1,
                Category::Timeout => c.timeouts += 1,
                Category::Rejected => c.rejections += 1,
                Category::Ignored => c.ignored += 1,
                Category::ShortCircuited => c.short_circuited += 1,
            }
            if slow && cat != Category::Ignored {
                c.slow += 1;
            }
        }
        c
    }

    fn category() -> impl Strategy<Value = Category> {
        prop_oneof![
            Just(Category::Success),
            Just(Category::Failure),
            Just(Category::Timeout),
            Just(Category::Rejected),
            Just(Category::Ignored),
            Just(Category::ShortCircuited),
        ]
    }

    proptest! {
        /// Sequentially, the window equals the model after every step.
        #[test]
        fn matches_the_sequential_model(
            buckets in 1usize..6,
            bucket_len in 1u64..50,
            steps in proptest::collection::vec((0u64..40, category(), any::<bool>(), any::<bool>()), 1..200),
        ) {
            let w = TimeWindow::new(bucket_len, buckets, 0);
            let mut now = 0;
            let mut events = Vec::new();
            let mut reset_before = 0;
            for (dt, cat, slow, reset) in steps {
                now += dt;
                if reset && dt % 5 == 0 {
                    w.reset(now);
                    reset_before = events.len();
                }
                let record = if cat == Category::ShortCircuited { Record::short_circuit() } else { Record::call(cat, slow, dt) };
                w.record(now, record);
                events.push((now, cat, record.slow));
                prop_assert_eq!(w.counts(now), model_counts(&events, now, bucket_len, buckets as u64, reset_before));
            }
        }
    }

    // ===== any moment, any gap =====

    /// Every event kept with the bucket it was credited to. Time as the
    /// window sees it only moves forward: an event or a read stamped
    /// earlier than the latest bucket anyone reached (a thread's clock
    /// read a moment before another's) belongs to that latest bucket.
    #[derive(Debug)]
    struct Model {
        bucket_len: u64,
        buckets: u64,
        /// The latest bucket reached by any record, read or reset.
        frontier: u64,
        events: Vec<(u64, Record)>,
    }

    impl Model {
        fn at(&mut self, now: u64) -> u64 {
            self.frontier = self.frontier.max(now / self.bucket_len);
            self.frontier
        }

        fn inside(&self, bucket: u64) -> impl Iterator<Item = &Record> {
            let first = (bucket + 1).saturating_sub(self.buckets);
            self.events
                .iter()
                .filter(move |(b, _)| *b >= first)
                .map(|(_, r)| r)
        }

        fn counts(&self, bucket: u64) -> Counts {
            let mut c = Counts::default();
            for r in self.inside(bucket) {
                *match r.category {
                    Category::Success => &mut c.successes,
                    Category::Failure => &mut c.failures,
                    Category::Timeout => &mut c.timeouts,
                    Category::Rejected => &mut c.rejections,
                    Category::Ignored => &mut c.ignored,
                    Category::ShortCircuited => &mut c.short_circuited,
                } += 1;
                c.slow += u64::from(r.slow);
            }
            c
        }

        fn latencies(&self, bucket: u64) -> LatencySnapshot {
            let mut histogram = vec![0u32; BUCKETS];
            let mut sum = 0;
            for latency in self.inside(bucket).filter_map(|r| r.latency) {
                histogram[bucket_of(latency)] += 1;
                sum += latency;
            }
            LatencySnapshot::new(histogram, sum)
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// At `dt` µs after the last step, or `dt` before it when `early`.
        Record {
            dt: u64,
            early: bool,
            category: Category,
            slow: bool,
            latency: u64,
        },
        Read {
            dt: u64,
            early: bool,
        },
        Reset {
            dt: u64,
        },
    }

    /// Steps within a bucket or two, idle gaps of several windows, and
    /// leaps of hours.
    fn dt() -> impl Strategy<Value = u64> {
        prop_oneof![
            6 => 0u64..2_500,
            2 => 2_500u64..50_000,
            1 => 50_000u64..10_000_000_000,
        ]
    }

    fn step() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (dt(), proptest::bool::weighted(0.15), category(), any::<bool>(), 0u64..10_000_000)
                .prop_map(|(dt, early, category, slow, latency)| Op::Record { dt, early, category, slow, latency }),
            3 => (dt(), proptest::bool::weighted(0.15)).prop_map(|(dt, early)| Op::Read { dt, early }),
            1 => dt().prop_map(|dt| Op::Reset { dt }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Records at random times (some stamped a little in the past),
        /// idle gaps longer than the window, reads at any moment: counts
        /// and latencies are always those of the events in the buckets the
        /// model's window covers (Hystrix's: the bucket holding the
        /// moment and the `buckets - 1` before it), and a reset forgets
        /// everything before it for good.
        #[test]
        fn matches_the_model_at_any_moment(
            buckets in 1u64..8,
            bucket_len in prop_oneof![1u64..5, 5u64..2_000, Just(1_000_000)],
            start in prop_oneof![Just(0u64), 0u64..1_000_000_000],
            ops in proptest::collection::vec(step(), 1..150),
        ) {
            let w = TimeWindow::new(bucket_len, buckets as usize, start);
            let mut model = Model { bucket_len, buckets, frontier: start / bucket_len, events: Vec::new() };
            let mut now = start;
            let stamp = |now: &mut u64, dt: u64, early: bool| {
                if early {
                    now.saturating_sub(dt)
                } else {
                    *now += dt;
                    *now
                }
            };
            for op in ops {
                match op {
                    Op::Record { dt, early, category, slow, latency } => {
                        let at = stamp(&mut now, dt, early);
                        let record = if category == Category::ShortCircuited {
                            Record::short_circuit()
                        } else {
                            Record::call(category, slow, latency)
                        };
                        w.record(at, record);
                        let bucket = model.at(at);
                        model.events.push((bucket, record));
                    }
                    Op::Read { .. } => {}
                    Op::Reset { dt } => {
                        let at = stamp(&mut now, dt, false);
                        w.reset(at);
                        model.at(at);
                        model.events.clear();
                    }
                }
                let read_at = match op {
                    Op::Read { dt, early } => stamp(&mut now, dt, early),
                    _ => now,
                };
                let bucket = model.at(read_at);
                prop_assert_eq!(w.counts(read_at), model.counts(bucket), "after {:?}, read at {}", op, read_at);
                prop_assert_eq!(w.latencies(read_at), model.latencies(bucket), "after {:?}, read at {}", op, read_at);
            }
        }
    }
}
