//! Building a deadline layer.

use super::layer::DeadlineLayer;
use crate::error::{ConfigError, Validator};
use crate::metrics::event_counter;
use std::time::Duration;

/// Builds a [`DeadlineLayer`]; start with [`DeadlineLayer::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    budget: Option<Duration>,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder { name, budget: None }
    }

    /// The longest a call may take from the moment it reaches this layer
    /// (1 ms to 1 hour): a deadline of now + `budget`, unless the request
    /// or the caller brings an earlier one. Default: none, so the layer
    /// only passes on deadlines it is given (a server reading its caller's
    /// header).
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `name` if it is empty and `budget` if it
    /// is out of range.
    pub fn build(self) -> Result<DeadlineLayer, ConfigError> {
        let mut v = Validator::new(format!("deadline {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        if let Some(budget) = self.budget {
            v.check(
                budget >= Duration::from_millis(1) && budget <= Duration::from_secs(3600),
                "budget",
                || format!("must be from 1 ms to an hour, got {budget:?}"),
            );
        }
        v.finish()?;
        Ok(DeadlineLayer {
            budget: self.budget,
            rejected: event_counter(super::layer::LAYER, &self.name, "deadline_rejected"),
            cut: event_counter(super::layer::LAYER, &self.name, "deadline_cut"),
            name: self.name.into(),
        })
    }
}
