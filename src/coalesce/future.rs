//! The coalescer's response future: a share of the call in flight.

use super::error::WaitersFull;
use super::flight::Flight;
use super::table::Table;
use crate::BoxError;
use futures_util::future::{Shared, TryFuture};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

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
