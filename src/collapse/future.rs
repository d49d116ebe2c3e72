//! The collapser's response future: a caller's wait for its item.

use super::error::CollapserClosed;
use crate::BoxError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::sync::oneshot;

/// Response future of [`Collapse`](super::Collapse): waits for this
/// caller's item of its batch.
///
/// # Cancel safety
///
/// Dropping it leaves the batch: a request whose caller has gone before
/// the batch is sent is not sent; one already sent is answered into the
/// void. The other callers of the batch are not disturbed.
pub struct ResponseFuture<Res> {
    state: State<Res>,
}

enum State<Res> {
    Waiting(oneshot::Receiver<Result<Res, BoxError>>),
    Closed,
    Done,
}

impl<Res> ResponseFuture<Res> {
    pub(super) fn waiting(reply: oneshot::Receiver<Result<Res, BoxError>>) -> Self {
        ResponseFuture {
            state: State::Waiting(reply),
        }
    }

    pub(super) fn closed() -> Self {
        ResponseFuture {
            state: State::Closed,
        }
    }
}

impl<Res> Future for ResponseFuture<Res> {
    type Output = Result<Res, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin`: the receiver is polled in place.
        let result = match &mut self.state {
            State::Waiting(reply) => match ready!(Pin::new(reply).poll(cx)) {
                Ok(result) => result,
                // The batching task was dropped without answering: its
                // runtime is shutting down (panics are answered).
                Err(_) => Err(CollapserClosed::new().into()),
            },
            State::Closed => Err(CollapserClosed::new().into()),
            State::Done => panic!("ResponseFuture polled after completion"),
        };
        self.state = State::Done;
        Poll::Ready(result)
    }
}

impl<Res> fmt::Debug for ResponseFuture<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
