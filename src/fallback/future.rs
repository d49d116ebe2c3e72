//! The fallback's response future.

use super::cause::Cause;
use super::error::{FallbackFailed, FallbackRejected};
use super::function::FallbackFn;
use super::stats::{Shared, Stats, Timing};
use crate::catch_panic::Panicked;
use crate::internal::shard::Lane;
use crate::window::Category;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// Response future of [`Fallback`](super::Fallback): the call, then, if
    /// it fails, the fallback.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops whichever of the two is running and frees the
    /// fallback's place under the cap.
    pub struct ResponseFuture<F, FB, G> {
        #[pin]
        state: State<F, G, FB>,
        shared: Arc<Lane<Shared<FB>>>,
    }
}

/// A fallback in progress: frees its place under the cap when dropped,
/// and counts a fallback whose poll unwound as failed.
struct Running<FB> {
    shared: Arc<Lane<Shared<FB>>>,
    polling: bool,
    timing: Option<Timing>,
}

impl<FB> Drop for Running<FB> {
    fn drop(&mut self) {
        if self.polling {
            self.shared.stats.failed();
            self.shared.stats.record(self.timing, Category::Failure);
        }
        self.shared.stats.leave();
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, G, FB> {
        Calling {
            #[pin]
            response: F,
        },
        Recovering {
            #[pin]
            fallback: G,
            cause: Option<Cause>,
            running: Option<Running<FB>>,
        },
        Done,
    }
}

impl<F, FB, G> ResponseFuture<F, FB, G> {
    pub(crate) fn new(response: F, shared: Arc<Lane<Shared<FB>>>) -> Self {
        ResponseFuture {
            state: State::Calling { response },
            shared,
        }
    }
}

impl<F, FB, T, E> Future for ResponseFuture<F, FB, FB::Future>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    FB: FallbackFn<T>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { response } => {
                    let error = match ready!(response.poll(cx)) {
                        Ok(response) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                        Err(e) => e.into(),
                    };
                    let stats = &this.shared.stats;
                    if !stats.enabled() {
                        // Switched off live (Hystrix's `fallback.enabled`):
                        // the error goes to the caller as it is, uncounted.
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error));
                    }
                    let cause = Cause::new(error);
                    let timing = stats.timing();
                    // Without a fallback the error passes through untouched;
                    // only a fallback that will run takes a place under the
                    // cap.
                    let fallback = match recover(this.shared, &cause) {
                        Ok(Some(fallback)) => fallback,
                        Ok(None) => {
                            stats.missed();
                            stats.record(timing, Category::Ignored);
                            this.state.set(State::Done);
                            return Poll::Ready(Err(cause.into_error()));
                        }
                        Err(panicked) => {
                            stats.failed();
                            stats.record(timing, Category::Failure);
                            this.state.set(State::Done);
                            let error = FallbackFailed::new(cause.into_error(), panicked);
                            return Poll::Ready(Err(error.into()));
                        }
                    };
                    if !stats.enter() {
                        stats.record(timing, Category::Rejected);
                        this.state.set(State::Done);
                        return Poll::Ready(Err(FallbackRejected::new(cause.into_error()).into()));
                    }
                    // The place is held by the future's own per-shard lane:
                    // no clone of a count every thread shares.
                    let running = Running {
                        shared: this.shared.clone(),
                        polling: false,
                        timing,
                    };
                    this.state.set(State::Recovering {
                        fallback,
                        cause: Some(cause),
                        running: Some(running),
                    });
                }
                StateProj::Recovering {
                    fallback,
                    cause,
                    running,
                } => {
                    let contain = this.shared.contain_panics;
                    let result = {
                        let place = running.as_mut().expect("held while running");
                        place.polling = true;
                        let result = poll_fallback(fallback, cx, contain);
                        place.polling = false;
                        ready!(result)
                    };
                    let timing = running.take().and_then(|r| r.timing);
                    let cause = cause.take().expect("taken only here");
                    this.state.set(State::Done);
                    let stats = &this.shared.stats;
                    return Poll::Ready(match result {
                        Ok(response) => {
                            stats.succeeded();
                            stats.record(timing, Category::Success);
                            Ok(response)
                        }
                        Err(e) => {
                            stats.failed();
                            stats.record(timing, Category::Failure);
                            Err(FallbackFailed::new(cause.into_error(), e).into())
                        }
                    });
                }
                StateProj::Done => panic!("fallback ResponseFuture polled after completion"),
            }
        }
    }
}

/// Starts the fallback; a panic in the closure is an error when contained,
/// and counted as a failed fallback when it unwinds.
fn recover<FB: FallbackFn<T>, T>(
    shared: &Shared<FB>,
    cause: &Cause,
) -> Result<Option<FB::Future>, BoxError> {
    if shared.contain_panics {
        return catch_unwind(AssertUnwindSafe(|| shared.fallback.recover(cause)))
            .map_err(|payload| Panicked::from_fallback(&*payload).into());
    }
    struct Unwinding<'a>(&'a Stats);
    impl Drop for Unwinding<'_> {
        fn drop(&mut self) {
            self.0.failed();
        }
    }
    let unwinding = Unwinding(&shared.stats);
    let fallback = shared.fallback.recover(cause);
    std::mem::forget(unwinding);
    Ok(fallback)
}

/// Polls the fallback; a panic is an error when contained.
fn poll_fallback<G, T>(
    fallback: Pin<&mut G>,
    cx: &mut Context<'_>,
    contain: bool,
) -> Poll<Result<T, BoxError>>
where
    G: Future<Output = Result<T, BoxError>>,
{
    if !contain {
        return fallback.poll(cx);
    }
    catch_unwind(AssertUnwindSafe(|| fallback.poll(cx)))
        .unwrap_or_else(|payload| Poll::Ready(Err(Panicked::from_fallback(&*payload).into())))
}

impl<F, FB, G> fmt::Debug for ResponseFuture<F, FB, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Calling { .. } => "calling",
            State::Recovering { .. } => "recovering",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
