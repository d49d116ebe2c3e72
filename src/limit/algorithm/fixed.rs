//! A limit that does not move.

use super::{Algorithm, Sample, MAX_LIMIT};
use crate::error::{ConfigError, Validator};

/// A fixed limit (Netflix's `FixedLimit`): a bulkhead with the limiter's
/// partitions, metrics and handle. Samples are taken and ignored.
///
/// ```
/// use rampart::limit::{Fixed, LimitLayer};
///
/// let layer = LimitLayer::builder("api")
///     .algorithm(Fixed::new(100))
///     .partition("live", 0.9)
///     .partition("batch", 0.1)
///     .partition_by(|request: &http::Request<()>| {
///         request.headers().get("x-traffic").and_then(|v| v.to_str().ok())
///     })
///     .build()?;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Fixed {
    limit: usize,
}

impl Fixed {
    /// A limit of `limit` calls; from 1 to 2^24.
    pub fn new(limit: usize) -> Self {
        Fixed { limit }
    }
}

impl Algorithm for Fixed {
    fn initial_limit(&self) -> usize {
        self.limit
    }

    fn update(&mut self, _: Sample) -> usize {
        self.limit
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Validator::new("fixed limit".into());
        v.check((1..=MAX_LIMIT).contains(&self.limit), "limit", || {
            format!("must be from 1 to {MAX_LIMIT}, got {}", self.limit)
        });
        v.finish()
    }
}
