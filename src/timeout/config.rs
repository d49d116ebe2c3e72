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
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// How long each call may take. Default 1 s; valid from 1 ms to a year.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the options and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<TimeoutLayer, ConfigError> {
        let mut v = Validator::new(format!("timeout {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        v.check(
            self.timeout >= Duration::from_millis(1) && self.timeout <= MAX_TIMEOUT,
            "timeout",
            || format!("must be from 1 ms to a year, got {:?}", self.timeout),
        );
        v.finish()?;
        Ok(TimeoutLayer::new(&self.name, self.timeout))
    }
}
