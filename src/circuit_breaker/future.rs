//! The circuit breaker's response future.

use super::classify::{Classify, Outcome};
use super::error::CircuitOpen;
use super::state::{Breaker, Permit};
use crate::internal::clock::Micros;
use crate::internal::shard::Lane;
use crate::internal::{cancel, handoff};
use crate::window::Category;
use crate::{BoxError, ErrorKind};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// Response future of [`CircuitBreaker`](super::CircuitBreaker): the
    /// inner future, or an immediate [`CircuitOpen`] for a rejected call.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it finishes records nothing for an ordinary call
    /// (the caller walked away), unless rampart's own
    /// [`Timeout`](crate::timeout::Timeout) above the breaker cut the call
    /// off: that counts as a timeout. A half-open probe dropped for any
    /// reason counts as a failed probe and re-opens the breaker, so an
    /// abandoned probe cannot hold the breaker half-open.
    ///
    /// # Panics
    ///
    /// When the inner future panics, the call counts as a failure before the
    /// panic goes on unwinding (also when the panic is caught and the future
    /// dropped later, as tokio does with a task).
    pub struct ResponseFuture<F, C> {
        // `None` when the call was rejected.
        #[pin]
        response: Option<F>,
        // `None` when nothing is measured, or once the outcome is recorded.
        call: Option<InFlight<C>>,
        // Set while the inner future is being polled: still set when the
        // future is dropped, the poll unwound.
        polling: bool,
    }

    impl<F, C> PinnedDrop for ResponseFuture<F, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(call) = this.call.take() {
                if *this.polling {
                    call.breaker.complete(call.permit, Category::Failure, call.started);
                } else if cancel::is_timing_out() {
                    call.breaker.complete(call.permit, Category::Timeout, call.started);
                } else {
                    call.breaker.abandon(call.permit);
                }
            }
        }
    }
}

/// What is needed to record an admitted call's outcome.
struct InFlight<C> {
    breaker: Arc<Lane<Breaker>>,
    permit: Permit,
    started: Micros,
    classify: C,
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn rejected() -> Self {
        ResponseFuture {
            response: None,
            call: None,
            polling: false,
        }
    }

    pub(crate) fn uncounted(response: F) -> Self {
        ResponseFuture {
            response: Some(response),
            call: None,
            polling: false,
        }
    }

    pub(crate) fn admitted(
        response: F,
        breaker: Arc<Lane<Breaker>>,
        permit: Permit,
        started: Micros,
        classify: C,
    ) -> Self {
        ResponseFuture {
            response: Some(response),
            call: Some(InFlight {
                breaker,
                permit,
                started,
                classify,
            }),
            polling: false,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(response) = this.response.as_pin_mut() else {
            handoff::hand_over(None);
            return Poll::Ready(Err(CircuitOpen::new().into()));
        };
        *this.polling = true;
        let result = response.poll(cx);
        *this.polling = false;
        let result = ready!(result);
        let Some(call) = this.call.take() else {
            if result.is_err() {
                handoff::hand_over(None);
            }
            return Poll::Ready(result.map_err(Into::into));
        };
        let outcome = call.classify.classify(&result);
        let result = result.map_err(Into::into);
        let category = match (outcome, &result) {
            (Outcome::Success, _) => Category::Success,
            (Outcome::Ignored, _) => Category::Ignored,
            (Outcome::Failure, Ok(_)) => Category::Failure,
            (Outcome::Failure, Err(e)) => match ErrorKind::of(&**e) {
                // Cut off by a deadline beneath: slow, as a timeout is.
                ErrorKind::Timeout | ErrorKind::DeadlineExceeded => Category::Timeout,
                kind if kind.is_rejection() => Category::Rejected,
                _ => Category::Failure,
            },
        };
        let latency = call.breaker.complete(call.permit, category, call.started);
        if result.is_err() {
            handoff::hand_over(latency);
        }
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &self.response.is_none())
            .field("permit", &self.call.as_ref().map(|c| c.permit))
            .finish()
    }
}
