//! Building a retry layer.

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::layer::{RetryLayer, Shared};
use super::policy::DefaultPolicy;
use crate::error::{ConfigError, Validator};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default number of attempts, the first one included (resilience4j's
/// `maxAttempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default longest `Retry-After` the layer waits for before retrying.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Builds a [`RetryLayer`]; start with [`RetryLayer::builder`].
pub struct Builder<P = DefaultPolicy> {
    name: String,
    policy: P,
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<RetryBudget>,
    max_retry_after: Duration,
    retry_circuit_open: bool,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            policy: DefaultPolicy,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            budget: None,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            retry_circuit_open: false,
        }
    }
}

impl<P> Builder<P> {
    /// What may be retried; default [`DefaultPolicy`] (only errors that
    /// prove the dependency never received the request). For HTTP clients,
    /// [`HttpPolicy`](super::HttpPolicy).
    pub fn policy<P2>(self, policy: P2) -> Builder<P2> {
        Builder {
            name: self.name,
            policy,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            max_retry_after: self.max_retry_after,
            retry_circuit_open: self.retry_circuit_open,
        }
    }

    /// Attempts per call, the first one included: 1 (no retries) to 100;
    /// default 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The wait before each retry; default exponential from 10 ms to 1 s
    /// with full jitter ([`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The budget retries draw from. Clone one budget into every layer and
    /// balancer that should share it; by default each layer has its own,
    /// with the defaults of [`RetryBudget::default`] (20 % of the last
    /// 10 s of requests, plus 10 a second).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The longest `Retry-After` (as the [policy](super::Policy::retry_after)
    /// reads it, or a [`RateLimited`](crate::rate_limit::RateLimited)
    /// rejection's `retry_after`) the layer waits for: a result asking for
    /// a longer wait is returned without a retry, as Envoy does. 0 to 1
    /// hour; default 10 s.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Whether a [`CircuitOpen`](crate::circuit_breaker::CircuitOpen)
    /// rejection from beneath is retried when the policy allows it;
    /// default `false`: a breaker that just short-circuited will do so
    /// again within any backoff, and retrying it only spends budget.
    /// (A balancer, which retries on another instance's breaker, does
    /// retry them.)
    pub fn retry_circuit_open(mut self, retry: bool) -> Self {
        self.retry_circuit_open = retry;
        self
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each bad setting.
    pub fn build(self) -> Result<RetryLayer<P>, ConfigError> {
        let mut v = Validator::new(format!("retry {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        let attempts = self.max_attempts;
        v.check((1..=100).contains(&attempts), "max_attempts", || {
            format!("must be from 1 to 100, got {attempts}")
        });
        let max = self.max_retry_after;
        v.check(max <= Duration::from_secs(3600), "max_retry_after", || {
            format!("must be at most an hour, got {max:?}")
        });
        v.finish()?;
        let budget = self.budget.unwrap_or_default();
        Ok(RetryLayer::new(Arc::new(Shared::new(
            &self.name,
            self.policy,
            self.max_attempts,
            self.backoff,
            budget,
            self.max_retry_after,
            self.retry_circuit_open,
        ))))
    }
}

impl<P> fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("policy", &std::any::type_name::<P>())
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("retry_circuit_open", &self.retry_circuit_open)
            .finish_non_exhaustive()
    }
}
