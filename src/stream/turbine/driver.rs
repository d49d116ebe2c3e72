//! The running turbine: one task reads the sources and keeps one follower
//! per instance of each cluster somebody watches; one [`Hub`] per cluster
//! serves the merged frames.

use super::client::{http_client, Follower, HttpClient};
use super::merge::{Host, Merger};
use super::source::{check_url, Instance, Sources};
use crate::retry::Backoff;
use crate::stream::hub::{Hub, Limits};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// How long a cluster's instances are still followed after its last
/// subscriber left: a dashboard reloading its page finds the aggregate
/// ready instead of reconnecting to every instance.
pub(crate) const LINGER: Duration = Duration::from_secs(30);

/// How often the driver looks again without being woken: clusters whose
/// subscribers left, a discovery stream that failed.
const RECHECK: Duration = Duration::from_secs(1);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The clusters, shared by the service (which subscribes) and the driver
/// (which follows instances).
pub(crate) struct Clusters {
    /// The clusters the sources list now: any other is answered `404`.
    known: Mutex<BTreeSet<String>>,
    states: Mutex<HashMap<String, Arc<Cluster>>>,
    /// Wakes the driver: somebody subscribed.
    wake: Notify,
    limits: Limits,
    /// A host's object not renewed for this long is forgotten.
    expire_after: Duration,
}

/// One cluster: its merge, its hub, and when it was last watched.
pub(crate) struct Cluster {
    pub(crate) hub: Arc<Hub>,
    merger: Arc<Mutex<Merger>>,
    watched: Arc<Mutex<Instant>>,
}

impl Cluster {
    pub(crate) fn touch(&self) {
        *lock(&self.watched) = Instant::now();
    }

    fn is_watched(&self, now: Instant) -> bool {
        now.saturating_duration_since(*lock(&self.watched)) < LINGER
    }
}

impl Clusters {
    pub(crate) fn new(known: BTreeSet<String>, limits: Limits, expire_after: Duration) -> Self {
        Clusters {
            known: Mutex::new(known),
            states: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            limits,
            expire_after,
        }
    }

    /// The clusters the sources list now.
    pub(crate) fn known(&self) -> BTreeSet<String> {
        lock(&self.known).clone()
    }

    pub(crate) fn is_known(&self, cluster: &str) -> bool {
        lock(&self.known).contains(cluster)
    }

    /// The cluster's state, made on first use.
    pub(crate) fn cluster(&self, name: &str) -> Arc<Cluster> {
        let mut states = lock(&self.states);
        if let Some(cluster) = states.get(name) {
            return cluster.clone();
        }
        let merger = Arc::new(Mutex::new(Merger::new(self.expire_after)));
        let watched = Arc::new(Mutex::new(Instant::now()));
        // The hub's publisher runs only while somebody subscribes: each
        // frame it takes also says the cluster is still watched.
        let produce = {
            let merger = merger.clone();
            let watched = watched.clone();
            Box::new(move || {
                let now = Instant::now();
                *lock(&watched) = now;
                Bytes::from(lock(&merger).frame(now))
            })
        };
        let cluster = Arc::new(Cluster {
            hub: Hub::new(produce, self.limits),
            merger,
            watched,
        });
        states.insert(name.to_owned(), cluster.clone());
        cluster
    }

    /// Tells the driver to look again (a cluster has a new subscriber).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The clusters watched now (or within [`LINGER`]).
    fn watched(&self, now: Instant) -> HashMap<String, Arc<Cluster>> {
        lock(&self.states)
            .iter()
            .filter(|(_, c)| c.is_watched(now))
            .map(|(name, c)| (name.clone(), c.clone()))
            .collect()
    }
}

/// How followers reach and wait for their instances.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowSettings {
    pub(crate) silence: Duration,
    pub(crate) backoff: Backoff,
}

/// One instance being followed; dropping it stops the follower and takes
/// the instance's share out of the aggregate.
struct Following {
    host: Host,
    merger: Arc<Mutex<Merger>>,
    stopped: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Following {
    fn drop(&mut self) {
        // Set before the share is taken out, under the merge's lock: the
        // follower checks it under the same lock, so nothing it read lands
        // afterwards, even if it runs on until its next await.
        self.stopped.store(true, Ordering::Release);
        self.task.abort();
        lock(&self.merger).remove_host(&self.host);
    }
}

/// Reads the sources and keeps the followers in step with them, until
/// aborted (when the last clone of the turbine is dropped).
pub(crate) async fn drive(
    clusters: Arc<Clusters>,
    mut sources: Sources,
    settings: FollowSettings,
    ready: watch::Sender<bool>,
) {
    let client = http_client(settings.silence);
    let mut following: HashMap<Instance, Following> = HashMap::new();
    let mut rejected: HashSet<Instance> = HashSet::new();
    // Whatever discovery has ready now counts for the first requests.
    poll_fn(|cx| {
        if let Some(discovered) = &mut sources.discovered {
            let _ = discovered.poll_apply(cx);
        }
        Poll::Ready(())
    })
    .await;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        reconcile(
            &clusters,
            &mut sources,
            &mut following,
            &mut rejected,
            &client,
            settings,
        );
        ready.send_replace(true);
        let watch_live = sources.watched.is_some() && !sources.watch_ended;
        let discovery_live = sources.discovered.as_ref().is_some_and(|d| !d.is_ended());
        let (watched, discovered) = (&mut sources.watched, &mut sources.discovered);
        let feed_closed = tokio::select! {
            _ = clusters.wake.notified() => false,
            _ = recheck.tick() => false,
            changed = async {
                match watched {
                    Some(feed) => feed.changed().await,
                    None => std::future::pending().await,
                }
            }, if watch_live => changed.is_err(),
            _ = poll_fn(|cx| match discovered {
                Some(d) => d.poll_apply(cx),
                None => Poll::Pending,
            }), if discovery_live => false,
        };
        if feed_closed {
            // The sender is gone: its last list stays.
            sources.watch_ended = true;
        }
    }
}

fn reconcile(
    clusters: &Clusters,
    sources: &mut Sources,
    following: &mut HashMap<Instance, Following>,
    rejected: &mut HashSet<Instance>,
    client: &HttpClient,
    settings: FollowSettings,
) {
    let (instances, known) = sources.current();
    *lock(&clusters.known) = known;
    let now = Instant::now();
    let watched = clusters.watched(now);
    // Dropping a follower takes its share out.
    following.retain(|instance, _| {
        instances.contains(instance) && watched.contains_key(instance.cluster())
    });
    // A cluster nobody watches keeps nothing: its next subscriber starts
    // from fresh objects (and no deletions of objects it never saw).
    for cluster in lock(&clusters.states).values() {
        if !cluster.is_watched(now) {
            lock(&cluster.merger).clear();
        }
    }
    rejected.retain(|instance| instances.contains(instance));
    for instance in instances {
        let Some(cluster) = watched.get(instance.cluster()) else {
            continue;
        };
        if following.contains_key(&instance) || rejected.contains(&instance) {
            continue;
        }
        let uri = match check_url(instance.url()) {
            Ok(uri) => uri,
            Err(why) => {
                // Said once per listing, not at every look.
                tracing::warn!(cluster = instance.cluster(), "turbine: cannot follow {why}");
                rejected.insert(instance);
                continue;
            }
        };
        let host: Host = Arc::from(instance.url());
        let stopped = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            host: host.clone(),
            uri,
            merger: cluster.merger.clone(),
            client: client.clone(),
            silence: settings.silence,
            backoff: settings.backoff,
            stopped: stopped.clone(),
        };
        let task = tokio::spawn(follower.run());
        following.insert(
            instance,
            Following {
                host,
                merger: cluster.merger.clone(),
                stopped,
                task,
            },
        );
    }
}
