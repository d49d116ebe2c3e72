//! The limit layer.

use super::config::Builder;
use super::handle::LimitHandle;
use super::partition::Unpartitioned;
use super::service::Limit;
use super::state::Shared;
use super::DefaultClassifier;
use crate::internal::shard::Lanes;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in a [`Limit`]; all services built from one layer, or
/// from its clones, share one limit.
#[derive(Debug, Clone)]
pub struct LimitLayer<P = Unpartitioned, C = DefaultClassifier> {
    shared: Arc<Lanes<Shared>>,
    partitioner: P,
    classify: C,
}

impl LimitLayer {
    /// Starts a limiter named `name`: [`Vegas`](super::Vegas) with
    /// Netflix's defaults unless told otherwise.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }
}

impl<P, C> LimitLayer<P, C> {
    pub(crate) fn new(shared: Arc<Lanes<Shared>>, partitioner: P, classify: C) -> Self {
        LimitLayer {
            shared,
            partitioner,
            classify,
        }
    }

    /// A handle to read the limit, its use and its drops.
    pub fn handle(&self) -> LimitHandle {
        LimitHandle::new(self.shared.shared().clone())
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for LimitLayer<P, C> {
    type Service = Limit<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Limit::new(
            inner,
            self.shared.clone(),
            self.partitioner.clone(),
            self.classify.clone(),
        )
    }
}
