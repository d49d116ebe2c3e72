//! Reading a bulkhead's occupancy.

use super::state::Shared;
use std::sync::Arc;

/// A cloneable view of one bulkhead's occupancy, for dashboards and tests.
#[derive(Debug, Clone)]
pub struct BulkheadHandle {
    shared: Arc<Shared>,
}

impl BulkheadHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        BulkheadHandle { shared }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.shared.slots.in_flight()
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.shared.slots.waiting()
    }

    /// The most calls in flight at once since the last read, for the
    /// stream's rolling max.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn take_peak(&self) -> usize {
        self.shared.slots.take_peak()
    }

    /// The most calls allowed in flight at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared.slots.max()
    }
}
