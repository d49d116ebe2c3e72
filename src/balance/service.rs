//! The balancer service.

use super::config::Builder;
use super::config::Ejecting;
use super::ejection::Check;
use super::endpoint::Ended;
use super::future::ResponseFuture;
use super::handle::{BalanceHandle, EndpointStats, Report};
use super::rule::WeightedResponseTime;
use super::rule::{self, Chooser, LeastConcurrent, PowerOfTwoChoices, Random, RoundRobin, Rule};
use super::set::EndpointSet;
use crate::config::{
    parse_bool, parse_duration, parse_f64, parse_u32, show_duration, Configurable, Kind, Layer,
    Layers,
};
use crate::error::{ConfigError, Validator};
use crate::internal::shard::Lanes;
use crate::metrics::event_counter;
use crate::retry::{Backoff, RetryBudget};
use crate::retry::{DefaultPolicy, Policy};
use crate::BoxError;
use arc_swap::ArcSwap;
use metrics::Counter;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// The `layer` label and field of the balancer's metrics and events.
pub(super) const LAYER: &str = "balance";

/// A client-side load balancer over the instances of one dependency, with
/// retries across instances and outlier ejection (Ribbon's recipe).
///
/// Each call goes to an endpoint chosen by the [rule](super::rule) (power
/// of two choices on peak-EWMA latency by default). If it fails in a way
/// the [`Policy`] calls retryable, and the request may be retried, it is
/// retried `retries_same` times on that endpoint and then on up to
/// `retries_next` other endpoints, never one that already failed this call
/// while another is available, each retry drawn from the retry budget and
/// preceded by a jittered backoff. Endpoints that fail `eject_after` times
/// in a row are left out for a while (ejected, or past the ejection cap
/// marked dead), and every failure raises the failing endpoint's load
/// estimate.
///
/// `poll_ready` applies discovery changes and is always ready; a call made
/// when the set is empty fails with
/// [`NoHealthyEndpoint`](super::NoHealthyEndpoint). Clones share everything.
pub struct Balance<K, S, P = DefaultPolicy> {
    shared: Arc<Lanes<Shared<K, S, P>>>,
}

/// Everything the balancer's clones and its calls in flight share.
pub(crate) struct Shared<K, S, P> {
    pub(crate) set: EndpointSet<K, S>,
    /// Which rule is in force: [`BUILT`], [`HANDLE`], or 1 + the index
    /// of a named rule in [`rule::NAMED`]. One plain load per call: the
    /// built and the named rules cost what they did before they were
    /// live; only a handle's own rule costs an `ArcSwap` load on top.
    which: AtomicU8,
    /// The rule built (kept with its state while another is in force).
    built_rule: Arc<dyn Rule>,
    /// Whether the rule built is [`PowerOfTwoChoices`].
    built_two_choices: bool,
    /// The named `round_robin`'s state (the other named rules have none),
    /// restarted when it is put in force.
    round_robin: RoundRobin,
    /// The handle's own rule while [`HANDLE`] is in force.
    handle_rule: ArcSwap<Arc<dyn Rule>>,
    /// The rule a handle's [`set_rule`](BalanceHandle::set_rule) gave last,
    /// put in force when its change lands.
    handle_given: Mutex<Option<Arc<dyn Rule>>>,
    pub(crate) policy: P,
    /// Retries on the same endpoint, then on others: live.
    retries_same: AtomicU32,
    retries_next: AtomicU32,
    layers: Layers<Retries>,
    /// The backoff in force: live, read by retries only.
    pub(crate) backoff: ArcSwap<Backoff>,
    pub(crate) budget: RetryBudget,
    pub(crate) retried: Counter,
    pub(crate) budget_exhausted: Counter,
    pub(crate) no_endpoint: Counter,
    /// Hedging, if the balancer hedges: the delay tracker, the extra-load
    /// cap and the counts, as a hedge layer's.
    pub(crate) hedge: Option<Arc<crate::hedge::HedgeShared<()>>>,
}

impl<K, S, P> Shared<K, S, P> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: Arc<str>,
        set: EndpointSet<K, S>,
        rule: Arc<dyn Rule>,
        two_choices: bool,
        policy: P,
        retries_same: u32,
        retries_next: u32,
        backoff: Backoff,
        budget: RetryBudget,
        hedge: Option<Arc<crate::hedge::HedgeShared<()>>>,
        ejecting: Ejecting,
    ) -> Self {
        Shared {
            hedge,
            retried: event_counter(LAYER, &name, "retry"),
            budget_exhausted: event_counter(LAYER, &name, "retry_budget_exhausted"),
            no_endpoint: event_counter(LAYER, &name, "no_endpoint"),
            set,
            which: AtomicU8::new(BUILT),
            handle_rule: ArcSwap::from_pointee(rule.clone()),
            built_rule: rule,
            built_two_choices: two_choices,
            round_robin: RoundRobin::new(),
            handle_given: Mutex::new(None),
            policy,
            retries_same: AtomicU32::new(retries_same),
            retries_next: AtomicU32::new(retries_next),
            layers: Layers::new(Retries {
                same: retries_same,
                next: retries_next,
                ejecting,
                backoff,
                rule: RuleSetting::Built,
            }),
            backoff: ArcSwap::from_pointee(backoff),
            budget,
        }
    }

    /// Calls `f` with the rule in force.
    #[inline]
    pub(crate) fn with_rule<R>(&self, f: impl FnOnce(&dyn Rule) -> R) -> R {
        let handle_rule;
        // One call of `f`, through the trait object, whatever the rule:
        // `f` (the pick) is not copied once per rule into the call path.
        let rule: &dyn Rule = match self.which.load(Ordering::Acquire) {
            BUILT => &*self.built_rule,
            1 => &PowerOfTwoChoices,
            2 => &self.round_robin,
            3 => &Random,
            4 => &LeastConcurrent,
            5 => &WeightedResponseTime,
            _ => {
                handle_rule = self.handle_rule.load();
                &***handle_rule
            }
        };
        f(rule)
    }

    /// Calls `f` with the rule in force, as a pick runs it: the default
    /// rule, [`PowerOfTwoChoices`], compiled for the set's own view (a
    /// pick through the trait objects cost P2C a fifth of its time, in
    /// calls through them for each look at an endpoint); any other rule
    /// through its trait object.
    #[inline]
    pub(crate) fn with_chooser<R>(&self, f: impl FnOnce(Chooser<'_>) -> R) -> R {
        match self.which.load(Ordering::Acquire) {
            BUILT if self.built_two_choices => f(Chooser::TwoChoices),
            1 => f(Chooser::TwoChoices),
            _ => self.with_rule(|rule| f(Chooser::Rule(rule))),
        }
    }

    /// The rule in force, in its `Debug` form.
    fn rule_text(&self) -> String {
        self.with_rule(|rule| format!("{rule:?}"))
    }

    #[inline]
    pub(crate) fn retries_same(&self) -> u32 {
        self.retries_same.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn retries_next(&self) -> u32 {
        self.retries_next.load(Ordering::Relaxed)
    }
}

/// A balancer's live options: its retries, its ejection, its backoff and
/// its rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Retries {
    same: u32,
    next: u32,
    ejecting: Ejecting,
    backoff: Backoff,
    rule: RuleSetting,
}

/// Which rule the options say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleSetting {
    /// The builder's rule (the same object, its state kept).
    Built,
    /// A new rule of one of [`rule::NAMED`].
    Named(&'static str),
    /// The rule a handle gave last.
    Handle,
}

/// The `rule` property's value while a handle's own rule is set: no
/// source may say it (it is no rule name).
pub(crate) const HANDLE_RULE: &str = "(a handle's rule)";

/// `which` rule: the built one.
const BUILT: u8 = 0;
/// `which` rule: the handle's own.
const HANDLE: u8 = u8::MAX;

/// One property of a balancer as text, as the setter below reads it.
fn show(o: &Retries, property: &str) -> String {
    let e = &o.ejecting;
    match property {
        "retries_same" => o.same.to_string(),
        "retries_next" => o.next.to_string(),
        "eject_after" => e.after.to_string(),
        "eject_for" => show_duration(e.first),
        "eject_for_max" => show_duration(e.max),
        "max_ejected" => e.max_ejected.to_string(),
        "panic_threshold" => e.panic_threshold.to_string(),
        "backoff" => o.backoff.show(),
        "rule" => match o.rule {
            RuleSetting::Built => "as built".to_owned(),
            RuleSetting::Named(name) => name.to_owned(),
            RuleSetting::Handle => HANDLE_RULE.to_owned(),
        },
        _ => e.accrual.to_string(),
    }
}

/// Reads one property's text into the options.
fn set(o: &mut Retries, property: &'static str, text: &str) -> Result<(), String> {
    let e = &mut o.ejecting;
    match property {
        "retries_same" => o.same = parse_u32(text)?,
        "retries_next" => o.next = parse_u32(text)?,
        "eject_after" => e.after = parse_u32(text)?,
        "eject_for" => e.first = parse_duration(text)?,
        "eject_for_max" => e.max = parse_duration(text)?,
        "max_ejected" => e.max_ejected = parse_f64(text)?,
        "panic_threshold" => e.panic_threshold = parse_f64(text)?,
        "backoff" => o.backoff = Backoff::parse(text)?,
        "rule" if text == HANDLE_RULE => o.rule = RuleSetting::Handle,
        "rule" => o.rule = RuleSetting::Named(rule::NAMED[rule::named(text)?]),
        _ => e.accrual = parse_bool(text)?,
    }
    Ok(())
}

impl<K, S, P> Shared<K, S, P> {
    /// Sets (or clears) what `layer` says of each property, as one change.
    pub(crate) fn change(
        &self,
        layer: Layer,
        changes: &[(&'static str, Option<&str>)],
        dry: bool,
    ) -> Result<(), ConfigError> {
        let name = &self.set.name;
        let component = format!("balancer {name:?}");
        self.layers.change(
            &component,
            layer,
            changes,
            dry,
            set,
            |o| {
                let mut v = Validator::new(component.clone());
                super::config::check_retries(&mut v, o.same, o.next);
                super::config::check_ejection(&mut v, &o.ejecting);
                v.finish()
            },
            |old, new| {
                self.retries_same.store(new.same, Ordering::Relaxed);
                self.retries_next.store(new.next, Ordering::Relaxed);
                self.set.ejection.store(new.ejecting.ejection());
                if new.backoff != old.backoff {
                    self.backoff.store(Arc::new(new.backoff));
                }
                // A handle's rule is put in again by each `set_rule`, even
                // when the setting was a handle's rule before.
                let told = changes.iter().any(|(p, _)| *p == "rule");
                if new.rule != old.rule || (told && new.rule == RuleSetting::Handle) {
                    let from = self.rule_text();
                    let which = match new.rule {
                        RuleSetting::Built => Some(BUILT),
                        RuleSetting::Named(rule) => {
                            let index = rule::named(rule).expect("checked when set");
                            if rule == "round_robin" {
                                // A new rule starts with its state fresh.
                                self.round_robin.restart();
                            }
                            Some(1 + index as u8)
                        }
                        RuleSetting::Handle => {
                            let given = self
                                .handle_given
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .clone();
                            given.map(|rule| {
                                // The rule replaced is dropped once this
                                // change's locks are let go: a user's rule
                                // may do anything when dropped.
                                let replaced = self.handle_rule.swap(Arc::new(rule));
                                crate::internal::notify::later(move || drop(replaced));
                                HANDLE
                            })
                        }
                    };
                    if let Some(which) = which {
                        self.which.store(which, Ordering::Release);
                        changed(name, layer, "rule", &from, &self.rule_text());
                    }
                }
                for (property, _) in changes {
                    if *property == "rule" {
                        continue;
                    }
                    let (from, to) = (show(old, property), show(new, property));
                    if from != to {
                        changed(name, layer, property, &from, &to);
                    }
                }
            },
        )
    }
}

#[cold]
fn changed(name: &str, layer: Layer, property: &str, from: &str, to: &str) {
    crate::config::property_changed!(
        crate::metrics::TARGET_BALANCE,
        LAYER,
        name,
        layer,
        property,
        from,
        to
    );
}

impl<K, S, P> Configurable for Shared<K, S, P>
where
    K: Send + Sync,
    S: Send + Sync,
    P: Send + Sync,
{
    fn name(&self) -> &str {
        &self.set.name
    }

    fn kind(&self) -> Kind {
        Kind::Balancer
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

impl Balance<(), (), DefaultPolicy> {
    /// Starts a balancer named `name` with Ribbon's and Envoy's defaults.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }
}

impl<K, S, P> Balance<K, S, P> {
    pub(crate) fn from_shared(shared: Shared<K, S, P>) -> Self {
        Balance {
            shared: Arc::new(Lanes::new(Arc::new(shared))),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<K, S, P>> {
        self.shared.shared()
    }
}

impl<K, S, P> Balance<K, S, P>
where
    K: fmt::Debug + Send + Sync + 'static,
    S: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    /// A handle to the balancer's endpoints and their statistics.
    pub fn handle(&self) -> BalanceHandle {
        BalanceHandle::new(self.shared.shared().clone())
    }
}

impl<K, S, P> Report for Shared<K, S, P>
where
    K: fmt::Debug + Send + Sync,
    S: Send + Sync,
    P: Send + Sync,
{
    fn name(&self) -> &str {
        &self.set.name
    }

    fn change(
        &self,
        layer: Layer,
        changes: &[(&'static str, Option<&str>)],
    ) -> Result<(), ConfigError> {
        Shared::change(self, layer, changes, false)
    }

    fn retries(&self) -> (u32, u32) {
        (self.retries_same(), self.retries_next())
    }

    fn set_rule(&self, rule: Arc<dyn Rule>) -> Result<(), ConfigError> {
        // The rule replaced is dropped after the lock: a user's rule may do
        // anything when dropped.
        let replaced = self
            .handle_given
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(rule);
        drop(replaced);
        Shared::change(self, Layer::Handle, &[("rule", Some(HANDLE_RULE))], false)
    }

    fn rule(&self) -> String {
        self.rule_text()
    }

    fn backoff(&self) -> Backoff {
        **self.backoff.load()
    }

    fn endpoints(&self) -> Vec<EndpointStats> {
        let now = self.set.clock.now();
        self.set
            .snapshot()
            .iter()
            .map(|e| {
                // First: a spell out that has run out ends here, and resets
                // the latency estimate read below.
                let status = self.set.status(e, now);
                EndpointStats {
                    key: e.label.clone(),
                    zone: e.zone.as_deref().map(str::to_owned),
                    in_flight: e.in_flight.load(Ordering::Relaxed),
                    selected: e.selected.load(Ordering::Relaxed),
                    latency: Duration::from_micros(e.latency.estimate(now) as u64),
                    ejected: status == Check::Ejected,
                    ejections: e.health.ejections.load(Ordering::Relaxed),
                    marked_dead: status == Check::MarkedDead,
                    times_marked_dead: e.health.marked_dead.load(Ordering::Relaxed),
                    out_for: Duration::from_micros(e.health.out_for(now)),
                    consecutive_failures: e.health.consecutive_failures(),
                    successes: e.count(Ended::Success),
                    failures: e.count(Ended::Failure),
                    timeouts: e.count(Ended::Timeout),
                    ignored: e.count(Ended::Ignored),
                    cancelled: e.count(Ended::Cancelled),
                }
            })
            .collect()
    }

    fn retry_budget(&self) -> &RetryBudget {
        &self.budget
    }

    fn hedge(&self) -> Option<crate::hedge::HedgeHandle> {
        self.hedge.as_ref().map(crate::hedge::HedgeHandle::of)
    }
}

impl<K, S, P, Request> Service<Request> for Balance<K, S, P>
where
    K: PartialEq + fmt::Debug,
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Request, S::Response>,
    Request: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<K, S, Request, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.shared.shared().set.refresh(cx);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture::new(self.shared.pick(), request)
    }
}

impl<K, S, P> Clone for Balance<K, S, P> {
    fn clone(&self) -> Self {
        Balance {
            shared: self.shared.clone(),
        }
    }
}

impl<K, S, P> fmt::Debug for Balance<K, S, P>
where
    K: PartialEq + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared.shared();
        f.debug_struct("Balance")
            .field("name", &shared.set.name)
            .field("endpoints", &shared.set.len())
            .field("rule", &shared.rule_text())
            .finish_non_exhaustive()
    }
}
