//! The pool's response future.

use super::error::PoolFull;
use super::state::Shared;
use crate::catch_panic::Panicked;
use crate::BoxError;
use std::future::Future;
use std::pin::Pin;
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
/// blocking its thread finishes its blocking first) and frees its place.
#[derive(Debug)]
pub struct ResponseFuture<T> {
    // `None` when the pool was full.
    job: Option<JoinHandle<T>>,
    // Keeps the pool's threads alive while the call runs, even if every
    // service was dropped (as `ServiceExt::oneshot` does right after `call`).
    _pool: Arc<Shared>,
}

impl<T> ResponseFuture<T> {
    pub(crate) fn new(job: Option<JoinHandle<T>>, pool: Arc<Shared>) -> Self {
        ResponseFuture { job, _pool: pool }
    }
}

impl<T, E> Future for ResponseFuture<Result<T, E>>
where
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(job) = self.job.as_mut() else {
            return Poll::Ready(Err(PoolFull::new(self._pool.name.clone()).into()));
        };
        let output = ready!(Pin::new(job).poll(cx));
        // Left in place (a finished handle aborts nothing on drop): polled
        // again, it is tokio's to say the task is gone, not "bulkhead full".
        Poll::Ready(match output {
            Ok(result) => result.map_err(Into::into),
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
        if let Some(job) = &self.job {
            job.abort();
        }
    }
}
