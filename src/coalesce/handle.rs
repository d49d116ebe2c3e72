//! Reading a coalescer's counts.

use super::table::Stats;
use std::sync::Arc;

/// A cloneable view of one coalescer's counts since it was built, over
/// every service its layer made; from
/// [`CoalesceLayer::handle`](super::CoalesceLayer::handle).
#[derive(Debug, Clone)]
pub struct CoalesceHandle {
    stats: Arc<Stats>,
}

impl CoalesceHandle {
    pub(super) fn new(stats: Arc<Stats>) -> Self {
        CoalesceHandle { stats }
    }

    /// The coalescer's name.
    pub fn name(&self) -> &str {
        &self.stats.name
    }

    /// Calls that reached the inner service: one per key in flight.
    pub fn calls(&self) -> u64 {
        self.stats.calls()
    }

    /// Callers that joined a call in flight instead of calling.
    pub fn joined(&self) -> u64 {
        self.stats.joins()
    }

    /// Callers rejected because `max_waiters` had joined already.
    pub fn rejected(&self) -> u64 {
        self.stats.rejections()
    }

    /// Callers who joined a call that failed and called again on their
    /// own; always 0 unless the coalescer shares
    /// [successes only](super::Builder::successes_only).
    pub fn retried(&self) -> u64 {
        self.stats.retries()
    }
}
