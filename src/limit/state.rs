//! What every service built from one limit layer shares: the permits, the
//! partitions, the sample window, and the algorithm behind its lock.
//!
//! # The call path
//!
//! Admission is one compare-and-swap on [`Shared::permits`] (calls in
//! flight and admissions so far, in one word) against the limit, read
//! with a relaxed load; release is one subtraction. Nothing on the call
//! path locks or allocates.
//!
//! Round-trip times are not taken for every call: two clock reads cost
//! more than the whole admission. One admission in `stride` is timed
//! (decided by its place in the admission count, so the choice is unbiased
//! and free); the stride is set at each window's end so that a window holds
//! about `TARGET_SAMPLES` timed calls (every call is timed while traffic is
//! low). A timed call's RTT is added to the window with one atomic add; a
//! drop marks the window whether or not its call was timed.
//!
//! # The window (Netflix's `WindowedLimit`)
//!
//! The timed call that ends after the window's end closes it: under the
//! algorithm's lock (taken with `try_lock`: if another thread is closing
//! the window, this one goes on), it takes the window's totals, starts the
//! next window (`clamp(2 × the window's lowest RTT, min_window,
//! max_window)` long) and, if the window held `min_samples` timed calls,
//! feeds the algorithm one [`Sample`] and stores the new limit.

use super::algorithm::{Algorithm, Sample, MAX_LIMIT};
use super::classify::Outcome;
use super::handle::PartitionStats;
use crate::internal::cancel;
use crate::internal::clock::{Clock, Micros};
use crate::internal::shard::{Lane, Lanes};
use crate::internal::stride;
use crate::internal::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::metrics::{
    debug_enabled, event_counter, named_gauge, LIMIT, LIMIT_IN_FLIGHT, LIMIT_PARTITION,
    LIMIT_PARTITION_IN_FLIGHT, LIMIT_RTT_SECONDS, TARGET_LIMIT,
};
use metrics::{Counter, Gauge};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

pub(crate) const LAYER: &str = "limit";

/// The name of the partition of calls whose key names no declared one
/// (Netflix's).
pub(crate) const UNKNOWN: &str = "unknown";

// ===== the permit word =====

/// Calls in flight: bits 0..32 of [`Shared::permits`].
const IN_FLIGHT: u64 = (1 << 32) - 1;
/// One admission, counted in bits 32..64 (wrapping), with its call in flight.
const ADMIT: u64 = (1 << 32) | 1;

// ===== the window's totals word =====

/// Sum of the window's timed RTTs, in µs: bits 0..40 (12 days).
const SUM_BITS: u32 = 40;
const SUM: u64 = (1 << SUM_BITS) - 1;
/// One RTT counted: the count is bits 40..64 (16 million calls a window).
const ONE_SAMPLE: u64 = 1 << SUM_BITS;
/// The longest RTT counted as it is (about 36 minutes): 512 of them fit in
/// the sum.
const MAX_RTT: Micros = 1 << 31;

/// About as many timed calls a window as this (or `4 × min_samples`, if
/// more); every call is timed below it.
const TARGET_SAMPLES: u64 = stride::TIMED_PER_WINDOW;

/// A value alone on its cache line(s), so that the lines written on every
/// call and those only read are not the same.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Read on every call, written once a window (or on a new peak).
#[derive(Debug)]
struct Hot {
    limit: AtomicUsize,
    /// `stride − 1`: an admission is timed when its number has none of
    /// these bits set.
    stride_mask: AtomicU64,
    /// The most calls in flight at once since the window began.
    peak: AtomicUsize,
    /// Callers waiting for a permit (bounded wait only).
    waiting: AtomicUsize,
}

/// Written by timed calls as they end.
#[derive(Debug)]
struct Window {
    /// Count (bits 40..64) and sum in µs (bits 0..40) of the timed RTTs.
    totals: AtomicU64,
    /// The lowest timed RTT, µs; `u64::MAX` while none.
    min_rtt: AtomicU64,
    dropped: AtomicBool,
    /// When the window ends, µs on the limiter's clock.
    ends_at: AtomicU64,
}

/// Per-call events, for the whole limiter or one partition.
#[derive(Debug)]
pub(crate) struct Events {
    success: Counter,
    dropped: Counter,
    ignored: Counter,
    rejected: Counter,
}

impl Events {
    fn noop() -> Self {
        Events {
            success: Counter::noop(),
            dropped: Counter::noop(),
            ignored: Counter::noop(),
            rejected: Counter::noop(),
        }
    }

    fn new(name: &str, partition: Option<&str>) -> Self {
        let counter = |event| match partition {
            None => event_counter(LAYER, name, event),
            Some(p) => crate::metrics::partition_event_counter(LAYER, name, event, p),
        };
        Events {
            success: counter("success"),
            dropped: counter("dropped"),
            ignored: counter("ignored"),
            rejected: counter("rejected"),
        }
    }
}

/// One partition: a guaranteed share of the limit (Netflix's
/// `AbstractPartitionedLimiter.Partition`).
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) name: Arc<str>,
    pub(crate) share: f64,
    busy: AtomicUsize,
    /// `max(1, ⌈limit·share⌉)`; 0 for the unknown partition.
    limit: AtomicUsize,
    rejected: AtomicU64,
    dropped: AtomicU64,
    events: Events,
    limit_gauge: Gauge,
    in_flight_gauge: Gauge,
}

/// What the lock guards: the algorithm and what it was last told.
#[derive(Debug)]
struct Control {
    algorithm: Box<dyn Algorithm>,
    last_sample: Option<Sample>,
    /// The admission count when the window began.
    admissions_at_start: u32,
}

/// The window's options, in µs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowOptions {
    pub(crate) min_window: Duration,
    pub(crate) max_window: Duration,
    pub(crate) min_samples: usize,
    pub(crate) min_rtt: Duration,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    clock: Clock,
    /// Calls in flight (bits 0..32) and admissions (bits 32..64, wrapping).
    permits: Padded<AtomicU64>,
    hot: Padded<Hot>,
    window: Padded<Window>,
    min_window: Micros,
    max_window: Micros,
    min_samples: u64,
    min_rtt: Micros,
    target_samples: u64,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) max_waiting: usize,
    freed: Arc<Notify>,
    /// Declared partitions, then the unknown one; empty without partitions.
    partitions: Box<[Padded<Partition>]>,
    index: HashMap<Arc<str>, usize>,
    control: Mutex<Control>,
    dropped: AtomicU64,
    rejected: AtomicU64,
    events: Events,
    limit_gauge: Gauge,
    in_flight_gauge: Gauge,
    rtt_gauge: Gauge,
}

/// A partitioned limiter's refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The partition refused, as [`Shared::reject`] takes it.
    pub(crate) partition: u32,
    /// Whether a declared partition was over its share (else the call had
    /// no declared partition).
    pub(crate) over_share: bool,
}

impl Shared {
    pub(crate) fn new(
        name: Arc<str>,
        algorithm: Box<dyn Algorithm>,
        window: WindowOptions,
        max_wait: Option<Duration>,
        max_waiting: usize,
        partitions: &[(String, f64)],
    ) -> Self {
        let clock = Clock::new();
        let limit = algorithm.initial_limit().clamp(1, MAX_LIMIT);
        let micros = crate::internal::clock::micros;
        let mut declared: Vec<Padded<Partition>> = partitions
            .iter()
            .map(|(p, share)| Padded(Partition::new(&name, p.as_str().into(), *share)))
            .collect();
        let index = declared
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        if !declared.is_empty() {
            declared.push(Padded(Partition::new(&name, UNKNOWN.into(), 0.0)));
        }
        let shared = Shared {
            clock,
            permits: Padded(AtomicU64::new(0)),
            hot: Padded(Hot {
                limit: AtomicUsize::new(limit),
                stride_mask: AtomicU64::new(0),
                peak: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
            }),
            window: Padded(Window {
                totals: AtomicU64::new(0),
                min_rtt: AtomicU64::new(u64::MAX),
                dropped: AtomicBool::new(false),
                ends_at: AtomicU64::new(micros(window.min_window)),
            }),
            min_window: micros(window.min_window),
            max_window: micros(window.max_window),
            min_samples: window.min_samples as u64,
            min_rtt: micros(window.min_rtt),
            target_samples: TARGET_SAMPLES.max(4 * window.min_samples as u64),
            max_wait,
            max_waiting,
            freed: Arc::new(Notify::new()),
            partitions: declared.into_boxed_slice(),
            index,
            control: Mutex::new(Control {
                algorithm,
                last_sample: None,
                admissions_at_start: 0,
            }),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            // A partitioned limiter counts per partition, and never here.
            events: if partitions.is_empty() {
                Events::new(&name, None)
            } else {
                Events::noop()
            },
            limit_gauge: named_gauge(LIMIT, &name),
            in_flight_gauge: named_gauge(LIMIT_IN_FLIGHT, &name),
            rtt_gauge: named_gauge(LIMIT_RTT_SECONDS, &name),
            name,
        };
        shared.limit_gauge.set(limit as f64);
        shared.set_partition_limits(limit);
        shared
    }

    // ===== admission =====

    /// Takes a permit if the limit allows.
    #[inline]
    pub(crate) fn try_acquire(lanes: &Lanes<Shared>) -> Option<Permit> {
        let shared = lanes.shared();
        let current = shared.permits.load(Ordering::Relaxed);
        shared.acquire_from(current).map(|timed| Permit {
            shared: lanes.pick(),
            partition: NO_PARTITION,
            timed,
            started: 0,
        })
    }

    /// [`try_acquire`](Self::try_acquire) for a waiter: it begins with a
    /// read-modify-write, which reads the latest value, so a permit freed
    /// before the wake-up that brought the waiter here is seen (as in the
    /// bulkhead's slots). Paired with [`release`](Self::release): both
    /// sides are sequentially consistent, so either the releaser sees the
    /// waiter, or the waiter sees the permit.
    pub(crate) fn try_acquire_waiting(lanes: &Lanes<Shared>) -> Option<Permit> {
        let shared = lanes.shared();
        let current = shared.permits.fetch_add(0, Ordering::SeqCst);
        shared.acquire_from(current).map(|timed| Permit {
            shared: lanes.pick(),
            partition: NO_PARTITION,
            timed,
            started: 0,
        })
    }

    /// Admits a call if fewer than the limit are in flight; answers
    /// whether it is to be timed.
    #[inline]
    fn acquire_from(&self, mut current: u64) -> Option<bool> {
        let limit = self.hot.limit.load(Ordering::Relaxed) as u64;
        loop {
            if current & IN_FLIGHT >= limit {
                return None;
            }
            match self.permits.compare_exchange_weak(
                current,
                current.wrapping_add(ADMIT),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.admitted(current)),
                Err(now) => current = now,
            }
        }
    }

    /// Bookkeeping for an admission, given the permit word before it.
    #[inline]
    fn admitted(&self, before: u64) -> bool {
        let in_flight = ((before & IN_FLIGHT) + 1) as usize;
        // A load of a line written once a window; the write happens only
        // at a new peak.
        if in_flight > self.hot.peak.load(Ordering::Relaxed) {
            self.hot.peak.fetch_max(in_flight, Ordering::Relaxed);
        }
        self.in_flight_gauge.increment(1.0);
        (before >> 32) & self.hot.stride_mask.load(Ordering::Relaxed) == 0
    }

    /// Admission for a partitioned limiter (Netflix's
    /// `AbstractPartitionedLimiter.acquire`): under the limit, any call
    /// is admitted, whatever its partition holds; at the limit, a call is
    /// admitted only while its partition holds less than its share, even
    /// though this takes the calls in flight past the limit. A partition
    /// thus always gets its share, and gets more only from what no one else
    /// uses; the excess others took ends as their calls do.
    pub(crate) fn try_acquire_partition(
        lanes: &Lanes<Shared>,
        key: Option<&str>,
    ) -> Result<Permit, Refused> {
        let shared = lanes.shared();
        let index = key
            .and_then(|k| shared.index.get(k).copied())
            .unwrap_or(shared.partitions.len() - 1);
        let partition = &shared.partitions[index];
        let timed = match shared.acquire_from(shared.permits.load(Ordering::Relaxed)) {
            Some(timed) => {
                partition.busy.fetch_add(1, Ordering::Relaxed);
                timed
            }
            None => {
                let limit = partition.limit.load(Ordering::Relaxed);
                let mut busy = partition.busy.load(Ordering::Relaxed);
                loop {
                    if busy >= limit {
                        return Err(Refused {
                            partition: index as u32,
                            over_share: index != shared.partitions.len() - 1,
                        });
                    }
                    match partition.busy.compare_exchange_weak(
                        busy,
                        busy + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(now) => busy = now,
                    }
                }
                let before = shared.permits.fetch_add(ADMIT, Ordering::Relaxed);
                shared.admitted(before)
            }
        };
        partition.in_flight_gauge.increment(1.0);
        Ok(Permit {
            shared: lanes.pick(),
            partition: index as u32,
            timed,
            started: 0,
        })
    }

    /// Counts a rejection (for a call that was made: a service dropped
    /// after `poll_ready` rejected nothing); `partition` as in
    /// [`Refused`], or [`NO_PARTITION`].
    #[inline]
    pub(crate) fn reject(&self, partition: u32) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let name = if partition == NO_PARTITION {
            None
        } else {
            let partition = &self.partitions[partition as usize];
            partition.rejected.fetch_add(1, Ordering::Relaxed);
            Some(&*partition.name)
        };
        self.events(partition).rejected.increment(1);
        if debug_enabled() {
            rejected(&self.name, name);
        }
    }

    // ===== release and samples =====

    #[inline]
    fn release(&self, partition: u32) {
        // Sequentially consistent with a waiter's joining and looking
        // (`try_acquire_waiting`): see there.
        self.permits.fetch_sub(1, Ordering::SeqCst);
        self.in_flight_gauge.decrement(1.0);
        if partition != NO_PARTITION {
            let partition = &self.partitions[partition as usize];
            partition.busy.fetch_sub(1, Ordering::Relaxed);
            partition.in_flight_gauge.decrement(1.0);
        }
        if self.hot.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    fn events(&self, partition: u32) -> &Events {
        match partition {
            NO_PARTITION => &self.events,
            p => &self.partitions[p as usize].events,
        }
    }

    /// What a call's end says, after its permit is given back.
    #[inline]
    fn record(&self, partition: u32, outcome: Outcome, started: Option<Micros>) {
        let events = self.events(partition);
        match outcome {
            Outcome::Success => events.success.increment(1),
            Outcome::Ignored => {
                events.ignored.increment(1);
                return;
            }
            Outcome::Dropped => {
                events.dropped.increment(1);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if partition != NO_PARTITION {
                    self.partitions[partition as usize]
                        .dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.window.dropped.store(true, Ordering::Relaxed);
            }
        }
        if let Some(started) = started {
            self.sample(started);
        }
    }

    /// Adds a timed call's RTT to the window, and closes the window if it
    /// is over.
    fn sample(&self, started: Micros) {
        let now = self.clock.now();
        let rtt = now.saturating_sub(started);
        // Netflix ignores RTTs under `min_rtt` (100 µs): answers from a
        // cache or a health check say nothing about the service's load.
        if rtt >= self.min_rtt && rtt > 0 {
            let rtt = rtt.min(MAX_RTT);
            self.window
                .totals
                .fetch_add(ONE_SAMPLE | rtt, Ordering::Relaxed);
            if rtt < self.window.min_rtt.load(Ordering::Relaxed) {
                self.window.min_rtt.fetch_min(rtt, Ordering::Relaxed);
            }
        }
        if now > self.window.ends_at.load(Ordering::Relaxed) {
            self.end_window(now);
        }
    }

    /// Feeds the algorithm the window just over, and starts the next.
    #[cold]
    #[inline(never)]
    fn end_window(&self, now: Micros) {
        let mut control = match self.control.try_lock() {
            Ok(control) => control,
            // An algorithm of the user's panicked: its state is whatever
            // it left, the window's bookkeeping is intact.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Another thread is ending this window.
            Err(TryLockError::WouldBlock) => return,
        };
        if now <= self.window.ends_at.load(Ordering::Relaxed) {
            return;
        }
        let totals = self.window.totals.swap(0, Ordering::Relaxed);
        let min_rtt = self.window.min_rtt.swap(u64::MAX, Ordering::Relaxed);
        let dropped = self.window.dropped.swap(false, Ordering::Relaxed);
        let peak = self.take_peak();
        let length = min_rtt
            .saturating_mul(2)
            .clamp(self.min_window, self.max_window);
        self.window.ends_at.store(now + length, Ordering::Relaxed);

        let admissions = (self.permits.load(Ordering::Relaxed) >> 32) as u32;
        let admitted = u64::from(admissions.wrapping_sub(control.admissions_at_start));
        control.admissions_at_start = admissions;
        self.hot.stride_mask.store(
            stride::mask(admitted, self.target_samples),
            Ordering::Relaxed,
        );

        let count = totals >> SUM_BITS;
        if count < self.min_samples || count == 0 {
            // Too few calls to say anything (Netflix drops the window).
            return;
        }
        let sample = Sample::new(Duration::from_micros((totals & SUM) / count), peak, dropped);
        let limit = control.algorithm.update(sample).clamp(1, MAX_LIMIT);
        control.last_sample = Some(sample);
        drop(control);
        self.rtt_gauge.set(sample.rtt.as_secs_f64());
        let before = self.hot.limit.swap(limit, Ordering::Relaxed);
        if limit != before {
            self.limit_gauge.set(limit as f64);
            self.set_partition_limits(limit);
            if limit > before && self.hot.waiting.load(Ordering::SeqCst) > 0 {
                // Every waiter looks again: there may be room for several.
                self.freed.notify_waiters();
            }
        }
        if debug_enabled() {
            window_ended(&self.name, before, limit, sample);
        }
    }

    /// The most calls in flight at once since the last call, restarting
    /// from the number in flight now (as the bulkhead's `take_peak`).
    fn take_peak(&self) -> usize {
        let peak = self.hot.peak.swap(0, Ordering::Relaxed);
        let held = (self.permits.fetch_add(0, Ordering::Release) & IN_FLIGHT) as usize;
        self.hot.peak.fetch_max(held, Ordering::Relaxed);
        peak.max(held)
    }

    fn set_partition_limits(&self, limit: usize) {
        for partition in self.partitions.iter() {
            // Netflix rounds up and gives every declared partition at least
            // one permit, so the shares may add up to a little more than
            // the limit. The unknown partition has no share.
            let share = if partition.share > 0.0 {
                ((limit as f64 * partition.share).ceil() as usize).max(1)
            } else {
                0
            };
            partition.limit.store(share, Ordering::Relaxed);
            partition.limit_gauge.set(share as f64);
        }
    }

    // ===== waiting =====

    /// Joins the waiters if fewer than `max_waiting` wait already.
    pub(crate) fn start_waiting(&self) -> bool {
        let mut current = self.hot.waiting.load(Ordering::Relaxed);
        loop {
            if current >= self.max_waiting {
                return false;
            }
            match self.hot.waiting.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    pub(crate) fn stop_waiting(&self) {
        self.hot.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// A future that completes when a permit may have been freed (or the
    /// limit raised).
    pub(crate) fn freed(&self) -> OwnedNotified {
        self.freed.clone().notified_owned()
    }

    // ===== reading =====

    pub(crate) fn limit(&self) -> usize {
        self.hot.limit.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight(&self) -> usize {
        (self.permits.load(Ordering::Relaxed) & IN_FLIGHT) as usize
    }

    pub(crate) fn waiting(&self) -> usize {
        self.hot.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn last_sample(&self) -> Option<Sample> {
        self.control().last_sample
    }

    pub(crate) fn partitions(&self) -> impl Iterator<Item = PartitionStats> + '_ {
        self.partitions.iter().map(|p| PartitionStats {
            name: p.name.clone(),
            share: p.share,
            limit: p.limit.load(Ordering::Relaxed),
            in_flight: p.busy.load(Ordering::Relaxed),
            rejected: p.rejected.load(Ordering::Relaxed),
            dropped: p.dropped.load(Ordering::Relaxed),
        })
    }

    /// One call in `stride` is timed now.
    #[cfg(test)]
    pub(crate) fn stride(&self) -> u64 {
        self.hot.stride_mask.load(Ordering::Relaxed) + 1
    }
}

impl Partition {
    fn new(limiter: &str, name: Arc<str>, share: f64) -> Self {
        Partition {
            events: Events::new(limiter, Some(&name)),
            limit_gauge: crate::metrics::partition_gauge(LIMIT_PARTITION, limiter, &name),
            in_flight_gauge: crate::metrics::partition_gauge(
                LIMIT_PARTITION_IN_FLIGHT,
                limiter,
                &name,
            ),
            name,
            share,
            busy: AtomicUsize::new(0),
            limit: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

#[cold]
#[inline(never)]
fn rejected(name: &str, partition: Option<&str>) {
    tracing::debug!(
        target: TARGET_LIMIT,
        layer = LAYER,
        name,
        event = "rejected",
        partition,
        "call rejected: concurrency limit reached"
    );
}

#[cold]
#[inline(never)]
fn window_ended(name: &str, before: usize, limit: usize, sample: Sample) {
    tracing::debug!(
        target: TARGET_LIMIT,
        layer = LAYER,
        name,
        event = "window",
        limit,
        previous_limit = before,
        rtt_ms = sample.rtt.as_secs_f64() * 1e3,
        in_flight = sample.in_flight,
        dropped = sample.dropped,
        "window sampled"
    );
}

// ===== the permit =====

/// `Permit::partition` for a limiter without partitions.
pub(crate) const NO_PARTITION: u32 = u32::MAX;

/// A call's place under the limit, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    shared: Arc<Lane<Shared>>,
    partition: u32,
    /// Whether the call is timed; if so, `started` is when it began.
    timed: bool,
    started: Micros,
}

impl Permit {
    /// Notes when a timed call begins (a clock read); nothing for others.
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.timed {
            self.started = self.shared.clock.now();
        }
    }

    /// Records what the call's end says; the permit is given back when it
    /// drops, right after.
    ///
    /// By reference, on purpose: moving the permit out of the response
    /// future to consume it copied it with wide loads over the narrower
    /// stores that had just written it, a store-forwarding stall that cost
    /// more than the rest of the release (measured: 50 ns a call over the
    /// bare service before, 27 ns after, the bulkhead's 25 ns).
    #[inline]
    pub(crate) fn finish(&self, outcome: Outcome) {
        let started = self.timed.then_some(self.started);
        self.shared.record(self.partition, outcome, started);
    }

    /// For a call that never ended: dropped by a timeout above (a drop, as
    /// Netflix counts a timeout), or by its caller or a panic (says nothing
    /// about load).
    #[cold]
    pub(crate) fn abandon(&self) {
        let outcome = if cancel::is_timing_out() {
            Outcome::Dropped
        } else {
            Outcome::Ignored
        };
        self.finish(outcome);
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.shared.release(self.partition);
    }
}

#[cfg(test)]
mod tests {
    use super::super::algorithm::{Aimd, Fixed};
    use super::*;

    fn options() -> WindowOptions {
        WindowOptions {
            min_window: Duration::from_millis(100),
            max_window: Duration::from_millis(100),
            min_samples: 10,
            min_rtt: Duration::from_micros(100),
        }
    }

    fn lanes(algorithm: Box<dyn Algorithm>, partitions: &[(String, f64)]) -> Lanes<Shared> {
        Lanes::new(Arc::new(Shared::new(
            "test".into(),
            algorithm,
            options(),
            None,
            1,
            partitions,
        )))
    }

    #[test]
    fn admits_up_to_the_limit_and_releases_on_drop() {
        let lanes = lanes(Box::new(Fixed::new(2)), &[]);
        let a = Shared::try_acquire(&lanes).unwrap();
        let b = Shared::try_acquire(&lanes).unwrap();
        assert!(Shared::try_acquire(&lanes).is_none());
        assert_eq!(lanes.shared().in_flight(), 2);
        drop(a);
        assert_eq!(lanes.shared().in_flight(), 1);
        b.finish(Outcome::Ignored);
        assert_eq!(lanes.shared().in_flight(), 1, "held until dropped");
        drop(b);
        assert_eq!(lanes.shared().in_flight(), 0);
        assert!(Shared::try_acquire(&lanes).is_some());
    }

    #[test]
    fn every_call_is_timed_until_a_window_says_otherwise() {
        let lanes = lanes(Box::new(Fixed::new(10)), &[]);
        for _ in 0..5 {
            assert!(Shared::try_acquire(&lanes).unwrap().timed);
        }
        // 6400 admissions in a window: stride 64.
        lanes.shared().hot.stride_mask.store(63, Ordering::Relaxed);
        let timed = (0..640)
            .filter(|_| Shared::try_acquire(&lanes).unwrap().timed)
            .count();
        assert_eq!(timed, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_feeds_the_algorithm_its_mean_rtt_peak_and_drops() {
        let lanes = lanes(Box::new(Aimd::new().min_limit(1)), &[]);
        let shared = lanes.shared().clone();
        // Ten timed calls of 10, 20, ..., 100 ms, all in flight at once,
        // one of them dropped.
        let permits: Vec<_> = (0..10)
            .map(|_| {
                let mut p = Shared::try_acquire(&lanes).unwrap();
                p.start();
                p
            })
            .collect();
        for (i, permit) in permits.into_iter().enumerate() {
            tokio::time::advance(Duration::from_millis(10)).await;
            let outcome = if i == 3 {
                Outcome::Dropped
            } else {
                Outcome::Success
            };
            // The window ends at 100 ms: the tenth call, ending at 100 ms,
            // is still in it; nothing is fed yet.
            permit.finish(outcome);
        }
        assert_eq!(shared.last_sample(), None);
        assert_eq!(shared.limit(), 20);
        // The next timed call to end after 100 ms ends the window.
        let mut p = Shared::try_acquire(&lanes).unwrap();
        p.start();
        tokio::time::advance(Duration::from_millis(1)).await;
        p.finish(Outcome::Success);
        let sample = shared.last_sample().expect("the window was fed");
        // Eleven RTTs: 10, 20, ..., 100 ms and 1 ms.
        assert_eq!(sample.rtt, Duration::from_micros((550_000 + 1_000) / 11));
        assert_eq!(sample.in_flight, 10);
        assert!(sample.dropped);
        // AIMD: a drop → ⌊20·0.9⌋ = 18.
        assert_eq!(shared.limit(), 18);
        assert_eq!(shared.dropped(), 1);
        // The next window is 2 × its lowest RTT (1 ms), at least 100 ms.
        assert_eq!(
            shared.window.ends_at.load(Ordering::Relaxed),
            101_000 + 100_000
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_stride_follows_the_last_windows_admissions() {
        let lanes = lanes(Box::new(Fixed::new(10)), &[]);
        let shared = lanes.shared().clone();
        let call = |advance: u64| {
            let mut p = Shared::try_acquire(&lanes).unwrap();
            p.start();
            async move {
                tokio::time::advance(Duration::from_millis(advance)).await;
                p.finish(Outcome::Success);
            }
        };
        // 6399 admissions, then one ending the window: 6400 / 100 = 64.
        for _ in 0..6399 {
            call(0).await;
        }
        assert_eq!(shared.stride(), 1);
        call(101).await;
        assert_eq!(shared.stride(), 64);
        // Timed now: admissions 6400, 6464, ...: 2 of the next 100.
        let timed = (0..100)
            .filter(|_| Shared::try_acquire(&lanes).unwrap().timed)
            .count();
        assert_eq!(timed, 2);
        // A quiet window: 129 admissions, about one window's target, so
        // every call is timed again. The call ending it must be timed
        // itself: admission number 6528 (= 64 × 102).
        for _ in 0..28 {
            call(0).await;
        }
        call(101).await;
        assert_eq!(shared.stride(), 1);
        // 400 admissions: 4.
        for _ in 0..399 {
            Shared::try_acquire(&lanes).unwrap();
        }
        call(101).await;
        assert_eq!(shared.stride(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_with_too_few_samples_is_dropped() {
        let lanes = lanes(Box::new(Aimd::new().min_limit(1)), &[]);
        let shared = lanes.shared().clone();
        for _ in 0..9 {
            let mut p = Shared::try_acquire(&lanes).unwrap();
            p.start();
            tokio::time::advance(Duration::from_millis(12)).await;
            p.finish(Outcome::Dropped);
        }
        // 108 ms: the ninth call ended the window with 9 samples.
        assert_eq!(shared.last_sample(), None);
        assert_eq!(shared.limit(), 20);
        assert!(!shared.window.dropped.load(Ordering::Relaxed));
        assert_eq!(shared.window.totals.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn rtts_under_min_rtt_are_not_samples() {
        let lanes = lanes(Box::new(Fixed::new(10)), &[]);
        let shared = lanes.shared().clone();
        let mut p = Shared::try_acquire(&lanes).unwrap();
        p.start();
        tokio::time::advance(Duration::from_micros(99)).await;
        p.finish(Outcome::Success);
        assert_eq!(shared.window.totals.load(Ordering::Relaxed), 0);
        let mut p = Shared::try_acquire(&lanes).unwrap();
        p.start();
        tokio::time::advance(Duration::from_micros(100)).await;
        p.finish(Outcome::Success);
        assert_eq!(
            shared.window.totals.load(Ordering::Relaxed),
            ONE_SAMPLE | 100
        );
    }

    #[test]
    fn partitions_get_their_share_when_the_limit_is_in_use() {
        let lanes = lanes(
            Box::new(Fixed::new(10)),
            &[("a".into(), 0.5), ("b".into(), 0.3)],
        );
        let shared = lanes.shared();
        // a takes the whole limit while no one else calls.
        let a: Vec<_> = (0..10)
            .map(|_| Shared::try_acquire_partition(&lanes, Some("a")).unwrap())
            .collect();
        let refused = |key| Shared::try_acquire_partition(&lanes, key).unwrap_err();
        assert_eq!(
            refused(Some("a")),
            Refused {
                partition: 0,
                over_share: true
            }
        );
        // The unknown partition (index 2) has no share.
        let unknown = Refused {
            partition: 2,
            over_share: false,
        };
        assert_eq!(refused(None), unknown);
        assert_eq!(refused(Some("c")), unknown);
        // b still gets its ⌈10·0.3⌉ = 3, past the limit.
        let b: Vec<_> = (0..3)
            .map(|_| Shared::try_acquire_partition(&lanes, Some("b")).unwrap())
            .collect();
        assert!(Shared::try_acquire_partition(&lanes, Some("b")).is_err());
        assert_eq!(shared.in_flight(), 13);
        // a's calls end: under the limit, a takes what b leaves (7), and no
        // more once the limit is in use, since it holds more than its 5.
        drop(a);
        let a: Vec<_> = (0..7)
            .map(|_| Shared::try_acquire_partition(&lanes, Some("a")).unwrap())
            .collect();
        assert_eq!(shared.in_flight(), 10);
        assert!(Shared::try_acquire_partition(&lanes, Some("a")).is_err());
        let snapshot: Vec<_> = shared.partitions().collect();
        assert_eq!(&*snapshot[0].name, "a");
        assert_eq!((snapshot[0].limit, snapshot[0].in_flight), (5, 7));
        assert_eq!((snapshot[1].limit, snapshot[1].in_flight), (3, 3));
        assert_eq!(&*snapshot[2].name, UNKNOWN);
        drop((a, b));
        assert_eq!(shared.in_flight(), 0);
        assert!(shared.partitions().all(|p| p.in_flight == 0));
    }
}
