//! What a breaker reports: metrics through handles taken at build time, and
//! `tracing` events (named in [`crate::metrics`]) on state changes and
//! rejections.

use super::events::{State, TransitionReason};
use crate::metrics::{
    debug_enabled, duration_histogram, event_counter, named_gauge, CIRCUIT_BREAKER_FAILURE_RATE,
    CIRCUIT_BREAKER_SLOW_CALL_RATE, CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
    LABEL_NAME, TARGET_CIRCUIT_BREAKER,
};
use crate::window::{Category, Counts, Record};
use metrics::{Counter, Gauge, Histogram};
use std::sync::Arc;
use std::time::Duration;

const LAYER: &str = "circuit_breaker";

/// One event counter per [`Category`], in its order.
const EVENTS: [&str; 6] = [
    "success",
    "failure",
    "timeout",
    "rejected",
    "ignored",
    "short_circuited",
];

/// Cloned only to tell of a state change later (see `internal::notify`).
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    events: [Counter; 6],
    slow: Counter,
    duration: Histogram,
    state: Gauge,
    failure_rate: Gauge,
    slow_call_rate: Gauge,
}

impl Telemetry {
    pub(crate) fn new(name: &str) -> Self {
        let t = Telemetry {
            events: EVENTS.map(|event| event_counter(LAYER, name, event)),
            slow: event_counter(LAYER, name, "slow_call"),
            duration: duration_histogram(LAYER, name),
            state: named_gauge(CIRCUIT_BREAKER_STATE, name),
            failure_rate: named_gauge(CIRCUIT_BREAKER_FAILURE_RATE, name),
            slow_call_rate: named_gauge(CIRCUIT_BREAKER_SLOW_CALL_RATE, name),
        };
        t.state.set(State::Closed.gauge());
        t
    }

    /// Counts a call, and puts a timed one's latency into the duration
    /// histogram (whose count is so the timed calls': `events` counts
    /// every call).
    #[inline]
    pub(crate) fn call(&self, record: &Record) {
        self.events[record.category as usize].increment(1);
        if record.slow {
            self.slow.increment(1);
        }
        if let Some(us) = record.latency {
            self.duration.record(us as f64 / 1e6);
        }
    }

    /// `name` is taken as the `Arc` and read only inside the event: a
    /// `&str` argument would load the name's pointer and length on every
    /// rejection, listened to or not.
    #[inline]
    pub(crate) fn short_circuit(&self, name: &Arc<str>) {
        self.events[Category::ShortCircuited as usize].increment(1);
        if debug_enabled() {
            short_circuited(name);
        }
    }

    pub(crate) fn rates(&self, counts: &Counts) {
        self.failure_rate.set(counts.failure_rate());
        self.slow_call_rate.set(counts.slow_call_rate());
    }

    /// The state gauge: set where the state changes, never later, so that
    /// it cannot overwrite a newer state.
    pub(crate) fn set_state(&self, state: State) {
        self.state.set(state.gauge());
    }

    /// The transition counter and event (the gauge is [`set_state`](Self::set_state)'s).
    pub(crate) fn transition(
        &self,
        name: &str,
        from: State,
        to: State,
        reason: TransitionReason,
        open_for: Option<Duration>,
    ) {
        // A state change is rare: looking the counter up here keeps 49
        // from/to pairs out of every breaker's build.
        metrics::counter!(
            CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
            LABEL_NAME => name.to_owned(),
            "from" => from.as_str(),
            "to" => to.as_str()
        )
        .increment(1);
        // An opening is what an operator must hear about; the way back is
        // news, not a warning.
        let open_for_ms = open_for.map(|d| d.as_millis() as u64);
        match to {
            State::Open | State::ForcedOpen => tracing::warn!(
                target: TARGET_CIRCUIT_BREAKER,
                layer = LAYER,
                name,
                event = "state_change",
                from = from.as_str(),
                to = to.as_str(),
                reason = reason.as_str(),
                open_for_ms,
                "circuit breaker opened"
            ),
            _ => tracing::info!(
                target: TARGET_CIRCUIT_BREAKER,
                layer = LAYER,
                name,
                event = "state_change",
                from = from.as_str(),
                to = to.as_str(),
                reason = reason.as_str(),
                "circuit breaker changed state"
            ),
        }
    }

    pub(crate) fn would_open(&self, name: &str, reason: TransitionReason) {
        tracing::info!(
            target: TARGET_CIRCUIT_BREAKER,
            layer = LAYER,
            name,
            event = "would_open",
            reason = reason.as_str(),
            "circuit breaker would open (metrics only)"
        );
    }
}

#[cold]
#[inline(never)]
fn short_circuited(name: &str) {
    tracing::debug!(
        target: TARGET_CIRCUIT_BREAKER,
        layer = LAYER,
        name,
        event = "short_circuited",
        "call short-circuited"
    );
}
