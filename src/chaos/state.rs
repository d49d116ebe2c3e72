//! What every service of one chaos layer shares: the switch, the faults,
//! the seeded draws and the counts.

use super::faults::{Abort, Faults};
use crate::metrics::{EVENTS_TOTAL, LABEL_EVENT, LABEL_LAYER, LABEL_NAME, TARGET_CHAOS};
use arc_swap::ArcSwap;
use metrics::Counter;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const LAYER: &str = "chaos";

pub(crate) struct Shared<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) enabled: AtomicBool,
    pub(crate) faults: ArcSwap<Faults<Req, Res>>,
    seed: u64,
    /// How many draws were made: draw `n` is a hash of (seed, n), so a
    /// seeded layer makes the same choices for the same requests in the
    /// same order.
    draws: AtomicU64,
    delays: AtomicU64,
    aborts: AtomicU64,
    delayed: Counter,
    aborted: Counter,
}

/// What to do with one request.
pub(crate) enum Decision<Res> {
    Pass,
    Inject {
        delay: Option<Duration>,
        abort: Option<Abort<Res>>,
    },
}

impl<Req, Res> Shared<Req, Res> {
    pub(crate) fn new(name: Arc<str>, faults: Faults<Req, Res>, seed: u64, enabled: bool) -> Self {
        Shared {
            delayed: injected_counter(&name, "delay_injected"),
            aborted: injected_counter(&name, "abort_injected"),
            name,
            enabled: AtomicBool::new(enabled),
            faults: ArcSwap::from_pointee(faults),
            seed,
            draws: AtomicU64::new(0),
            delays: AtomicU64::new(0),
            aborts: AtomicU64::new(0),
        }
    }

    /// A uniform draw in `[0, 1)`: SplitMix64 of (seed, draw number).
    fn draw(&self) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Decides the faults for `request` (the layer is enabled).
    pub(crate) fn decide(&self, request: &Req) -> Decision<Res> {
        let faults = self.faults.load();
        if let Some(select) = &faults.when {
            if !select(request) {
                return Decision::Pass;
            }
        }
        let delay = faults.delay.as_ref().and_then(|(delay, percent)| {
            (self.draw() * 100.0 < *percent).then(|| delay.sample(self.draw(), self.draw()))
        });
        let abort = faults
            .abort
            .as_ref()
            .and_then(|(abort, percent)| (self.draw() * 100.0 < *percent).then(|| abort.clone()));
        if delay.is_none() && abort.is_none() {
            return Decision::Pass;
        }
        if let Some(delay) = delay {
            self.delays.fetch_add(1, Ordering::Relaxed);
            self.delayed.increment(1);
            tracing::debug!(
                target: TARGET_CHAOS,
                layer = LAYER,
                name = %self.name,
                event = "delay_injected",
                injected = true,
                delay_ms = delay.as_secs_f64() * 1000.0,
                "chaos: delaying a call"
            );
        }
        if let Some(abort) = &abort {
            self.aborts.fetch_add(1, Ordering::Relaxed);
            self.aborted.increment(1);
            tracing::debug!(
                target: TARGET_CHAOS,
                layer = LAYER,
                name = %self.name,
                event = "abort_injected",
                injected = true,
                abort = abort.name(),
                "chaos: aborting a call"
            );
        }
        Decision::Inject { delay, abort }
    }

    pub(crate) fn delays(&self) -> u64 {
        self.delays.load(Ordering::Relaxed)
    }

    pub(crate) fn aborts(&self) -> u64 {
        self.aborts.load(Ordering::Relaxed)
    }
}

/// An event counter labelled `injected="true"` besides the usual labels, so
/// a query can leave injected faults out (or pick them) at a glance.
fn injected_counter(name: &str, event: &'static str) -> Counter {
    metrics::counter!(
        EVENTS_TOTAL,
        LABEL_LAYER => LAYER,
        LABEL_NAME => name.to_owned(),
        LABEL_EVENT => event,
        "injected" => "true"
    )
}
