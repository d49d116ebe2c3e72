//! The catch-panic response future.

use super::error::Panicked;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// Response future of [`CatchPanic`](super::CatchPanic).
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner future.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Running {
            #[pin]
            response: F,
            contain: bool,
        },
        // `call` panicked, or the future did; taken when reported.
        Panicked {
            error: Option<Panicked>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(response: F, contain: bool) -> Self {
        ResponseFuture {
            state: State::Running { response, contain },
        }
    }

    pub(crate) fn panicked(error: Panicked) -> Self {
        ResponseFuture {
            state: State::Panicked { error: Some(error) },
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
        let payload = match this.state.as_mut().project() {
            StateProj::Running { response, contain } => {
                if !*contain {
                    return response.poll(cx).map_err(Into::into);
                }
                match catch_unwind(AssertUnwindSafe(|| response.poll(cx))) {
                    Ok(poll) => return poll.map_err(Into::into),
                    Err(payload) => payload,
                }
            }
            StateProj::Panicked { error } => {
                let error = error.take().expect("polled after completion");
                return Poll::Ready(Err(error.into()));
            }
        };
        // Never polled again after a panic: its state is unknown.
        this.state.set(State::Panicked { error: None });
        Poll::Ready(Err(Panicked::from_payload(&*payload).into()))
    }
}
