//! The limiter service.

use super::classify::{Classify, DefaultClassifier};
use super::future::ResponseFuture;
use super::handle::LimitHandle;
use super::partition::{Partitioner, Unpartitioned};
use super::state::{Permit, Shared, NO_PARTITION};
use crate::internal::shard::Lanes;
use crate::BoxError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::futures::OwnedNotified;
use tokio::time::{sleep, Sleep};
use tower_service::Service;

/// Limits the calls in flight to a service to a limit that follows the
/// service's round-trip times; made by [`LimitLayer`](super::LimitLayer).
///
/// Without partitions, `poll_ready` takes a permit (waiting up to
/// `max_wait` when configured), and the permit travels with the response
/// future until it completes or is dropped. A limiter at its limit never
/// fails `poll_ready`: it is ready at once, and the next `call` resolves to
/// [`LimitExceeded`](super::LimitExceeded). With partitions, `poll_ready`
/// is the inner service's, and `call` decides, from the request's
/// partition.
pub struct Limit<S, P = Unpartitioned, C = DefaultClassifier> {
    inner: S,
    shared: Arc<Lanes<Shared>>,
    partitioner: P,
    classify: C,
    admission: Admission,
}

enum Admission {
    /// Nothing decided for the next call yet.
    Idle,
    /// A permit is held for the next call.
    Admitted(Permit),
    /// Waiting for a permit, until a deadline.
    Waiting(Wait),
    /// The next call is rejected.
    Rejected,
}

/// A place among the waiters: given up when dropped.
struct Wait {
    shared: Arc<Shared>,
    freed: Pin<Box<OwnedNotified>>,
    deadline: Pin<Box<Sleep>>,
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.shared.stop_waiting();
    }
}

// ===== impl Limit =====

impl<S, P, C> Limit<S, P, C> {
    pub(crate) fn new(inner: S, shared: Arc<Lanes<Shared>>, partitioner: P, classify: C) -> Self {
        Limit {
            inner,
            shared,
            partitioner,
            classify,
            admission: Admission::Idle,
        }
    }

    /// A handle to the limit this service shares.
    pub fn handle(&self) -> LimitHandle {
        LimitHandle::new(self.shared.shared().clone())
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service (giving back a permit it held).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `poll_ready`'s admission, for a limiter without partitions (the
    /// bulkhead's, with a limit that moves).
    fn poll_admission(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared.shared();
        // A rejection is looked at again on every poll: permits may have
        // been freed since (a Buffer worker polls long before it calls).
        if let Admission::Rejected = self.admission {
            self.admission = Admission::Idle;
        }
        loop {
            match &mut self.admission {
                Admission::Admitted(_) | Admission::Rejected => return Poll::Ready(()),
                Admission::Idle => match Shared::try_acquire(&self.shared) {
                    // The value replaced is `Idle`, which holds nothing:
                    // forgetting it skips a call to its drop glue on every
                    // call's path.
                    Some(permit) => std::mem::forget(std::mem::replace(
                        &mut self.admission,
                        Admission::Admitted(permit),
                    )),
                    None => match shared.max_wait {
                        Some(max_wait) if shared.start_waiting() => {
                            self.admission = Admission::Waiting(Wait {
                                shared: shared.clone(),
                                freed: Box::pin(shared.freed()),
                                deadline: Box::pin(sleep(max_wait)),
                            });
                        }
                        _ => self.admission = Admission::Rejected,
                    },
                },
                Admission::Waiting(wait) => {
                    // Register for a wake-up before looking, so a permit
                    // freed in between is not missed.
                    wait.freed.as_mut().enable();
                    if let Some(permit) = Shared::try_acquire_waiting(&self.shared) {
                        self.admission = Admission::Admitted(permit);
                    } else if wait.freed.as_mut().poll(cx).is_ready() {
                        // Woken, but the permit went to someone else.
                        wait.freed.set(shared.freed());
                    } else if wait.deadline.as_mut().poll(cx).is_ready() {
                        self.admission = Admission::Rejected;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<S, P, C, Request> Service<Request> for Limit<S, P, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    P: Partitioner<Request>,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !P::PARTITIONED {
            std::task::ready!(self.poll_admission(cx));
            if let Admission::Rejected = self.admission {
                return Poll::Ready(Ok(()));
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        if P::PARTITIONED {
            let admitted =
                Shared::try_acquire_partition(&self.shared, self.partitioner.key(&request));
            return match admitted {
                Ok(permit) => self.admit(permit, request),
                Err(refused) => {
                    self.shared.shared().reject(refused.partition);
                    ResponseFuture::rejected(refused.over_share)
                }
            };
        }
        match std::mem::replace(&mut self.admission, Admission::Idle) {
            Admission::Admitted(permit) => self.admit(permit, request),
            Admission::Rejected => {
                // Counted here, for a call that was made: a service dropped
                // after poll_ready rejected nothing.
                self.shared.shared().reject(NO_PARTITION);
                ResponseFuture::rejected(false)
            }
            Admission::Idle | Admission::Waiting(_) => {
                panic!(
                    "Limit::call before poll_ready returned Ready: poll_ready must be called first"
                )
            }
        }
    }
}

impl<S, P, C> Limit<S, P, C> {
    #[inline]
    fn admit<Request>(
        &mut self,
        mut permit: Permit,
        request: Request,
    ) -> ResponseFuture<S::Future, C>
    where
        S: Service<Request>,
        C: Clone,
    {
        // The RTT runs from the call reaching the inner service.
        permit.start();
        ResponseFuture::admitted(self.inner.call(request), permit, self.classify.clone())
    }
}

impl<S: Clone, P: Clone, C: Clone> Clone for Limit<S, P, C> {
    fn clone(&self) -> Self {
        // A clone holds no permit: it takes its own in poll_ready.
        Limit::new(
            self.inner.clone(),
            self.shared.clone(),
            self.partitioner.clone(),
            self.classify.clone(),
        )
    }
}

impl<S: fmt::Debug, P, C> fmt::Debug for Limit<S, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admission = match self.admission {
            Admission::Idle => "idle",
            Admission::Admitted(_) => "admitted",
            Admission::Waiting(_) => "waiting",
            Admission::Rejected => "rejected",
        };
        f.debug_struct("Limit")
            .field("inner", &self.inner)
            .field("name", &self.shared.shared().name)
            .field("admission", &admission)
            .finish()
    }
}
