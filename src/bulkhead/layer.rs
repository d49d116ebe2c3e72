//! The bulkhead layer.

use super::config::Builder;
use super::handle::BulkheadHandle;
use super::service::Bulkhead;
use super::state::Shared;
use crate::internal::shard::Lanes;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in a [`Bulkhead`]; all services built from one layer, or
/// from its clones, share one set of slots.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    shared: Arc<Lanes<Shared>>,
}

impl BulkheadLayer {
    /// Starts a bulkhead named `name` allowing 10 concurrent calls.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.shared.shared()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        BulkheadLayer {
            shared: Arc::new(Lanes::new(shared)),
        }
    }

    /// A handle to read the bulkhead's occupancy.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle::new(self.shared.shared().clone())
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, self.shared.clone())
    }
}
