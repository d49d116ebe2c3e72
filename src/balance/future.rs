//! The balancer's response future: choose, call, and retry elsewhere.

use super::endpoint::{EndpointState, InFlight};
use super::error::NoHealthyEndpoint;
use super::policy::Policy;
use super::service::Shared;
use super::set::Tried;
use crate::circuit_breaker::Outcome;
use crate::internal::clock::Micros;
use crate::internal::shard::Lane;
use crate::retry::RetryBudgetExhausted;
use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::time::{sleep, Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// Response future of [`Balance`](super::Balance): the attempts of one
    /// call, on one endpoint or several.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the attempt in flight; the endpoint's load count
    /// goes back down and no outcome is recorded for it.
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
        deposited: bool,
        #[pin]
        state: State<K, S, S::Future>,
    }
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
    pub(crate) fn new(shared: Arc<Lane<Shared<K, S, P>>>, request: Req) -> Self {
        ResponseFuture {
            shared,
            request: Some(request),
            tried: Tried::default(),
            on_endpoint: 0,
            endpoints: 0,
            retries: 0,
            deposited: false,
            state: State::Pick { again: None },
        }
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared: &Shared<K, S, P> = this.shared;
        loop {
            // The outcome of an attempt (or of readying its endpoint), and
            // when it ended and took, if it was sent.
            let (endpoint, result, timing) = match this.state.as_mut().project() {
                StateProj::Pick { again } => {
                    let endpoint = match again.take() {
                        Some(endpoint) => endpoint,
                        None => match shared.set.pick(&*shared.rule, this.tried) {
                            Some(endpoint) => {
                                *this.endpoints += 1;
                                *this.on_endpoint = 0;
                                endpoint
                            }
                            None => {
                                shared.no_endpoint.increment(1);
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
                    let ready = ready!(service.poll_ready(cx));
                    let endpoint = endpoint.take().expect("present while ready");
                    // Counted once the endpoint answers: a service that is
                    // pending for a while is still one attempt.
                    *this.on_endpoint += 1;
                    if let Err(e) = ready {
                        // The endpoint could not take a call: an attempt
                        // that failed before it began.
                        (endpoint, Err(e.into()), None)
                    } else {
                        let last = *this.on_endpoint > shared.retries_same
                            && *this.endpoints > shared.retries_next;
                        let request = if last {
                            this.request.take()
                        } else {
                            this.request.clone()
                        };
                        let request = request.expect("a request is kept while attempts remain");
                        let now = Instant::now();
                        if !std::mem::replace(this.deposited, true) {
                            shared.budget.deposit_at(now);
                        }
                        let response = service.call(request);
                        let attempt = endpoint.start();
                        let started = shared.set.clock.at(now);
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
                    let result = ready!(response.poll(cx)).map_err(Into::into);
                    let now = shared.set.clock.now();
                    let rtt = now.saturating_sub(*started);
                    (attempt.finish(), result, Some((now, rtt)))
                }
                StateProj::Backoff { sleep, again } => {
                    ready!(sleep.poll(cx));
                    let again = again.take();
                    this.state.set(State::Pick { again });
                    continue;
                }
                StateProj::Done => panic!("balancer ResponseFuture polled after completion"),
            };

            // Health first: every attempt's outcome counts toward ejection.
            let set = &shared.set;
            let outcome = shared.policy.outcome(&result);
            // One clock read per attempt end: the one taken for its latency.
            let now = timing.map_or_else(|| set.clock.now(), |(now, _)| now);
            if let Some((now, rtt)) = timing {
                // Failures say nothing of how fast the endpoint answers (a
                // refused connection fails in no time): only the others
                // feed the latency estimate.
                if outcome != Outcome::Failure {
                    endpoint.record_latency(now, rtt);
                }
                set.note_time(now);
            }
            match outcome {
                Outcome::Success => set.ejection.succeeded(&endpoint.health),
                Outcome::Failure => {
                    if let Some(ejected_for) =
                        set.ejection
                            .failed(&endpoint.health, &set.ejected, set.len(), now)
                    {
                        endpoint.ejections_counter.increment(1);
                        tracing::warn!(
                            balancer = &*set.name,
                            endpoint = %endpoint.label,
                            ejected_for = ?std::time::Duration::from_micros(ejected_for),
                            "endpoint ejected"
                        );
                    }
                }
                Outcome::Ignored => {}
            }

            let retryable = match this.request.as_ref() {
                Some(request) => shared.policy.is_retryable(request, &result),
                None => false,
            };
            // Same endpoint again, another endpoint, or no more attempts.
            let again = if !retryable {
                None
            } else if *this.on_endpoint <= shared.retries_same && !set.check(&endpoint, now) {
                Some(Some(endpoint))
            } else if *this.endpoints <= shared.retries_next {
                this.tried.push(endpoint.id);
                Some(None)
            } else {
                None
            };
            let Some(again) = again else {
                this.state.set(State::Done);
                return Poll::Ready(result);
            };
            if !shared.budget.try_withdraw() {
                shared.budget_exhausted.increment(1);
                this.state.set(State::Done);
                return Poll::Ready(result.map_err(|e| RetryBudgetExhausted::new(e).into()));
            }
            shared.retried.increment(1);
            *this.retries += 1;
            let delay = shared.backoff.delay(*this.retries);
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
