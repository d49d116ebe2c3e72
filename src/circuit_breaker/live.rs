//! A breaker's options in force, in atomics a call reads with plain loads,
//! and how they change while it runs.

use super::config::{is_rate, validate, CircuitBreakerOptions, DEFAULT_SLOW_CALL_RATE};
use super::events::{State, TransitionReason};
use super::state::{Breaker, Settings};
use crate::config::{
    off_or, parse_bool, parse_duration, parse_f64, parse_u32, show_duration, show_off,
    Configurable, Kind, Layer,
};
use crate::error::{ConfigError, Validator};
use crate::internal::clock::{micros, Micros};
use crate::internal::sync::{AtomicU32, AtomicU64, Ordering};
use crate::metrics::TARGET_CIRCUIT_BREAKER;

/// A rate or count that is off. No rate is stored as these bits (a NaN),
/// and no count rule as 0 (the builder refuses 0).
const OFF: u64 = u64::MAX;

/// The options a call reads, each in its own atomic.
///
/// Each option lands on its own: a call racing a change that sets several
/// may read some of the new ones and some of the old; every mix is a
/// breaker the builder would have accepted but for cross-checks, which
/// the readers keep themselves (the open time is clamped to its cap).
#[derive(Debug)]
pub(crate) struct LiveSettings {
    min_calls: AtomicU64,
    failure_rate: AtomicU64,
    slow_call_bound: AtomicU64,
    slow_call_rate: AtomicU64,
    consecutive_failures: AtomicU32,
    open_for: AtomicU64,
    open_for_max: AtomicU64,
    open_for_jitter: AtomicU64,
    probes: AtomicU32,
    probe_timeout: AtomicU64,
}

fn rate_bits(rate: Option<f64>) -> u64 {
    rate.map_or(OFF, f64::to_bits)
}

fn rate_of(bits: u64) -> Option<f64> {
    (bits != OFF).then(|| f64::from_bits(bits))
}

impl LiveSettings {
    pub(crate) fn new(s: &Settings) -> Self {
        let live = LiveSettings {
            min_calls: AtomicU64::new(0),
            failure_rate: AtomicU64::new(OFF),
            slow_call_bound: AtomicU64::new(OFF),
            slow_call_rate: AtomicU64::new(OFF),
            consecutive_failures: AtomicU32::new(0),
            open_for: AtomicU64::new(0),
            open_for_max: AtomicU64::new(OFF),
            open_for_jitter: AtomicU64::new(0),
            probes: AtomicU32::new(0),
            probe_timeout: AtomicU64::new(0),
        };
        live.store(s);
        live
    }

    pub(crate) fn store(&self, s: &Settings) {
        let r = Ordering::Relaxed;
        self.min_calls.store(s.min_calls, r);
        self.failure_rate.store(rate_bits(s.failure_rate), r);
        self.slow_call_bound
            .store(s.slow_call.map_or(OFF, |(bound, _)| bound), r);
        self.slow_call_rate
            .store(rate_bits(s.slow_call.map(|(_, rate)| rate)), r);
        self.consecutive_failures
            .store(s.consecutive_failures.unwrap_or(0), r);
        self.open_for.store(s.open_for, r);
        self.open_for_max.store(s.open_for_max.unwrap_or(OFF), r);
        self.open_for_jitter.store(s.open_for_jitter.to_bits(), r);
        self.probes.store(s.probes, r);
        self.probe_timeout.store(s.probe_timeout, r);
    }

    #[inline]
    pub(crate) fn min_calls(&self) -> u64 {
        self.min_calls.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn failure_rate(&self) -> Option<f64> {
        rate_of(self.failure_rate.load(Ordering::Relaxed))
    }

    /// The slow-call bound, when the slow-call rule is on: one load, on
    /// every call's way out.
    #[inline]
    pub(crate) fn slow_call_bound(&self) -> Option<Micros> {
        let bound = self.slow_call_bound.load(Ordering::Relaxed);
        (bound != OFF).then_some(bound)
    }

    #[inline]
    pub(crate) fn slow_call_rate(&self) -> Option<f64> {
        self.slow_call_bound()?;
        rate_of(self.slow_call_rate.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn consecutive_failures(&self) -> Option<u32> {
        let n = self.consecutive_failures.load(Ordering::Relaxed);
        (n != 0).then_some(n)
    }

    pub(crate) fn open_for(&self) -> Micros {
        self.open_for.load(Ordering::Relaxed)
    }

    pub(crate) fn open_for_max(&self) -> Option<Micros> {
        let max = self.open_for_max.load(Ordering::Relaxed);
        (max != OFF).then_some(max)
    }

    pub(crate) fn open_for_jitter(&self) -> f64 {
        f64::from_bits(self.open_for_jitter.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn probes(&self) -> u32 {
        self.probes.load(Ordering::Relaxed)
    }

    pub(crate) fn probe_timeout(&self) -> Micros {
        self.probe_timeout.load(Ordering::Relaxed)
    }
}

/// What the layers of live configuration set on a breaker: its options
/// and the switches that force its state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveOptions {
    pub(crate) options: CircuitBreakerOptions,
    /// `force_open`, `force_closed`, `disabled`, `metrics_only`.
    switches: [bool; 4],
}

const SWITCHES: [(&str, State); 4] = [
    ("force_open", State::ForcedOpen),
    ("force_closed", State::ForcedClosed),
    ("disabled", State::Disabled),
    ("metrics_only", State::MetricsOnly),
];

impl LiveOptions {
    pub(crate) fn built(options: CircuitBreakerOptions) -> Self {
        LiveOptions {
            options,
            switches: [false; 4],
        }
    }

    /// The state the switches force, the first set winning.
    fn forced(&self) -> Option<State> {
        SWITCHES
            .iter()
            .zip(self.switches)
            .find(|(_, on)| *on)
            .map(|((_, state), _)| *state)
    }
}

/// Reads one property's text into the options.
fn set(o: &mut LiveOptions, property: &'static str, text: &str) -> Result<(), String> {
    let b = &mut o.options;
    match property {
        "failure_rate" => b.failure_rate = off_or(text, parse_f64)?,
        "min_calls" => b.min_calls = parse_u32(text)?,
        // Applied before `slow_call_rate` (the layers are read in name
        // order): a rule turned on here takes its rate from there, or,
        // written alone (one etcd key after the other), resilience4j's
        // default until the rate comes.
        "slow_call_duration" => {
            b.slow_call = off_or(text, parse_duration)?.map(|bound| {
                let rate = b.slow_call.map_or(DEFAULT_SLOW_CALL_RATE, |(_, rate)| rate);
                (bound, rate)
            });
        }
        // Kept, with no effect, while the rule is off: etcd's keys come
        // and go one by one, in any order (its duration's deletion first).
        "slow_call_rate" => {
            let rate = parse_f64(text)?;
            // Checked here too: a rate kept while the rule is off is not
            // seen by the builder's checks.
            if !is_rate(rate) {
                return Err(format!("must be in (0, 1], got {rate}"));
            }
            if let Some((_, r)) = &mut b.slow_call {
                *r = rate;
            }
        }
        "consecutive_failures" => b.consecutive_failures = off_or(text, parse_u32)?,
        "open_for" => b.open_for = parse_duration(text)?,
        "open_for_max" => b.open_for_max = off_or(text, parse_duration)?,
        "open_for_jitter" => b.open_for_jitter = parse_f64(text)?,
        "probes" => b.probes = parse_u32(text)?,
        "probe_timeout" => b.probe_timeout = parse_duration(text)?,
        _ => {
            let i = SWITCHES
                .iter()
                .position(|(name, _)| *name == property)
                .ok_or_else(|| format!("is no circuit-breaker property (value {text:?})"))?;
            o.switches[i] = parse_bool(text)?;
        }
    }
    Ok(())
}

/// One property's value as text, as [`set`] reads it.
fn show(o: &LiveOptions, property: &str) -> String {
    let b = &o.options;
    let rate = |r: f64| r.to_string();
    match property {
        "failure_rate" => show_off(b.failure_rate, rate),
        "min_calls" => b.min_calls.to_string(),
        "slow_call_duration" => show_off(b.slow_call.map(|(d, _)| d), show_duration),
        "slow_call_rate" => show_off(b.slow_call.map(|(_, r)| r), rate),
        "consecutive_failures" => show_off(b.consecutive_failures, |n| n.to_string()),
        "open_for" => show_duration(b.open_for),
        "open_for_max" => show_off(b.open_for_max, show_duration),
        "open_for_jitter" => rate(b.open_for_jitter),
        "probes" => b.probes.to_string(),
        "probe_timeout" => show_duration(b.probe_timeout),
        _ => SWITCHES
            .iter()
            .position(|(name, _)| *name == property)
            .map_or_else(String::new, |i| o.switches[i].to_string()),
    }
}

impl Settings {
    /// Validated options, times in microseconds.
    pub(crate) fn from_options(o: &CircuitBreakerOptions) -> Settings {
        Settings {
            window: o.window.0,
            min_calls: u64::from(o.min_calls),
            failure_rate: o.failure_rate,
            slow_call: o.slow_call.map(|(d, rate)| (micros(d), rate)),
            consecutive_failures: o.consecutive_failures,
            open_for: micros(o.open_for),
            open_for_max: o.open_for_max.map(micros),
            open_for_jitter: o.open_for_jitter,
            probes: o.probes,
            probe_timeout: micros(o.probe_timeout),
        }
    }
}

impl Breaker {
    /// Sets (or clears) what `layer` says of each property, as one change.
    pub(crate) fn change(
        &self,
        layer: Layer,
        changes: &[(&'static str, Option<&str>)],
        dry: bool,
    ) -> Result<(), ConfigError> {
        let component = format!("circuit breaker {:?}", self.name());
        let Some(layers) = self.layers() else {
            let mut v = Validator::new(component);
            v.check(false, changes.first().map_or("name", |c| c.0), || {
                "a keyed layer's breakers keep the layer's options as built: \
                 they cannot change live"
                    .into()
            });
            return v.finish();
        };
        layers.change(
            &component,
            layer,
            changes,
            dry,
            set,
            |o| validate(self.name(), &o.options),
            |old, new| {
                self.live().store(&Settings::from_options(&new.options));
                for (property, _) in changes {
                    let (from, to) = (show(old, property), show(new, property));
                    if from != to {
                        changed(self.name(), layer, property, &from, &to);
                    }
                }
                if old.forced() != new.forced() {
                    // No switch on any more: back to what a handle forced,
                    // or to normal, as a reset.
                    match new.forced().or_else(|| self.forced_by_hand()) {
                        Some(state) => self.force(state, TransitionReason::Property),
                        None => self.reset_to(State::Closed, TransitionReason::Property),
                    }
                }
            },
        )
    }

    /// Back to Closed with empty windows, or, while a switch property is
    /// set, to the state it forces: the property rules while it is set
    /// (Hystrix reads `circuitBreaker.forceOpen` on every call).
    pub(crate) fn reset_to_switches(&self) {
        self.forget_forced_by_hand();
        match self.layers() {
            Some(layers) => layers.with_in_force(set, self.name(), |o| {
                let state = o.forced().unwrap_or(State::Closed);
                self.reset_to(state, TransitionReason::Manual);
            }),
            None => self.reset(),
        }
    }

    /// Makes every later change of options pass `check` too: a command's
    /// checks across its layers, run again live.
    pub(crate) fn check_across(
        &self,
        check: impl Fn(&CircuitBreakerOptions) -> Result<(), ConfigError> + Send + Sync + 'static,
    ) {
        if let Some(layers) = self.layers() {
            layers.check_across(Box::new(move |o: &LiveOptions| check(&o.options)));
        }
    }

    /// The properties a handle set on this breaker.
    pub(crate) fn handle_overrides(&self) -> Vec<&'static str> {
        self.layers()
            .map_or_else(Vec::new, |layers| layers.set_by(Layer::Handle))
    }
}

#[cold]
fn changed(name: &str, layer: Layer, property: &str, from: &str, to: &str) {
    crate::config::property_changed!(
        TARGET_CIRCUIT_BREAKER,
        "circuit_breaker",
        name,
        layer,
        property,
        from,
        to
    );
}

impl Configurable for Breaker {
    fn name(&self) -> &str {
        Breaker::name(self)
    }

    fn kind(&self) -> Kind {
        Kind::CircuitBreaker
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
