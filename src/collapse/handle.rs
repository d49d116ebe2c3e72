//! Reading a collapser's counts.

use super::stats::Stats;
use std::sync::Arc;
use std::time::Duration;

/// A cloneable view of one collapser's counts since it was built, for
/// dashboards and tests; from [`CollapseLayer::handle`](super::CollapseLayer::handle)
/// or [`Registry::collapsers`](crate::registry::Registry::collapsers).
#[derive(Debug, Clone)]
pub struct CollapseHandle {
    stats: Arc<Stats>,
}

impl CollapseHandle {
    pub(crate) fn new(stats: Arc<Stats>) -> Self {
        CollapseHandle { stats }
    }

    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The collapser's name.
    pub fn name(&self) -> &str {
        &self.stats.name
    }

    /// The command its batches are calls of, if it was given one.
    pub fn command(&self) -> Option<&str> {
        self.stats.command.as_deref()
    }

    /// The collection window.
    pub fn window(&self) -> Duration {
        self.stats.window
    }

    /// The most requests in one batch.
    pub fn max_batch(&self) -> usize {
        self.stats.max_batch
    }

    /// Batches sent to the batch service (Hystrix's `BATCH_EXECUTED`).
    pub fn batches(&self) -> u64 {
        self.stats.batches()
    }

    /// Requests sent in those batches (Hystrix's `ADDED_TO_BATCH`).
    pub fn requests_batched(&self) -> u64 {
        self.stats.batched()
    }

    /// Batches that failed, each failing all of its callers (a batch whose
    /// service was not ready with an error included).
    pub fn failed_batches(&self) -> u64 {
        self.stats.failed_batches()
    }

    /// Requests whose batch response had no item for them.
    pub fn missing_items(&self) -> u64 {
        self.stats.missing_items()
    }

    /// Requests whose callers gave up before their batch was sent, and
    /// which were therefore not sent.
    pub fn abandoned(&self) -> u64 {
        self.stats.abandoned_requests()
    }
}
