//! Reading a limit: its value, its use, its drops, per partition.

use super::algorithm::Sample;
use super::state::Shared;
use std::sync::Arc;

/// A cloneable view of one limiter, for dashboards, admin endpoints and
/// tests. Every read is an atomic load, except
/// [`last_sample`](Self::last_sample), which takes the algorithm's lock
/// (held once a window, for the length of one update).
#[derive(Debug, Clone)]
pub struct LimitHandle {
    shared: Arc<Shared>,
}

impl LimitHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        LimitHandle { shared }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The concurrency limit now.
    pub fn limit(&self) -> usize {
        self.shared.limit()
    }

    /// Calls holding a permit now. With partitions, it may pass the limit
    /// by the shares of partitions that were below theirs (see
    /// [`Builder::partition`](super::Builder::partition)).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// Calls waiting for a permit now (with
    /// [`max_wait`](super::Builder::max_wait)).
    pub fn waiting(&self) -> usize {
        self.shared.waiting()
    }

    /// Calls dropped since the limiter was built (see
    /// [`Outcome::Dropped`](super::Outcome::Dropped)).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }

    /// Calls the limiter rejected since it was built.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected()
    }

    /// What the algorithm was last fed: the last window with enough
    /// samples. `None` before the first.
    pub fn last_sample(&self) -> Option<Sample> {
        self.shared.last_sample()
    }

    /// Each declared partition, in the order declared, then `unknown`
    /// (calls whose key names no declared partition); empty for a limiter
    /// without partitions.
    pub fn partitions(&self) -> Vec<PartitionStats> {
        self.shared.partitions().collect()
    }
}

/// One partition of a limiter, as read by [`LimitHandle::partitions`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The partition's name (`unknown` for calls of no declared one).
    pub name: Arc<str>,
    /// Its guaranteed share of the limit, in (0, 1]; 0 for `unknown`.
    pub share: f64,
    /// Its share in permits now: `max(1, ⌈limit·share⌉)`; 0 for `unknown`.
    pub limit: usize,
    /// Its calls holding a permit now (more than `limit` when it used what
    /// others left).
    pub in_flight: usize,
    /// Its calls rejected since the limiter was built.
    pub rejected: u64,
    /// Its calls dropped since the limiter was built.
    pub dropped: u64,
}
