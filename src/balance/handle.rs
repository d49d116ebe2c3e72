//! Reading a balancer's endpoints.

use super::rule::Rule;
use crate::retry::{Backoff, RetryBudget};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One endpoint's statistics, as of the moment they were read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint's key, in its `Debug` form (a `&str` key `"a"` reads
    /// `"\"a\""`), the same text as the `endpoint` metric label.
    pub key: String,
    /// Its zone, if it has one.
    pub zone: Option<String>,
    /// Attempts in flight to it now.
    pub in_flight: usize,
    /// Attempts sent to it since it joined the set.
    pub selected: u64,
    /// Its peak-EWMA latency estimate.
    pub latency: Duration,
    /// Whether it is ejected now.
    pub ejected: bool,
    /// How many times it was ejected.
    pub ejections: u64,
    /// Whether it is marked dead now (failure accrual: failing, but the
    /// ejection cap had no place for it).
    pub marked_dead: bool,
    /// How many times it was marked dead.
    pub times_marked_dead: u64,
    /// While ejected or marked dead: how long until it is back in (on
    /// probation). Zero otherwise.
    pub out_for: Duration,
    /// Failures in a row so far (back to 0 when it is ejected).
    pub consecutive_failures: u32,
    /// Attempts on it that succeeded, by the balancer's policy.
    pub successes: u64,
    /// Attempts on it that failed, by the policy (timeouts apart; a panic
    /// in the endpoint counts here).
    pub failures: u64,
    /// Attempts on it that timed out: its own timeout's error, or a
    /// timeout above the balancer cutting the attempt off.
    pub timeouts: u64,
    /// Attempts on it whose result the policy ignored.
    pub ignored: u64,
    /// Attempts on it that the caller cancelled (dropped) before it
    /// answered; not held against it.
    pub cancelled: u64,
}

pub(crate) trait Report: Send + Sync {
    fn name(&self) -> &str;
    fn endpoints(&self) -> Vec<EndpointStats>;
    fn retry_budget(&self) -> &RetryBudget;
    fn hedge(&self) -> Option<crate::hedge::HedgeHandle>;
    /// Live retries: sets (or clears) what `layer` says of each.
    fn change(
        &self,
        layer: crate::config::Layer,
        changes: &[(&'static str, Option<&str>)],
    ) -> Result<(), crate::ConfigError>;
    /// Retries on the same endpoint, then on others, now.
    fn retries(&self) -> (u32, u32);
    /// Sets a handle's own rule.
    fn set_rule(&self, rule: Arc<dyn Rule>) -> Result<(), crate::ConfigError>;
    /// The rule in force, in its `Debug` form.
    fn rule(&self) -> String;
    /// The backoff in force.
    fn backoff(&self) -> Backoff;
}

/// A cloneable view of one balancer: its endpoints and retry budget.
#[derive(Clone)]
pub struct BalanceHandle {
    shared: Arc<dyn Report>,
}

impl BalanceHandle {
    pub(crate) fn new(shared: Arc<dyn Report>) -> Self {
        BalanceHandle { shared }
    }

    /// The balancer's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Every endpoint in the set now, with its statistics. Reading them
    /// ends ejections whose time is up, as choosing an endpoint would.
    pub fn endpoints(&self) -> Vec<EndpointStats> {
        self.shared.endpoints()
    }

    /// The retry budget the balancer draws from.
    pub fn retry_budget(&self) -> &RetryBudget {
        self.shared.retry_budget()
    }

    /// The balancer's hedges (sent, won, cancelled), if it
    /// [hedges](super::Builder::hedge).
    pub fn hedge(&self) -> Option<crate::hedge::HedgeHandle> {
        self.shared.hedge()
    }
}

/// Live options: the retries, the ejection, the backoff and the rule (see
/// [`config`](crate::config) for the properties and what cannot change
/// live). Checked as the builder checks them, from the next call on; a call
/// already retrying keeps counting against the values it reads at each
/// retry, and picks its next endpoint with the rule in force then. The
/// endpoints keep their load estimates, calls in flight and ejections
/// through every change.
///
/// ```
/// use rampart::balance::{Balance, Endpoint, Endpoints};
/// use rampart::registry::Registry;
///
/// let registry = Registry::new();
/// let endpoint = Endpoint::new("10.0.0.1:80", tower::service_fn(|_: ()| async {
///     Ok::<_, rampart::BoxError>(())
/// }));
/// let balancer = Balance::builder("catalog")
///     .registry(&registry)
///     .build(Endpoints::fixed([endpoint]))?;
/// let handle = balancer.handle();
/// handle.set_retries(2, 3)?;
/// assert_eq!(handle.retries(), (2, 3));
/// assert!(handle.set_retries(11, 3).is_err()); // as the builder
/// handle.set_property("eject_after", "2")?;
/// handle.set_property("rule", "round_robin")?;
/// assert_eq!(handle.rule(), "RoundRobin { next: 0 }");
/// handle.set_property("backoff", "decorrelated 20ms..2s")?;
/// assert!(handle.set_property("backoff", "exponential 2s..1s").is_err()); // max below base
/// handle.clear_overrides();
/// assert_eq!(handle.retries(), (0, 1));
/// assert_eq!(handle.rule(), "PowerOfTwoChoices");
/// # Ok::<(), rampart::ConfigError>(())
/// ```
impl BalanceHandle {
    /// Retries on the same endpoint (0 to 10) and then on others (0 to
    /// 100), Ribbon's `MaxAutoRetries` and `MaxAutoRetriesNextServer`.
    ///
    /// # Errors
    ///
    /// As [`Builder::retries_same`](super::Builder::retries_same) and
    /// [`retries_next`](super::Builder::retries_next) at build time; the
    /// old values stay.
    pub fn set_retries(&self, same: u32, next: u32) -> Result<(), crate::ConfigError> {
        let (same, next) = (same.to_string(), next.to_string());
        self.shared.change(
            crate::config::Layer::Handle,
            &[("retries_same", Some(&same)), ("retries_next", Some(&next))],
        )
    }

    /// Retries on the same endpoint, then on others, now.
    pub fn retries(&self) -> (u32, u32) {
        self.shared.retries()
    }

    /// The selection rule in force now, in its `Debug` form (e.g.
    /// `"PowerOfTwoChoices"`).
    pub fn rule(&self) -> String {
        self.shared.rule()
    }

    /// The backoff between retries in force now.
    pub fn backoff(&self) -> Backoff {
        self.shared.backoff()
    }

    /// Sets the backoff before each retry, as
    /// [`Builder::backoff`](super::Builder::backoff) does at build time
    /// (the `backoff` property, e.g. `"exponential 10ms..1s"`). A call
    /// reads it at each retry, so a call already waiting keeps its wait.
    ///
    /// # Errors
    ///
    /// None in practice: a [`Backoff`] is checked when it is made. The
    /// `Result` is the other setters'.
    pub fn set_backoff(&self, backoff: Backoff) -> Result<(), crate::ConfigError> {
        let text = backoff.show();
        self.shared
            .change(crate::config::Layer::Handle, &[("backoff", Some(&text))])
    }

    /// Sets the selection rule, any [`Rule`]: one with parameters
    /// ([`ZoneAffinity`](super::rule::ZoneAffinity),
    /// [`AvailabilityFilter`](super::rule::AvailabilityFilter)) or your own,
    /// which the `rule` property cannot name. Like a handle's other
    /// values, it wins over what the sources say until
    /// [`clear_override`](Self::clear_override)`("rule")`.
    ///
    /// The endpoints keep their state (load estimates, calls in flight,
    /// ejections); `rule` brings its own (a round robin starts where it
    /// is). Each call reads the rule in force when it picks an endpoint.
    ///
    /// # Errors
    ///
    /// None today; the `Result` is the other setters'.
    pub fn set_rule(&self, rule: impl Rule) -> Result<(), crate::ConfigError> {
        self.shared.set_rule(Arc::new(rule))
    }

    /// Sets any live balancer property by its name and its text (see the
    /// table in [`config`](crate::config)): the retries, the ejection's
    /// `eject_after`, `eject_for`, `eject_for_max`, `max_ejected`,
    /// `panic_threshold`, `failure_accrual`, the `backoff`
    /// (`"exponential 10ms..1s"`, `"decorrelated 10ms..1s"`, `"none"`) or
    /// the `rule` (`p2c`, `round_robin`, `random`, `least_concurrent`,
    /// `weighted_response_time`; a new rule starts with its own state
    /// fresh, e.g. a round robin at the first endpoint). An endpoint
    /// already ejected keeps the end its ejection was given.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`](crate::ConfigError) naming the property and the
    /// value when it is no balancer property or the builder would refuse
    /// it; nothing changes then.
    pub fn set_property(&self, property: &str, value: &str) -> Result<(), crate::ConfigError> {
        let property =
            crate::config::property_of(crate::config::Kind::Balancer, self.name(), property)?;
        if property == "rule" {
            // The text a handle's own rule is kept as is no rule's name.
            let component = format!("balancer {:?}", self.name());
            crate::config::check_value(&component, property, value)?;
        }
        self.shared
            .change(crate::config::Layer::Handle, &[(property, Some(value))])
    }

    /// Drops every value a handle set: they are what the sources say
    /// again, or as built.
    pub fn clear_overrides(&self) {
        let _ = self.shared.change(
            crate::config::Layer::Handle,
            &[
                ("retries_same", None),
                ("retries_next", None),
                ("eject_after", None),
                ("eject_for", None),
                ("eject_for_max", None),
                ("max_ejected", None),
                ("panic_threshold", None),
                ("failure_accrual", None),
                ("backoff", None),
                ("rule", None),
            ],
        );
    }

    /// Drops the value a handle set of one property (as named in
    /// [`set_property`](Self::set_property); `"rule"` for
    /// [`set_rule`](Self::set_rule)): it is what the sources say again, or
    /// as built. A name that is no balancer property changes nothing.
    pub fn clear_override(&self, property: &str) {
        if let Ok(property) =
            crate::config::property_of(crate::config::Kind::Balancer, self.name(), property)
        {
            let _ = self
                .shared
                .change(crate::config::Layer::Handle, &[(property, None)]);
        }
    }
}

impl fmt::Debug for BalanceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceHandle")
            .field("name", &self.name())
            .finish()
    }
}
