//! What every service built from one bulkhead layer shares.

use crate::internal::shard::{Lane, Lanes};
use crate::internal::slots::Slots;
use crate::metrics::{
    debug_enabled, event_counter, named_gauge, BULKHEAD_IN_FLIGHT, TARGET_BULKHEAD,
};
use metrics::{Counter, Gauge};
use std::sync::Arc;
use std::time::Duration;

const LAYER: &str = "bulkhead";

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) slots: Slots,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) max_waiting: usize,
    admitted: Counter,
    rejected: Counter,
    in_flight: Gauge,
}

impl Shared {
    pub(crate) fn new(
        name: Arc<str>,
        max_concurrent: usize,
        max_wait: Option<Duration>,
        max_waiting: usize,
    ) -> Self {
        Shared {
            admitted: event_counter(LAYER, &name, "admitted"),
            rejected: event_counter(LAYER, &name, "rejected"),
            in_flight: named_gauge(BULKHEAD_IN_FLIGHT, &name),
            name,
            slots: Slots::new(max_concurrent),
            max_wait,
            max_waiting,
        }
    }

    /// Takes a slot now, if one is free; the permit points at the calling
    /// thread's lane, so threads do not share a reference count.
    #[inline]
    pub(crate) fn try_acquire(lanes: &Lanes<Shared>) -> Option<Permit> {
        Self::admit(lanes, lanes.shared().slots.try_acquire())
    }

    /// [`try_acquire`](Self::try_acquire) for a waiter: see
    /// [`Slots::try_acquire_waiting`].
    pub(crate) fn try_acquire_waiting(lanes: &Lanes<Shared>) -> Option<Permit> {
        Self::admit(lanes, lanes.shared().slots.try_acquire_waiting())
    }

    #[inline]
    fn admit(lanes: &Lanes<Shared>, got_slot: bool) -> Option<Permit> {
        let shared = lanes.shared();
        if !got_slot {
            return None;
        }
        shared.admitted.increment(1);
        shared.in_flight.increment(1.0);
        Some(Permit {
            shared: lanes.pick(),
        })
    }

    #[inline]
    pub(crate) fn reject(&self) {
        self.rejected.increment(1);
        if debug_enabled() {
            rejected(&self.name);
        }
    }
}

#[cold]
#[inline(never)]
fn rejected(name: &str) {
    tracing::debug!(
        target: TARGET_BULKHEAD,
        layer = LAYER,
        name,
        event = "rejected",
        "call rejected: bulkhead full"
    );
}

/// A slot in the bulkhead, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    shared: Arc<Lane<Shared>>,
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.shared.slots.release();
        self.shared.in_flight.decrement(1.0);
    }
}
