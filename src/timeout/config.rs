//! Options for a timeout, and the builder that validates them.

use super::layer::TimeoutLayer;
use crate::error::{ConfigError, Validator};
use std::time::Duration;

/// Default deadline per call (Hystrix
/// `execution.isolation.thread.timeoutInMilliseconds`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Builds a [`TimeoutLayer`]; every option is checked by [`build`](Builder::build).
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    timeout: Duration,
    registry: Option<crate::registry::Registry>,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            timeout: DEFAULT_TIMEOUT,
            registry: None,
        }
    }

    /// How long each call may take. Default 1 s; valid from 1 ms to a year.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The [`Registry`](crate::registry::Registry) to list this timeout
    /// in, for [live configuration](crate::config). Default:
    /// [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Checks the options and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<TimeoutLayer, ConfigError> {
        validate(&self.name, self.timeout)?;
        let layer = TimeoutLayer::new(&self.name, self.timeout);
        self.registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register_configurable(layer.shared());
        Ok(layer)
    }
}

/// The builder's checks, shared with live changes.
pub(super) fn validate(name: &str, timeout: Duration) -> Result<(), ConfigError> {
    let mut v = Validator::new(format!("timeout {name:?}"));
    v.check(!name.is_empty(), "name", || "must not be empty".into());
    v.check(
        timeout >= Duration::from_millis(1) && timeout <= MAX_TIMEOUT,
        "timeout",
        || format!("must be from 1 ms to a year, got {timeout:?}"),
    );
    v.finish()
}
