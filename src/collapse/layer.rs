//! The collapse layer.

use super::config::Builder;
use super::handle::CollapseHandle;
use super::mapping::{InOrder, Mapping};
use super::service::{Collapse, Feed};
use super::stats::Stats;
use super::worker::Worker;
use crate::BoxError;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

/// Turns a batch service (`Vec<Req>` in, a batch response out) into a
/// service of single requests, batching the calls made within a window;
/// see the [module docs](super).
///
/// `Req` is the single request type (as in tower's `BufferLayer<Req>`):
/// the layer cannot learn it from the batch service alone.
pub struct CollapseLayer<Req, M = InOrder> {
    stats: Arc<Stats>,
    mapping: Arc<M>,
    _request: PhantomData<fn(Req)>,
}

impl<Req> CollapseLayer<Req, InOrder> {
    /// Starts a collapser named `name` (for metrics, events and the
    /// stream's `HystrixCollapser` object), with Hystrix's 10 ms window,
    /// at most 100 requests per batch, answering by position.
    pub fn builder(name: impl Into<String>) -> Builder<Req, InOrder> {
        Builder::new(name.into())
    }
}

impl<Req, M> CollapseLayer<Req, M> {
    pub(super) fn new(stats: Arc<Stats>, mapping: Arc<M>) -> Self {
        CollapseLayer {
            stats,
            mapping,
            _request: PhantomData,
        }
    }

    /// A handle to read the collapser's counts.
    pub fn handle(&self) -> CollapseHandle {
        CollapseHandle::new(self.stats.clone())
    }
}

impl<Req, M> Clone for CollapseLayer<Req, M> {
    fn clone(&self) -> Self {
        CollapseLayer::new(self.stats.clone(), self.mapping.clone())
    }
}

impl<S, Req, M> Layer<S> for CollapseLayer<Req, M>
where
    S: Service<Vec<Req>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    M: Mapping<Req, S::Response> + Send + Sync + 'static,
    M::Key: Send + 'static,
    M::Response: Send + 'static,
    Req: Send + 'static,
{
    type Service = Collapse<Req, M::Response>;

    /// Wraps `batches`. Each service this returns has one batching task,
    /// spawned on its first call and shared by its clones; it ends when
    /// the service and its clones are dropped and their requests answered.
    fn layer(&self, batches: S) -> Self::Service {
        let (queue, requests) = mpsc::unbounded_channel();
        let worker = Worker {
            service: batches,
            mapping: self.mapping.clone(),
            stats: self.stats.clone(),
            window: self.stats.window,
            max_batch: self.stats.max_batch,
        };
        let start = Box::new(move || {
            tokio::spawn(worker.run(requests));
        });
        Collapse::new(Arc::new(Feed::new(queue, start, self.stats.clone())))
    }
}

impl<Req, M> fmt::Debug for CollapseLayer<Req, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollapseLayer")
            .field("name", &self.stats.name)
            .field("window", &self.stats.window)
            .field("max_batch", &self.stats.max_batch)
            .finish_non_exhaustive()
    }
}
