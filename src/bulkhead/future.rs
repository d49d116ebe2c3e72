//! The bulkhead's response future.

use super::error::BulkheadFull;
use super::state::Permit;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// Response future of [`Bulkhead`](super::Bulkhead): the inner future
    /// holding a slot, or an immediate [`BulkheadFull`].
    ///
    /// # Cancel safety
    ///
    /// The slot is given back when the inner future completes, or when this
    /// future is dropped: cancelling a call never leaks a slot.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the call was rejected.
        #[pin]
        response: Option<F>,
        permit: Option<Permit>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(response: F, permit: Permit) -> Self {
        ResponseFuture {
            response: Some(response),
            permit: Some(permit),
        }
    }

    pub(crate) fn rejected() -> Self {
        ResponseFuture {
            response: None,
            permit: None,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(response) = this.response.as_pin_mut() else {
            return Poll::Ready(Err(BulkheadFull::new().into()));
        };
        let result = ready!(response.poll(cx));
        // Free the slot as soon as the dependency has answered.
        this.permit.take();
        Poll::Ready(result.map_err(Into::into))
    }
}
