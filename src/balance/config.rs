//! Options for a balancer, and the builder that validates them.

use super::ejection::Ejection;
use super::rule::{PowerOfTwoChoices, Rule};
use super::service::{Balance, Shared};
use super::set::EndpointSet;
use super::source::Endpoints;
use crate::error::{ConfigError, Validator};
use crate::internal::clock::micros;
use crate::retry::DefaultPolicy;
use crate::retry::{Backoff, RetryBudget};
use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default retries on the same endpoint (Ribbon `MaxAutoRetries`).
pub const DEFAULT_RETRIES_SAME: u32 = 0;
/// Default retries on other endpoints (Ribbon `MaxAutoRetriesNextServer`).
pub const DEFAULT_RETRIES_NEXT: u32 = 1;
/// Default failures in a row that eject an endpoint (Envoy).
pub const DEFAULT_EJECT_AFTER: u32 = 5;
/// Default first ejection time, doubled on each ejection in a row (Ribbon).
pub const DEFAULT_EJECT_FOR: Duration = Duration::from_secs(10);
/// Default cap on an ejection (Ribbon).
pub const DEFAULT_EJECT_FOR_MAX: Duration = Duration::from_secs(30);
/// Default share of endpoints that may be ejected at once (Envoy).
pub const DEFAULT_MAX_EJECTED: f64 = 0.1;
/// Default healthy share below which ejections are ignored (Envoy).
pub const DEFAULT_PANIC_THRESHOLD: f64 = 0.5;
/// Default latency assumed of an endpoint before it has answered.
pub const DEFAULT_INITIAL_LATENCY: Duration = Duration::from_millis(30);
/// Default time constant of the peak-EWMA latency estimate (Finagle).
pub const DEFAULT_LATENCY_DECAY: Duration = Duration::from_secs(10);

/// Builds a [`Balance`]; every option is checked by [`build`](Builder::build).
pub struct Builder<P = DefaultPolicy> {
    name: String,
    rule: Arc<dyn Rule>,
    /// Whether `rule` is [`PowerOfTwoChoices`], which the balancer runs
    /// without its trait object.
    two_choices: bool,
    retries_same: u32,
    retries_next: u32,
    backoff: Backoff,
    budget: Option<RetryBudget>,
    eject_after: u32,
    eject_for: Duration,
    eject_for_max: Duration,
    max_ejected: f64,
    panic_threshold: f64,
    failure_accrual: bool,
    initial_latency: Duration,
    latency_decay: Duration,
    policy: P,
    registry: Option<crate::registry::Registry>,
    hedge: Option<(crate::hedge::HedgeDelay, f64)>,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            rule: Arc::new(PowerOfTwoChoices),
            two_choices: true,
            retries_same: DEFAULT_RETRIES_SAME,
            retries_next: DEFAULT_RETRIES_NEXT,
            backoff: Backoff::default(),
            budget: None,
            eject_after: DEFAULT_EJECT_AFTER,
            eject_for: DEFAULT_EJECT_FOR,
            eject_for_max: DEFAULT_EJECT_FOR_MAX,
            max_ejected: DEFAULT_MAX_EJECTED,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            failure_accrual: true,
            initial_latency: DEFAULT_INITIAL_LATENCY,
            latency_decay: DEFAULT_LATENCY_DECAY,
            policy: DefaultPolicy,
            registry: None,
            hedge: None,
        }
    }
}

impl<P> Builder<P> {
    /// How the endpoint for each attempt is chosen. Default
    /// [`PowerOfTwoChoices`]; see [`rule`](super::rule). Live: the `rule`
    /// property or [`BalanceHandle::set_rule`](super::BalanceHandle::set_rule).
    pub fn rule<R: Rule>(mut self, rule: R) -> Self {
        self.two_choices = TypeId::of::<R>() == TypeId::of::<PowerOfTwoChoices>();
        self.rule = Arc::new(rule);
        self
    }

    /// Retries on the same endpoint before moving on (Ribbon's
    /// `MaxAutoRetries`). Default 0; valid up to 10.
    pub fn retries_same(mut self, retries: u32) -> Self {
        self.retries_same = retries;
        self
    }

    /// Other endpoints to try after the first (Ribbon's
    /// `MaxAutoRetriesNextServer`), each tried `1 + retries_same` times.
    /// Default 1; valid up to 100.
    pub fn retries_next(mut self, retries: u32) -> Self {
        self.retries_next = retries;
        self
    }

    /// The wait before each retry. Default: full jitter up to 10 ms,
    /// doubling to 1 s; [`Backoff::none`] retries at once. Live: the
    /// `backoff` property or
    /// [`BalanceHandle::set_backoff`](super::BalanceHandle::set_backoff).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The retry budget to draw retries from; pass clones of one budget to
    /// several balancers to share it. Default: a budget of this balancer's
    /// own (20 % of the last 10 s of requests plus 10 per second).
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Ejects an endpoint after `failures` in a row. Default 5; valid 1 to
    /// 1000.
    pub fn eject_after(mut self, failures: u32) -> Self {
        self.eject_after = failures;
        self
    }

    /// The first ejection lasts `first`, each further one in a row twice
    /// as long, up to `max`. Default 10 s up to 30 s; 1 ms ≤ first ≤ max ≤ 1 h.
    pub fn eject_for(mut self, first: Duration, max: Duration) -> Self {
        self.eject_for = first;
        self.eject_for_max = max;
        self
    }

    /// The largest share of endpoints ejected at once (at least one is
    /// always allowed). Default 0.1; valid in [0, 1]. Failing endpoints
    /// past the cap are marked dead instead, unless
    /// [`failure_accrual`](Self::failure_accrual) is off.
    pub fn max_ejected(mut self, share: f64) -> Self {
        self.max_ejected = share;
        self
    }

    /// Below this healthy share, ejections are ignored (panic mode).
    /// Default 0.5; valid in [0, 1]. Endpoints marked dead by failure
    /// accrual are not ejected and take no part in it.
    pub fn panic_threshold(mut self, share: f64) -> Self {
        self.panic_threshold = share;
        self
    }

    /// Failure accrual (Finagle's), on by default: an endpoint that fails
    /// `eject_after` times in a row when the ejection cap
    /// ([`max_ejected`](Self::max_ejected)) has no place left is *marked
    /// dead* instead, on the same schedule (`eject_for`, doubling; on
    /// probation after). A dead endpoint is passed over while any endpoint
    /// neither ejected nor dead will do, whatever the panic threshold, and
    /// takes no place under the cap; when nothing else will do, it is used.
    ///
    /// Each endpoint is, in effect, its own circuit breaker: with two of
    /// three instances dead, the cap ejects one and accrual keeps calls
    /// off the other. Off, failing endpoints past the cap keep their share
    /// of calls (Envoy's behaviour), steered away from only by their
    /// raised load estimate.
    pub fn failure_accrual(mut self, on: bool) -> Self {
        self.failure_accrual = on;
        self
    }

    /// The latency assumed of an endpoint that has not answered yet, and
    /// the time constant with which old latencies are forgotten. Default
    /// 30 ms and 10 s; both from 1 µs to an hour.
    pub fn latency_estimate(mut self, initial: Duration, decay: Duration) -> Self {
        self.initial_latency = initial;
        self.latency_decay = decay;
        self
    }

    /// What counts as a failure and what may be retried. Default
    /// [`DefaultPolicy`]; [`HttpPolicy`](super::HttpPolicy) for HTTP.
    pub fn policy<P2>(self, policy: P2) -> Builder<P2> {
        Builder {
            name: self.name,
            rule: self.rule,
            two_choices: self.two_choices,
            retries_same: self.retries_same,
            retries_next: self.retries_next,
            backoff: self.backoff,
            budget: self.budget,
            eject_after: self.eject_after,
            eject_for: self.eject_for,
            eject_for_max: self.eject_for_max,
            max_ejected: self.max_ejected,
            panic_threshold: self.panic_threshold,
            failure_accrual: self.failure_accrual,
            initial_latency: self.initial_latency,
            latency_decay: self.latency_decay,
            policy,
            registry: self.registry,
            hedge: self.hedge,
        }
    }

    /// Hedges slow calls on another instance: once a call has run for
    /// `delay`, one copy goes to an endpoint other than the one the call
    /// is on (never beyond `max_extra_load` of recent calls, 0 to 1, and
    /// each taking one retry from the [retry budget](Self::retry_budget));
    /// the first success wins and the other attempt is dropped, counted as
    /// cancelled for its endpoint, not against it. Only for requests the
    /// [policy](Self::policy) may send twice
    /// ([`Policy::may_send_twice`](crate::retry::Policy::may_send_twice)).
    /// The rules are the [hedge layer](crate::hedge)'s, with one hedge per
    /// call. Default: no hedging.
    pub fn hedge(mut self, delay: crate::hedge::HedgeDelay, max_extra_load: f64) -> Self {
        self.hedge = Some((delay, max_extra_load));
        self
    }

    /// The [`Registry`](crate::registry::Registry) to list this balancer
    /// in. Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Checks every option and builds the balancer over `endpoints`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range, and
    /// a fixed list of endpoints that is empty or names a key twice
    /// (`endpoints`).
    pub fn build<K, S>(self, endpoints: Endpoints<K, S>) -> Result<Balance<K, S, P>, ConfigError>
    where
        K: PartialEq + fmt::Debug + Send + Sync + 'static,
        S: Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        let mut v = Validator::new(format!("balancer {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        if let Some(fixed) = endpoints.source.fixed() {
            v.check(!fixed.is_empty(), "endpoints", || {
                "a fixed list must not be empty".into()
            });
            // Build time only: quadratic, but no `Hash` or `Ord` asked of keys.
            for (i, e) in fixed.iter().enumerate() {
                let first = fixed.iter().position(|other| other.key == e.key) == Some(i);
                let again = fixed[i + 1..].iter().any(|other| other.key == e.key);
                v.check(!(first && again), "endpoints", || {
                    format!(
                        "a fixed list must name each key once, got {:?} twice",
                        e.key
                    )
                });
            }
        }
        check_retries(&mut v, self.retries_same, self.retries_next);
        check_ejection(
            &mut v,
            &Ejecting {
                after: self.eject_after,
                first: self.eject_for,
                max: self.eject_for_max,
                max_ejected: self.max_ejected,
                panic_threshold: self.panic_threshold,
                accrual: self.failure_accrual,
            },
        );
        let hour = Duration::from_secs(3600);
        let sane = |d: Duration| d >= Duration::from_micros(1) && d <= hour;
        v.check(
            sane(self.initial_latency) && sane(self.latency_decay),
            "latency_estimate",
            || {
                format!(
                    "must be from 1 µs to an hour, got {:?} and {:?}",
                    self.initial_latency, self.latency_decay
                )
            },
        );
        if self.hedge.is_some() {
            v.check(!crate::hedge::sends_nothing_twice::<P>(), "hedge", || {
                crate::hedge::NOTHING_TWICE.into()
            });
        }
        let budget = self.budget.unwrap_or_default();
        let hedge = self.hedge.and_then(|(delay, load)| {
            // A hedge takes from the cap and the budget both, or neither.
            let layer = crate::hedge::HedgeLayer::builder(self.name.clone(), ())
                .delay(delay)
                .max_extra_load(load)
                .budget(budget.clone())
                .build();
            v.absorb(layer).map(|layer| layer.shared())
        });
        v.finish()?;
        let name: Arc<str> = self.name.into();
        let ejecting = Ejecting {
            after: self.eject_after,
            first: self.eject_for,
            max: self.eject_for_max,
            max_ejected: self.max_ejected,
            panic_threshold: self.panic_threshold,
            accrual: self.failure_accrual,
        };
        let ejection = ejecting.ejection();
        let set = EndpointSet::new(
            name.clone(),
            endpoints.source,
            ejection,
            micros(self.initial_latency),
            micros(self.latency_decay),
        );
        // Take in what the source has now (all of a fixed list), so the
        // handle shows the endpoints before the first call.
        set.refresh(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        let balance = Balance::from_shared(Shared::new(
            name,
            set,
            self.rule,
            self.two_choices,
            self.policy,
            self.retries_same,
            self.retries_next,
            self.backoff,
            budget,
            hedge,
            ejecting,
        ));
        let report: Arc<dyn super::handle::Report> = balance.shared().clone();
        let registry = self
            .registry
            .unwrap_or_else(crate::registry::Registry::global);
        registry.register_balancer(&report);
        registry.register_live(balance.shared().clone());
        Ok(balance)
    }
}

impl<P> fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("rule", &self.rule)
            .field("retries_same", &self.retries_same)
            .field("retries_next", &self.retries_next)
            .field("backoff", &self.backoff)
            .field("eject_after", &self.eject_after)
            .field("eject_for", &(self.eject_for, self.eject_for_max))
            .field("max_ejected", &self.max_ejected)
            .field("panic_threshold", &self.panic_threshold)
            .field("failure_accrual", &self.failure_accrual)
            .finish_non_exhaustive()
    }
}

/// The builder's checks of the retries, shared with live changes.
pub(crate) fn check_retries(v: &mut Validator, same: u32, next: u32) {
    v.check(same <= 10, "retries_same", || {
        format!("must be at most 10, got {same}")
    });
    v.check(next <= 100, "retries_next", || {
        format!("must be at most 100, got {next}")
    });
}

/// A balancer's ejection options, as built or as changed live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ejecting {
    pub(crate) after: u32,
    pub(crate) first: Duration,
    pub(crate) max: Duration,
    pub(crate) max_ejected: f64,
    pub(crate) panic_threshold: f64,
    pub(crate) accrual: bool,
}

impl Ejecting {
    pub(crate) fn ejection(&self) -> Ejection {
        Ejection {
            consecutive_failures: self.after,
            base: micros(self.first),
            max: micros(self.max),
            max_ejected: self.max_ejected,
            panic_threshold: self.panic_threshold,
            accrual: self.accrual,
        }
    }
}

/// The builder's checks of the ejection options, shared with live changes.
pub(crate) fn check_ejection(v: &mut Validator, e: &Ejecting) {
    v.check((1..=1000).contains(&e.after), "eject_after", || {
        format!("must be from 1 to 1000, got {}", e.after)
    });
    let hour = Duration::from_secs(3600);
    v.check(
        e.first >= Duration::from_millis(1) && e.first <= e.max && e.max <= hour,
        "eject_for",
        || {
            format!(
                "must satisfy 1 ms <= first <= max <= 1 h, got {:?} and {:?}",
                e.first, e.max
            )
        },
    );
    v.check((0.0..=1.0).contains(&e.max_ejected), "max_ejected", || {
        format!("must be in [0, 1], got {}", e.max_ejected)
    });
    v.check(
        (0.0..=1.0).contains(&e.panic_threshold),
        "panic_threshold",
        || format!("must be in [0, 1], got {}", e.panic_threshold),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::rule::RoundRobin;

    #[test]
    fn power_of_two_choices_is_known_as_such_and_only_it() {
        assert!(Builder::new("a".into()).two_choices, "the default");
        assert!(Builder::new("a".into()).rule(PowerOfTwoChoices).two_choices);
        let other = Builder::new("a".into()).rule(RoundRobin::new());
        assert!(!other.two_choices);
    }
}
