//! The pool's response future.

use super::error::PoolFull;
use super::state::Shared;
use crate::catch_panic::Panicked;
use crate::internal::cancel;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::task::JoinHandle;

/// Response future of [`Pool`](super::Pool): the call's result, sent back
/// from the pool thread that ran it, or an immediate [`PoolFull`]. A job
/// that panics on the pool thread ends in [`Panicked`] (its thread and place
/// are given back).
///
/// # Cancel safety
///
/// Dropping it aborts the job on the pool (at its next `.await`; a job
/// blocking its thread finishes its blocking first) and frees its place:
/// at once for a job still queued, even while every pool thread is
/// blocked; when the job stops, for a running one.
/// Dropped by rampart's [`Timeout`](crate::timeout::Timeout) above (as in
/// a [`Command`](crate::Command)), the job is dropped on the pool thread as
/// a timeout's doing too: a balancer beneath counts the attempt it cuts off
/// as a timeout for its endpoint, not as a caller's cancellation.
#[derive(Debug)]
pub struct ResponseFuture<T> {
    // `None` when the pool was full. The job's output is `None` only if
    // this future gave its place up, which it does only when dropped.
    job: Option<(JoinHandle<Option<T>>, Arc<Ticket>)>,
    // Keeps the pool's threads alive while the call runs, even if every
    // service was dropped (as `ServiceExt::oneshot` does right after `call`).
    _pool: Arc<Shared>,
}

impl<T> ResponseFuture<T> {
    pub(crate) fn new(
        job: Option<(JoinHandle<Option<T>>, Arc<Ticket>)>,
        pool: Arc<Shared>,
    ) -> Self {
        ResponseFuture { job, _pool: pool }
    }
}

impl<T, E> Future for ResponseFuture<Result<T, E>>
where
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some((job, _)) = self.job.as_mut() else {
            return Poll::Ready(Err(PoolFull::new(self._pool.name.clone()).into()));
        };
        let output = ready!(Pin::new(job).poll(cx));
        // Left in place (a finished handle aborts nothing on drop): polled
        // again, it is tokio's to say the task is gone, not "bulkhead full".
        Poll::Ready(match output {
            Ok(Some(result)) => result.map_err(Into::into),
            // Not reached: the place is given up only by this future's drop.
            Ok(None) => Err(PoolFull::new(self._pool.name.clone()).into()),
            // The job panicked on the pool thread: the caller gets the
            // panic as an error (unwinding would need the caller's stack).
            Err(join_error) if join_error.is_panic() => {
                Err(Panicked::from_payload(&*join_error.into_panic()).into())
            }
            Err(join_error) => Err(join_error.into()),
        })
    }
}

impl<T> Drop for ResponseFuture<T> {
    fn drop(&mut self) {
        if let Some((job, ticket)) = &self.job {
            // The pool drops the job on one of its threads, where this
            // thread's mark (`internal::cancel`) is not seen: pass it on.
            if cancel::is_timing_out() {
                ticket.cut_off.store(true, Ordering::Release);
            }
            job.abort();
            // A job still queued gives its place back now: while every
            // pool thread is blocked, none would drop the aborted job.
            ticket.give_up(&self._pool.stats);
        }
    }
}

/// What the caller's [`ResponseFuture`] and the [`Job`] on the pool share:
/// whether a timeout above gave up on the job, and where its place stands
/// (queued, running, or given back), so that either side gives it back,
/// once.
#[derive(Debug, Default)]
pub(crate) struct Ticket {
    cut_off: AtomicBool,
    pub(crate) place: AtomicU8,
}

/// A [`Ticket`]'s place: waiting for a pool thread.
pub(crate) const QUEUED: u8 = 0;
/// Its job runs on a pool thread.
pub(crate) const ACTIVE: u8 = 1;
/// Given back.
pub(crate) const GONE: u8 = 2;

impl Ticket {
    /// The caller's side: gives the place back if its job is still queued
    /// (the job then never runs).
    fn give_up(&self, stats: &super::state::Stats) {
        if self
            .place
            .compare_exchange(QUEUED, GONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            stats.release(QUEUED);
        }
    }
}

pin_project! {
    /// The inner call's future, as it runs on the pool. Dropped before it
    /// ends because a timeout above gave up on it, it drops the call as the
    /// timeout would have on the caller's thread.
    pub(crate) struct Job<F> {
        #[pin]
        call: Option<F>,
        ticket: Arc<Ticket>,
    }

    impl<F> PinnedDrop for Job<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Acquire: pairs with the caller's store, which happens before
            // its `abort` and so before the pool drops the job.
            if this.ticket.cut_off.load(Ordering::Acquire) {
                cancel::timed_out(|| this.call.set(None));
            }
        }
    }
}

impl<F> Job<F> {
    pub(crate) fn new(call: F, ticket: Arc<Ticket>) -> Self {
        Job {
            call: Some(call),
            ticket,
        }
    }
}

impl<F: Future> Future for Job<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let call = self.project().call.as_pin_mut();
        call.expect("dropped only with the job").poll(cx)
    }
}
