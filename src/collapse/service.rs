//! The collapser's service: each call joins the batch being collected.

use super::future::ResponseFuture;
use super::stats::Stats;
use super::worker::Item;
use crate::BoxError;
use std::fmt;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tower_service::Service;

/// Batches single calls into calls of its batch service; made by a
/// [`CollapseLayer`](super::CollapseLayer).
///
/// Clones share one batching task, so every clone's calls go into the
/// same batches (as a service cloned per request by axum or hyper).
pub struct Collapse<Req, Res> {
    feed: Arc<Feed<Req, Res>>,
}

/// The queue into the batching task, and how to start the task.
pub(super) struct Feed<Req, Res> {
    queue: mpsc::UnboundedSender<Item<Req, Res>>,
    started: Once,
    start: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    pub(super) stats: Arc<Stats>,
}

impl<Req, Res> Feed<Req, Res> {
    pub(super) fn new(
        queue: mpsc::UnboundedSender<Item<Req, Res>>,
        start: Box<dyn FnOnce() + Send>,
        stats: Arc<Stats>,
    ) -> Self {
        Feed {
            queue,
            started: Once::new(),
            start: Mutex::new(Some(start)),
            stats,
        }
    }
}

impl<Req, Res> Collapse<Req, Res> {
    pub(super) fn new(feed: Arc<Feed<Req, Res>>) -> Self {
        Collapse { feed }
    }
}

impl<Req, Res> Clone for Collapse<Req, Res> {
    fn clone(&self) -> Self {
        Collapse {
            feed: self.feed.clone(),
        }
    }
}

impl<Req, Res> Service<Req> for Collapse<Req, Res> {
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<Res>;

    /// Always ready: requests queue for the batching task, which readies
    /// the batch service before each batch.
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    /// # Panics
    ///
    /// The first call starts the batching task with `tokio::spawn`, which
    /// panics outside a tokio runtime (as tower's `Buffer` does when built).
    fn call(&mut self, request: Req) -> Self::Future {
        let feed = &*self.feed;
        // One atomic load once started.
        feed.started.call_once(|| {
            let start = feed
                .start
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(start) = start {
                start();
            }
        });
        let (reply, answer) = oneshot::channel();
        match feed.queue.send(Item { request, reply }) {
            Ok(()) => ResponseFuture::waiting(answer),
            Err(_) => ResponseFuture::closed(),
        }
    }
}

impl<Req, Res> fmt::Debug for Collapse<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collapse")
            .field("name", &self.feed.stats.name)
            .field("window", &self.feed.stats.window)
            .field("max_batch", &self.feed.stats.max_batch)
            .finish()
    }
}
