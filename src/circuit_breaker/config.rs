//! Options for a circuit breaker, and the builder that validates them.

use super::classify::DefaultClassifier;
use super::events::StateChange;
use super::layer::CircuitBreakerLayer;
use super::state::{Breaker, Settings};
use crate::error::{ConfigError, Validator};
use crate::internal::clock::micros;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default window: 10 s in 10 buckets (Hystrix `metrics.rollingStats.*`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Default number of buckets in a time-based window.
pub const DEFAULT_BUCKETS: u32 = 10;
/// Default minimum calls in the window before a rate can trip the breaker
/// (Hystrix `circuitBreaker.requestVolumeThreshold`).
pub const DEFAULT_MIN_CALLS: u32 = 20;
/// Default failure rate that trips the breaker (Hystrix
/// `circuitBreaker.errorThresholdPercentage` = 50).
pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
/// Default time the breaker stays open (Hystrix
/// `circuitBreaker.sleepWindowInMilliseconds`).
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(5);
/// The slow-call rate a slow-call rule turned on live by its
/// `slow_call_duration` property alone takes, until `slow_call_rate` says
/// otherwise: every call in the window slow (resilience4j's
/// `slowCallRateThreshold` default, 100 %).
pub const DEFAULT_SLOW_CALL_RATE: f64 = 1.0;
/// Default number of half-open probe calls (Hystrix lets one through).
pub const DEFAULT_PROBES: u32 = 1;
/// Default time a half-open probe may take before it counts as failed.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `r` is a rate a trip rule takes: in (0, 1].
pub(crate) fn is_rate(r: f64) -> bool {
    r > 0.0 && r <= 1.0
}

const MAX_BUCKETS: u32 = 1_000;
const MAX_WINDOW_CALLS: u32 = 1 << 20;
const MAX_PROBES: u32 = 10_000;
/// Deadlines are kept in 48 bits of microseconds (8.9 years of uptime);
/// durations are capped well below that.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What the breaker's rates are computed over.
///
/// ```
/// use rampart::circuit_breaker::Window;
/// use std::time::Duration;
///
/// let hystrix = Window::time(Duration::from_secs(10), 10); // the default
/// let resilience4j = Window::count(100);                    // the last 100 calls
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub(crate) WindowKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowKind {
    Time { length: Duration, buckets: u32 },
    Count { calls: u32 },
}

impl Window {
    /// The calls of the last `length`, kept in `buckets` buckets; the oldest
    /// bucket drops out whole as time moves on (Hystrix's rolling window).
    ///
    /// Valid: `length` from 1 ms to a year, `buckets` from 1 to 1000, and
    /// `length` divisible into buckets of at least 1 ms.
    pub fn time(length: Duration, buckets: u32) -> Window {
        Window(WindowKind::Time { length, buckets })
    }

    /// The last `calls` calls (resilience4j's count-based sliding window).
    ///
    /// Valid: 1 to 2^20 calls. Every call takes its place from one shared
    /// counter, so prefer a time window when many threads share a breaker.
    pub fn count(calls: u32) -> Window {
        Window(WindowKind::Count { calls })
    }
}

impl Default for Window {
    fn default() -> Self {
        Window::time(DEFAULT_WINDOW, DEFAULT_BUCKETS)
    }
}

/// A breaker's options as they are in force: as built, or as changed
/// live (see [`CircuitBreakerHandle::options`](super::CircuitBreakerHandle::options)).
/// Each field is the builder option of the same name.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreakerOptions {
    /// What the rates are computed over (never changes live).
    pub window: Window,
    /// Calls the window must hold before a rate can trip the breaker.
    pub min_calls: u32,
    /// The failure rate that trips it; `None`: the rule is off.
    pub failure_rate: Option<f64>,
    /// The slow-call bound and the slow-call rate that trips it.
    pub slow_call: Option<(Duration, f64)>,
    /// Failures in a row that trip it.
    pub consecutive_failures: Option<u32>,
    /// How long it stays open.
    pub open_for: Duration,
    /// The cap of the open time's doubling, if it grows.
    pub open_for_max: Option<Duration>,
    /// The open time's random spread, ± this fraction.
    pub open_for_jitter: f64,
    /// Half-open probe calls.
    pub probes: u32,
    /// How long a probe may run before it counts as failed.
    pub probe_timeout: Duration,
}

impl CircuitBreakerOptions {
    /// The options `settings` were made from.
    pub(crate) fn from_settings(s: &super::state::Settings) -> Self {
        let duration = Duration::from_micros;
        CircuitBreakerOptions {
            window: Window(s.window),
            min_calls: u32::try_from(s.min_calls).unwrap_or(u32::MAX),
            failure_rate: s.failure_rate,
            slow_call: s.slow_call.map(|(bound, rate)| (duration(bound), rate)),
            consecutive_failures: s.consecutive_failures,
            open_for: duration(s.open_for),
            open_for_max: s.open_for_max.map(duration),
            open_for_jitter: s.open_for_jitter,
            probes: s.probes,
            probe_timeout: duration(s.probe_timeout),
        }
    }
}

pub(crate) type Listener = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Builds a [`CircuitBreakerLayer`]; every option is checked by [`build`].
///
/// Defaults follow Hystrix: a 10 s window in 10 buckets, at least 20 calls,
/// a 50 % failure rate, open for 5 s, one probe.
///
/// [`build`]: Builder::build
pub struct Builder<C = DefaultClassifier> {
    name: String,
    window: Window,
    min_calls: u32,
    failure_rate: Option<f64>,
    slow_call: Option<(Duration, f64)>,
    consecutive_failures: Option<u32>,
    open_for: Duration,
    open_for_max: Option<Duration>,
    open_for_jitter: f64,
    probes: u32,
    probe_timeout: Duration,
    classify: C,
    listeners: Vec<Listener>,
    registry: Option<crate::registry::Registry>,
}

impl Builder<DefaultClassifier> {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            window: Window::default(),
            min_calls: DEFAULT_MIN_CALLS,
            failure_rate: Some(DEFAULT_FAILURE_RATE),
            slow_call: None,
            consecutive_failures: None,
            open_for: DEFAULT_OPEN_FOR,
            open_for_max: None,
            open_for_jitter: 0.0,
            probes: DEFAULT_PROBES,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            classify: DefaultClassifier,
            listeners: Vec::new(),
            registry: None,
        }
    }
}

impl<C> Builder<C> {
    /// What the rates are computed over. Default: `Window::time(10 s, 10)`.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Calls the window must hold before a rate can trip the breaker.
    ///
    /// Default 20; valid from 1 (and, for a count window, at most its size).
    pub fn min_calls(mut self, min_calls: u32) -> Self {
        self.min_calls = min_calls;
        self
    }

    /// Trip when failed calls / calls ≥ `rate` (and the window holds at
    /// least `min_calls`); `None` turns the rule off.
    ///
    /// Default `0.5`; valid in (0, 1].
    pub fn failure_rate(mut self, rate: impl Into<Option<f64>>) -> Self {
        self.failure_rate = rate.into();
        self
    }

    /// Calls taking `slower_than` or longer are slow; trip when slow calls /
    /// calls ≥ `rate` (and the window holds at least `min_calls`). A slow
    /// half-open probe fails.
    ///
    /// Off by default; `slower_than` from 1 µs to a year, `rate` in (0, 1].
    pub fn slow_call(mut self, slower_than: Duration, rate: f64) -> Self {
        self.slow_call = Some((slower_than, rate));
        self
    }

    /// Trip after this many failures in a row, whatever the window holds;
    /// `None` turns the rule off.
    ///
    /// Off by default; valid from 1.
    pub fn consecutive_failures(mut self, failures: impl Into<Option<u32>>) -> Self {
        self.consecutive_failures = failures.into();
        self
    }

    /// How long the breaker stays open before letting probes through.
    ///
    /// Default 5 s; valid from 1 ms to a year.
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Each time the breaker re-opens without having closed in between (a
    /// probe failed), it stays open twice as long, up to `max`.
    ///
    /// Off by default (always `open_for`); must be at least `open_for`, and
    /// at most a year.
    pub fn open_for_max(mut self, max: Duration) -> Self {
        self.open_for_max = Some(max);
        self
    }

    /// Spread each open duration by up to ± this fraction, at random, so
    /// that many clients do not probe a recovering dependency at once.
    /// Applied after [`open_for_max`](Self::open_for_max)'s cap, as
    /// resilience4j's randomized exponential backoff: at the cap the time
    /// spreads over `max × (1 ± fraction)`.
    ///
    /// Default 0 (no jitter); valid in [0, 1].
    pub fn open_for_jitter(mut self, fraction: f64) -> Self {
        self.open_for_jitter = fraction;
        self
    }

    /// Calls let through while half-open; all must succeed to close the
    /// breaker, and one failure re-opens it. Surplus calls are rejected.
    ///
    /// Default 1; valid from 1 to 10 000.
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// A half-open probe still running after this long counts as failed, so
    /// a call that never ends cannot hold the breaker half-open.
    ///
    /// Default 10 s; valid from 1 ms to a year.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Decides, from each result, whether the call succeeded, failed or
    /// should be ignored. See [`Classify`](super::Classify).
    pub fn classify<F>(self, classify: F) -> Builder<F> {
        Builder {
            name: self.name,
            window: self.window,
            min_calls: self.min_calls,
            failure_rate: self.failure_rate,
            slow_call: self.slow_call,
            consecutive_failures: self.consecutive_failures,
            open_for: self.open_for,
            open_for_max: self.open_for_max,
            open_for_jitter: self.open_for_jitter,
            probes: self.probes,
            probe_timeout: self.probe_timeout,
            classify,
            listeners: self.listeners,
            registry: self.registry,
        }
    }

    /// Calls `listener` on every state change, on the task that caused it
    /// (keep it short). Every change is also logged through `tracing` and
    /// counted in metrics, listener or not.
    ///
    /// A change made by changing options (`force_open` set through the
    /// registry, a source or
    /// [`set_property`](super::CircuitBreakerHandle::set_property))
    /// is told once the locks that change took are let go, before the call
    /// that made it returns; so a listener may change options itself. What
    /// it changes is told after the rest of what woke it. Changes made on
    /// different threads at once may reach a listener in either order; the
    /// handle's `state()` is the state now. See
    /// [`config`](crate::config#cost) on what is told when. A listener that
    /// keeps its breaker's own handle keeps the breaker alive (and listed)
    /// for good: change options by name, through
    /// [`Registry::apply`](crate::registry::Registry::apply), instead.
    pub fn on_state_change(
        mut self,
        listener: impl Fn(&StateChange) + Send + Sync + 'static,
    ) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// The [`Registry`](crate::registry::Registry) to list this component
    /// in. Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The window's length for a time window (`None` for a count window).
    pub(crate) fn window_length(&self) -> Option<Duration> {
        match self.window.0 {
            WindowKind::Time { length, .. } => Some(length),
            WindowKind::Count { .. } => None,
        }
    }

    /// Whether the window is still the default one.
    pub(crate) fn window_is_default(&self) -> bool {
        self.window == Window::default()
    }

    /// The slow-call bound, when the slow-call rule is on.
    pub(crate) fn slow_call_bound(&self) -> Option<Duration> {
        self.slow_call.map(|(bound, _)| bound)
    }

    /// Checks every option and builds the layer. Every service built from
    /// the layer, or from its clones, shares one breaker.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, ConfigError> {
        let parts = self.into_parts()?;
        let breaker = Arc::new(Breaker::new(
            parts.name.into(),
            parts.settings,
            parts.listeners.into(),
        ));
        parts
            .registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register_configurable(&breaker);
        Ok(CircuitBreakerLayer::from_parts(breaker, parts.classify))
    }

    /// One breaker per key taken from each request, all with these
    /// settings: see [`KeyedCircuitBreakerLayer`](super::KeyedCircuitBreakerLayer).
    /// Set every other option first.
    ///
    /// The closure's argument needs its type written out (`|req:
    /// &Request<Body>|`): it names the request type the layer is for.
    pub fn keyed<Req, K, F>(self, key: F) -> super::keyed::Builder<K, F, C>
    where
        F: Fn(&Req) -> K,
    {
        super::keyed::Builder::new(self, key)
    }

    /// Checks every option; the validated settings and the rest.
    pub(super) fn into_parts(self) -> Result<Parts<C>, ConfigError> {
        self.validate()?;
        let settings = Settings::from_options(&self.options());
        Ok(Parts {
            name: self.name,
            settings,
            listeners: self.listeners,
            classify: self.classify,
            registry: self.registry,
        })
    }

    /// The breaker's name, as given to the builder.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate(&self.name, &self.options())
    }

    /// The options as given so far.
    pub(super) fn options(&self) -> CircuitBreakerOptions {
        CircuitBreakerOptions {
            window: self.window,
            min_calls: self.min_calls,
            failure_rate: self.failure_rate,
            slow_call: self.slow_call,
            consecutive_failures: self.consecutive_failures,
            open_for: self.open_for,
            open_for_max: self.open_for_max,
            open_for_jitter: self.open_for_jitter,
            probes: self.probes,
            probe_timeout: self.probe_timeout,
        }
    }
}

/// The builder's checks, shared with live changes (so both refuse the
/// same values with the same words).
pub(super) fn validate(name: &str, o: &CircuitBreakerOptions) -> Result<(), ConfigError> {
    let mut v = Validator::new(format!("circuit breaker {:?}", name));
    v.check(!name.is_empty(), "name", || "must not be empty".into());
    match o.window.0 {
        WindowKind::Time { length, buckets } => {
            v.check(
                length >= Duration::from_millis(1) && length <= MAX_DURATION,
                "window",
                || format!("length must be from 1 ms to a year, got {length:?}"),
            );
            v.check((1..=MAX_BUCKETS).contains(&buckets), "window", || {
                format!("buckets must be from 1 to {MAX_BUCKETS}, got {buckets}")
            });
            if (1..=MAX_BUCKETS).contains(&buckets) && length >= Duration::from_millis(1) {
                let us = micros(length);
                v.check(
                    us % u64::from(buckets) == 0 && us / u64::from(buckets) >= 1_000,
                    "window",
                    || format!("length {length:?} must split into {buckets} buckets of whole microseconds, each at least 1 ms"),
                );
            }
        }
        WindowKind::Count { calls } => {
            v.check((1..=MAX_WINDOW_CALLS).contains(&calls), "window", || {
                format!("calls must be from 1 to {MAX_WINDOW_CALLS}, got {calls}")
            });
            v.check(calls == 0 || o.min_calls <= calls, "min_calls", || {
                format!(
                    "must not exceed the window's {calls} calls, got {}",
                    o.min_calls
                )
            });
        }
    }
    v.check(o.min_calls >= 1, "min_calls", || {
        "must be at least 1, got 0".into()
    });
    if let Some(rate) = o.failure_rate {
        v.check(is_rate(rate), "failure_rate", || {
            format!("must be in (0, 1], got {rate}")
        });
    }
    if let Some((slower_than, rate)) = o.slow_call {
        v.check(
            slower_than >= Duration::from_micros(1) && slower_than <= MAX_DURATION,
            "slow_call",
            || format!("duration must be from 1 µs to a year, got {slower_than:?}"),
        );
        v.check(is_rate(rate), "slow_call", || {
            format!("rate must be in (0, 1], got {rate}")
        });
    }
    if let Some(n) = o.consecutive_failures {
        v.check(n >= 1, "consecutive_failures", || {
            "must be at least 1, got 0".into()
        });
    }
    v.check(
        o.failure_rate.is_some() || o.slow_call.is_some() || o.consecutive_failures.is_some(),
        "failure_rate",
        || {
            "no trip rule is on (failure_rate, slow_call and consecutive_failures \
             are all off), so the breaker could never open; turn one on, or \
             disable the breaker through its handle"
                .into()
        },
    );
    let in_range = |d: Duration| d >= Duration::from_millis(1) && d <= MAX_DURATION;
    v.check(in_range(o.open_for), "open_for", || {
        format!("must be from 1 ms to a year, got {:?}", o.open_for)
    });
    if let Some(max) = o.open_for_max {
        // Checked on its own too: with open_for itself out of range,
        // comparing the two alone would let a bad cap through unnamed.
        v.check(in_range(max), "open_for_max", || {
            format!("must be from 1 ms to a year, got {max:?}")
        });
        v.check(!in_range(max) || max >= o.open_for, "open_for_max", || {
            format!("must be at least open_for ({:?}), got {max:?}", o.open_for)
        });
    }
    v.check(
        (0.0..=1.0).contains(&o.open_for_jitter),
        "open_for_jitter",
        || format!("must be in [0, 1], got {}", o.open_for_jitter),
    );
    v.check((1..=MAX_PROBES).contains(&o.probes), "probes", || {
        format!("must be from 1 to {MAX_PROBES}, got {}", o.probes)
    });
    v.check(in_range(o.probe_timeout), "probe_timeout", || {
        format!("must be from 1 ms to a year, got {:?}", o.probe_timeout)
    });
    v.finish()
}

/// A validated builder, taken apart.
pub(super) struct Parts<C> {
    pub(super) name: String,
    pub(super) settings: Settings,
    pub(super) listeners: Vec<Listener>,
    pub(super) classify: C,
    pub(super) registry: Option<crate::registry::Registry>,
}

impl<C> fmt::Debug for Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("window", &self.window)
            .field("min_calls", &self.min_calls)
            .field("failure_rate", &self.failure_rate)
            .field("slow_call", &self.slow_call)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("open_for", &self.open_for)
            .field("open_for_max", &self.open_for_max)
            .field("open_for_jitter", &self.open_for_jitter)
            .field("probes", &self.probes)
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}
