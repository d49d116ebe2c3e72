//! The chaos layer's response future.

use super::faults::{Abort, AbortKind};
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower_service::Service;

/// What a delayed call does once its delay is over.
pub(crate) enum Then<S, Req, Res> {
    /// Call the readied inner service.
    Call(S, Req),
    /// Abort instead.
    Abort(Abort<Res>),
}

pin_project! {
    /// Response future of [`Chaos`](super::Chaos): the inner call, or the
    /// fault injected in its place.
    ///
    /// # Cancel safety
    ///
    /// Dropping it during an injected delay drops the readied inner
    /// service with the request, uncalled; an injected hang ends only by
    /// being dropped.
    pub struct ResponseFuture<F, S, Req, Res> {
        #[pin]
        state: State<F, S, Req, Res>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, Res> {
        Calling {
            #[pin]
            response: F,
        },
        // Boxed: only injected delays pay for a `Sleep`'s size.
        Delaying {
            sleep: Pin<Box<Sleep>>,
            then: Option<Then<S, Req, Res>>,
        },
        Ready {
            result: Option<Result<Res, BoxError>>,
        },
        Hanging,
    }
}

impl<F, S, Req, Res> ResponseFuture<F, S, Req, Res> {
    #[inline]
    pub(crate) fn calling(response: F) -> Self {
        ResponseFuture {
            state: State::Calling { response },
        }
    }

    pub(crate) fn delaying(delay: Duration, then: Then<S, Req, Res>) -> Self {
        ResponseFuture {
            state: State::Delaying {
                sleep: Box::pin(tokio::time::sleep(delay)),
                then: Some(then),
            },
        }
    }

    /// The abort, now, in place of the call.
    pub(crate) fn aborted(abort: Abort<Res>) -> Self {
        let state = match abort.0 {
            AbortKind::Error(make) => State::Ready {
                result: Some(Err(make())),
            },
            AbortKind::Response(make) => State::Ready {
                result: Some(Ok(make())),
            },
            AbortKind::Hang => State::Hanging,
        };
        ResponseFuture { state }
    }
}

impl<F, S, Req, Res, E> Future for ResponseFuture<F, S, Req, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    S: Service<Req, Response = Res, Future = F, Error = E>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { response } => {
                    return response.poll(cx).map_err(Into::into);
                }
                StateProj::Delaying { sleep, then } => {
                    ready!(sleep.as_mut().poll(cx));
                    let next = match then.take().expect("taken once, when the delay ends") {
                        Then::Call(mut svc, request) => State::Calling {
                            response: svc.call(request),
                        },
                        Then::Abort(abort) => {
                            ResponseFuture::<F, S, Req, Res>::aborted(abort).state
                        }
                    };
                    this.state.set(next);
                }
                StateProj::Ready { result } => {
                    return Poll::Ready(
                        result
                            .take()
                            .expect("chaos ResponseFuture polled after completion"),
                    );
                }
                // Never woken: only a timeout above (or the caller) ends it.
                StateProj::Hanging => return Poll::Pending,
            }
        }
    }
}

impl<F, S, Req, Res> fmt::Debug for ResponseFuture<F, S, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Calling { .. } => "ResponseFuture::Calling",
            State::Delaying { .. } => "ResponseFuture::Delaying",
            State::Ready { .. } => "ResponseFuture::Ready",
            State::Hanging => "ResponseFuture::Hanging",
        })
    }
}
