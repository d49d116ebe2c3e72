//! What every service built from one bulkhead layer shares.

use super::config::{validate, BulkheadOptions};
use crate::config::{
    off_or, parse_duration, parse_usize, show_duration, show_off, Configurable, Kind, Layer, Layers,
};
use crate::error::ConfigError;
use crate::internal::clock::micros;
use crate::internal::shard::{Lane, Lanes};
use crate::internal::slots::Slots;
use crate::internal::sync::{AtomicU64, Ordering};
use crate::metrics::{
    debug_enabled, event_counter, named_gauge, BULKHEAD_IN_FLIGHT, TARGET_BULKHEAD,
};
use metrics::{Counter, Gauge};
use std::sync::Arc;
use std::time::Duration;

/// `max_wait` off: a full bulkhead rejects at once.
const NO_WAIT: u64 = u64::MAX;

fn wait_micros(wait: Option<Duration>) -> u64 {
    wait.map_or(NO_WAIT, micros)
}

impl Configurable for Shared {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Bulkhead
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
    crate::config::property_changed!(TARGET_BULKHEAD, LAYER, name, layer, property, from, to);
}

const LAYER: &str = "bulkhead";

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) slots: Slots,
    /// How long a call may wait for a slot, in µs; [`NO_WAIT`]: not at all.
    max_wait: AtomicU64,
    pub(crate) max_waiting: usize,
    layers: Layers<BulkheadOptions>,
    admitted: Counter,
    rejected: Counter,
    in_flight: Gauge,
}

impl Shared {
    pub(crate) fn new(name: Arc<str>, options: BulkheadOptions) -> Self {
        Shared {
            admitted: event_counter(LAYER, &name, "admitted"),
            rejected: event_counter(LAYER, &name, "rejected"),
            in_flight: named_gauge(BULKHEAD_IN_FLIGHT, &name),
            name,
            slots: Slots::new(options.max_concurrent),
            max_wait: AtomicU64::new(wait_micros(options.max_wait)),
            max_waiting: options.max_waiting.unwrap_or(options.max_concurrent),
            layers: Layers::new(options),
        }
    }

    /// How long a call may wait for a slot now; `None`: it is rejected at once.
    #[inline]
    pub(crate) fn max_wait(&self) -> Option<Duration> {
        let wait = self.max_wait.load(Ordering::Relaxed);
        (wait != NO_WAIT).then(|| Duration::from_micros(wait))
    }

    /// Sets (or clears) what `layer` says of each property, as one change.
    pub(crate) fn change(
        &self,
        layer: Layer,
        changes: &[(&'static str, Option<&str>)],
        dry: bool,
    ) -> Result<(), ConfigError> {
        let component = format!("bulkhead {:?}", self.name);
        self.layers.change(
            &component,
            layer,
            changes,
            dry,
            |o, property, text| {
                match property {
                    "max_concurrent" => o.max_concurrent = parse_usize(text)?,
                    _ => o.max_wait = off_or(text, parse_duration)?,
                }
                Ok(())
            },
            |o| validate(&self.name, o),
            |old, new| {
                self.slots.set_max(new.max_concurrent);
                self.max_wait
                    .store(wait_micros(new.max_wait), Ordering::Relaxed);
                if old.max_concurrent != new.max_concurrent {
                    let (from, to) = (
                        old.max_concurrent.to_string(),
                        new.max_concurrent.to_string(),
                    );
                    changed(&self.name, layer, "max_concurrent", &from, &to);
                }
                if old.max_wait != new.max_wait {
                    let from = show_off(old.max_wait, show_duration);
                    let to = show_off(new.max_wait, show_duration);
                    changed(&self.name, layer, "max_wait", &from, &to);
                }
            },
        )
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
