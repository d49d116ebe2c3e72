//! Building a chaos layer.

use super::faults::{Abort, Delay, Faults};
use super::layer::ChaosLayer;
use super::state::Shared;
use crate::error::Validator;
use crate::ConfigError;
use std::fmt;
use std::sync::Arc;

/// Builds a [`ChaosLayer`]; checked by [`build`](Builder::build).
pub struct Builder<Req, Res> {
    name: String,
    faults: Faults<Req, Res>,
    seed: Option<u64>,
    enabled: bool,
}

impl<Req, Res> Builder<Req, Res> {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            faults: Faults::new(),
            seed: None,
            enabled: false,
        }
    }

    /// All the faults at once (see [`Faults`]); replaces any set before.
    pub fn faults(mut self, faults: Faults<Req, Res>) -> Self {
        self.faults = faults;
        self
    }

    /// Delays `percent` % of the selected requests (0 to 100).
    pub fn delay(mut self, delay: Delay, percent: f64) -> Self {
        self.faults = self.faults.delay(delay, percent);
        self
    }

    /// Aborts `percent` % of the selected requests (0 to 100).
    pub fn abort(mut self, abort: Abort<Res>, percent: f64) -> Self {
        self.faults = self.faults.abort(abort, percent);
        self
    }

    /// Only requests for which `select` is true are candidates.
    pub fn when(mut self, select: impl Fn(&Req) -> bool + Send + Sync + 'static) -> Self {
        self.faults = self.faults.when(select);
        self
    }

    /// Makes every choice from this seed: the same requests in the same
    /// order meet the same faults, run after run. Default: a random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether the layer injects from the start. Default `false`: a chaos
    /// layer does nothing until its [handle](super::ChaosHandle) enables
    /// it, so it can stay in production stacks.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Checks the options and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each bad option: an empty name, a
    /// percentage outside 0 to 100, a delay longer than an hour or a
    /// distribution whose bounds are out of order.
    pub fn build(self) -> Result<ChaosLayer<Req, Res>, ConfigError> {
        let mut v = Validator::new(format!("chaos {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        self.faults.check(&mut v);
        v.finish()?;
        let seed = self.seed.unwrap_or_else(rand::random);
        Ok(ChaosLayer {
            shared: Arc::new(Shared::new(
                self.name.into(),
                self.faults,
                seed,
                self.enabled,
            )),
        })
    }
}

impl<Req, Res> fmt::Debug for Builder<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("enabled", &self.enabled)
            .finish()
    }
}
