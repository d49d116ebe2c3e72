//! The deadline layer's response future.

use super::error::DeadlineExceeded;
use crate::internal::{cancel, deadline};
use crate::BoxError;
use metrics::Counter;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{sleep_until, Instant, Sleep};

pin_project! {
    /// Response future of [`DeadlineService`](super::DeadlineService): the
    /// inner call, polled with its deadline in force and cut off at it.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner call (as the caller's cancellation, not
    /// a deadline's).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Unbounded {
            #[pin]
            response: F,
        },
        Bounded {
            // `None` once cut off.
            #[pin]
            response: Option<F>,
            // Made on the first pending poll only.
            #[pin]
            sleep: Option<Sleep>,
            deadline: Instant,
            cut: Counter,
        },
        Rejected,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn unbounded(response: F) -> Self {
        ResponseFuture {
            state: State::Unbounded { response },
        }
    }

    pub(crate) fn bounded(response: F, deadline: Instant, cut: Counter) -> Self {
        ResponseFuture {
            state: State::Bounded {
                response: Some(response),
                sleep: None,
                deadline,
                cut,
            },
        }
    }

    pub(crate) fn rejected() -> Self {
        ResponseFuture {
            state: State::Rejected,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Unbounded { response } => response.poll(cx).map_err(Into::into),
            StateProj::Rejected => Poll::Ready(Err(DeadlineExceeded::new().into())),
            StateProj::Bounded {
                mut response,
                mut sleep,
                deadline,
                cut,
            } => {
                let Some(call) = response.as_mut().as_pin_mut() else {
                    return Poll::Ready(Err(DeadlineExceeded::new().into()));
                };
                if let Poll::Ready(result) = deadline::within(*deadline, || call.poll(cx)) {
                    return Poll::Ready(result.map_err(Into::into));
                }
                if sleep.is_none() {
                    sleep.set(Some(sleep_until(*deadline)));
                }
                let timer = sleep.as_pin_mut().expect("set just above");
                match timer.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        // Dropped as a timeout's doing, so layers beneath
                        // count it against the dependency.
                        cancel::timed_out(|| response.set(None));
                        cut.increment(1);
                        Poll::Ready(Err(DeadlineExceeded::new().into()))
                    }
                }
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Unbounded { .. } => "ResponseFuture::Unbounded",
            State::Bounded { .. } => "ResponseFuture::Bounded",
            State::Rejected => "ResponseFuture::Rejected",
        })
    }
}
