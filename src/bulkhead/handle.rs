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

    /// The most calls allowed in flight at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared.slots.max()
    }
}
