//! Reading a balancer's endpoints.

use crate::retry::RetryBudget;
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

impl fmt::Debug for BalanceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceHandle")
            .field("name", &self.name())
            .finish()
    }
}
