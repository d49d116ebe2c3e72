//! The rate limit's response future.

use super::error::RateLimited;
use super::state::{comes_in_time, Shared};
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{sleep_until, Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// Response future of [`RateLimit`](super::RateLimit): the inner call,
    /// a call waiting for its permit, or an immediate
    /// [`RateLimited`].
    ///
    /// # Cancel safety
    ///
    /// A waiting call holds no permit (GCRA takes one only when it lets a
    /// call through), so dropping it while it waits takes nothing from
    /// the other calls; the inner service it carried is dropped with it.
    pub struct ResponseFuture<S, Req, K>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future, S, Req, K>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, K> {
        Called {
            #[pin]
            response: F,
        },
        Waiting {
            // Taken when the permit comes (`None` only in passing).
            inner: Option<S>,
            request: Option<Req>,
            key: K,
            shared: Arc<Shared<K>>,
            deadline: Instant,
            #[pin]
            sleep: Sleep,
        },
        Rejected {
            retry_after: Duration,
        },
    }
}

impl<S: Service<Req>, Req, K> ResponseFuture<S, Req, K> {
    pub(crate) fn called(response: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { response },
        }
    }

    pub(crate) fn waiting(
        inner: S,
        request: Req,
        key: K,
        shared: Arc<Shared<K>>,
        next: Instant,
        deadline: Instant,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                inner: Some(inner),
                request: Some(request),
                key,
                shared,
                deadline,
                sleep: sleep_until(next),
            },
        }
    }

    pub(crate) fn rejected(retry_after: Duration) -> Self {
        ResponseFuture {
            state: State::Rejected { retry_after },
        }
    }
}

impl<S, Req, K> Future for ResponseFuture<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Called { response } => {
                    return response.poll(cx).map_err(Into::into);
                }
                StateProj::Rejected { retry_after } => {
                    return Poll::Ready(Err(RateLimited::new(*retry_after).into()));
                }
                StateProj::Waiting {
                    inner,
                    request,
                    key,
                    shared,
                    deadline,
                    mut sleep,
                } => {
                    ready!(sleep.as_mut().poll(cx));
                    match shared.check(key) {
                        Ok(()) => {
                            shared.waited();
                            // NOTE: `inner` was made ready before it was
                            // taken along, and nothing has called it since.
                            let mut inner = inner.take().expect("taken once");
                            let request = request.take().expect("taken once");
                            State::Called {
                                response: inner.call(request),
                            }
                        }
                        Err(not_yet) => {
                            // Another call took the permit: wait for the
                            // next one if it still comes in time.
                            let next = shared.instant(not_yet);
                            if comes_in_time(next, *deadline) {
                                sleep.reset(next);
                                continue;
                            }
                            State::Rejected {
                                retry_after: shared.reject(next),
                            }
                        }
                    }
                }
            };
            state.set(next);
        }
    }
}

impl<S: Service<Req>, Req, K> fmt::Debug for ResponseFuture<S, Req, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Waiting { .. } => "waiting",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
