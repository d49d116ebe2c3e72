//! The batching task: collects requests for a window (or up to the batch
//! bound), sends them as one batch, and hands each caller its answer.
//!
//! One task per service a layer wraps, spawned on the first call. Each
//! batch call runs in a task of its own, so a slow batch holds up only
//! its own callers: the next batch is collected and sent meanwhile.

use super::error::{BatchFailed, MissingItem};
use super::mapping::Mapping;
use super::stats::Stats;
use crate::catch_panic::Panicked;
use crate::error::SharedError;
use crate::BoxError;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tower_service::Service;

/// Where a caller's answer goes.
pub(super) type Reply<Res> = oneshot::Sender<Result<Res, BoxError>>;

/// One caller's request, on its way to a batch.
pub(super) struct Item<Req, Res> {
    pub(super) request: Req,
    pub(super) reply: Reply<Res>,
}

/// What the batching task needs besides its queue.
pub(super) struct Worker<S, M> {
    pub(super) service: S,
    pub(super) mapping: Arc<M>,
    pub(super) stats: Arc<Stats>,
    pub(super) window: Duration,
    pub(super) max_batch: usize,
}

impl<S, M> Worker<S, M> {
    /// Collects and sends batches until every service handle is dropped
    /// and the queue is empty.
    pub(super) async fn run<Req>(
        mut self,
        mut queue: mpsc::UnboundedReceiver<Item<Req, M::Response>>,
    ) where
        S: Service<Vec<Req>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        M: Mapping<Req, S::Response> + Send + Sync + 'static,
        M::Key: Send + 'static,
        M::Response: Send + 'static,
        Req: Send + 'static,
    {
        let mut batch: Vec<Item<Req, M::Response>> = Vec::new();
        loop {
            let Some(first) = queue.recv().await else {
                return;
            };
            batch.push(first);
            // The window runs from the first request of the batch: none
            // waits longer than the window to be sent.
            let mut window = pin!(tokio::time::sleep(self.window));
            let max = self.max_batch;
            poll_fn(|cx| {
                while batch.len() < max {
                    match queue.poll_recv(cx) {
                        Poll::Ready(Some(item)) => batch.push(item),
                        // Every handle is gone: send what there is.
                        Poll::Ready(None) => return Poll::Ready(()),
                        Poll::Pending => return window.as_mut().poll(cx),
                    }
                }
                Poll::Ready(())
            })
            .await;
            self.send(&mut batch).await;
        }
    }

    /// Readies the batch service and sends `batch` (emptying it) as one
    /// call, in a task of its own.
    async fn send<Req>(&mut self, batch: &mut Vec<Item<Req, M::Response>>)
    where
        S: Service<Vec<Req>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        M: Mapping<Req, S::Response> + Send + Sync + 'static,
        M::Key: Send + 'static,
        M::Response: Send + 'static,
        Req: Send + 'static,
    {
        let service = &mut self.service;
        let ready = poll_fn(
            |cx| match catch_unwind(AssertUnwindSafe(|| service.poll_ready(cx))) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(Into::into)),
                Err(panic) => Poll::Ready(Err(Panicked::from_payload(&*panic).into())),
            },
        )
        .await;
        // Callers that gave up while the batch was collected (or the
        // service readied) leave it: their requests are not sent.
        let before = batch.len();
        batch.retain(|item| !item.reply.is_closed());
        self.stats.abandoned(before - batch.len());
        if batch.is_empty() {
            return;
        }
        let size = batch.len();
        let mut requests = Vec::with_capacity(size);
        let mut replies = Vec::with_capacity(size);
        for item in batch.drain(..) {
            requests.push(item.request);
            replies.push(Some(item.reply));
        }
        if let Err(e) = ready {
            fail(&self.stats, replies, e);
            return;
        }
        self.stats.batch(size);
        let mapping = &self.mapping;
        let keys = match catch_unwind(AssertUnwindSafe(|| {
            requests.iter().map(|r| mapping.key(r)).collect::<Vec<_>>()
        })) {
            Ok(keys) => keys,
            Err(panic) => {
                fail(&self.stats, replies, Panicked::from_payload(&*panic).into());
                return;
            }
        };
        let call = match catch_unwind(AssertUnwindSafe(|| service.call(requests))) {
            Ok(call) => call,
            Err(panic) => {
                fail(&self.stats, replies, Panicked::from_payload(&*panic).into());
                return;
            }
        };
        let mapping = self.mapping.clone();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let mut call = pin!(call);
            let result = poll_fn(|cx| {
                catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx)))
                    .map_or_else(|panic| Poll::Ready(Err(panic)), |poll| poll.map(Ok))
            })
            .await;
            match result {
                Ok(Ok(response)) => answer(&stats, &*mapping, &keys, response, replies),
                Ok(Err(e)) => fail(&stats, replies, e.into()),
                Err(panic) => fail(&stats, replies, Panicked::from_payload(&*panic).into()),
            }
        });
    }
}

/// Every caller of a failed batch gets the batch's error, shared.
fn fail<Res>(stats: &Stats, replies: Vec<Option<Reply<Res>>>, error: BoxError) {
    stats.failed(replies.len());
    let error = SharedError::new(error);
    for reply in replies.into_iter().flatten() {
        // A caller that has gone does not want it.
        let _ = reply.send(Err(BatchFailed::new(error.clone()).into()));
    }
}

/// Hands each caller its item; the ones without get [`MissingItem`].
fn answer<Req, B, M: Mapping<Req, B>>(
    stats: &Stats,
    mapping: &M,
    keys: &[M::Key],
    response: B,
    mut replies: Vec<Option<Reply<M::Response>>>,
) {
    let split = catch_unwind(AssertUnwindSafe(|| {
        mapping.split(keys, response, &mut |i, item| {
            if let Some(reply) = replies.get_mut(i).and_then(Option::take) {
                let _ = reply.send(Ok(item));
            }
        })
    }));
    if let Err(panic) = split {
        // The callers answered before the panic keep their answers.
        fail(stats, replies, Panicked::from_payload(&*panic).into());
        return;
    }
    let missing = replies.iter().filter(|r| r.is_some()).count();
    stats.missing(missing);
    for reply in replies.into_iter().flatten() {
        let _ = reply.send(Err(MissingItem::new().into()));
    }
}
