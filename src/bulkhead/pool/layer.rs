//! The pool layer.

use super::config::Builder;
use super::handle::PoolHandle;
use super::service::Pool;
use super::state::Shared;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in a [`Pool`]; all services built from one layer, or from
/// its clones, share one pool of threads.
#[derive(Debug, Clone)]
pub struct PoolLayer {
    shared: Arc<Shared>,
}

impl PoolLayer {
    /// Starts a pool named `name`: 10 threads, no queue (Hystrix's defaults).
    /// The name must not be empty nor contain a NUL byte: it names the
    /// pool's threads.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        PoolLayer { shared }
    }

    /// A handle to read the pool's statistics.
    pub fn handle(&self) -> PoolHandle {
        PoolHandle::new(self.shared.clone())
    }
}

impl<S> Layer<S> for PoolLayer {
    type Service = Pool<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Pool::new(inner, self.shared.clone())
    }
}
