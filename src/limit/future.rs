//! The limiter's response future.

use super::classify::Classify;
use super::error::{LimitExceeded, PartitionLimitExceeded};
use super::state::Permit;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// Response future of [`Limit`](super::Limit): the inner future holding
    /// a permit, or an immediate [`LimitExceeded`] or
    /// [`PartitionLimitExceeded`].
    ///
    /// # Cancel safety
    ///
    /// The permit is given back when the inner future completes, or when
    /// this future is dropped: cancelling a call never leaks a permit. A
    /// call dropped by rampart's [`Timeout`](crate::timeout::Timeout) above
    /// the limiter counts as a drop (Netflix counts a timeout as one);
    /// dropped by its caller, or unwound by a panic, it counts as nothing.
    pub struct ResponseFuture<F, C> {
        // `None` when the call was rejected.
        #[pin]
        response: Option<F>,
        // `None` once the outcome is recorded (or for a rejected call).
        call: Option<Call<C>>,
        // For a rejected call: whether its partition was over its share.
        over_share: bool,
    }

    impl<F, C> PinnedDrop for ResponseFuture<F, C> {
        fn drop(this: Pin<&mut Self>) {
            // The permit is given back as the field drops, after this.
            if let Some(call) = this.project().call {
                call.permit.abandon();
            }
        }
    }
}

/// What is needed to record an admitted call's outcome.
struct Call<C> {
    permit: Permit,
    classify: C,
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn admitted(response: F, permit: Permit, classify: C) -> Self {
        ResponseFuture {
            response: Some(response),
            call: Some(Call { permit, classify }),
            over_share: false,
        }
    }

    pub(crate) fn rejected(over_share: bool) -> Self {
        ResponseFuture {
            response: None,
            call: None,
            over_share,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(response) = this.response.as_pin_mut() else {
            return Poll::Ready(Err(if *this.over_share {
                PartitionLimitExceeded::new().into()
            } else {
                LimitExceeded::new().into()
            }));
        };
        let result = ready!(response.poll(cx)).map_err(Into::into);
        if let Some(call) = this.call {
            let outcome = call.classify.classify(&result);
            call.permit.finish(outcome);
            // Gives the permit back.
            *this.call = None;
        }
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &self.response.is_none())
            .field("in_flight", &self.call.is_some())
            .finish()
    }
}
