//! What fallbacks did: counts, and the cap on concurrent fallbacks.

use crate::internal::slots::Slots;
use crate::metrics::{debug_enabled, event_counter, TARGET_FALLBACK};
use metrics::Counter;
use std::sync::atomic::{AtomicU64, Ordering};
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
    cap: Option<Slots>,
    successes: AtomicU64,
    failures: AtomicU64,
    rejections: AtomicU64,
    success_counter: Counter,
    failure_counter: Counter,
    rejection_counter: Counter,
}

impl Stats {
    pub(crate) fn new(name: Arc<str>, max_concurrent: Option<usize>) -> Self {
        Stats {
            cap: max_concurrent.map(Slots::new),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            success_counter: event_counter(LAYER, &name, "fallback_success"),
            failure_counter: event_counter(LAYER, &name, "fallback_failure"),
            rejection_counter: event_counter(LAYER, &name, "fallback_rejected"),
            name,
        }
    }

    /// Takes a place to run a fallback in; `false` when the cap is reached.
    pub(crate) fn enter(&self) -> bool {
        if let Some(cap) = &self.cap {
            if !cap.try_acquire() {
                self.rejections.fetch_add(1, Ordering::Relaxed);
                self.rejection_counter.increment(1);
                self.trace(
                    "fallback_rejected",
                    "fallback rejected: as many running as its cap allows",
                );
                return false;
            }
        }
        true
    }

    /// Gives back a place taken by [`enter`](Self::enter).
    pub(crate) fn leave(&self) {
        if let Some(cap) = &self.cap {
            cap.release();
        }
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

    pub(crate) fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    pub(crate) fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::Relaxed)
    }
    pub(crate) fn running(&self) -> usize {
        self.cap.as_ref().map_or(0, Slots::in_flight)
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
