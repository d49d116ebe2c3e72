//! The bulkhead service.

use super::future::ResponseFuture;
use super::handle::BulkheadHandle;
use super::state::{Permit, Shared};
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

/// Limits the calls in flight to a dependency, so a slow dependency ties up
/// a bounded share of the caller; made by [`BulkheadLayer`](super::BulkheadLayer).
///
/// `poll_ready` takes a slot (waiting up to `max_wait` when configured), and
/// the slot travels with the response future until it completes or is
/// dropped. A full bulkhead never fails `poll_ready`: it is ready at once,
/// and the next `call` resolves to [`BulkheadFull`](super::BulkheadFull).
pub struct Bulkhead<S> {
    inner: S,
    shared: Arc<Lanes<Shared>>,
    admission: Admission,
}

enum Admission {
    /// Nothing decided for the next call yet.
    Idle,
    /// A slot is held for the next call.
    Admitted(Permit),
    /// Waiting for a slot, until a deadline.
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
        self.shared.slots.stop_waiting();
    }
}

// ===== impl Bulkhead =====

impl<S> Bulkhead<S> {
    pub(crate) fn new(inner: S, shared: Arc<Lanes<Shared>>) -> Self {
        Bulkhead {
            inner,
            shared,
            admission: Admission::Idle,
        }
    }

    /// A handle to the bulkhead this service shares.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle::new(self.shared.shared().clone())
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service (giving back a slot it held).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for Bulkhead<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let shared = self.shared.shared();
        // A rejection is looked at again on every poll: slots may have been
        // freed since (a Buffer worker polls long before it calls).
        if let Admission::Rejected = self.admission {
            self.admission = Admission::Idle;
        }
        loop {
            match &mut self.admission {
                Admission::Admitted(_) => return self.inner.poll_ready(cx).map_err(Into::into),
                Admission::Rejected => return Poll::Ready(Ok(())),
                Admission::Idle => match Shared::try_acquire(&self.shared) {
                    Some(permit) => self.admission = Admission::Admitted(permit),
                    None => match shared.max_wait() {
                        Some(max_wait) if shared.slots.start_waiting(shared.max_waiting) => {
                            self.admission = Admission::Waiting(Wait {
                                shared: shared.clone(),
                                freed: Box::pin(shared.slots.freed()),
                                deadline: Box::pin(sleep(max_wait)),
                            });
                        }
                        _ => self.admission = Admission::Rejected,
                    },
                },
                Admission::Waiting(wait) => {
                    // Register for a wake-up before looking, so a slot
                    // freed in between is not missed.
                    wait.freed.as_mut().enable();
                    if let Some(permit) = Shared::try_acquire_waiting(&self.shared) {
                        self.admission = Admission::Admitted(permit);
                    } else if wait.freed.as_mut().poll(cx).is_ready() {
                        // A slot was freed but taken by someone else: wait again.
                        wait.freed.set(shared.slots.freed());
                    } else if wait.deadline.as_mut().poll(cx).is_ready() {
                        self.admission = Admission::Rejected;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match std::mem::replace(&mut self.admission, Admission::Idle) {
            Admission::Admitted(permit) => {
                ResponseFuture::admitted(self.inner.call(request), permit)
            }
            Admission::Rejected => {
                // Counted here, for a call that was made: a service dropped
                // after poll_ready rejected nothing.
                self.shared.shared().reject();
                ResponseFuture::rejected()
            }
            Admission::Idle | Admission::Waiting(_) => {
                panic!("Bulkhead::call before poll_ready returned Ready: poll_ready must be called first")
            }
        }
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    fn clone(&self) -> Self {
        // A clone holds no slot: it takes its own in poll_ready.
        Bulkhead::new(self.inner.clone(), self.shared.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admission = match self.admission {
            Admission::Idle => "idle",
            Admission::Admitted(_) => "admitted",
            Admission::Waiting(_) => "waiting",
            Admission::Rejected => "rejected",
        };
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("name", &self.shared.shared().name)
            .field("admission", &admission)
            .finish()
    }
}
