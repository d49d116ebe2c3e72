//! The timeout's response future.

use super::error::Elapsed;
use super::layer::LAYER;
use crate::metrics::TARGET_TIMEOUT;
use crate::BoxError;
use metrics::Counter;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{sleep_until, Instant, Sleep};

pin_project! {
    /// Response future of [`Timeout`](super::Timeout).
    ///
    /// The inner future is polled before the deadline is checked, so an
    /// answer that is ready when the deadline passes wins. The timer is only
    /// started the first time the inner future is not ready at once, so a
    /// call that answers immediately never touches tokio's timer.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner future and the timer.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` once timed out: the call is cancelled at the deadline.
        #[pin]
        response: Option<F>,
        #[pin]
        sleep: Option<Sleep>,
        deadline: Instant,
        // The deadline is the caller's (a `DeadlineLayer` above), not the
        // timeout's own: it ends in `DeadlineExceeded`, uncounted here.
        by_caller: bool,
        timed_out: Counter,
        // The timeout's name, for its `tracing` event: taken only when that
        // event was enabled at `call`.
        name: Option<Arc<str>>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        response: F,
        deadline: Instant,
        by_caller: bool,
        timed_out: Counter,
        name: Option<Arc<str>>,
    ) -> Self {
        ResponseFuture {
            response: Some(response),
            sleep: None,
            deadline,
            by_caller,
            timed_out,
            name,
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
        let mut this = self.project();
        let Some(response) = this.response.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(elapsed(*this.by_caller)));
        };
        if let Poll::Ready(result) = response.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(sleep_until(*this.deadline)));
        }
        let sleep = this.sleep.as_pin_mut().expect("set just above");
        match sleep.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                // Cancelled as a timeout, so layers beneath (a balancer's
                // attempt, a breaker's probe) can tell it from a caller
                // walking away.
                crate::internal::cancel::timed_out(|| this.response.set(None));
                if *this.by_caller {
                    return Poll::Ready(Err(elapsed(true)));
                }
                this.timed_out.increment(1);
                if let Some(name) = this.name.as_deref() {
                    timed_out(name);
                }
                Poll::Ready(Err(elapsed(false)))
            }
        }
    }
}

/// The error of a call cut off: by the caller's deadline, or by the
/// timeout's own.
fn elapsed(by_caller: bool) -> BoxError {
    if by_caller {
        crate::deadline::DeadlineExceeded::new().into()
    } else {
        Elapsed::new().into()
    }
}

#[cold]
#[inline(never)]
fn timed_out(name: &str) {
    tracing::debug!(
        target: TARGET_TIMEOUT,
        layer = LAYER,
        name,
        event = "timeout",
        "call timed out"
    );
}
