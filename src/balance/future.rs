//! The balancer's response future: choose, call, and retry elsewhere.

use super::endpoint::{Ended, EndpointState, InFlight};
use super::error::NoHealthyEndpoint;
use super::service::{Shared, LAYER};
use super::set::Tried;
use crate::circuit_breaker::Outcome;
use crate::internal::cancel;
use crate::internal::clock::{Micros, Reading};
use crate::internal::shard::Lane;
use crate::metrics::{debug_enabled, TARGET_BALANCE};
use crate::retry::Policy;
use crate::retry::RetryBudgetExhausted;
use crate::{BoxError, ErrorKind};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{sleep, Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// Response future of [`Balance`](super::Balance): the attempts of one
    /// call, on one endpoint or several.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the attempt in flight, and the endpoint's load
    /// count goes back down. What the drop says of the endpoint depends on
    /// who drops it:
    ///
    /// - rampart's [`Timeout`](crate::timeout::Timeout) (or a `Command`)
    ///   above the balancer cutting the call off: a timeout for the
    ///   endpoint, counted against its health like any failure;
    /// - anyone else (the caller walking away, or a timeout that is not
    ///   rampart's, such as `tokio::time::timeout`): a cancellation, not
    ///   held against the endpoint; only if the attempt had already run
    ///   longer than the endpoint's latency estimate does that time raise
    ///   the estimate (it is a lower bound on the endpoint's latency).
    ///
    /// # Panics
    ///
    /// A panic in the endpoint's service (`poll_ready`, `call`) or in its
    /// future unwinds through this future; when it is then dropped (by the
    /// unwinding, or by tokio after catching the panic), the attempt counts
    /// as a failure for the endpoint and leaves no load count behind.
    pub struct ResponseFuture<K, S, Req, P>
    where
        S: Service<Req>,
    {
        shared: Arc<Lane<Shared<K, S, P>>>,
        // Kept for retries; taken by the last possible attempt.
        request: Option<Req>,
        tried: Tried,
        // Attempts on the current endpoint, and endpoints used so far.
        on_endpoint: u32,
        endpoints: u32,
        retries: u32,
        // The last backoff, for decorrelated jitter.
        last_delay: Duration,
        deposited: bool,
        // A hedge: never an endpoint in `tried` (the one the call it hedges
        // is on), even when nothing else is left.
        elsewhere: bool,
        // Set while the endpoint's own code runs (its `poll_ready`, `call`
        // or future): still set when the future is dropped, that code
        // panicked.
        in_endpoint: bool,
        // The hedge of this call, when the balancer hedges and the call may
        // be sent twice; boxed, so calls that are not hedged stay small.
        hedging: Option<Pin<Box<Hedging<K, S, Req, P>>>>,
        #[pin]
        state: State<K, S, S::Future>,
    }

    impl<K, S, Req, P> PinnedDrop for ResponseFuture<K, S, Req, P>
    where
        S: Service<Req>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            end_in_flight(this.shared, this.state, *this.in_endpoint);
        }
    }
}

pin_project! {
    /// A call's hedge: when to send it, the copy to send, and the hedge's
    /// own balanced call once sent (to another endpoint).
    struct Hedging<K, S, Req, P>
    where
        S: Service<Req>,
    {
        #[pin]
        timer: Sleep,
        began: Instant,
        // Taken when the hedge goes out (or is given up).
        copy: Option<Req>,
        sent: Option<Pin<Box<ResponseFuture<K, S, Req, P>>>>,
        // The call's own attempts ended in a failure (by the policy: an
        // error, or a response such as a 503).
        first_failed: bool,
        last: Option<Result<S::Response, BoxError>>,
    }
}

/// Ends the attempt in flight in `state`, if any, for the endpoint: as a
/// failure if the endpoint's own code was running (it panicked), a
/// timeout if a timeout or deadline above is dropping it, else a
/// cancellation.
fn end_in_flight<K, S, P, F>(
    shared: &Arc<Lane<Shared<K, S, P>>>,
    state: Pin<&mut State<K, S, F>>,
    in_endpoint: bool,
) {
    let set = &shared.set;
    let (endpoint, started) = match state.project() {
        StateProj::Calling {
            attempt, started, ..
        } => match attempt.finish() {
            Some(endpoint) => (endpoint, Some(*started)),
            None => return,
        },
        // A panic in the endpoint's `poll_ready` or `call`.
        StateProj::Ready {
            endpoint: Some(endpoint),
            ..
        } if in_endpoint => (endpoint.clone(), None),
        _ => return,
    };
    let ended = if in_endpoint {
        Ended::Failure
    } else if cancel::is_timing_out() {
        Ended::Timeout
    } else {
        Ended::Cancelled
    };
    let now = set.clock.now();
    set.ended(
        &endpoint,
        ended,
        now,
        started.map(|t| now.saturating_sub(t)),
    );
}

pin_project! {
    #[project = StateProj]
    enum State<K, S, F> {
        // Choose an endpoint, or go back to `again`.
        Pick { again: Option<Arc<EndpointState<K, S>>> },
        // Wait for the endpoint's service to be ready.
        // `endpoint` is moved on to the attempt (`None` only in passing).
        Ready { endpoint: Option<Arc<EndpointState<K, S>>>, service: S },
        Calling {
            #[pin]
            response: F,
            attempt: InFlight<K, S>,
            started: Micros,
        },
        Backoff {
            #[pin]
            sleep: Sleep,
            again: Option<Arc<EndpointState<K, S>>>,
        },
        Done,
    }
}

impl<K, S, Req, P> ResponseFuture<K, S, Req, P>
where
    S: Service<Req>,
{
    fn with(shared: Arc<Lane<Shared<K, S, P>>>, request: Req, tried: Tried, hedge: bool) -> Self {
        ResponseFuture {
            shared,
            request: Some(request),
            tried,
            on_endpoint: 0,
            endpoints: 0,
            retries: 0,
            last_delay: Duration::ZERO,
            // A hedge is no new request: it earns no retry.
            deposited: hedge,
            elsewhere: hedge,
            in_endpoint: false,
            hedging: None,
            state: State::Pick { again: None },
        }
    }

    /// The endpoint the call is on (or getting ready on), if any.
    fn endpoint_id(self: Pin<&mut Self>) -> Option<u64> {
        match self.project().state.project() {
            StateProj::Calling { attempt, .. } => attempt.endpoint_id(),
            StateProj::Ready {
                endpoint: Some(endpoint),
                ..
            } => Some(endpoint.id),
            _ => None,
        }
    }

    /// Drops the attempt in flight, as the caller would (the hedge won).
    fn abandon(self: Pin<&mut Self>) {
        let mut this = self.project();
        end_in_flight(this.shared, this.state.as_mut(), false);
        this.state.set(State::Done);
    }
}

impl<K, S, Req, P> ResponseFuture<K, S, Req, P>
where
    S: Service<Req>,
    P: Policy<Req, S::Response>,
    Req: Clone,
{
    /// A call; with its hedge planned if the balancer hedges, the policy
    /// may send the request twice, the delay is known and the caller's
    /// deadline leaves time for it.
    pub(crate) fn new(shared: Arc<Lane<Shared<K, S, P>>>, request: Req) -> Self {
        let hedging = shared.hedge.as_ref().and_then(|hedge| {
            // Every call earns its share of a hedge; one clock read serves
            // the deposit, the delay and the start.
            let now = Instant::now();
            hedge.cap.deposit_at(Reading::Tokio(now));
            if !shared.policy.may_send_twice(&request) {
                return None;
            }
            let delay = hedge.tracker.delay(now)?;
            if crate::internal::deadline::leaves_no_time_for(delay) {
                return None;
            }
            Some(Box::pin(Hedging {
                timer: tokio::time::sleep_until(now + delay),
                began: now,
                copy: Some(request.clone()),
                sent: None,
                first_failed: false,
                last: None,
            }))
        });
        let mut call = ResponseFuture::with(shared, request, Tried::default(), false);
        call.hedging = hedging;
        call
    }
}

impl<K, S, Req, P> Future for ResponseFuture<K, S, Req, P>
where
    K: PartialEq + fmt::Debug,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(mut hedging) = self.as_mut().project().hedging.take() else {
            return self.poll_attempts(cx);
        };
        let poll = self.as_mut().poll_hedged(hedging.as_mut(), cx);
        if poll.is_pending() {
            *self.as_mut().project().hedging = Some(hedging);
        }
        poll
    }
}

impl<K, S, Req, P> ResponseFuture<K, S, Req, P>
where
    K: PartialEq + fmt::Debug,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
    Req: Clone,
{
    /// A hedged call: this call's own attempts, and once its delay is
    /// over, a copy on another endpoint; the first success wins.
    fn poll_hedged(
        mut self: Pin<&mut Self>,
        mut hedging: Pin<&mut Hedging<K, S, Req, P>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, BoxError>> {
        let hedge = self
            .shared
            .hedge
            .clone()
            .expect("a hedged call has hedging");
        loop {
            let h = hedging.as_mut().project();
            if !*h.first_failed {
                if let Poll::Ready(result) = self.as_mut().poll_attempts(cx) {
                    if self.shared.policy.outcome(&result) != Outcome::Failure {
                        if let Some(sent) = h.sent.take() {
                            drop(sent);
                            hedge.cancelled(1);
                        }
                        record(&hedge, *h.began);
                        return Poll::Ready(result);
                    }
                    *h.first_failed = true;
                    *h.last = Some(result);
                }
            }
            if let Some(sent) = h.sent.as_mut() {
                if let Poll::Ready(result) = sent.as_mut().poll(cx) {
                    *h.sent = None;
                    if self.shared.policy.outcome(&result) != Outcome::Failure {
                        hedge.won();
                        if !*h.first_failed {
                            self.as_mut().abandon();
                            hedge.cancelled(1);
                        }
                        record(&hedge, *h.began);
                        return Poll::Ready(result);
                    }
                    // The call's own attempts go on (and return their
                    // own result if they fail too).
                    if *h.first_failed {
                        *h.last = Some(result);
                    }
                }
            }
            // Hedging is for slowness: a call that failed before its hedge
            // went out, or whose hedge failed too, ends with its error.
            if *h.first_failed && h.sent.is_none() {
                *h.copy = None;
                return Poll::Ready(h.last.take().expect("an attempt failed"));
            }
            if h.copy.is_none() || h.timer.poll(cx).is_pending() {
                return Poll::Pending;
            }
            let copy = h.copy.take().expect("checked above");
            // Another endpoint than the one the call is on, or no hedge.
            let mut tried = self.tried.clone();
            if let Some(id) = self.as_mut().endpoint_id() {
                tried.push(id);
            }
            let shared = &self.shared;
            let Some(endpoint) = shared.with_chooser(|rule| shared.set.pick_other(rule, &tried))
            else {
                return Poll::Pending;
            };
            if !hedge.try_hedge() {
                // Past the extra-load cap or the budget: no hedge.
                return Poll::Pending;
            }
            let mut sent = ResponseFuture::with(self.shared.clone(), copy, tried, true);
            sent.endpoints = 1;
            sent.state = State::Pick {
                again: Some(endpoint),
            };
            *h.sent = Some(Box::pin(sent));
            hedge.sent();
            // Poll the hedge at once.
        }
    }

    /// The call's own attempts, on one endpoint or several.
    fn poll_attempts(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, BoxError>> {
        let mut this = self.project();
        let shared: &Shared<K, S, P> = this.shared;
        loop {
            // The outcome of an attempt (or of readying its endpoint), and
            // when it ended and took, if it was sent.
            let (endpoint, result, timing) = match this.state.as_mut().project() {
                StateProj::Pick { again } => {
                    let endpoint = match again.take() {
                        Some(endpoint) => endpoint,
                        None => match if *this.elsewhere {
                            shared.with_chooser(|rule| shared.set.pick_other(rule, this.tried))
                        } else {
                            shared.with_chooser(|rule| shared.set.pick(rule, this.tried))
                        } {
                            Some(endpoint) => {
                                *this.endpoints += 1;
                                *this.on_endpoint = 0;
                                endpoint
                            }
                            None => {
                                shared.no_endpoint.increment(1);
                                if debug_enabled() {
                                    no_endpoint(&shared.set.name);
                                }
                                this.state.set(State::Done);
                                return Poll::Ready(Err(NoHealthyEndpoint::new().into()));
                            }
                        },
                    };
                    let service = endpoint.service.clone();
                    this.state.set(State::Ready {
                        endpoint: Some(endpoint),
                        service,
                    });
                    continue;
                }
                StateProj::Ready { endpoint, service } => {
                    *this.in_endpoint = true;
                    let ready = service.poll_ready(cx);
                    *this.in_endpoint = false;
                    let ready = ready!(ready);
                    // Counted once the endpoint answers: a service that is
                    // pending for a while is still one attempt.
                    *this.on_endpoint += 1;
                    if let Err(e) = ready {
                        // The endpoint could not take a call: an attempt
                        // that failed before it began.
                        let endpoint = endpoint.take().expect("present while ready");
                        (endpoint, Err(e.into()), None)
                    } else {
                        let last = *this.on_endpoint > shared.retries_same()
                            && *this.endpoints > shared.retries_next();
                        let request = if last {
                            this.request.take()
                        } else {
                            this.request.clone()
                        };
                        let request = request.expect("a request is kept while attempts remain");
                        *this.in_endpoint = true;
                        let response = service.call(request);
                        *this.in_endpoint = false;
                        // Only now, the request handed over: a `call` that
                        // panicked leaves no deposit and no load behind.
                        let endpoint = endpoint.take().expect("present while ready");
                        let now = shared.set.clock.read();
                        if !std::mem::replace(this.deposited, true) {
                            shared.budget.deposit_at(now);
                        }
                        let attempt = endpoint.start();
                        let started = shared.set.clock.micros_at(now);
                        this.state.set(State::Calling {
                            response,
                            attempt,
                            started,
                        });
                        continue;
                    }
                }
                StateProj::Calling {
                    response,
                    attempt,
                    started,
                } => {
                    *this.in_endpoint = true;
                    let result = response.poll(cx);
                    *this.in_endpoint = false;
                    let result = ready!(result).map_err(Into::into);
                    let now = shared.set.clock.now();
                    let rtt = now.saturating_sub(*started);
                    let endpoint = attempt.finish().expect("an attempt ends once");
                    (endpoint, result, Some((now, rtt)))
                }
                StateProj::Backoff { sleep, again } => {
                    ready!(sleep.poll(cx));
                    let again = again.take();
                    this.state.set(State::Pick { again });
                    continue;
                }
                StateProj::Done => panic!("balancer ResponseFuture polled after completion"),
            };

            // Health first: every attempt's outcome counts toward ejection,
            // and a failure raises the endpoint's load estimate.
            let set = &shared.set;
            let kind = result.as_ref().err().map(ErrorKind::of);
            let ended = match shared.policy.outcome(&result) {
                Outcome::Success => Ended::Success,
                Outcome::Ignored => Ended::Ignored,
                Outcome::Failure => match kind {
                    Some(ErrorKind::Timeout | ErrorKind::DeadlineExceeded) => Ended::Timeout,
                    _ => Ended::Failure,
                },
            };
            // One clock read per attempt end: the one taken for its latency.
            let now = timing.map_or_else(|| set.clock.now(), |(now, _)| now);
            set.ended(&endpoint, ended, now, timing.map(|(_, rtt)| rtt));

            // A hedge is one attempt: the call it hedges does the retrying.
            // Never after a deadline passed (a retry would be refused as it
            // starts, or would stretch the caller's deadline if one beneath
            // sets a fresh one per attempt), as the retry layer.
            let retryable = match this.request.as_ref() {
                Some(request) if !*this.elsewhere => {
                    kind != Some(ErrorKind::DeadlineExceeded)
                        && shared.policy.is_retryable(request, &result)
                }
                _ => false,
            };
            // Same endpoint again (`true`), another endpoint, or no more
            // attempts.
            let same = if !retryable {
                None
            } else if *this.on_endpoint <= shared.retries_same() && !set.is_out(&endpoint, now) {
                Some(true)
            } else if *this.endpoints <= shared.retries_next() {
                this.tried.push(endpoint.id);
                Some(false)
            } else {
                None
            };
            let Some(same) = same else {
                this.state.set(State::Done);
                return Poll::Ready(result);
            };
            let delay = shared
                .backoff
                .load()
                .delay(*this.retries + 1, *this.last_delay);
            if crate::internal::deadline::leaves_no_time_for(delay) {
                // The caller's deadline passes before the retry could
                // answer: no retry, and nothing taken from the budget.
                this.state.set(State::Done);
                return Poll::Ready(result);
            }
            // The attempt that just ended, counting from 1.
            let attempt = *this.retries + 1;
            if !shared.budget.try_withdraw() {
                shared.budget_exhausted.increment(1);
                if debug_enabled() {
                    retry_event(
                        "retry_budget_exhausted",
                        "retry refused: the retry budget is spent",
                        &set.name,
                        &endpoint.label,
                        attempt,
                        result.as_ref().err(),
                    );
                }
                this.state.set(State::Done);
                // Say so: on an error by wrapping it, on a response through
                // the policy (`HttpPolicy` marks it in its extensions).
                return Poll::Ready(match result {
                    Ok(mut response) => {
                        shared.policy.on_retry_budget_exhausted(&mut response);
                        Ok(response)
                    }
                    Err(e) => Err(RetryBudgetExhausted::new(e).into()),
                });
            }
            shared.retried.increment(1);
            if debug_enabled() {
                retry_event(
                    "retry",
                    "attempt failed, retrying",
                    &set.name,
                    &endpoint.label,
                    attempt,
                    result.as_ref().err(),
                );
            }
            let again = same.then_some(endpoint);
            *this.retries += 1;
            *this.last_delay = delay;
            if delay.is_zero() {
                this.state.set(State::Pick { again });
            } else {
                this.state.set(State::Backoff {
                    sleep: sleep(delay),
                    again,
                });
            }
        }
    }
}

#[cold]
#[inline(never)]
fn no_endpoint(name: &str) {
    tracing::debug!(
        target: TARGET_BALANCE,
        layer = LAYER,
        name,
        event = "no_endpoint",
        "no endpoint to send the call to"
    );
}

/// A hedged call's success: its latency, for a percentile delay.
fn record(hedge: &crate::hedge::HedgeShared<()>, began: Instant) {
    if hedge.tracker.measures() {
        let now = Instant::now();
        hedge.tracker.record(now, now - began);
    }
}

/// A retry, or one the budget refused (`event`), after `attempt` failed
/// on `endpoint` (with `error`, unless it answered with a retried
/// response).
#[cold]
#[inline(never)]
fn retry_event(
    event: &'static str,
    message: &'static str,
    name: &str,
    endpoint: &str,
    attempt: u32,
    error: Option<&BoxError>,
) {
    tracing::debug!(
        target: TARGET_BALANCE,
        layer = LAYER,
        name,
        event,
        endpoint,
        attempt,
        error = error.map(tracing::field::display),
        "{message}"
    );
}
