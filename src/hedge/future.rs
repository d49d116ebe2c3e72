//! The hedge layer's response future: the first copy, hedges after their
//! delays, and the first success.

use super::layer::Shared;
use crate::circuit_breaker::Outcome;
use crate::retry::Policy;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// Hedges still to send: the service clone and request copy they go
/// through, and the delay before each.
struct Plan<S, Req> {
    service: S,
    request: Req,
    delay: Duration,
    sent: u32,
    /// The delay is over: waiting for the service to be ready.
    readying: bool,
}

pin_project! {
    /// Response future of [`Hedge`](super::Hedge).
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops every attempt in flight; no hedge starts after.
    pub struct ResponseFuture<S, P, Req>
    where
        S: Service<Req>,
    {
        shared: Arc<Shared<P>>,
        started: Instant,
        #[pin]
        first: Attempt<S::Future>,
        // Boxed, and allocated only once a hedge is sent.
        hedges: Vec<Pin<Box<S::Future>>>,
        plan: Option<Plan<S, Req>>,
        #[pin]
        timer: Timer,
        // The last attempt that failed (by the policy's outcome: an error,
        // or a response such as a 503), returned if none succeeds.
        last: Option<Result<S::Response, BoxError>>,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum Attempt<F> {
        Running {
            #[pin]
            response: F,
        },
        Over,
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        Armed {
            #[pin]
            sleep: Sleep,
        },
        Off,
    }
}

impl<S, P, Req> ResponseFuture<S, P, Req>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        shared: Arc<Shared<P>>,
        first: S::Future,
        hedge: Option<(S, Req, Duration)>,
        started: Instant,
    ) -> Self {
        let (plan, timer) = match hedge {
            Some((service, request, delay)) => (
                Some(Plan {
                    service,
                    request,
                    delay,
                    sent: 0,
                    readying: false,
                }),
                Timer::Armed {
                    sleep: tokio::time::sleep_until(started + delay),
                },
            ),
            None => (None, Timer::Off),
        };
        ResponseFuture {
            shared,
            started,
            first: Attempt::Running { response: first },
            hedges: Vec::new(),
            plan,
            timer,
            last: None,
        }
    }
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
            // The first copy.
            if let AttemptProj::Running { response } = this.first.as_mut().project() {
                if let Poll::Ready(result) = response.poll(cx) {
                    this.first.set(Attempt::Over);
                    let result = result.map_err(Into::into);
                    if this.shared.policy.outcome(&result) != Outcome::Failure {
                        let losers = this.hedges.len() as u64;
                        return Poll::Ready(won(this.shared, *this.started, result, false, losers));
                    }
                    *this.last = Some(result);
                }
            }
            // The hedges.
            let mut i = 0;
            while i < this.hedges.len() {
                match this.hedges[i].as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        let result = result.map_err(Into::into);
                        if this.shared.policy.outcome(&result) != Outcome::Failure {
                            let running = matches!(*this.first, Attempt::Running { .. });
                            let losers = (this.hedges.len() - 1) as u64 + u64::from(running);
                            return Poll::Ready(won(
                                this.shared,
                                *this.started,
                                result,
                                true,
                                losers,
                            ));
                        }
                        *this.last = Some(result);
                        drop(this.hedges.swap_remove(i));
                    }
                    Poll::Pending => i += 1,
                }
            }
            let running = matches!(*this.first, Attempt::Running { .. }) || !this.hedges.is_empty();
            if !running {
                // Every attempt failed: hedging is for slowness, not
                // errors; the last failure (error or response) comes back.
                *this.plan = None;
                return Poll::Ready(this.last.take().expect("an attempt failed"));
            }
            // The next hedge, once its delay is over and the service ready.
            let Some(plan) = this.plan.as_mut() else {
                return Poll::Pending;
            };
            if let TimerProj::Armed { sleep } = this.timer.as_mut().project() {
                if sleep.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer.set(Timer::Off);
                plan.readying = true;
            }
            if !plan.readying {
                return Poll::Pending;
            }
            match plan.service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                // A service that cannot get ready sends no hedge; the
                // attempts in flight go on.
                Poll::Ready(Err(_)) => {
                    *this.plan = None;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {}
            }
            plan.readying = false;
            if !this.shared.try_hedge() {
                // Past the extra-load cap or the budget: no more hedges.
                *this.plan = None;
                return Poll::Pending;
            }
            let copy = plan.request.clone();
            this.hedges.push(Box::pin(plan.service.call(copy)));
            plan.sent += 1;
            this.shared.sent();
            if plan.sent < this.shared.max_hedged {
                let next = Instant::now() + plan.delay;
                this.timer.set(Timer::Armed {
                    sleep: tokio::time::sleep_until(next),
                });
            } else {
                *this.plan = None;
            }
            // Poll the new hedge (and the new timer) at once.
        }
    }
}

/// A success (or a result the policy does not call a failure): count it,
/// and time it for the percentile delay.
fn won<P, Res>(
    shared: &Shared<P>,
    started: Instant,
    response: Res,
    by_hedge: bool,
    losers: u64,
) -> Res {
    if by_hedge {
        shared.won();
    }
    shared.cancelled(losers);
    if shared.tracker.measures() {
        let now = Instant::now();
        shared.tracker.record(now, now - started);
    }
    response
}

impl<S, P, Req> fmt::Debug for ResponseFuture<S, P, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("hedges", &self.hedges.len())
            .finish_non_exhaustive()
    }
}
