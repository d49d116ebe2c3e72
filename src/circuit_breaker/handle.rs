//! Reading and steering a breaker at run time.

use super::config::CircuitBreakerOptions;
use super::events::State;
use super::state::Breaker;
use crate::config::{show_duration, show_off, Layer};
use crate::error::ConfigError;
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
    ///
    /// This is the operator's forced state, not the `force_open`
    /// [property](crate::config#properties): clearing that property, or
    /// [`clear_override`](Self::clear_override), does not undo it (the
    /// breaker goes back to it when the switch properties go off). To
    /// force a breaker so that deleting a key undoes it (a file's or
    /// etcd's), set the property instead (`set_property("force_open",
    /// "true")` here, or a source's key). The last change wins: forced by
    /// hand while a switch property is set, the breaker takes the hand's
    /// state until a property changes or [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.breaker.force_by_hand(State::ForcedOpen);
    }

    /// Lets every call through and keeps counting, but never trips
    /// (Hystrix's `circuitBreaker.forceClosed`).
    pub fn force_closed(&self) {
        self.breaker.force_by_hand(State::ForcedClosed);
    }

    /// Lets every call through and counts nothing: the breaker costs almost
    /// nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.breaker.force_by_hand(State::Disabled);
    }

    /// Lets every call through and counts; when a rule would trip the
    /// breaker, logs it instead. For trying thresholds on live traffic.
    pub fn metrics_only(&self) {
        self.breaker.force_by_hand(State::MetricsOnly);
    }

    /// Back to [`State::Closed`] with empty windows, from any state
    /// (an operator's [`force_open`](Self::force_open) included), or, while
    /// a switch [property](crate::config#properties) (`force_open`,
    /// `force_closed`, `disabled`, `metrics_only`) is set to `true` by any
    /// source or handle, to the state it forces, with empty windows. The
    /// property rules while it is set, as Hystrix's
    /// `circuitBreaker.forceOpen` does: to let the breaker close, set it
    /// to `false` or clear it.
    pub fn reset(&self) {
        self.breaker.reset_to_switches();
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

    /// Latencies of the timed calls in the configured window: every call
    /// at low traffic, about 100 a bucket under load (see the module's
    /// "Which calls are timed"), so [`count`](LatencySnapshot::count) may
    /// be lower than the calls in [`counts`](Self::counts).
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

/// Live options: each setter is checked as the builder checks it, keeps
/// the breaker's state (its windows, its open or half-open period, its
/// calls in flight), and takes effect from the next call. A handle's value
/// wins over what a [source](crate::config::Source) says, until
/// [`clear_override`](Self::clear_override) drops it. See
/// [`config`](crate::config) for the properties and what cannot change.
///
/// ```
/// use rampart::circuit_breaker::CircuitBreakerLayer;
/// use std::time::Duration;
///
/// let layer = CircuitBreakerLayer::builder("bookmarks").build()?;
/// let breaker = layer.handle();
/// breaker.set_failure_rate(0.3)?;
/// breaker.set_open_for(Duration::from_secs(30))?;
/// assert_eq!(breaker.options().failure_rate, Some(0.3));
///
/// // Refused as the builder refuses it; the old value stays.
/// assert!(breaker.set_probes(0).is_err());
/// assert_eq!(breaker.options().probes, 1);
///
/// breaker.clear_overrides(); // back to what the sources say, or as built
/// assert_eq!(breaker.options().failure_rate, Some(0.5));
/// # Ok::<(), rampart::ConfigError>(())
/// ```
impl CircuitBreakerHandle {
    /// The options in force now (as built, or as changed live).
    pub fn options(&self) -> CircuitBreakerOptions {
        self.breaker.options()
    }

    /// Sets any live property by its name and its text (see the table in
    /// [`config`](crate::config)), e.g. `("force_open", "true")`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the property and the value when it is no
    /// breaker property, or the value is refused; nothing changes then.
    pub fn set_property(&self, property: &str, value: &str) -> Result<(), ConfigError> {
        self.breaker.change(
            Layer::Handle,
            &[(
                breaker_property(self.breaker.name(), property)?,
                Some(value),
            )],
            false,
        )
    }

    /// The failure rate that trips the breaker, in (0, 1]; `None` turns the
    /// rule off (another rule must stay on).
    ///
    /// # Errors
    ///
    /// As [`Builder::failure_rate`](super::Builder::failure_rate) at build time.
    pub fn set_failure_rate(&self, rate: impl Into<Option<f64>>) -> Result<(), ConfigError> {
        let text = show_off(rate.into(), |r| r.to_string());
        self.set("failure_rate", &text)
    }

    /// Calls the window must hold before a rate can trip it; from 1.
    ///
    /// # Errors
    ///
    /// As [`Builder::min_calls`](super::Builder::min_calls) at build time.
    pub fn set_min_calls(&self, min_calls: u32) -> Result<(), ConfigError> {
        self.set("min_calls", &min_calls.to_string())
    }

    /// The slow-call bound and rate (both at once); `None` turns the rule off.
    ///
    /// # Errors
    ///
    /// As [`Builder::slow_call`](super::Builder::slow_call) at build time;
    /// in a [command](crate::Command), also a bound not shorter than the
    /// command's timeout in force (a `ConfigError` naming
    /// `slow_call_duration`).
    pub fn set_slow_call(&self, slow_call: Option<(Duration, f64)>) -> Result<(), ConfigError> {
        let duration = show_off(slow_call.map(|(d, _)| d), show_duration);
        let rate = slow_call.map(|(_, r)| r.to_string());
        self.breaker.change(
            Layer::Handle,
            &[
                ("slow_call_duration", Some(&duration)),
                ("slow_call_rate", rate.as_deref()),
            ],
            false,
        )
    }

    /// Failures in a row that trip it, from 1; `None` turns the rule off.
    ///
    /// # Errors
    ///
    /// As [`Builder::consecutive_failures`](super::Builder::consecutive_failures) at build time.
    pub fn set_consecutive_failures(
        &self,
        failures: impl Into<Option<u32>>,
    ) -> Result<(), ConfigError> {
        let text = show_off(failures.into(), |n| n.to_string());
        self.set("consecutive_failures", &text)
    }

    /// How long it stays open, from 1 ms to a year. An open period already
    /// running keeps its end; the next one uses this.
    ///
    /// # Errors
    ///
    /// As [`Builder::open_for`](super::Builder::open_for) at build time.
    pub fn set_open_for(&self, open_for: Duration) -> Result<(), ConfigError> {
        self.set("open_for", &show_duration(open_for))
    }

    /// The cap of the open time's doubling; `None`: no growth.
    ///
    /// # Errors
    ///
    /// As [`Builder::open_for_max`](super::Builder::open_for_max) at build time.
    pub fn set_open_for_max(&self, max: Option<Duration>) -> Result<(), ConfigError> {
        self.set("open_for_max", &show_off(max, show_duration))
    }

    /// The open time's random spread, ± this fraction, in [0, 1].
    ///
    /// # Errors
    ///
    /// As [`Builder::open_for_jitter`](super::Builder::open_for_jitter) at build time.
    pub fn set_open_for_jitter(&self, fraction: f64) -> Result<(), ConfigError> {
        self.set("open_for_jitter", &fraction.to_string())
    }

    /// Half-open probe calls, from 1 to 10 000. A half-open period already
    /// running counts against the new number from its next probe.
    ///
    /// # Errors
    ///
    /// As [`Builder::probes`](super::Builder::probes) at build time.
    pub fn set_probes(&self, probes: u32) -> Result<(), ConfigError> {
        self.set("probes", &probes.to_string())
    }

    /// How long a probe may run before it counts as failed, 1 ms to a year.
    ///
    /// # Errors
    ///
    /// As [`Builder::probe_timeout`](super::Builder::probe_timeout) at build time.
    pub fn set_probe_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.set("probe_timeout", &show_duration(timeout))
    }

    /// Drops this handle's value of `property` (as set by a setter above,
    /// by [`set_property`](Self::set_property) or by any handle to the
    /// same breaker): it takes what the sources say again, or its built
    /// value. Nothing happens for a property no handle set.
    pub fn clear_override(&self, property: &str) {
        if let Ok(property) = breaker_property(self.breaker.name(), property) {
            // Falling back can only fail if a lower layer's value no
            // longer fits the others; then the handle's value stays.
            let _ = self
                .breaker
                .change(Layer::Handle, &[(property, None)], false);
        }
    }

    /// Drops every value a handle set (see [`clear_override`](Self::clear_override)).
    pub fn clear_overrides(&self) {
        let set = self.breaker.handle_overrides();
        let clear: Vec<_> = set.into_iter().map(|p| (p, None)).collect();
        let _ = self.breaker.change(Layer::Handle, &clear, false);
    }

    fn set(&self, property: &'static str, value: &str) -> Result<(), ConfigError> {
        self.breaker
            .change(Layer::Handle, &[(property, Some(value))], false)
    }
}

/// `name` as a breaker property's static name.
fn breaker_property(breaker: &str, name: &str) -> Result<&'static str, ConfigError> {
    crate::config::property_of(crate::config::Kind::CircuitBreaker, breaker, name)
}
