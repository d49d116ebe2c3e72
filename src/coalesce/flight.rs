//! One call in flight, shared by every caller of its key.

use crate::catch_panic::Panicked;
use crate::error::SharedError;
use crate::BoxError;
use futures_util::future::TryFuture;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The inner call, its error made shareable; polled by whichever of
    /// its callers polls (a `futures` `Shared`), so it runs as long as one
    /// of them waits.
    pub struct Flight<F> {
        #[pin]
        call: F,
    }
}

impl<F> Flight<F> {
    pub(super) fn new(call: F) -> Self {
        Flight { call }
    }
}

impl<F> Future for Flight<F>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
{
    type Output = Result<F::Ok, SharedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let call = self.project().call;
        // A panic would poison the shared future and panic every waiter
        // in turn; it is one failure of one call, shared as an error.
        let result = match catch_unwind(AssertUnwindSafe(|| call.try_poll(cx))) {
            Ok(poll) => ready!(poll).map_err(Into::into),
            Err(panic) => Err(Panicked::from_payload(&*panic).into()),
        };
        Poll::Ready(result.map_err(SharedError::new))
    }
}

impl<F> fmt::Debug for Flight<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flight").finish_non_exhaustive()
    }
}
