//! Live configuration: options of running components changed by name,
//! from a file, from etcd or through a handle, keeping their state
//! (Archaius's dynamic properties for Hystrix).
//!
//! Netflix changed Hystrix thresholds and timeouts on running services
//! through Archaius, without a redeploy. rampart does the same without
//! rebuilding anything: a breaker keeps its window, its open state and its
//! calls in flight; a bulkhead keeps the calls it holds. A change takes
//! effect from the next call (a call already admitted keeps the options it
//! was admitted under where it read them, e.g. its timeout).
//!
//! # Where a value comes from
//!
//! Each property of each component has layers; the highest one set wins:
//!
//! ```text
//!   built value  <  Source::File  <  Source::Etcd  <  handle
//! ```
//!
//! - the **built value** is what the component's builder was given (or its
//!   default);
//! - a **source** ([`Source::File`], [`Source::Etcd`]) speaks through
//!   [`Registry::apply`] and [`Registry::replace`], to every component of
//!   that name in the registry. The registry remembers what each source
//!   said, so a component built *later* with that name gets it too, and
//!   clearing a layer falls back to the next one down;
//! - a **handle** setter (e.g.
//!   [`CircuitBreakerHandle::set_failure_rate`](crate::circuit_breaker::CircuitBreakerHandle::set_failure_rate))
//!   wins over both sources, on that component only, until the handle's
//!   `clear_override(property)` (or `clear_overrides()`) drops it.
//!
//! A source's value that a handle's override hides is checked as if it
//! were in force, so that dropping the override always finds a good value
//! under it. Only another layer's change can make that value break a rule
//! again (a command's breaker given a slow-call bound above the timeout
//! the sources say); then the override stays when dropped, and a
//! `property_rejected` warning says so.
//!
//! Every value is checked by the same rules as the component's builder
//! (each property alone, then the builder's checks across properties,
//! e.g. `open_for_max` at least `open_for`; in a command, also the
//! command's checks across its layers, against the other layer's value in
//! force: its breaker's slow-call bound shorter than its timeout, its
//! breaker's window at least its timeout); a bad one is a
//! [`ConfigError`] naming the component, the property and the value, and
//! changes nothing: the old values stay. Every change that lands logs a
//! `property_changed` event (see [`metrics`](crate::metrics)) and shows in
//! the stream's `propertyValue_*` fields.
//!
//! ```
//! use rampart::circuit_breaker::CircuitBreakerLayer;
//! use rampart::config::Source;
//! use rampart::registry::Registry;
//!
//! let registry = Registry::new();
//! let layer = CircuitBreakerLayer::builder("RatingsGet").registry(&registry).build()?;
//! let breaker = layer.handle();
//!
//! registry.apply(Source::File, "RatingsGet", "failure_rate", Some("0.3"))?;
//! assert_eq!(breaker.options().failure_rate, Some(0.3));
//! registry.apply(Source::Etcd, "RatingsGet", "failure_rate", Some("0.2"))?;
//! assert_eq!(breaker.options().failure_rate, Some(0.2)); // etcd over the file
//!
//! breaker.set_failure_rate(0.9)?;                        // a handle over both
//! assert_eq!(breaker.options().failure_rate, Some(0.9));
//! breaker.clear_override("failure_rate");
//! registry.apply(Source::Etcd, "RatingsGet", "failure_rate", None)?;
//! assert_eq!(breaker.options().failure_rate, Some(0.3)); // back to the file
//!
//! // Checked as the builder checks it; nothing changes.
//! let err = registry.apply(Source::File, "RatingsGet", "failure_rate", Some("1.5")).unwrap_err();
//! assert!(err.to_string().contains("failure_rate: must be in (0, 1], got 1.5"));
//! assert_eq!(breaker.options().failure_rate, Some(0.3));
//! # Ok::<(), rampart::ConfigError>(())
//! ```
//!
//! # Properties
//!
//! Values are text, as a file or etcd holds them. Durations are written
//! with units, as [`humantime`](https://docs.rs/humantime) reads them:
//! `"800ms"`, `"5s"`, `"1m 30s"`, `"250us"`. Rates are plain numbers from
//! 0 to 1 (`0.3` for 30 %), counts plain integers, switches `true` or
//! `false`. A rule that can be off (`failure_rate`, `slow_call_duration`,
//! `consecutive_failures`, `open_for_max`, `max_wait`) is turned off by
//! `"off"`. Names follow the builders' options; the Hystrix property each
//! stands for is in brackets.
//!
//! | property | component | type | range | default |
//! |---|---|---|---|---|
//! | `failure_rate` | circuit breaker | rate or `off` | (0, 1] | 0.5 (`errorThresholdPercentage` 50) |
//! | `min_calls` | circuit breaker | count | 1 .. 2^32-1 (at most a count window's size) | 20 (`requestVolumeThreshold`) |
//! | `slow_call_duration` | circuit breaker | duration or `off` | 1 µs .. a year | off; turned on with no rate, the rate is 1 until `slow_call_rate` comes (resilience4j's default, 100 %) |
//! | `slow_call_rate` | circuit breaker | rate | (0, 1]; applies while the slow-call rule is on (`slow_call_duration`, or as built), kept meanwhile | as built, or 1 |
//! | `consecutive_failures` | circuit breaker | count or `off` | 1 .. | off |
//! | `open_for` | circuit breaker | duration | 1 ms .. a year | 5s (`sleepWindowInMilliseconds`) |
//! | `open_for_max` | circuit breaker | duration or `off` | `open_for` .. a year | off |
//! | `open_for_jitter` | circuit breaker | fraction | [0, 1] | 0 |
//! | `probes` | circuit breaker | count | 1 .. 10 000 | 1 |
//! | `probe_timeout` | circuit breaker | duration | 1 ms .. a year | 10s |
//! | `force_open` | circuit breaker | switch | | false (`forceOpen`) |
//! | `force_closed` | circuit breaker | switch | | false (`forceClosed`) |
//! | `disabled` | circuit breaker | switch | | false (`enabled` = true) |
//! | `metrics_only` | circuit breaker | switch | | false |
//! | `timeout` | timeout (a command's too) | duration | 1 ms .. a year | 1s (`execution.isolation.thread.timeoutInMilliseconds`) |
//! | `max_concurrent` | bulkhead (a command's too) | count | 1 .. 2^24 | 10 (`execution.isolation.semaphore.maxConcurrentRequests`) |
//! | `max_wait` | bulkhead | duration or `off` | 1 µs .. an hour | off (reject at once) |
//! | `retries_same` | balancer | count | 0 .. 10 | 0 (Ribbon's `MaxAutoRetries`) |
//! | `retries_next` | balancer | count | 0 .. 100 | 1 (Ribbon's `MaxAutoRetriesNextServer`) |
//! | `eject_after` | balancer | count | 1 .. 1000 | 5 (failures in a row that eject an endpoint; Envoy's `consecutive_5xx`) |
//! | `eject_for` | balancer | duration | 1 ms .. `eject_for_max` | 10s (the first ejection; doubled in a row, Ribbon) |
//! | `eject_for_max` | balancer | duration | `eject_for` .. 1 h | 30s (Ribbon) |
//! | `max_ejected` | balancer | fraction | [0, 1] | 0.1 (Envoy's `max_ejection_percent`) |
//! | `panic_threshold` | balancer | fraction | [0, 1] | 0.5 (Envoy's panic threshold) |
//! | `failure_accrual` | balancer | switch | | true |
//! | `backoff` | balancer | `none`, `exponential <base>..<max>` or `decorrelated <base>..<max>` | 0 < base <= max <= 1 h | `exponential 10ms..1s` (full jitter; AWS's "Exponential Backoff And Jitter") |
//! | `rule` | balancer | `p2c`, `round_robin`, `random`, `least_concurrent` or `weighted_response_time` | | as built (`p2c`: power of two choices on peak EWMA) |
//! | `queue` | pool (a command's, by its group's name) | count | 0 .. 2^20 | 0 (`queueSizeRejectionThreshold`) |
//! | `fallback_enabled` | fallback (a command's too) | switch | | true (`fallback.enabled`); off: errors pass through as they are, uncounted |
//! | `fallback_max_concurrent` | fallback (a command's too) | count or `off` | 1 .. | 10 (`fallback.isolation.semaphore.maxConcurrentRequests`); `off`: uncapped |
//!
//! A command named `N` is a breaker, a bulkhead (or pool) and a timeout all
//! named `N`: `N`'s properties reach each part that has them. The switches
//! say which forced state the breaker is in, first set wins in the order
//! `force_open`, `force_closed`, `disabled`, `metrics_only`; when none is
//! set any more the breaker goes back to closed with empty windows (as
//! [`reset`](crate::circuit_breaker::CircuitBreakerHandle::reset) does).
//! While one is set, the breaker stays in its state: a `reset` empties
//! the windows and puts it back there (Hystrix reads
//! `circuitBreaker.forceOpen` on every call).
//!
//! # What cannot change live
//!
//! - a breaker's **window** (its kind, length and buckets): the window
//!   *is* the state kept, and another shape could not keep it. Build a new
//!   breaker for that;
//! - a **pool**'s size: its threads are a runtime's, started at build;
//! - a **balancer**'s rules with parameters ([`ZoneAffinity`](crate::balance::rule::ZoneAffinity),
//!   [`AvailabilityFilter`](crate::balance::rule::AvailabilityFilter)) and
//!   rules of your own have no name the `rule` property could say: they
//!   change live through
//!   [`BalanceHandle::set_rule`](crate::balance::BalanceHandle::set_rule)
//!   only. A rule changed live (either way) starts with its own state
//!   fresh (a round robin at the first endpoint), while the endpoints keep
//!   theirs (load estimates, calls in flight, ejections); clearing the
//!   property puts back the built rule object with its state. An endpoint
//!   ejected keeps the end its ejection was given. Its latency estimate's
//!   `initial_latency` and `latency_decay`, its policy, its retry budget
//!   and its hedging are as built;
//! - the breakers of a **keyed** breaker layer (their handles' setters
//!   return a `ConfigError` saying so), **rate limits**, **adaptive
//!   concurrency limits** (`limit`), hedges, retry layers, caches,
//!   coalescers, collapsers and chaos: as built (chaos has its own
//!   switches on its handle);
//! - a bulkhead's `max_waiting` (its default follows `max_concurrent` as
//!   built, not as changed);
//! - names.
//!
//! # Cost
//!
//! Options in force are kept in atomics, read with plain loads by the
//! calls that need them: a call takes no lock and allocates nothing more
//! than before. A balancer's rule in force is one atomic byte, read by every
//! call: the built and the named rules cost what they did before; a rule
//! given through a handle's `set_rule` costs an
//! [`ArcSwap`](https://docs.rs/arc-swap) load on top (a few atomic
//! operations, no lock). Its backoff is in an `ArcSwap` read by retries
//! only. Changing an option takes a lock on that component (never
//! taken by a call), and through the registry or a source, the registry's
//! lock too.
//!
//! What a change tells others (a breaker's `on_state_change` listeners,
//! its `state_change` event and transition counter, `property_changed`
//! and `property_rejected` events; not its state gauge, set where the
//! state changes) is told once those locks are let go, before
//! the call that made the change returns: a listener or a `tracing`
//! subscriber may read the registry and change options itself (through
//! [`Registry::apply`] or a handle), as a switch such as `force_open`
//! changes a breaker's state under both locks. One thread's changes are
//! told in the order they were made; what a listener changes is told after
//! the rest of what woke it (and the change returns before it is told).
//! Changes made on different threads at once may be told in either
//! order, as state changes made by calls always
//! could be: a listener that needs the state now reads the handle's
//! `state()`.

#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "config-file")]
mod file;
mod layers;

#[cfg(feature = "etcd")]
pub use etcd::{EtcdSource, EtcdWatch};
#[cfg(feature = "config-file")]
pub use file::{FileSource, FileWatch, DEBOUNCE};

use crate::error::{ConfigError, Validator};
use crate::registry::Registry;
pub(crate) use layers::{Layer, Layers};

/// Logs a live property's change: the `property_changed` event (`info`)
/// that every layer changing live logs, under its own target and layer
/// name. A macro because tracing takes a call site's target as a constant.
/// `$($field)*` are the property, `from` and `to` fields, as the caller
/// records them.
// A build with none of the live layers (the chaos layer alone, say) has
// the config module but no user of this.
#[allow(unused_macros)]
macro_rules! property_changed {
    ($target:expr, $layer:expr, $name:expr, $source:expr, $property:expr, $from:expr, $to:expr) => {{
        // Logged once the locks the change holds are let go: a subscriber
        // may reach the registry (`internal::notify`).
        use crate::config::EventValue as _;
        let (name, source, property) = ($name.own(), $source, $property.own());
        let (from, to) = ($from.own(), $to.own());
        crate::internal::notify::later(move || {
            tracing::info!(
                target: $target,
                layer = $layer,
                name = name.as_str(),
                event = "property_changed",
                property = property.as_str(),
                from = &from,
                to = &to,
                source = source.as_str(),
                "live property changed"
            )
        });
    }};
}
pub(crate) use property_changed;

/// A field of a `property_changed` event, owned so that the event can be
/// logged later: text as a `String`, a number as it is recorded.
pub(crate) trait EventValue {
    type Owned: tracing::Value + 'static;
    fn own(self) -> Self::Owned;
}

impl EventValue for &str {
    type Owned = String;
    fn own(self) -> String {
        self.to_owned()
    }
}

impl EventValue for String {
    type Owned = String;
    fn own(self) -> String {
        self
    }
}

impl EventValue for usize {
    type Owned = u64;
    fn own(self) -> u64 {
        self as u64
    }
}
use std::fmt;
use std::time::Duration;

/// Where a property value came from. Precedence: built value < File < Etcd < Handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A file, e.g. read by [`FileSource`] (feature `config-file`).
    File,
    /// etcd, e.g. through [`EtcdSource`] (feature `etcd`).
    Etcd,
}

impl Source {
    pub(crate) fn layer(self) -> Layer {
        match self {
            Source::File => Layer::File,
            Source::Etcd => Layer::Etcd,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.layer().as_str())
    }
}

/// One property of the components named `component`, as a source says it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Property {
    /// The component's name (a command's, a breaker's, ...).
    pub component: String,
    /// The property, e.g. `failure_rate` (see the module's table).
    pub name: String,
    /// Its value as text, e.g. `"0.3"` or `"800ms"`.
    pub value: String,
}

/// Which kind of component a property belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    CircuitBreaker,
    Timeout,
    Bulkhead,
    Pool,
    Fallback,
    Balancer,
}

impl Kind {
    /// What the component is called in errors, as its own checks call it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::CircuitBreaker => "circuit breaker",
            Kind::Timeout => "timeout",
            Kind::Bulkhead => "bulkhead",
            Kind::Pool => "pool",
            Kind::Fallback => "fallback",
            Kind::Balancer => "balancer",
        }
    }

    /// A `ConfigError`'s component: `circuit breaker "ratings"`.
    pub(crate) fn component(self, name: &str) -> String {
        format!("{} {name:?}", self.label())
    }
}

/// The properties, with the kind of component they belong to and the
/// check of their type (ranges are the components' own checks).
/// A value's type check: why the text is no value of the type.
type Check = fn(&str) -> Result<(), String>;

const PROPERTIES: &[(&str, Kind, Check)] = &[
    ("failure_rate", Kind::CircuitBreaker, |v| {
        off_or(v, parse_f64).map(drop)
    }),
    ("min_calls", Kind::CircuitBreaker, |v| {
        parse_u32(v).map(drop)
    }),
    ("slow_call_duration", Kind::CircuitBreaker, |v| {
        off_or(v, parse_duration).map(drop)
    }),
    ("slow_call_rate", Kind::CircuitBreaker, |v| {
        parse_f64(v).map(drop)
    }),
    ("consecutive_failures", Kind::CircuitBreaker, |v| {
        off_or(v, parse_u32).map(drop)
    }),
    ("open_for", Kind::CircuitBreaker, |v| {
        parse_duration(v).map(drop)
    }),
    ("open_for_max", Kind::CircuitBreaker, |v| {
        off_or(v, parse_duration).map(drop)
    }),
    ("open_for_jitter", Kind::CircuitBreaker, |v| {
        parse_f64(v).map(drop)
    }),
    ("probes", Kind::CircuitBreaker, |v| parse_u32(v).map(drop)),
    ("probe_timeout", Kind::CircuitBreaker, |v| {
        parse_duration(v).map(drop)
    }),
    ("force_open", Kind::CircuitBreaker, |v| {
        parse_bool(v).map(drop)
    }),
    ("force_closed", Kind::CircuitBreaker, |v| {
        parse_bool(v).map(drop)
    }),
    ("disabled", Kind::CircuitBreaker, |v| {
        parse_bool(v).map(drop)
    }),
    ("metrics_only", Kind::CircuitBreaker, |v| {
        parse_bool(v).map(drop)
    }),
    ("timeout", Kind::Timeout, |v| parse_duration(v).map(drop)),
    ("max_concurrent", Kind::Bulkhead, |v| {
        parse_usize(v).map(drop)
    }),
    ("max_wait", Kind::Bulkhead, |v| {
        off_or(v, parse_duration).map(drop)
    }),
    ("retries_same", Kind::Balancer, |v| parse_u32(v).map(drop)),
    ("retries_next", Kind::Balancer, |v| parse_u32(v).map(drop)),
    ("eject_after", Kind::Balancer, |v| parse_u32(v).map(drop)),
    ("eject_for", Kind::Balancer, |v| parse_duration(v).map(drop)),
    ("eject_for_max", Kind::Balancer, |v| {
        parse_duration(v).map(drop)
    }),
    ("max_ejected", Kind::Balancer, |v| parse_f64(v).map(drop)),
    ("panic_threshold", Kind::Balancer, |v| {
        parse_f64(v).map(drop)
    }),
    ("failure_accrual", Kind::Balancer, |v| {
        parse_bool(v).map(drop)
    }),
    ("backoff", Kind::Balancer, check_backoff),
    ("rule", Kind::Balancer, check_rule),
    ("queue", Kind::Pool, |v| parse_usize(v).map(drop)),
    ("fallback_enabled", Kind::Fallback, |v| {
        parse_bool(v).map(drop)
    }),
    ("fallback_max_concurrent", Kind::Fallback, |v| {
        off_or(v, parse_usize).map(drop)
    }),
];

#[cfg(feature = "balance")]
fn check_backoff(text: &str) -> Result<(), String> {
    crate::retry::Backoff::parse(text).map(drop)
}

#[cfg(feature = "balance")]
fn check_rule(text: &str) -> Result<(), String> {
    crate::balance::rule::named(text).map(drop)
}

// Without the balancer no component has these; a value is only text.
#[cfg(not(feature = "balance"))]
fn check_backoff(_: &str) -> Result<(), String> {
    Ok(())
}

#[cfg(not(feature = "balance"))]
fn check_rule(_: &str) -> Result<(), String> {
    Ok(())
}

/// `value` checked for `property`'s type, or an error naming `component`
/// (as given), the property and why.
#[cfg(feature = "balance")]
pub(crate) fn check_value(component: &str, property: &str, value: &str) -> Result<(), ConfigError> {
    match self::property(property) {
        Some((name, _, check)) => check(value).or_else(|why| {
            let mut v = Validator::new(component.to_owned());
            v.check(false, name, || why);
            v.finish()
        }),
        None => Ok(()),
    }
}

/// The property named `name`: its static name, its kind and its type check.
fn property(name: &str) -> Option<(&'static str, Kind, Check)> {
    PROPERTIES.iter().copied().find(|(n, _, _)| *n == name)
}

/// `name` as a property of `kind`, or an error naming it (and the
/// component, `component`).
pub(crate) fn property_of(
    kind: Kind,
    component: &str,
    name: &str,
) -> Result<&'static str, ConfigError> {
    match property(name) {
        Some((name, k, _)) if k == kind => Ok(name),
        _ => {
            let mut v = Validator::new(kind.component(component));
            v.check(false, "property", || {
                format!("{name:?} is no live property of a {}", kind.label())
            });
            Err(v.finish().expect_err("one violation"))
        }
    }
}

/// A component whose options can change while it runs.
pub(crate) trait Configurable: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    /// Sets (or clears) what `layer` says of `property` (one of its
    /// kind's); with `dry`, only checks.
    fn set(
        &self,
        layer: Layer,
        property: &'static str,
        value: Option<&str>,
        dry: bool,
    ) -> Result<(), ConfigError>;
}

impl Registry {
    /// Sets (Some) or clears (None) one property of the component(s) named `component`,
    /// as said by `source`. Bad property name/value: ConfigError naming component, property and value; nothing changes.
    ///
    /// The registry remembers it: a component named `component` built
    /// later gets it too. A property no component of that name has yet is
    /// checked for its type only (`"abc"` is no duration), and for its
    /// range when a component comes. See the [module](crate::config) for
    /// the properties and their precedence.
    ///
    /// ```
    /// use rampart::config::Source;
    /// use rampart::registry::Registry;
    /// use rampart::Command;
    /// use std::time::Duration;
    ///
    /// let registry = Registry::new();
    /// // Said before the command exists: it gets it when built.
    /// registry.apply(Source::File, "RatingsGet", "timeout", Some("800ms"))?;
    /// let command = Command::builder("RatingsGet").registry(&registry).build()?;
    /// assert_eq!(command.timeout(), Duration::from_millis(800));
    ///
    /// registry.apply(Source::File, "RatingsGet", "timeout", None)?; // cleared
    /// assert_eq!(command.timeout(), Duration::from_secs(1));        // built value
    ///
    /// let err = registry.apply(Source::File, "RatingsGet", "timeout", Some("soon")).unwrap_err();
    /// assert!(err.names("timeout"));
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `property` is no known property, `value` is
    /// no value of its type, or a component named `component` refuses it
    /// (out of range, or at odds with its other options). Then nothing
    /// changes, in any component, and the registry does not remember it.
    pub fn apply(
        &self,
        source: Source,
        component: &str,
        property: &str,
        value: Option<&str>,
    ) -> Result<(), ConfigError> {
        let Some((property, kind, check)) = self::property(property) else {
            let mut v = Validator::new(format!("{component:?}"));
            v.check(false, "property", || {
                let known: Vec<&str> = PROPERTIES.iter().map(|(n, _, _)| *n).collect();
                format!(
                    "{property:?} (value {value:?}) is no known property; known: {}",
                    known.join(", ")
                )
            });
            return v.finish();
        };
        if let Some(value) = value {
            if let Err(why) = check(value) {
                let mut v = Validator::new(kind.component(component));
                v.check(false, property, || why);
                return v.finish();
            }
        }
        let layer = source.layer();
        self.with_live(|live, remembered| {
            let targets: Vec<_> = live
                .iter()
                .filter(|c| c.name() == component && c.kind() == kind)
                .collect();
            for target in &targets {
                target.set(layer, property, value, true)?;
            }
            for target in &targets {
                // Checked just above; only a handle's change in between
                // could make it fail now, and then that component keeps
                // its options, as it says.
                if let Err(e) = target.set(layer, property, value, false) {
                    rejected(source.layer(), component, &e, REFUSED);
                }
            }
            let key = (component.to_owned(), property);
            let values = remembered.entry(key.clone()).or_default();
            values[layer as usize] = value.map(str::to_owned);
            if values.iter().all(Option::is_none) {
                remembered.remove(&key);
            }
            Ok(())
        })
    }

    /// Everything `source` says now (a full read after start or reconnect): properties it said
    /// before but no longer lists are cleared. Returns the errors of the bad ones; the good ones apply.
    ///
    /// A bad property keeps the value `source` said before (its last good
    /// one). Properties are applied in rounds until no more land, so an
    /// order that passes through a state the builder would refuse (raising
    /// `open_for` above the `open_for_max` that the same read raises too)
    /// still lands.
    pub fn replace(&self, source: Source, properties: &[Property]) -> Vec<ConfigError> {
        let layer = source.layer();
        let listed: std::collections::BTreeSet<(&str, &str)> = properties
            .iter()
            .map(|p| (p.component.as_str(), p.name.as_str()))
            .collect();
        let stale: Vec<(String, &'static str)> = self.with_live(|_, remembered| {
            remembered
                .iter()
                .filter(|(key, values)| {
                    values[layer as usize].is_some() && !listed.contains(&(key.0.as_str(), key.1))
                })
                .map(|(key, _)| key.clone())
                .collect()
        });
        let mut pending: Vec<(&str, &str, Option<&str>)> = stale
            .iter()
            .map(|(c, p)| (c.as_str(), *p, None))
            .chain(properties.iter().map(|p| {
                (
                    p.component.as_str(),
                    p.name.as_str(),
                    Some(p.value.as_str()),
                )
            }))
            .collect();
        loop {
            let mut errors = Vec::new();
            let before = pending.len();
            pending.retain(|(component, property, value)| {
                match self.apply(source, component, property, *value) {
                    Ok(()) => false,
                    Err(e) => {
                        errors.push((*component, e));
                        true
                    }
                }
            });
            if pending.is_empty() || pending.len() == before {
                return errors
                    .into_iter()
                    .map(|(component, e)| {
                        rejected(source.layer(), component, &e, REFUSED);
                        e
                    })
                    .collect();
            }
        }
    }

    /// Lists a component whose options can change, and gives it what the
    /// sources said of its name before it was built.
    pub(crate) fn register_live(&self, component: std::sync::Arc<dyn Configurable>) {
        self.with_live(|live, remembered| {
            for ((name, property), values) in remembered.iter() {
                if name != component.name() || property_kind(property) != Some(component.kind()) {
                    continue;
                }
                for (layer, value) in [Layer::File, Layer::Etcd].into_iter().zip(values) {
                    if let Some(value) = value {
                        if let Err(e) = component.set(layer, property, Some(value), false) {
                            rejected(layer, component.name(), &e, REFUSED_ON_BUILD);
                        }
                    }
                }
            }
            // Hystrix keeps one breaker per command key; two here are two
            // states under one name, which users from Hystrix do not expect.
            if component.kind() == Kind::CircuitBreaker
                && live
                    .iter()
                    .any(|c| c.kind() == Kind::CircuitBreaker && c.name() == component.name())
            {
                duplicate(component.name());
            }
            live.push(component);
        });
    }
}

/// A second circuit breaker under a name already listed.
#[cold]
fn duplicate(name: &str) {
    let name = name.to_owned();
    crate::internal::notify::later(move || {
        tracing::warn!(
            target: crate::metrics::TARGET_CONFIG,
            layer = "config",
            name = name.as_str(),
            event = "duplicate_name",
            "a second circuit breaker with this name in the registry: each keeps its own \
             state, live properties reach both, and the stream shows both under one name; \
             to share one breaker (as Hystrix shares one per command key), build its layer \
             once and clone it"
        );
    });
}

fn property_kind(name: &str) -> Option<Kind> {
    property(name).map(|(_, kind, _)| kind)
}

/// A running component refused a source's property.
const REFUSED: &str = "live property rejected; the component keeps its options";
/// A component built after a source said a property refused it.
const REFUSED_ON_BUILD: &str =
    "a new component refused a live property it was built after; it keeps its built value";

/// Logs a live property refused, saying `message`. This can happen under
/// the registry's lock (`apply`, a component's build), so it is logged
/// once the lock is let go: a subscriber may reach the registry
/// (`internal::notify`).
#[cold]
pub(crate) fn rejected(layer: Layer, name: &str, error: &ConfigError, message: &'static str) {
    let (name, error) = (name.to_owned(), error.clone());
    crate::internal::notify::later(move || {
        tracing::warn!(
            target: crate::metrics::TARGET_CONFIG,
            layer = "config",
            name = name.as_str(),
            event = "property_rejected",
            source = layer.as_str(),
            error = %error,
            "{message}"
        );
    });
}

// ===== value types =====

/// `None` for `"off"`, else `parse`'s value.
pub(crate) fn off_or<T>(
    text: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if text.trim() == "off" {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("cannot read {text:?} as a duration (\"800ms\", \"5s\"): {e}"))
}

pub(crate) fn parse_f64(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("cannot read {text:?} as a number (e.g. 0.3)"))
}

pub(crate) fn parse_u32(text: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("cannot read {text:?} as a whole number up to {}", u32::MAX))
}

pub(crate) fn parse_usize(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("cannot read {text:?} as a whole number"))
}

pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("cannot read {text:?} as true or false")),
    }
}

/// A duration as [`parse_duration`] reads it back.
pub(crate) fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// An optional value, `"off"` for none.
pub(crate) fn show_off<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "off".to_owned(), show)
}
