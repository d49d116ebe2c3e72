//! The retry layer's response future: attempt, decide, back off, again.

use super::error::RetryBudgetExhausted;
use super::layer::{Shared, LAYER};
use super::policy::Policy;
use crate::metrics::{debug_enabled, TARGET_RETRY};
use crate::{BoxError, ErrorKind};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// Response future of [`Retry`](super::Retry).
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the attempt in flight (or the backoff) and the
    /// request's copy; no attempt starts after that.
    pub struct ResponseFuture<S, P, Req>
    where
        S: Service<Req>,
    {
        shared: Arc<Shared<P>>,
        // A clone of the service and a copy of the request, while attempts
        // remain; the last attempt takes the copy.
        retries: Option<(S, Req)>,
        // Attempts started so far.
        attempts: u32,
        last_delay: Duration,
        #[pin]
        state: State<S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling {
            #[pin]
            response: F,
        },
        // Boxed: only a call that backs off pays for a `Sleep`.
        Backoff {
            sleep: Pin<Box<Sleep>>,
        },
        Readying,
        Done,
    }
}

impl<S, P, Req> ResponseFuture<S, P, Req>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        shared: Arc<Shared<P>>,
        response: S::Future,
        retries: Option<(S, Req)>,
    ) -> Self {
        ResponseFuture {
            shared,
            retries,
            attempts: 1,
            last_delay: Duration::ZERO,
            state: State::Calling { response },
        }
    }
}

/// What follows an attempt.
enum Next<T> {
    Return(T),
    Retry(Duration),
}

impl<S, P, Req> Future for ResponseFuture<S, P, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let result = match this.state.as_mut().project() {
                StateProj::Calling { response } => ready!(response.poll(cx)).map_err(Into::into),
                StateProj::Backoff { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Readying);
                    continue;
                }
                StateProj::Readying => {
                    let (svc, _) = this.retries.as_mut().expect("kept while attempts remain");
                    match ready!(svc.poll_ready(cx)) {
                        Ok(()) => {
                            *this.attempts += 1;
                            let last = *this.attempts >= this.shared.max_attempts;
                            let response = if last {
                                let (mut svc, request) = this.retries.take().expect("kept");
                                svc.call(request)
                            } else {
                                let (svc, request) = this.retries.as_mut().expect("kept");
                                let copy = request.clone();
                                svc.call(copy)
                            };
                            this.state.set(State::Calling { response });
                            continue;
                        }
                        // A service that cannot get ready failed this
                        // attempt before it was sent.
                        Err(e) => {
                            *this.attempts += 1;
                            Err(e.into())
                        }
                    }
                }
                StateProj::Done => panic!("retry ResponseFuture polled after completion"),
            };
            match decide(
                this.shared,
                this.retries.as_ref(),
                *this.attempts,
                *this.last_delay,
                result,
            ) {
                Next::Return(result) => {
                    this.state.set(State::Done);
                    return Poll::Ready(result);
                }
                Next::Retry(delay) => {
                    *this.last_delay = delay;
                    if delay.is_zero() {
                        this.state.set(State::Readying);
                    } else {
                        this.state.set(State::Backoff {
                            sleep: Box::pin(tokio::time::sleep(delay)),
                        });
                    }
                }
            }
        }
    }
}

/// After attempt number `attempts` ended in `result`: return it, or retry
/// after a wait.
fn decide<S, P, Req, Res>(
    shared: &Shared<P>,
    retries: Option<&(S, Req)>,
    attempts: u32,
    last_delay: Duration,
    result: Result<Res, BoxError>,
) -> Next<Result<Res, BoxError>>
where
    P: Policy<Req, Res>,
{
    let Some((_, request)) = retries else {
        return Next::Return(result);
    };
    if attempts >= shared.max_attempts {
        return Next::Return(result);
    }
    let kind = result.as_ref().err().map(ErrorKind::of);
    match kind {
        Some(ErrorKind::CircuitOpen) if !shared.retry_circuit_open => return Next::Return(result),
        // The caller's deadline has passed (or a deadline beneath cut the
        // attempt): a retry would be refused as it starts, or, above a
        // deadline layer that sets a fresh one per attempt, would stretch
        // the caller's.
        Some(ErrorKind::DeadlineExceeded) => return Next::Return(result),
        _ => {}
    }
    if !shared.policy.is_retryable(request, &result) {
        return Next::Return(result);
    }
    let retry_after = shared
        .policy
        .retry_after(&result)
        .or_else(|| match (kind, &result) {
            // A rate limit says when its next permit comes: read as the
            // dependency's `Retry-After` (Envoy's rule for rate-limited
            // retries), so no retry goes out that is sure to be refused.
            #[cfg(feature = "rate-limit")]
            (Some(ErrorKind::RateLimited), Err(e)) => crate::rate_limit::retry_after_in(&**e),
            _ => None,
        });
    if retry_after.is_some_and(|wait| wait > shared.max_retry_after) {
        return Next::Return(result);
    }
    let backoff = shared.backoff.delay(attempts, last_delay);
    let wait = retry_after.map_or(backoff, |wait| wait.max(backoff));
    if crate::internal::deadline::leaves_no_time_for(wait) {
        // The caller's deadline passes first: no retry, no budget spent.
        return Next::Return(result);
    }
    if !shared.budget.try_withdraw() {
        shared.budget_exhausted.increment(1);
        shared.counts.refusals.fetch_add(1, Ordering::Relaxed);
        if debug_enabled() {
            retry_event(
                "retry_budget_exhausted",
                "retry refused: the retry budget is spent",
                &shared.name,
                attempts,
                result.as_ref().err(),
            );
        }
        return Next::Return(match result {
            Ok(mut response) => {
                shared.policy.on_retry_budget_exhausted(&mut response);
                Ok(response)
            }
            Err(e) => Err(RetryBudgetExhausted::new(e).into()),
        });
    }
    shared.retried.increment(1);
    shared.counts.retries.fetch_add(1, Ordering::Relaxed);
    if debug_enabled() {
        retry_event(
            "retry",
            "attempt failed, retrying",
            &shared.name,
            attempts,
            result.as_ref().err(),
        );
    }
    Next::Retry(wait)
}

/// A retry, or one the budget refused (`event`), after attempt `attempt`
/// failed (with `error`, unless it answered with a retried response).
#[cold]
#[inline(never)]
fn retry_event(
    event: &'static str,
    message: &'static str,
    name: &str,
    attempt: u32,
    error: Option<&BoxError>,
) {
    tracing::debug!(
        target: TARGET_RETRY,
        layer = LAYER,
        name,
        event,
        attempt,
        error = error.map(tracing::field::display),
        "{message}"
    );
}

impl<S, P, Req> fmt::Debug for ResponseFuture<S, P, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("name", &self.shared.name)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
