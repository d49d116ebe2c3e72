//! The chaos layer's response future.

use super::faults::{Abort, AbortKind, Cut};
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower_service::Service;

/// What an injected fault does once its delay (if any) is over.
pub(crate) enum Then<S, Req, Res> {
    /// Call the readied inner service, cutting the response's body if a
    /// cut is given.
    Call(S, Req, Option<Cut<Res>>),
    /// Abort instead of calling.
    Abort(Abort<Res>),
}

pin_project! {
    /// Response future of [`Chaos`](super::Chaos): the inner call, or the
    /// fault injected in its place.
    ///
    /// A call the layer lets through (switched off, or not drawn) is the
    /// inner future and nothing else; only an injected fault pays for
    /// the boxed state machine that delays, aborts or cuts.
    ///
    /// # Cancel safety
    ///
    /// Dropping it during an injected delay drops the readied inner
    /// service with the request, uncalled; an injected hang ends only by
    /// being dropped.
    pub struct ResponseFuture<F, S, Req, Res> {
        #[pin]
        kind: Kind<F, S, Req, Res>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req, Res> {
        Passing {
            #[pin]
            response: F,
        },
        Injected {
            fault: Pin<Box<Injected<F, S, Req, Res>>>,
        },
    }
}

pin_project! {
    /// The injected path's state machine.
    #[project = InjectedProj]
    enum Injected<F, S, Req, Res> {
        Delaying {
            #[pin]
            sleep: Sleep,
            then: Option<Then<S, Req, Res>>,
        },
        Calling {
            #[pin]
            response: F,
            cut: Option<Cut<Res>>,
        },
        Ready {
            result: Option<Result<Res, BoxError>>,
        },
        Hanging,
    }
}

impl<F, S, Req, Res> ResponseFuture<F, S, Req, Res> {
    /// The inner call, untouched.
    #[inline]
    pub(crate) fn passing(response: F) -> Self {
        ResponseFuture {
            kind: Kind::Passing { response },
        }
    }
}

impl<F, S, Req, Res> ResponseFuture<F, S, Req, Res>
where
    S: Service<Req, Response = Res, Future = F>,
{
    /// A fault: `then`, after `delay` if there is one.
    pub(crate) fn injected(delay: Option<Duration>, then: Then<S, Req, Res>) -> Self {
        let fault = match delay {
            Some(delay) => Injected::Delaying {
                sleep: tokio::time::sleep(delay),
                then: Some(then),
            },
            None => Injected::start(then),
        };
        ResponseFuture {
            kind: Kind::Injected {
                fault: Box::pin(fault),
            },
        }
    }
}

impl<F, S, Req, Res> Injected<F, S, Req, Res>
where
    S: Service<Req, Response = Res, Future = F>,
{
    fn start(then: Then<S, Req, Res>) -> Self {
        match then {
            Then::Call(mut svc, request, cut) => Injected::Calling {
                response: svc.call(request),
                cut,
            },
            Then::Abort(abort) => match abort.0 {
                AbortKind::Error(make) => Injected::Ready {
                    result: Some(Err(make())),
                },
                AbortKind::Response(make) => Injected::Ready {
                    result: Some(Ok(make())),
                },
                AbortKind::Hang => Injected::Hanging,
                // `Chaos::inject` makes a cut a `Then::Call`.
                AbortKind::Cut(_) => unreachable!("a cut calls the dependency"),
            },
        }
    }
}

impl<F, S, Req, Res, E> Future for ResponseFuture<F, S, Req, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    S: Service<Req, Response = Res, Future = F, Error = E>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passing { response } => response.poll(cx).map_err(Into::into),
            KindProj::Injected { fault } => fault.as_mut().poll(cx),
        }
    }
}

impl<F, S, Req, Res, E> Future for Injected<F, S, Req, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    S: Service<Req, Response = Res, Future = F, Error = E>,
{
    type Output = Result<Res, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                InjectedProj::Delaying { sleep, then } => {
                    ready!(sleep.poll(cx));
                    let then = then.take().expect("taken once, when the delay ends");
                    self.set(Injected::start(then));
                }
                InjectedProj::Calling { response, cut } => {
                    let response = ready!(response.poll(cx)).map_err(Into::into)?;
                    return Poll::Ready(Ok(match cut.take() {
                        Some(cut) => cut(response),
                        None => response,
                    }));
                }
                InjectedProj::Ready { result } => {
                    return Poll::Ready(
                        result
                            .take()
                            .expect("chaos ResponseFuture polled after completion"),
                    );
                }
                // Never woken: only a timeout above (or the caller) ends it.
                InjectedProj::Hanging => return Poll::Pending,
            }
        }
    }
}

impl<F, S, Req, Res> fmt::Debug for ResponseFuture<F, S, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.kind {
            Kind::Passing { .. } => "ResponseFuture::Passing",
            Kind::Injected { fault } => match **fault {
                Injected::Delaying { .. } => "ResponseFuture::Delaying",
                Injected::Calling { .. } => "ResponseFuture::Calling",
                Injected::Ready { .. } => "ResponseFuture::Ready",
                Injected::Hanging => "ResponseFuture::Hanging",
            },
        })
    }
}
