//! Reading and steering a breaker at run time.

use super::events::State;
use super::state::Breaker;
use crate::window::{Counts, LatencySnapshot};
use std::sync::Arc;
use std::time::Duration;

/// A cloneable handle to one circuit breaker: read its state and rates, and
/// force it open or closed at run time without a redeploy.
///
/// ```
/// use rampart::circuit_breaker::{CircuitBreakerLayer, State};
///
/// let layer = CircuitBreakerLayer::builder("bookmarks").build()?;
/// let handle = layer.handle();
/// assert_eq!(handle.state(), State::Closed);
///
/// handle.force_open(); // e.g. from an admin endpoint, during an incident
/// assert_eq!(handle.state(), State::ForcedOpen);
/// handle.reset();      // back to closed, with an empty window
/// assert_eq!(handle.state(), State::Closed);
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerHandle {
    breaker: Arc<Breaker>,
}

impl CircuitBreakerHandle {
    pub(crate) fn new(breaker: Arc<Breaker>) -> Self {
        CircuitBreakerHandle { breaker }
    }

    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The breaker itself, for a service of another crate's shape to be
    /// built around it (the `reqwest-middleware` integration).
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Whether both handles steer the same breaker.
    pub fn same_breaker(&self, other: &CircuitBreakerHandle) -> bool {
        Arc::ptr_eq(&self.breaker, &other.breaker)
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.breaker.name()
    }

    /// The current state, as the next call would meet it.
    ///
    /// An open breaker whose open time has passed reads
    /// [`State::HalfOpen`]: reading it moves the breaker to half-open (the
    /// transition is announced then, with reason
    /// [`OpenElapsed`](super::TransitionReason::OpenElapsed)), so a gauge,
    /// a dashboard or an availability filter never waits for a call that
    /// it would itself have to send.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// Whether a call made now would be let through (Hystrix's
    /// `allowRequest`, without taking a place): `false` while open before
    /// its open time has passed, forced open, or half-open with every probe
    /// place taken. For whoever decides where to send a call, such as
    /// the balancer's `AvailabilityFilter`.
    pub fn is_call_permitted(&self) -> bool {
        self.breaker.is_call_permitted()
    }

    /// Rejects every call until [`reset`](Self::reset) or another forced
    /// state (Hystrix's `circuitBreaker.forceOpen`).
    pub fn force_open(&self) {
        self.breaker.force(State::ForcedOpen);
    }

    /// Lets every call through and keeps counting, but never trips
    /// (Hystrix's `circuitBreaker.forceClosed`).
    pub fn force_closed(&self) {
        self.breaker.force(State::ForcedClosed);
    }

    /// Lets every call through and counts nothing: the breaker costs almost
    /// nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.breaker.force(State::Disabled);
    }

    /// Lets every call through and counts; when a rule would trip the
    /// breaker, logs it instead. For trying thresholds on live traffic.
    pub fn metrics_only(&self) {
        self.breaker.force(State::MetricsOnly);
    }

    /// Back to [`State::Closed`] with empty windows, from any state.
    pub fn reset(&self) {
        self.breaker.reset();
    }

    /// The counts the trip rules see now (the configured window).
    pub fn counts(&self) -> Counts {
        self.breaker.counts()
    }

    /// Failed calls / calls in the configured window now (0 when empty).
    pub fn failure_rate(&self) -> f64 {
        self.counts().failure_rate()
    }

    /// Slow calls / calls in the configured window now (0 when empty).
    pub fn slow_call_rate(&self) -> f64 {
        self.counts().slow_call_rate()
    }

    /// Failures in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.breaker.consecutive_failures()
    }

    /// Hystrix-style rolling counts over the time window (with a count
    /// window configured: over the last 10 s), short-circuits included.
    pub fn rolling_counts(&self) -> Counts {
        self.breaker.rolling_counts()
    }

    /// Latencies of the calls in the configured window.
    pub fn latencies(&self) -> LatencySnapshot {
        self.breaker.latencies()
    }

    /// When open: how long until the next call is let through as a probe
    /// (the breaker turns half-open once its open time has passed).
    /// `None` in every other state, and when forced open: a forced-open
    /// breaker waits for a person, not a clock.
    pub fn retry_after(&self) -> Option<Duration> {
        self.breaker.retry_after()
    }
}
