//! The response future of a [`ReqwestEndpoint`](super::ReqwestEndpoint).

use bytes::Bytes;
use http_body_util::combinators::Collect;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower_service::Service;

/// What `reqwest::Client::call` returns (reqwest does not export the type).
type Sending = <::reqwest::Client as Service<::reqwest::Request>>::Future;

pin_project! {
    /// Response future of [`ReqwestEndpoint`](super::ReqwestEndpoint): sends
    /// the request, then reads the whole body, and resolves to an
    /// `http::Response<Bytes>`.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops reqwest's own future: the request is abandoned
    /// (its connection is closed rather than returned to the pool if the
    /// answer was not read to the end).
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        // The request is on its way; the head has not arrived.
        Sending {
            #[pin]
            sending: Sending,
        },
        // The head has arrived; the body is being read.
        Reading {
            head: Option<http::response::Parts>,
            #[pin]
            body: Collect<::reqwest::Body>,
        },
        // The request could not be made (an unusable URL); taken once.
        Failed {
            error: Option<::reqwest::Error>,
        },
    }
}

impl ResponseFuture {
    pub(super) fn sending(sending: Sending) -> Self {
        ResponseFuture {
            state: State::Sending { sending },
        }
    }

    pub(super) fn failed(error: ::reqwest::Error) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Bytes>, ::reqwest::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Sending { sending } => {
                    let response = ready!(sending.poll(cx))?;
                    let (head, body) = http::Response::from(response).into_parts();
                    state.set(State::Reading {
                        head: Some(head),
                        body: body.collect(),
                    });
                }
                StateProj::Reading { head, body } => {
                    let body = ready!(body.poll(cx))?.to_bytes();
                    // NOTE: `head` is only taken here, on the poll that
                    // completes the future.
                    let head = head.take().expect("polled after completion");
                    return Poll::Ready(Ok(http::Response::from_parts(head, body)));
                }
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Sending { .. } => "sending",
            State::Reading { .. } => "reading",
            State::Failed { .. } => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
