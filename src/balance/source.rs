//! Where endpoints come from: a fixed list, a `watch` channel of lists (a
//! registry feed, as Eureka's), or any `tower::discover::Discover` stream.

use super::endpoint::Endpoint;
use super::service::LAYER;
use crate::metrics::TARGET_BALANCE;
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::watch;
use tower::discover::{Change as DiscoverChange, Discover};

/// A change to the endpoint set.
pub(crate) enum Change<K, S> {
    Insert(Endpoint<K, S>),
    Remove(K),
}

/// Something that yields changes to the endpoint set.
pub(crate) trait Source<K, S>: Send {
    /// Whether the source will never change again once polled (a fixed list).
    fn is_fixed(&self) -> bool {
        false
    }

    /// A fixed list not yet loaded, for the builder to check.
    fn fixed(&self) -> Option<&[Endpoint<K, S>]> {
        None
    }

    /// Every change ready now, oldest first; `name` is the balancer's, for
    /// what the source has to log.
    fn poll_changes(&mut self, cx: &mut Context<'_>, name: &str, changes: &mut Vec<Change<K, S>>);
}

/// The endpoints a balancer spreads calls over, and how they change.
///
/// ```
/// use rampart::balance::{Endpoint, Endpoints};
/// # let client = |addr: &str| tower::service_fn(|_: ()| async { Ok::<_, rampart::BoxError>(()) });
///
/// // A fixed list.
/// let fixed = Endpoints::fixed([
///     Endpoint::new("10.0.0.1:80", client("10.0.0.1:80")),
///     Endpoint::new("10.0.0.2:80", client("10.0.0.2:80")),
/// ]);
///
/// // A registry feed: whenever the list changes, new keys are added
/// // (through `make`) and missing ones removed.
/// let (registry, feed) = tokio::sync::watch::channel(vec!["10.0.0.1:80"]);
/// let watched = Endpoints::watch(feed, move |addr: &&str| Endpoint::new(*addr, client(addr)));
/// registry.send(vec!["10.0.0.1:80", "10.0.0.3:80"]).unwrap();
/// ```
pub struct Endpoints<K, S> {
    pub(crate) source: Box<dyn Source<K, S>>,
}

impl<K, S> Endpoints<K, S> {
    /// A fixed list of endpoints. The balancer's
    /// [`build`](super::Builder::build) rejects an empty list, and a list
    /// that names a key twice.
    pub fn fixed(endpoints: impl IntoIterator<Item = Endpoint<K, S>>) -> Self
    where
        K: Send + 'static,
        S: Send + 'static,
    {
        let endpoints: Vec<_> = endpoints.into_iter().collect();
        Endpoints {
            source: Box::new(Fixed(Some(endpoints))),
        }
    }

    /// The endpoints named in the latest list on `feed`, each made by
    /// `make` when it first appears. Removed endpoints finish the calls
    /// they have in flight.
    pub fn watch<F>(feed: watch::Receiver<Vec<K>>, make: F) -> Self
    where
        K: Eq + Hash + Clone + Send + Sync + 'static,
        S: Send + 'static,
        F: Fn(&K) -> Endpoint<K, S> + Send + 'static,
    {
        Endpoints {
            source: Box::new(Watched {
                feed,
                make,
                known: HashSet::new(),
                stale: true,
            }),
        }
    }

    /// The endpoints a [`Discover`] stream inserts and removes.
    pub fn discover<D>(discover: D) -> Self
    where
        D: Discover<Key = K, Service = S> + Send + 'static,
        D::Error: fmt::Display,
        K: Send + 'static,
        S: Send + 'static,
    {
        Endpoints {
            source: Box::new(Discovered(Box::pin(discover))),
        }
    }
}

impl<K, S> fmt::Debug for Endpoints<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("fixed_len", &self.source.fixed().map(<[_]>::len))
            .finish_non_exhaustive()
    }
}

struct Fixed<K, S>(Option<Vec<Endpoint<K, S>>>);

impl<K: Send, S: Send> Source<K, S> for Fixed<K, S> {
    fn is_fixed(&self) -> bool {
        true
    }

    fn fixed(&self) -> Option<&[Endpoint<K, S>]> {
        self.0.as_deref()
    }

    fn poll_changes(&mut self, _: &mut Context<'_>, _: &str, changes: &mut Vec<Change<K, S>>) {
        if let Some(endpoints) = self.0.take() {
            changes.extend(endpoints.into_iter().map(Change::Insert));
        }
    }
}

struct Watched<K, F> {
    feed: watch::Receiver<Vec<K>>,
    make: F,
    known: HashSet<K>,
    /// The latest list is not applied yet (at first, and after a panic).
    stale: bool,
}

impl<K, S, F> Source<K, S> for Watched<K, F>
where
    K: Eq + Hash + Clone + Send + Sync,
    F: Fn(&K) -> Endpoint<K, S> + Send,
{
    fn poll_changes(&mut self, _: &mut Context<'_>, _: &str, changes: &mut Vec<Change<K, S>>) {
        // The balancer is ready whatever the feed does, so no waker is
        // needed: every poll_ready looks for a newer list.
        let changed = self.feed.has_changed().unwrap_or(false);
        if !changed && !self.stale {
            return;
        }
        // Stays set if `make` panics below, so the next poll does this
        // list again rather than wait for the next one.
        self.stale = true;
        let latest: HashSet<K> = self.feed.borrow_and_update().iter().cloned().collect();
        for gone in self.known.difference(&latest) {
            changes.push(Change::Remove(gone.clone()));
        }
        for new in latest.difference(&self.known) {
            changes.push(Change::Insert((self.make)(new)));
        }
        self.known = latest;
        self.stale = false;
    }
}

struct Discovered<D>(Pin<Box<D>>);

impl<D> Source<D::Key, D::Service> for Discovered<D>
where
    D: Discover + Send,
    D::Error: fmt::Display,
{
    fn poll_changes(
        &mut self,
        cx: &mut Context<'_>,
        name: &str,
        changes: &mut Vec<Change<D::Key, D::Service>>,
    ) {
        while let Poll::Ready(Some(change)) = self.0.as_mut().poll_discover(cx) {
            match change {
                Ok(DiscoverChange::Insert(key, service)) => {
                    changes.push(Change::Insert(Endpoint::new(key, service)))
                }
                Ok(DiscoverChange::Remove(key)) => changes.push(Change::Remove(key)),
                Err(e) => {
                    // A discovery error is not a call's error: keep the
                    // endpoints we know and say so.
                    tracing::warn!(
                        target: TARGET_BALANCE,
                        layer = LAYER,
                        name,
                        event = "discovery_failed",
                        error = %e,
                        "endpoint discovery failed"
                    );
                    break;
                }
            }
        }
    }
}
