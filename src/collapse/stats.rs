//! What one collapser did: running totals for its handle, a rolling
//! window of batches and their sizes for the stream.

use crate::internal::clock::{micros, Clock};
use crate::metrics::{debug_enabled, event_counter, TARGET_COLLAPSE};
use crate::window::{Category, Counts, LatencySnapshot, Record, TimeWindow};
use metrics::Counter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `layer` label and field of the collapser's metrics and events.
pub(super) const LAYER: &str = "collapse";

/// Hystrix's rolling statistical window for a collapser: 10 s in 10
/// buckets.
pub(crate) const ROLLING_WINDOW: Duration = Duration::from_secs(10);
const BUCKETS: usize = 10;

/// Shared by every service of one collapse layer, its handles and the
/// registry.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: Arc<str>,
    /// The command whose calls are the batches, for the stream's
    /// `rollingCountCollapsedRequests`.
    pub(crate) command: Option<Arc<str>>,
    pub(crate) window: Duration,
    pub(crate) max_batch: usize,
    clock: Clock,
    /// One record per batch sent: its size stands in the latency slot, so
    /// the window's histogram is the batch-size distribution and its sum
    /// the requests batched (sizes are whole numbers, exact up to 15 and
    /// within 6.25 % above, as the latency histograms).
    batches: TimeWindow,
    totals: Totals,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Totals {
    batches: AtomicU64,
    batched: AtomicU64,
    failed: AtomicU64,
    missing: AtomicU64,
    abandoned: AtomicU64,
}

#[derive(Debug)]
struct Counters {
    batch: Counter,
    batched: Counter,
    failed: Counter,
    missing: Counter,
    abandoned: Counter,
}

/// A collapser's batches over the rolling window.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "stream"), allow(dead_code))]
pub(crate) struct Rolling {
    pub(crate) batches: u64,
    pub(crate) batched: u64,
    /// Batch sizes, read as whole microseconds.
    pub(crate) sizes: LatencySnapshot,
}

impl Stats {
    pub(crate) fn new(
        name: Arc<str>,
        command: Option<Arc<str>>,
        window: Duration,
        max_batch: usize,
    ) -> Self {
        let clock = Clock::new();
        let bucket = micros(ROLLING_WINDOW) / BUCKETS as u64;
        Stats {
            counters: Counters {
                batch: event_counter(LAYER, &name, "batch"),
                batched: event_counter(LAYER, &name, "batched"),
                failed: event_counter(LAYER, &name, "batch_failed"),
                missing: event_counter(LAYER, &name, "missing_item"),
                abandoned: event_counter(LAYER, &name, "abandoned"),
            },
            name,
            command,
            window,
            max_batch,
            clock,
            batches: TimeWindow::new(bucket, BUCKETS, clock.now()),
            totals: Totals::default(),
        }
    }

    /// A batch of `size` requests is being sent.
    pub(crate) fn batch(&self, size: usize) {
        let size = size as u64;
        self.batches.record(
            self.clock.now(),
            Record::call(Category::Success, false, size),
        );
        self.totals.batches.fetch_add(1, Ordering::Relaxed);
        self.totals.batched.fetch_add(size, Ordering::Relaxed);
        self.counters.batch.increment(1);
        self.counters.batched.increment(size);
    }

    /// A batch failed for its `size` requests.
    pub(crate) fn failed(&self, size: usize) {
        self.totals.failed.fetch_add(1, Ordering::Relaxed);
        self.counters.failed.increment(1);
        if debug_enabled() {
            event(&self.name, "batch_failed", size);
        }
    }

    /// `n` requests of a batch had no item in its response.
    pub(crate) fn missing(&self, n: usize) {
        if n > 0 {
            self.totals.missing.fetch_add(n as u64, Ordering::Relaxed);
            self.counters.missing.increment(n as u64);
            if debug_enabled() {
                event(&self.name, "missing_item", n);
            }
        }
    }

    /// `n` callers gave up before their batch was sent.
    pub(crate) fn abandoned(&self, n: usize) {
        if n > 0 {
            self.totals.abandoned.fetch_add(n as u64, Ordering::Relaxed);
            self.counters.abandoned.increment(n as u64);
        }
    }

    pub(crate) fn batches(&self) -> u64 {
        self.totals.batches.load(Ordering::Relaxed)
    }
    pub(crate) fn batched(&self) -> u64 {
        self.totals.batched.load(Ordering::Relaxed)
    }
    pub(crate) fn failed_batches(&self) -> u64 {
        self.totals.failed.load(Ordering::Relaxed)
    }
    pub(crate) fn missing_items(&self) -> u64 {
        self.totals.missing.load(Ordering::Relaxed)
    }
    pub(crate) fn abandoned_requests(&self) -> u64 {
        self.totals.abandoned.load(Ordering::Relaxed)
    }

    /// The batches of the rolling window now.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn rolling(&self) -> Rolling {
        let now = self.clock.now();
        let Counts { successes, .. } = self.batches.counts(now);
        let sizes = self.batches.latencies(now);
        Rolling {
            batches: successes,
            batched: sizes.sum_micros(),
            sizes,
        }
    }
}

#[cold]
#[inline(never)]
fn event(name: &str, event: &'static str, requests: usize) {
    tracing::debug!(
        target: TARGET_COLLAPSE,
        layer = LAYER,
        name,
        event,
        requests,
        "{}",
        match event {
            "batch_failed" => "batch call failed",
            _ => "batch response had no item for some requests",
        }
    );
}
