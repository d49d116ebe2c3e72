//! The circuit breaker service.

use super::classify::{Classify, DefaultClassifier};
use super::future::ResponseFuture;
use super::handle::CircuitBreakerHandle;
use super::state::{Breaker, Permit, UNTIMED};
use crate::internal::clock::{self, Micros};
use crate::internal::shard::Lanes;
use crate::window::Category;
use crate::BoxError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::sync::futures::OwnedNotified;
use tower_service::Service;

/// Rejects calls to a failing dependency so it can recover and callers fail
/// fast; made by [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// `poll_ready` is where the breaker admits the next call: when it rejects,
/// `poll_ready` is ready at once without waiting on the inner service (it
/// never fails because the breaker is open: tower treats a readiness error
/// as fatal), and the next `call` resolves to
/// [`CircuitOpen`](super::CircuitOpen). When it admits, `poll_ready` waits
/// for the inner service, so a bulkhead beneath is only asked for a slot
/// for a call that will be made. A half-open probe place taken by a
/// service that is dropped before its call is given back.
///
/// `poll_ready` rejects without reading the clock; `call` decides a
/// rejected call again, at the call's time, in the clock read that also
/// dates the rejection. When the open time has run out in between, that
/// call is the half-open probe if the inner service is ready at once (it
/// was not asked in `poll_ready`, and `call` cannot wait); if not, the call
/// is rejected and the probe place is left to the next call.
///
/// # A decision holds only while the breaker does not change
///
/// Between `poll_ready` and `call` (or while `poll_ready` waits on the inner
/// service) the breaker may be forced open, reset, or tripped by other
/// calls. `call` then decides again, and a service still waiting beneath is
/// woken to decide again. When the new decision is a rejection, whatever
/// the inner service reserved when it was made ready (a bulkhead slot, a
/// `Buffer` place, a place in a queue) is given back by replacing it with a
/// fresh clone of itself: tower has no way to "un-ready" a service, and a
/// clone holds no reservation (true of tower's and rampart's layers). This
/// is why the inner service must be `Clone`.
///
/// # Panics in the inner service
///
/// A panic in the inner service's `call` or in its response future counts
/// as a failure (Hystrix counts every exception), a half-open probe
/// included, and then unwinds to the caller as before. To turn panics into
/// errors a fallback can serve, put
/// [`CatchPanicLayer`](crate::catch_panic::CatchPanicLayer) beneath the breaker
/// (`Command`: [`contain_panics`](crate::command::CommandBuilder::contain_panics)).
pub struct CircuitBreaker<S, C = DefaultClassifier> {
    inner: S,
    breaker: Arc<Lanes<Breaker>>,
    classify: C,
    admission: Admission,
    /// The half-open probe place `admission` holds, if it holds one: given
    /// back if this service is dropped or decides again before its call.
    /// Kept apart so that `admission` is a plain value, which a closed
    /// breaker's call copies and overwrites with no drop code to run.
    probe: Option<ProbePlace>,
    /// Whether `inner.poll_ready` was called since the inner's last `call`:
    /// the inner may then hold a reservation for a call.
    inner_armed: bool,
    /// Set while an admitted call waits on the inner service: completes
    /// at the breaker's next transition.
    changed: Option<Pin<Box<OwnedNotified>>>,
    /// The inner service's readiness error that `call` met (see
    /// `ready_at_once`): the next `poll_ready` returns it.
    failed: Option<BoxError>,
}

/// What `poll_ready` decided for the next call.
#[derive(Clone, Copy)]
enum Admission {
    Idle,
    /// A probe's permit too: its place is in `probe`.
    Admitted(Permit),
    Rejected,
}

/// A half-open probe place, given back if dropped unused.
struct ProbePlace {
    breaker: Arc<Breaker>,
    permit: Option<Permit>,
}

impl ProbePlace {
    fn take(mut self) -> Permit {
        self.permit.take().expect("taken once")
    }
}

impl Drop for ProbePlace {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.release(permit);
        }
    }
}

/// Counts a call whose inner `call` panicked as a failure.
pub(super) struct CallGuard<'a> {
    pub(super) breaker: &'a Breaker,
    pub(super) permit: Permit,
    pub(super) started: Micros,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        // Only reached by unwinding: `call` forgets the guard once the
        // inner `call` has returned.
        self.breaker
            .complete(self.permit, Category::Failure, self.started);
    }
}

// ===== impl CircuitBreaker =====

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Lanes<Breaker>>, classify: C) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            classify,
            admission: Admission::Idle,
            probe: None,
            inner_armed: false,
            changed: None,
            failed: None,
        }
    }

    /// A handle to the breaker this service shares.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breaker.shared().clone())
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `poll_ready`'s decision, made without the clock when it rejects
    /// (see [`call`](Service::call)).
    fn decide(&mut self) {
        self.admission = match self.breaker.shared().admit() {
            None => Admission::Rejected,
            Some(permit) => {
                self.hold(permit);
                Admission::Admitted(permit)
            }
        };
    }

    /// A call `poll_ready` rejected and `call` admitted (the open time ran
    /// out in between, or the breaker was reset or disabled) goes ahead
    /// only if the inner service is ready at once: `poll_ready` did not ask
    /// it, and `call` cannot wait. If it is not, the call is rejected as
    /// decided in `poll_ready`; if it failed, its error is kept for the
    /// next `poll_ready` to return, as it would have. Either way a probe
    /// place taken for the call is given back (on drop) for the next call.
    #[cold]
    fn ready_at_once<Request>(&mut self, permit: Permit) -> Result<Permit, Option<Micros>>
    where
        S: Service<Request>,
        S::Error: Into<BoxError>,
    {
        self.hold(permit);
        self.inner_armed = true;
        let mut cx = Context::from_waker(Waker::noop());
        let ready = self.inner.poll_ready(&mut cx);
        if let Poll::Ready(Ok(())) = ready {
            self.spend_probe();
            return Ok(permit);
        }
        self.probe = None;
        if let Poll::Ready(Err(error)) = ready {
            // A response future carrying the error instead cost every
            // rejection 7 ns (its drop and its poll).
            self.inner_armed = false;
            self.failed = Some(error.into());
        }
        Err(None)
    }

    /// A probe's place, if one is held, now goes with its call: no longer
    /// given back on drop.
    #[inline]
    fn spend_probe(&mut self) {
        if let Some(place) = self.probe.take() {
            place.take();
        }
    }

    /// Holds a probe's place until its call is made (see `probe`).
    fn hold(&mut self, permit: Permit) {
        if let Permit::Probe { .. } = permit {
            self.probe = Some(ProbePlace {
                breaker: self.breaker.shared().clone(),
                permit: Some(permit),
            });
        }
    }
}

impl<S: Clone, C> CircuitBreaker<S, C> {
    /// Gives back whatever the inner service reserved when it was made
    /// ready, for a call that will not be made (see the type's docs).
    fn disarm(&mut self) {
        if std::mem::take(&mut self.inner_armed) {
            self.inner = self.inner.clone();
        }
        self.changed = None;
    }
}

impl<S, C, Request> Service<Request> for CircuitBreaker<S, C>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Err(error));
        }
        loop {
            // A rejection is looked at again on every poll: the open time may
            // have run out since (a Buffer worker polls long before it calls).
            if let Admission::Idle | Admission::Rejected = self.admission {
                self.decide();
            }
            let permit = match self.admission {
                Admission::Rejected => {
                    self.disarm();
                    return Poll::Ready(Ok(()));
                }
                Admission::Admitted(permit) => permit,
                Admission::Idle => unreachable!("decided above"),
            };
            self.inner_armed = true;
            if let Poll::Ready(ready) = self.inner.poll_ready(cx) {
                self.changed = None;
                return Poll::Ready(ready.map_err(Into::into));
            }
            // Waiting on the inner service (a bulkhead's queue, a buffer):
            // learn of a transition meanwhile. Registered before looking, so
            // a transition in between is not missed.
            let breaker = self.breaker.shared();
            let changed = self
                .changed
                .get_or_insert_with(|| Box::pin(breaker.changed()));
            changed.as_mut().enable();
            if breaker.is_current(permit) {
                if changed.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // A transition: look again with a fresh registration.
                self.changed = None;
                if breaker.is_current(permit) {
                    continue;
                }
            }
            // Decide again; a probe place not used is given back on drop.
            self.changed = None;
            self.probe = None;
            self.admission = Admission::Idle;
        }
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let breaker = self.breaker.shared();
        let permit = match std::mem::replace(&mut self.admission, Admission::Idle) {
            Admission::Admitted(permit) if breaker.is_current(permit) => {
                self.spend_probe();
                Ok(permit)
            }
            // `poll_ready` rejects without reading the clock; the call is
            // decided again here, at its own time, in the one read that
            // also dates the rejection: a rejection is counted when made
            // (`tests/circuit_breaker_model.rs`, rule (c)), which may be
            // long after the poll (a Buffer worker polls long before it
            // calls). An open breaker's rejection so reads the clock once,
            // where deciding in `poll_ready` too read it twice. When the
            // open time has run out since (or the breaker was reset or
            // disabled), the call goes ahead if the inner service is ready
            // at once: `poll_ready` did not ask it, and `call` cannot wait.
            Admission::Rejected => match breaker.still_open() {
                Some(now) => Err(Some(now)),
                None => match breaker.acquire() {
                    Err(at) => Err(at),
                    Ok(permit) => self.ready_at_once::<Request>(permit),
                },
            },
            // Admitted when polled, but the breaker has changed state since
            // (a force, a reset, a trip; or a Buffer worker that polls long
            // before it calls): decide again. A stale probe place is no
            // longer counted by the breaker, so dropping it gives back
            // nothing. Or `call` without `poll_ready`: decide now.
            Admission::Admitted(_) | Admission::Idle => {
                self.probe = None;
                breaker.acquire()
            }
        };
        let breaker = self.breaker.shared();
        match permit {
            Err(at) => {
                breaker.reject(at.unwrap_or_else(|| breaker.now()));
                self.disarm();
                ResponseFuture::rejected()
            }
            Ok(Permit::Uncounted) => {
                self.inner_armed = false;
                ResponseFuture::uncounted(self.inner.call(request))
            }
            Ok(permit) => {
                self.inner_armed = false;
                let inner = &mut self.inner;
                // Two branches, not an `Option` of the reading: an untimed
                // call (nearly every one under load) then costs no check of
                // it after the inner `call` (1 ns measured).
                let (response, started) = if breaker.times_next_call() {
                    // One read for the call's start and, lent, for a
                    // timeout beneath (a command's): its deadline runs
                    // from here.
                    let reading = breaker.clock().read();
                    let started = breaker.clock().micros_at(reading);
                    let guard = CallGuard {
                        breaker,
                        permit,
                        started,
                    };
                    let response = clock::lend(reading, || inner.call(request));
                    std::mem::forget(guard);
                    (response, started)
                } else {
                    let guard = CallGuard {
                        breaker,
                        permit,
                        started: UNTIMED,
                    };
                    let response = inner.call(request);
                    std::mem::forget(guard);
                    (response, UNTIMED)
                };
                ResponseFuture::admitted(
                    response,
                    self.breaker.pick(),
                    permit,
                    started,
                    self.classify.clone(),
                )
            }
        }
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        // A clone has not been polled ready: it inherits no admission.
        CircuitBreaker::new(
            self.inner.clone(),
            self.breaker.clone(),
            self.classify.clone(),
        )
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", self.breaker.shared())
            .finish_non_exhaustive()
    }
}
