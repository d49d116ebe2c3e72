//! The coalescer's response future: a share of the call in flight.

use super::error::WaitersFull;
use super::flight::Flight;
use super::table::Table;
use crate::BoxError;
use futures_util::future::{Shared, TryFuture};
use futures_util::FutureExt;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower_service::Service;

/// Response future of [`Coalesce`](super::Coalesce): the answer of the
/// call in flight for this request's key, started by this caller or by
/// an earlier one.
///
/// # Cancel safety
///
/// Dropping it leaves the call to the other callers of the key, the one
/// that started it included: the call goes on while any of them waits.
/// When the last one drops its future, the call is dropped too (nobody
/// wants its answer) and the key is forgotten.
pub struct ResponseFuture<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    K: Hash + Eq,
{
    state: State<F, K>,
}

enum State<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    K: Hash + Eq,
{
    Waiting {
        flight: Shared<Flight<F>>,
        id: u64,
        key: K,
        table: Arc<Table<K, Flight<F>>>,
    },
    Full,
    Done,
}

impl<F, K> ResponseFuture<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    K: Hash + Eq,
{
    pub(super) fn waiting(
        flight: Shared<Flight<F>>,
        id: u64,
        key: K,
        table: Arc<Table<K, Flight<F>>>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                flight,
                id,
                key,
                table,
            },
        }
    }

    pub(super) fn full() -> Self {
        ResponseFuture { state: State::Full }
    }
}

impl<F, K> Future for ResponseFuture<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    F::Ok: Clone,
    K: Hash + Eq,
{
    type Output = Result<F::Ok, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = match &mut self.state {
            State::Waiting { flight, .. } => ready!(Pin::new(flight).poll(cx)),
            State::Full => {
                self.state = State::Done;
                return Poll::Ready(Err(WaitersFull::new().into()));
            }
            State::Done => panic!("ResponseFuture polled after completion"),
        };
        if let State::Waiting { id, key, table, .. } =
            std::mem::replace(&mut self.state, State::Done)
        {
            // The first caller to see the answer forgets the flight, so a
            // caller from now on starts a new call: coalescing, not caching.
            table.landed(&key, id);
        }
        Poll::Ready(result.map_err(Into::into))
    }
}

// Nothing in it is pinned in place: the call lives in the shared future's
// own allocation, and the key is only read.
impl<F, K> Unpin for ResponseFuture<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    K: Hash + Eq,
{
}

impl<F, K> Drop for ResponseFuture<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    K: Hash + Eq,
{
    fn drop(&mut self) {
        if let State::Waiting {
            flight,
            id,
            key,
            table,
        } = std::mem::replace(&mut self.state, State::Done)
        {
            // This caller's share first: if it was the last, the call is
            // dropped with it, and the key forgotten.
            drop(flight);
            table.abandon(&key, id);
        }
    }
}

impl<F, K> fmt::Debug for ResponseFuture<F, K>
where
    F: TryFuture,
    F::Error: Into<BoxError>,
    K: Hash + Eq,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// What a joined caller needs to call on its own: a clone of the service,
/// its request, its key, the table and `max_waiters`.
pub(super) type Own<S, Req, K> = (
    S,
    Req,
    K,
    Arc<Table<K, Flight<<S as Service<Req>>::Future>>>,
    usize,
);

/// Response future of a coalescer sharing
/// [successes only](super::Builder::successes_only): the answer of the
/// call in flight for this request's key or, if this caller joined a call
/// that failed, the outcome of a call of its own.
///
/// # Cancel safety
///
/// As [`ResponseFuture`]: dropping it leaves the call it shares to the
/// other callers of the key. Dropped while calling on its own, it drops
/// that call (or its share of it) the same way.
pub struct SuccessesOnlyFuture<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    state: Step<S, Req, K>,
}

enum Step<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    /// A share whose outcome is this caller's: the call it started, or
    /// the one it made (or joined) after a failed share.
    Final(ResponseFuture<S::Future, K>),
    /// A share of someone else's call; on its failure, call on our own.
    Joined(ResponseFuture<S::Future, K>, Option<Own<S, Req, K>>),
    /// Waiting for the service's clone to be ready, to call on our own.
    Calling(Option<Own<S, Req, K>>),
}

impl<S, Req, K> SuccessesOnlyFuture<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    pub(super) fn started(share: ResponseFuture<S::Future, K>) -> Self {
        SuccessesOnlyFuture {
            state: Step::Final(share),
        }
    }

    pub(super) fn joined(share: ResponseFuture<S::Future, K>, own: Own<S, Req, K>) -> Self {
        SuccessesOnlyFuture {
            state: Step::Joined(share, Some(own)),
        }
    }
}

impl<S, Req, K> Future for SuccessesOnlyFuture<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: Clone,
    K: Hash + Eq + Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match &mut self.state {
                Step::Final(share) => return Pin::new(share).poll(cx),
                Step::Joined(share, own) => match ready!(Pin::new(share).poll(cx)) {
                    Ok(answer) => return Poll::Ready(Ok(answer)),
                    Err(_shared) => {
                        let own = own.take();
                        self.state = Step::Calling(own);
                    }
                },
                Step::Calling(own) => {
                    let (svc, ..) = own.as_mut().expect("polled after completion");
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    let (mut svc, request, key, table, max_waiters) =
                        own.take().expect("polled after completion");
                    table.stats.retried();
                    // Coalesced again: the first of the failed call's
                    // callers to get here calls, the others join it.
                    let joined = table.join_or_start(&key, max_waiters, || {
                        Flight::new(svc.call(request)).shared()
                    });
                    let share = match joined {
                        Some((flight, id, _)) => {
                            ResponseFuture::waiting(flight, id, key, table.clone())
                        }
                        None => ResponseFuture::full(),
                    };
                    self.state = Step::Final(share);
                }
            }
        }
    }
}

// Nothing in it is pinned in place: the shares are `Unpin`, and the
// service and request are only moved, never polled in place.
impl<S, Req, K> Unpin for SuccessesOnlyFuture<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
}

impl<S, Req, K> fmt::Debug for SuccessesOnlyFuture<S, Req, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuccessesOnlyFuture")
            .finish_non_exhaustive()
    }
}
