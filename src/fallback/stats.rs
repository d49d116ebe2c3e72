//! What fallbacks did: counts, and the cap on concurrent fallbacks.

use crate::config::{off_or, parse_bool, parse_usize, show_off, Configurable, Kind, Layer, Layers};
use crate::error::ConfigError;
use crate::internal::clock::{Clock, Micros};
use crate::internal::slots::Slots;
use crate::metrics::{debug_enabled, event_counter, TARGET_FALLBACK};
use crate::window::{Category, Counts, LatencySnapshot, Record, TimeWindow};
use metrics::Counter;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const LAYER: &str = "fallback";

/// The fallback and its stats, shared by every service of one layer.
#[derive(Debug)]
pub(crate) struct Shared<FB> {
    pub(crate) fallback: FB,
    pub(crate) stats: Arc<Stats>,
    /// Whether a panicking fallback becomes an error (see
    /// [`Builder::contain_panics`](super::Builder::contain_panics)).
    pub(crate) contain_panics: bool,
}

#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: Arc<str>,
    /// The cap on fallbacks running at once; an uncapped layer counts its
    /// fallbacks against 2^32 - 1 places, so that a cap set live finds
    /// the fallbacks already running counted.
    cap: Slots,
    /// Whether the cap is set (else its places are all there is).
    capped: AtomicBool,
    /// Hystrix's `fallback.enabled`: when off, errors pass through as they are.
    enabled: AtomicBool,
    layers: Layers<FallbackOptions>,
    successes: AtomicU64,
    failures: AtomicU64,
    rejections: AtomicU64,
    missing: AtomicU64,
    success_counter: Counter,
    failure_counter: Counter,
    rejection_counter: Counter,
    /// A command's fallback keeps rolling windows lined up with its
    /// breaker's, for the stream's fallback counts and `latencyTotal`.
    totals: Option<Totals>,
}

/// Rolling windows of a command's fallback.
#[derive(Debug)]
struct Totals {
    clock: Clock,
    /// Every call that reached the fallback: success / failure (with the
    /// call's total latency: the dependency's time plus the fallback's),
    /// rejected by the cap, ignored = no fallback to run.
    outcomes: TimeWindow,
    /// The dependency's time of the calls a fallback ran for, as the
    /// breaker recorded it: taken out of the breaker's latencies and
    /// replaced by their total.
    executed: TimeWindow,
}

/// When a call reached the fallback, and how long the dependency took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    execute: Option<Micros>,
    started: Micros,
}

/// A command's fallback activity over its breaker's time window.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "stream"), allow(dead_code))]
pub(crate) struct Rolling {
    /// Successes, failures, rejections, and (as `ignored`) missing fallbacks.
    pub(crate) counts: Counts,
    /// Total latencies of the calls a fallback ran for.
    pub(crate) total: LatencySnapshot,
    /// The dependency's latencies of those calls.
    pub(crate) executed: LatencySnapshot,
}

impl Stats {
    /// `window`: the clock, bucket length and bucket count of the breaker
    /// beneath, for a command's fallback; `None` keeps running totals only.
    pub(crate) fn new(
        name: Arc<str>,
        max_concurrent: Option<usize>,
        window: Option<(Clock, Micros, usize)>,
    ) -> Self {
        Stats {
            totals: window.map(|(clock, bucket_len, buckets)| Totals {
                clock,
                outcomes: TimeWindow::new(bucket_len, buckets, clock.now()),
                executed: TimeWindow::new(bucket_len, buckets, clock.now()),
            }),
            cap: Slots::new(max_concurrent.unwrap_or(usize::MAX)),
            capped: AtomicBool::new(max_concurrent.is_some()),
            enabled: AtomicBool::new(true),
            layers: Layers::new(FallbackOptions {
                enabled: true,
                max_concurrent,
            }),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            success_counter: event_counter(LAYER, &name, "fallback_success"),
            failure_counter: event_counter(LAYER, &name, "fallback_failure"),
            rejection_counter: event_counter(LAYER, &name, "fallback_rejected"),
            name,
        }
    }

    /// Takes a place to run a fallback in; `false` when the cap is reached.
    pub(crate) fn enter(&self) -> bool {
        if !self.cap.try_acquire() {
            self.rejections.fetch_add(1, Ordering::Relaxed);
            self.rejection_counter.increment(1);
            self.trace(
                "fallback_rejected",
                "fallback rejected: as many running as its cap allows",
            );
            return false;
        }
        true
    }

    /// Gives back a place taken by [`enter`](Self::enter).
    pub(crate) fn leave(&self) {
        self.cap.release();
    }

    /// Whether fallbacks run at all (Hystrix's `fallback.enabled`).
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Sets (or clears) what `layer` says of each property, as one change.
    pub(crate) fn change(
        &self,
        layer: Layer,
        changes: &[(&'static str, Option<&str>)],
        dry: bool,
    ) -> Result<(), ConfigError> {
        let component = format!("fallback {:?}", self.name);
        self.layers.change(
            &component,
            layer,
            changes,
            dry,
            |o, property, text| {
                match property {
                    "fallback_enabled" => o.enabled = parse_bool(text)?,
                    _ => o.max_concurrent = off_or(text, parse_usize)?,
                }
                Ok(())
            },
            |o| super::config::validate(&self.name, o.max_concurrent),
            |old, new| {
                self.cap.set_max(new.max_concurrent.unwrap_or(usize::MAX));
                self.capped
                    .store(new.max_concurrent.is_some(), Ordering::Relaxed);
                self.enabled.store(new.enabled, Ordering::Relaxed);
                if old.enabled != new.enabled {
                    let (from, to) = (old.enabled.to_string(), new.enabled.to_string());
                    changed(&self.name, layer, "fallback_enabled", &from, &to);
                }
                if old.max_concurrent != new.max_concurrent {
                    let show = |n: Option<usize>| show_off(n, |n| n.to_string());
                    let (from, to) = (show(old.max_concurrent), show(new.max_concurrent));
                    changed(&self.name, layer, "fallback_max_concurrent", &from, &to);
                }
            },
        )
    }

    pub(crate) fn succeeded(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        self.success_counter.increment(1);
        self.trace("fallback_success", "fallback served");
    }

    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.failure_counter.increment(1);
        self.trace("fallback_failure", "fallback failed");
    }

    /// One event per counted outcome, named as its counter's `event`
    /// label: the counts above are the one place every outcome passes.
    #[inline]
    fn trace(&self, event: &'static str, message: &'static str) {
        if debug_enabled() {
            outcome(&self.name, event, message);
        }
    }

    /// Notes when a failed call reached the fallback, and takes the
    /// dependency's latency the breaker beneath handed over; `None` (and
    /// no clock read) unless this fallback keeps windows.
    #[inline]
    pub(crate) fn timing(&self) -> Option<Timing> {
        let totals = self.totals.as_ref()?;
        Some(Timing {
            execute: crate::internal::handoff::take(),
            started: totals.clock.now(),
        })
    }

    /// Records in the windows how a call that reached the fallback ended.
    pub(crate) fn record(&self, timing: Option<Timing>, category: Category) {
        let (Some(timing), Some(totals)) = (timing, &self.totals) else {
            return;
        };
        let now = totals.clock.now();
        match category {
            Category::Success | Category::Failure => {
                let total = timing.execute.unwrap_or(0) + now.saturating_sub(timing.started);
                totals
                    .outcomes
                    .record(now, Record::call(category, false, total));
                if let Some(execute) = timing.execute {
                    let record = Record::call(Category::Success, false, execute);
                    totals.executed.record(now, record);
                }
            }
            _ => {
                totals.outcomes.record(now, Record::tally(category));
            }
        }
    }

    /// The windows now; `None` unless this fallback keeps them.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn rolling(&self) -> Option<Rolling> {
        let totals = self.totals.as_ref()?;
        let now = totals.clock.now();
        Some(Rolling {
            counts: totals.outcomes.counts(now),
            total: totals.outcomes.latencies(now),
            executed: totals.executed.latencies(now),
        })
    }

    /// A failed call had no fallback to run (Hystrix's `FALLBACK_MISSING`).
    pub(crate) fn missed(&self) {
        self.missing.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn missing(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }
    pub(crate) fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    pub(crate) fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::Relaxed)
    }
    pub(crate) fn max_concurrent(&self) -> Option<usize> {
        self.capped.load(Ordering::Relaxed).then(|| self.cap.max())
    }
    pub(crate) fn running(&self) -> usize {
        self.cap.in_flight()
    }
}

#[cold]
#[inline(never)]
fn outcome(name: &str, event: &'static str, message: &'static str) {
    tracing::debug!(
        target: TARGET_FALLBACK,
        layer = LAYER,
        name,
        event,
        "{message}"
    );
}

/// A fallback's live options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FallbackOptions {
    enabled: bool,
    max_concurrent: Option<usize>,
}

impl Configurable for Stats {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Fallback
    }

    fn set(
        &self,
        layer: Layer,
        property: &'static str,
        value: Option<&str>,
        dry: bool,
    ) -> Result<(), ConfigError> {
        self.change(layer, &[(property, value)], dry)
    }
}

#[cold]
fn changed(name: &str, layer: Layer, property: &str, from: &str, to: &str) {
    crate::config::property_changed!(TARGET_FALLBACK, LAYER, name, layer, property, from, to);
}
