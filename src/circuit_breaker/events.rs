//! Breaker states and the changes between them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through and are counted; a trip rule opens the breaker.
    Closed,
    /// Calls are rejected with [`CircuitOpen`](super::CircuitOpen) until the
    /// open time has passed.
    Open,
    /// A few probe calls go through; their outcome closes or re-opens the
    /// breaker. The rest are rejected.
    HalfOpen,
    /// Every call is rejected until the handle changes the state.
    ForcedOpen,
    /// Every call goes through and is counted, but no rule trips the breaker.
    ForcedClosed,
    /// Every call goes through and nothing is counted.
    Disabled,
    /// Calls go through and are counted; when a rule would trip the breaker
    /// it is logged, but the breaker stays closed. For trying out thresholds
    /// on live traffic.
    MetricsOnly,
}

impl State {
    /// The state's name in logs and metric labels, e.g. `"half_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::ForcedClosed => "forced_closed",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }

    /// Whether calls are rejected in this state (half-open rejects only the
    /// calls beyond its probes).
    pub fn rejects(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }

    /// The value of the `rampart_circuit_breaker_state` gauge.
    pub(crate) fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
            State::ForcedOpen => 3.0,
            State::ForcedClosed => 4.0,
            State::Disabled => 5.0,
            State::MetricsOnly => 6.0,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// The failure rate reached the threshold.
    FailureRate {
        /// The failure rate that tripped the breaker.
        rate: f64,
    },
    /// The slow-call rate reached the threshold.
    SlowCallRate {
        /// The slow-call rate that tripped the breaker.
        rate: f64,
    },
    /// Too many failures in a row.
    ConsecutiveFailures {
        /// How many failures in a row there were.
        count: u32,
    },
    /// The open time passed; probes may go through.
    OpenElapsed,
    /// Every probe succeeded.
    ProbesSucceeded,
    /// A probe failed (or was slow, with the slow-call rule on).
    ProbeFailed,
    /// A probe's response future was dropped before it finished: most often
    /// a timeout above the breaker, so it counts as a failed probe.
    ProbeAbandoned,
    /// A probe ran longer than the probe timeout.
    ProbeTimedOut,
    /// The handle changed the state ([`force_open`](super::CircuitBreakerHandle::force_open),
    /// [`reset`](super::CircuitBreakerHandle::reset), ...).
    Manual,
    /// A switch property (`force_open`, `force_closed`, `disabled`,
    /// `metrics_only`) was set or cleared through
    /// [live configuration](crate::config): a source (a file, etcd) or a
    /// handle's `set_property`.
    Property,
}

impl TransitionReason {
    /// The reason's name in logs, e.g. `"failure_rate"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransitionReason::FailureRate { .. } => "failure_rate",
            TransitionReason::SlowCallRate { .. } => "slow_call_rate",
            TransitionReason::ConsecutiveFailures { .. } => "consecutive_failures",
            TransitionReason::OpenElapsed => "open_elapsed",
            TransitionReason::ProbesSucceeded => "probes_succeeded",
            TransitionReason::ProbeFailed => "probe_failed",
            TransitionReason::ProbeAbandoned => "probe_abandoned",
            TransitionReason::ProbeTimedOut => "probe_timed_out",
            TransitionReason::Manual => "manual",
            TransitionReason::Property => "property",
        }
    }
}

/// A state change, as given to
/// [`on_state_change`](super::Builder::on_state_change) listeners.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StateChange {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
    /// When `to` is [`State::Open`]: how long it stays open.
    pub open_for: Option<Duration>,
}
