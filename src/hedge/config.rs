//! Building a hedge layer.

use super::delay::{HedgeDelay, Tracker};
use super::layer::{HedgeLayer, Shared};
use crate::error::{ConfigError, Validator};
use crate::retry::RetryBudget;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default number of hedges a call may send (Polly's default).
pub const DEFAULT_MAX_HEDGED: u32 = 1;
/// Default cap on hedges, as a share of recent calls (5 %).
pub const DEFAULT_MAX_EXTRA_LOAD: f64 = 0.05;

/// Builds a [`HedgeLayer`]; start with [`HedgeLayer::builder`].
pub struct Builder<P> {
    name: String,
    policy: P,
    delay: HedgeDelay,
    max_hedged: u32,
    max_extra_load: f64,
    budget: Option<RetryBudget>,
}

impl<P> Builder<P> {
    pub(crate) fn new(name: String, policy: P) -> Self {
        Builder {
            name,
            policy,
            delay: HedgeDelay::default(),
            max_hedged: DEFAULT_MAX_HEDGED,
            max_extra_load: DEFAULT_MAX_EXTRA_LOAD,
            budget: None,
        }
    }

    /// When to send a hedge; default [`HedgeDelay::percentile`] at p95.
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// How many hedges one call may send, each a delay after the last:
    /// 1 to 10 (Polly's range); default 1.
    pub fn max_hedged(mut self, n: u32) -> Self {
        self.max_hedged = n;
        self
    }

    /// Hedges allowed, as a share of the calls of the last 10 s (Finagle's
    /// `maxExtraLoad`): 0 to 1; default 0.05. With 0.05, no more than one
    /// call in twenty is hedged, however slow the dependency gets. There is
    /// no floor: a layer earns a hedge every `1 / share` calls, so at 0.05 a
    /// new layer hedges none of its first 19 calls, and one seeing fewer
    /// than 2 calls a second never hedges. (A [percentile
    /// delay](super::HedgeDelay::percentile) also needs its
    /// `min_samples` successes in the last 10 s before it hedges at all.)
    pub fn max_extra_load(mut self, share: f64) -> Self {
        self.max_extra_load = share;
        self
    }

    /// A retry budget each hedge also withdraws from, so hedges and the
    /// retries of the layers and balancers sharing it stay within one
    /// budget. The hedge layer does not deposit into it (the retry layer
    /// or balancer beside it does, once per call). Default: none.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each bad setting.
    pub fn build(self) -> Result<HedgeLayer<P>, ConfigError> {
        let mut v = Validator::new(format!("hedge {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        v.check(!super::sends_nothing_twice::<P>(), "policy", || {
            super::NOTHING_TWICE.into()
        });
        self.delay.check(&mut v);
        let n = self.max_hedged;
        v.check((1..=10).contains(&n), "max_hedged", || {
            format!("must be from 1 to 10, got {n}")
        });
        let share = self.max_extra_load;
        v.check((0.0..=1.0).contains(&share), "max_extra_load", || {
            format!("must be from 0 to 1, got {share}")
        });
        v.finish()?;
        // The cap is a budget of its own: every call earns `share` of a
        // hedge over the last 10 s, with no floor.
        let cap = RetryBudget::new(Duration::from_secs(10), 0, share)?;
        Ok(HedgeLayer::new(Arc::new(Shared::new(
            &self.name,
            self.policy,
            Tracker::new(self.delay),
            self.max_hedged,
            cap,
            self.budget,
        ))))
    }
}

impl<P> fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("policy", &std::any::type_name::<P>())
            .field("delay", &self.delay)
            .field("max_hedged", &self.max_hedged)
            .field("max_extra_load", &self.max_extra_load)
            .finish_non_exhaustive()
    }
}
