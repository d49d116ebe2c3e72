//! The instances of a service as a balancer's endpoints, read from etcd
//! with Eureka's client semantics (only `UP` instances, the last known set
//! kept when the registry is in trouble).

use super::feed::{dir, KeyChange, PrefixFeed, Update};
use super::instance::{Instance, Status, DEFAULT_PREFIX};
use super::registration::{DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX};
use crate::balance::{Endpoint, Endpoints};
use crate::error::{ConfigError, Validator};
use crate::metrics::{
    named_gauge, DISCOVERY_KEPT, DISCOVERY_OFFERED, DISCOVERY_REACHABLE, DISCOVERY_REGISTERED,
    TARGET_DISCOVERY,
};
use crate::registry::Registry;
use crate::retry::Backoff;
use etcd_client::Client;
use metrics::Gauge;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Eureka's self-preservation threshold: when more than 15 % of the known
/// instances vanish at once, keep them (`renewalPercentThreshold` 0.85).
pub const DEFAULT_SELF_PRESERVATION: f64 = 0.15;
/// How long instances kept by self-preservation stay while etcd, reachable,
/// still lacks them: Eureka's renewal-threshold update interval (15 min),
/// after which Eureka accepts the smaller registry as the expected one.
pub const DEFAULT_PRESERVE_FOR: Duration = Duration::from_secs(15 * 60);
/// How long a vanished instance stays offered while the source counts
/// what else vanishes with it: Eureka's client refresh interval
/// (`registryFetchIntervalSeconds`, 30 s), within which a Eureka client
/// would not have seen the departure anyway.
pub const DEFAULT_VANISH_WINDOW: Duration = Duration::from_secs(30);

const LAYER: &str = "discovery";

/// Options for a [`Discovery`]; from [`Discovery::builder`].
#[derive(Debug, Clone)]
pub struct DiscoveryBuilder {
    service: String,
    prefix: String,
    self_preservation: f64,
    preserve_for: Duration,
    vanish_window: Duration,
    backoff: Result<Backoff, ConfigError>,
    registry: Option<Registry>,
}

impl DiscoveryBuilder {
    /// The [`Registry`] to list this discovery in while it runs. Default:
    /// [`Registry::global`].
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The key prefix. Default [`DEFAULT_PREFIX`] (`/services`): the
    /// instances are the keys `<prefix>/<service>/<id>`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The share of offered instances that may vanish (their keys deleted
    /// or their leases run out) at once before the rest are taken
    /// for a registry in trouble and kept. From 0 to 1; default 0.15
    /// (Eureka's). 1 turns self-preservation off (more than all can never
    /// vanish); 0 keeps every vanished instance (for
    /// [`preserve_for`](Self::preserve_for)).
    ///
    /// "At once" means within the [vanish
    /// window](Self::vanish_window): etcd revokes expired leases one by
    /// one, each in a revision of its own, and instances cut off together
    /// renewed at different moments, so their keys go over up to a renewal
    /// interval. A vanished instance stays offered for the window while
    /// the source counts what else vanishes; the share is of the instances
    /// offered when each vanishing is seen. A full read after a
    /// reconnection counts as one update.
    ///
    /// With fewer than 7 instances and the default, a single vanished
    /// instance is already more than 15 %: small sets want a larger share,
    /// as a small Eureka registry does.
    pub fn self_preservation(mut self, share: f64) -> Self {
        self.self_preservation = share;
        self
    }

    /// How long instances kept by self-preservation are kept while etcd is
    /// reachable and still lacks them; after that they are dropped (the
    /// mass departure is taken as real). Positive; default 15 minutes.
    /// Instances that come back end it early. While etcd is unreachable,
    /// nothing is ever dropped.
    pub fn preserve_for(mut self, preserve_for: Duration) -> Self {
        self.preserve_for = preserve_for;
        self
    }

    /// How long a vanished instance (its key deleted or its lease run out)
    /// stays offered while the source counts what vanishes with it, for
    /// [`self_preservation`](Self::self_preservation). From 0 (each etcd
    /// watch response counted alone, the instance removed at once) to an
    /// hour; default 30 s (Eureka's client refresh interval). A
    /// deliberate departure (a status other than `UP`, a
    /// [`shutdown`](super::Registration::shutdown)) is never held.
    pub fn vanish_window(mut self, window: Duration) -> Self {
        self.vanish_window = window;
        self
    }

    /// The backoff between attempts while etcd cannot be reached. Default:
    /// exponential with full jitter from 100 ms up to 10 s.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Ok(backoff);
        self
    }

    /// Checks the options and starts following the service's instances in
    /// the background. The set is empty until the first read of etcd
    /// ([`Discovery::synced`] waits for it).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming every bad option.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns its task), as `tokio::spawn` does.
    pub fn start(self, client: Client) -> Result<Discovery, ConfigError> {
        let mut v = Validator::new(format!("discovery \"{}\"", self.service));
        v.check(
            !self.service.is_empty() && !self.service.contains('/'),
            "service",
            || format!("must be non-empty without '/', got {:?}", self.service),
        );
        v.check(self.prefix.starts_with('/'), "prefix", || {
            format!("must start with '/', got {:?}", self.prefix)
        });
        let share = self.self_preservation;
        v.check((0.0..=1.0).contains(&share), "self_preservation", || {
            format!("must be in [0, 1], got {share}")
        });
        let preserve_for = self.preserve_for;
        v.check(preserve_for > Duration::ZERO, "preserve_for", || {
            format!("must be positive, got {preserve_for:?}")
        });
        let window = self.vanish_window;
        v.check(window <= Duration::from_secs(3600), "vanish_window", || {
            format!("must be at most an hour, got {window:?}")
        });
        let backoff = v.absorb(self.backoff);
        v.finish()?;
        let dir = format!("{}{}/", dir(&self.prefix), self.service);
        let (instances, instances_rx) = watch::channel(Vec::new());
        let (state, state_rx) = watch::channel(DiscoveryState::default());
        let listed = Arc::new(Listed {
            service: self.service.clone(),
            state: state_rx.clone(),
        });
        self.registry
            .unwrap_or_else(Registry::global)
            .register(&listed);
        let feed = PrefixFeed::new(
            client,
            dir.clone().into_bytes(),
            backoff.unwrap_or_default(),
        );
        let task = Task {
            cache: Cache::new(self.service, dir, share, preserve_for, window),
            feed,
            instances,
            state,
            gauges: Gauges::new(&listed.service, &DiscoveryState::default()),
            _listed: listed,
        };
        tokio::spawn(task.run());
        Ok(Discovery {
            instances: instances_rx,
            state: state_rx,
        })
    }
}

/// The `UP` instances of a service registered in etcd (by
/// [`Registration`](super::Registration)s), kept up to date: Eureka's
/// client-side registry cache, fed by a watch instead of a 30 s poll.
///
/// - A full read of `<prefix>/<service>/`, then a watch from the next
///   revision: every change is seen once, in order, within the watch's
///   latency (milliseconds).
/// - Only `UP` instances are offered: an instance set `DOWN` (or any other
///   status) leaves the set at once; set `UP` again, it comes back. Such a
///   departure is deliberate and never held back, and so is a deletion
///   that follows a non-`UP` status in the same update (a
///   [`Registration::shutdown`](super::Registration::shutdown) writes
///   `DOWN`, then revokes its lease).
/// - **Self-preservation** (Eureka's): if more than a share
///   ([`self_preservation`](DiscoveryBuilder::self_preservation), 15 %) of
///   the offered instances vanish within the
///   [`vanish_window`](DiscoveryBuilder::vanish_window) (30 s; a vanished
///   instance stays offered that long), they are kept (a network
///   problem looks like mass death), [reported](DiscoveryState::preserving)
///   and logged, until they come back or
///   [`preserve_for`](DiscoveryBuilder::preserve_for) has passed.
/// - **etcd unreachable**: the last known set is kept (and reported as
///   preserved) while the source reconnects with backoff; on reconnection
///   it reads everything again and applies the difference as one update
///   (self-preservation included). A watch cancelled by etcd (its start
///   revision compacted) is handled the same way.
///
/// The background task runs while the `Discovery` or any receiver from
/// [`instances`](Discovery::instances) (a balancer fed by
/// [`endpoints`](Discovery::endpoints)) is alive.
pub struct Discovery {
    instances: watch::Receiver<Vec<Instance>>,
    state: watch::Receiver<DiscoveryState>,
}

impl Discovery {
    /// Options to follow `service`'s instances. Defaults: prefix
    /// `/services`, self-preservation past 15 %, kept for 15 minutes.
    pub fn builder(service: impl Into<String>) -> DiscoveryBuilder {
        DiscoveryBuilder {
            service: service.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            self_preservation: DEFAULT_SELF_PRESERVATION,
            preserve_for: DEFAULT_PRESERVE_FOR,
            vanish_window: DEFAULT_VANISH_WINDOW,
            backoff: Backoff::exponential(DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX),
            registry: None,
        }
    }

    /// The offered instances (`UP`, and those kept by self-preservation),
    /// sorted by id, as a `watch` channel: for
    /// [`Endpoints::watch`](crate::balance::Endpoints::watch), or to read
    /// yourself.
    pub fn instances(&self) -> watch::Receiver<Vec<Instance>> {
        self.instances.clone()
    }

    /// The offered instances now, sorted by id.
    pub fn current(&self) -> Vec<Instance> {
        self.instances.borrow().clone()
    }

    /// The offered instances as a balancer's [`Endpoints`]: `make` builds
    /// the service for each instance when it first appears (from its
    /// [`address`](Instance::address), say); the instance is the endpoint's
    /// key, and its [`zone`](Instance::zone) the endpoint's (for
    /// [`ZoneAffinity`](crate::balance::rule::ZoneAffinity)). Removed
    /// instances finish the calls they have in flight.
    ///
    /// ```no_run
    /// use rampart::balance::Balance;
    /// use rampart::discovery::Discovery;
    /// # async fn f(client: etcd_client::Client) -> Result<(), rampart::BoxError> {
    /// # let http = |address: &str| tower::service_fn(|_: ()| async { Ok::<_, rampart::BoxError>(()) });
    /// let discovery = Discovery::builder("ratings").start(client)?;
    /// discovery.synced().await;
    /// let ratings = Balance::builder("ratings")
    ///     .build(discovery.endpoints(move |instance| http(&instance.address)))?;
    /// # Ok(()) }
    /// ```
    pub fn endpoints<S, F>(&self, make: F) -> Endpoints<Instance, S>
    where
        S: Send + 'static,
        F: Fn(&Instance) -> S + Send + 'static,
    {
        Endpoints::watch(self.instances(), move |instance: &Instance| {
            let endpoint = Endpoint::new(instance.clone(), make(instance));
            match &instance.zone {
                Some(zone) => endpoint.zone(zone.as_str()),
                None => endpoint,
            }
        })
    }

    /// What the source knows now: whether etcd is reachable, what it holds,
    /// what is kept.
    pub fn state(&self) -> DiscoveryState {
        self.state.borrow().clone()
    }

    /// The state as a `watch` channel, to wait for a change.
    pub fn watch_state(&self) -> watch::Receiver<DiscoveryState> {
        self.state.clone()
    }

    /// Why the offered set is not what etcd holds now, if it is not:
    /// shorthand for `state().preserving()`. `None` before the first read
    /// (the set is empty then: see [`synced`](Self::synced)).
    pub fn preserving(&self) -> Option<Preserving> {
        self.state.borrow().preserving()
    }

    /// Waits for the first successful read of etcd.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn synced(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| s.synced).await;
    }
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// What a [`Discovery`] knows, from [`Discovery::state`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryState {
    /// etcd has been read at least once.
    pub synced: bool,
    /// The last attempt to read or watch etcd succeeded.
    pub reachable: bool,
    /// Instances in etcd at the last read, whatever their status
    /// (undecodable values not counted).
    pub registered: usize,
    /// Instances offered: `UP` ones plus those kept.
    pub offered: usize,
    /// The ids of instances gone from etcd but kept by self-preservation.
    pub kept: Vec<String>,
    /// Keys under the prefix now whose value could not be read as an
    /// instance (logged as `invalid_instance` each time one is written).
    pub invalid: usize,
}

impl DiscoveryState {
    /// Why the offered set is not what etcd holds now, if it is not:
    /// etcd cannot be reached (the last known set stays), or
    /// self-preservation keeps vanished instances.
    pub fn preserving(&self) -> Option<Preserving> {
        if self.synced && !self.reachable {
            Some(Preserving::Unreachable)
        } else if !self.kept.is_empty() {
            Some(Preserving::Vanished {
                kept: self.kept.len(),
            })
        } else {
            None
        }
    }
}

/// A running [`Discovery`] as its [`Registry`] lists it
/// ([`Registry::discoveries`]): the service it follows and what it knows,
/// for an admin page or a health check. Holding one keeps nothing running.
#[derive(Clone)]
pub struct DiscoveryHandle {
    listed: Arc<Listed>,
}

/// What the registry holds of a discovery: its task owns it, so it is
/// listed while the task runs.
pub(crate) struct Listed {
    service: String,
    state: watch::Receiver<DiscoveryState>,
}

impl DiscoveryHandle {
    pub(crate) fn new(listed: Arc<Listed>) -> Option<Self> {
        // The task has ended (its sender dropped) but a handle still held
        // the entry: not running, so not listed.
        listed
            .state
            .has_changed()
            .is_ok()
            .then_some(DiscoveryHandle { listed })
    }

    /// The service whose instances it follows.
    pub fn service(&self) -> &str {
        &self.listed.service
    }

    /// What it knows now, as [`Discovery::state`].
    pub fn state(&self) -> DiscoveryState {
        self.listed.state.borrow().clone()
    }

    /// The state as a `watch` channel, to wait for a change.
    pub fn watch_state(&self) -> watch::Receiver<DiscoveryState> {
        self.listed.state.clone()
    }
}

impl fmt::Debug for DiscoveryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryHandle")
            .field("service", &self.listed.service)
            .field("state", &*self.listed.state.borrow())
            .finish()
    }
}

/// A discovery's counts as gauges, resolved at start (on the recorder in
/// place then), set on each update.
struct Gauges {
    registered: Gauge,
    offered: Gauge,
    kept: Gauge,
    reachable: Gauge,
}

impl Gauges {
    fn new(service: &str, state: &DiscoveryState) -> Self {
        let gauges = Gauges {
            registered: named_gauge(DISCOVERY_REGISTERED, service),
            offered: named_gauge(DISCOVERY_OFFERED, service),
            kept: named_gauge(DISCOVERY_KEPT, service),
            reachable: named_gauge(DISCOVERY_REACHABLE, service),
        };
        gauges.set(state);
        gauges
    }

    fn set(&self, state: &DiscoveryState) {
        self.registered.set(state.registered as f64);
        self.offered.set(state.offered as f64);
        self.kept.set(state.kept.len() as f64);
        self.reachable.set(if state.reachable { 1.0 } else { 0.0 });
    }
}

/// Why a [`Discovery`] offers instances etcd does not confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preserving {
    /// etcd cannot be reached: the last known set stays as it was.
    Unreachable,
    /// More than the self-preservation share vanished at once: `kept`
    /// instances gone from etcd are still offered.
    Vanished {
        /// How many.
        kept: usize,
    },
}

// ===== the cache: what etcd holds, what is offered =====

/// What etcd holds and what is offered, apart from any I/O: the rules
/// (only `UP`, self-preservation) as plain methods.
struct Cache {
    name: String,
    dir: String,
    share: f64,
    preserve_for: Duration,
    window: Duration,
    /// Every decodable instance in etcd, any status, by id.
    actual: BTreeMap<String, Instance>,
    /// Keys whose value is not an instance.
    invalid: BTreeSet<Vec<u8>>,
    /// Instances gone from etcd, kept by self-preservation, by id.
    kept: BTreeMap<String, Instance>,
    /// Instances gone from etcd within the vanish window, still offered
    /// until their deadline, by id.
    pending: BTreeMap<String, (Instance, Instant)>,
    preserving_since: Option<Instant>,
    /// What is offered: `UP` instances and kept ones, sorted by id.
    offered: Vec<Instance>,
}

impl Cache {
    fn new(
        name: String,
        dir: String,
        share: f64,
        preserve_for: Duration,
        window: Duration,
    ) -> Self {
        Cache {
            name,
            dir,
            share,
            preserve_for,
            window,
            pending: BTreeMap::new(),
            actual: BTreeMap::new(),
            invalid: BTreeSet::new(),
            kept: BTreeMap::new(),
            preserving_since: None,
            offered: Vec::new(),
        }
    }

    /// Everything etcd holds now, from a full read.
    fn full(&mut self, all: Vec<(Vec<u8>, Vec<u8>)>) {
        let mut actual = BTreeMap::new();
        self.invalid.clear();
        for (key, value) in all {
            match Instance::decode(&self.dir, &key, &value) {
                Ok(instance) => {
                    actual.insert(instance.id.clone(), instance);
                }
                Err(error) => {
                    self.report_invalid(&key, &error);
                    self.invalid.insert(key);
                }
            }
        }
        self.apply(actual, &BTreeSet::new());
    }

    /// The changes of one watch response.
    fn changes(&mut self, changes: Vec<KeyChange>) {
        let mut actual = self.actual.clone();
        // Instances that left rotation on purpose in this update (a
        // `DOWN` before their deletion, as a shutdown does).
        let mut departed = BTreeSet::new();
        for change in changes {
            match change {
                KeyChange::Put(key, value) => match Instance::decode(&self.dir, &key, &value) {
                    Ok(instance) => {
                        if instance.status != Status::Up {
                            departed.insert(instance.id.clone());
                        }
                        self.invalid.remove(&key);
                        actual.insert(instance.id.clone(), instance);
                    }
                    Err(error) => {
                        // Unusable: as good as gone.
                        self.report_invalid(&key, &error);
                        if let Ok(id) = super::instance::id_of(&self.dir, &key) {
                            actual.remove(id);
                        }
                        self.invalid.insert(key);
                    }
                },
                KeyChange::Delete(key) => {
                    if let Ok(id) = super::instance::id_of(&self.dir, &key) {
                        actual.remove(id);
                    }
                    self.invalid.remove(&key);
                }
            }
        }
        self.apply(actual, &departed);
    }

    /// Takes `actual` as what etcd holds now, after one update, applying
    /// self-preservation to what vanished from the offered set (`departed`:
    /// instances that left rotation on purpose within the update).
    fn apply(&mut self, actual: BTreeMap<String, Instance>, departed: &BTreeSet<String>) {
        // Offered instances, not already kept, whose keys are gone (a
        // status change is deliberate, so it is not a vanishing).
        let vanished: Vec<Instance> = self
            .offered
            .iter()
            .filter(|i| {
                !actual.contains_key(&i.id)
                    && !self.kept.contains_key(&i.id)
                    && !self.pending.contains_key(&i.id)
                    && !departed.contains(&i.id)
            })
            .cloned()
            .collect();
        // Kept or pending instances that came back (whatever their status).
        self.kept.retain(|id, _| !actual.contains_key(id));
        self.pending.retain(|id, _| !actual.contains_key(id));
        let now = Instant::now();
        for instance in vanished {
            self.pending
                .insert(instance.id.clone(), (instance, now + self.window));
        }
        // Everything vanished within the window, against what is offered
        // (the pending ones still are).
        let preserving = !self.kept.is_empty();
        let known = self.offered.len();
        let vanishing = self.pending.len();
        if preserving || vanishing as f64 > self.share * known as f64 {
            if !preserving && vanishing > 0 {
                self.preserving_since = Some(now);
                tracing::warn!(
                    target: TARGET_DISCOVERY,
                    layer = LAYER,
                    name = %self.name,
                    event = "self_preservation",
                    vanished = vanishing,
                    offered = known,
                    share = self.share,
                    "more instances vanished at once than the share allows; keeping them"
                );
            }
            let pending = std::mem::take(&mut self.pending);
            self.kept.extend(
                pending
                    .into_iter()
                    .map(|(id, (instance, _))| (id, instance)),
            );
        }
        if self.kept.is_empty() && self.preserving_since.take().is_some() {
            tracing::info!(
                target: TARGET_DISCOVERY,
                layer = LAYER,
                name = %self.name,
                event = "self_preservation_ended",
                "the kept instances are back"
            );
        }
        self.actual = actual;
        self.settle(now);
    }

    /// When something is next due: a pending instance's removal, or the
    /// end of self-preservation.
    fn next_deadline(&self) -> Option<Instant> {
        let expiry = self.preserving_since.map(|since| since + self.preserve_for);
        let pending = self.pending.values().map(|(_, at)| *at).min();
        expiry.into_iter().chain(pending).min()
    }

    /// Does what is due at `now`.
    fn tick(&mut self, now: Instant) {
        let expired = self
            .preserving_since
            .is_some_and(|since| since + self.preserve_for <= now);
        if expired {
            self.expire();
        }
        self.settle(now);
    }

    /// Removes the pending instances whose window has passed.
    fn settle(&mut self, now: Instant) {
        self.pending.retain(|_, (_, at)| *at > now);
        self.offer();
    }

    /// Self-preservation has lasted `preserve_for` with etcd reachable:
    /// the kept instances are taken as gone.
    fn expire(&mut self) {
        tracing::warn!(
            target: TARGET_DISCOVERY,
            layer = LAYER,
            name = %self.name,
            event = "self_preservation_expired",
            dropped = self.kept.len(),
            "kept instances still missing after preserve_for; dropping them"
        );
        self.kept.clear();
        self.preserving_since = None;
        self.offer();
    }

    fn offer(&mut self) {
        let mut offered: BTreeMap<&str, &Instance> = self
            .actual
            .values()
            .filter(|i| i.status == Status::Up)
            .map(|i| (i.id.as_str(), i))
            .collect();
        offered.extend(self.kept.values().map(|i| (i.id.as_str(), i)));
        offered.extend(self.pending.values().map(|(i, _)| (i.id.as_str(), i)));
        self.offered = offered.into_values().cloned().collect();
    }

    fn report_invalid(&self, key: &[u8], error: &str) {
        tracing::warn!(
            target: TARGET_DISCOVERY,
            layer = LAYER,
            name = %self.name,
            event = "invalid_instance",
            key = %String::from_utf8_lossy(key),
            error,
            "a key under the service's prefix is not an instance; ignored"
        );
    }
}

// ===== the background task =====

struct Task {
    cache: Cache,
    feed: PrefixFeed,
    instances: watch::Sender<Vec<Instance>>,
    state: watch::Sender<DiscoveryState>,
    gauges: Gauges,
    /// Listed in the registry while the task runs.
    _listed: Arc<Listed>,
}

impl Task {
    async fn run(mut self) {
        loop {
            // Nothing kept is dropped while etcd cannot confirm it.
            let reachable = self.state.borrow().reachable;
            let due = self.cache.next_deadline().filter(|_| reachable);
            tokio::select! {
                // Nobody reads the instances any more.
                _ = self.instances.closed() => return,
                _ = sleep_until(due), if due.is_some() => self.cache.tick(Instant::now()),
                update = self.feed.next() => self.update(update),
            }
            self.publish();
        }
    }

    fn update(&mut self, update: Update) {
        match update {
            Update::Full(all) => {
                let was = self.state.borrow().clone();
                self.cache.full(all);
                if was.synced && !was.reachable {
                    tracing::info!(
                        target: TARGET_DISCOVERY,
                        layer = LAYER,
                        name = %self.cache.name,
                        event = "resynced",
                        registered = self.cache.actual.len(),
                        "etcd reachable again; read every instance"
                    );
                }
                self.send(|s| {
                    let changed = !(s.synced && s.reachable);
                    (s.synced, s.reachable) = (true, true);
                    changed
                });
            }
            Update::Changes(changes) => self.cache.changes(changes),
            Update::Lost { error, retries } => {
                if self.state.borrow().reachable {
                    tracing::warn!(
                        target: TARGET_DISCOVERY,
                        layer = LAYER,
                        name = %self.cache.name,
                        event = "etcd_unreachable",
                        error = %error,
                        offered = self.cache.offered.len(),
                        "cannot reach etcd; keeping the last known instances and reconnecting"
                    );
                    self.send(|s| std::mem::replace(&mut s.reachable, false));
                } else {
                    tracing::debug!(
                        target: TARGET_DISCOVERY,
                        layer = LAYER,
                        name = %self.cache.name,
                        event = "etcd_unreachable",
                        error = %error,
                        retries,
                        "still cannot reach etcd"
                    );
                }
            }
        }
    }

    /// Sends the offered set if it changed, and the counts.
    fn publish(&mut self) {
        let cache = &self.cache;
        let changed = self.instances.send_if_modified(|now| {
            if *now == cache.offered {
                false
            } else {
                now.clone_from(&cache.offered);
                true
            }
        });
        if changed {
            tracing::debug!(
                target: TARGET_DISCOVERY,
                layer = LAYER,
                name = %cache.name,
                event = "instances_changed",
                offered = cache.offered.len(),
                registered = cache.actual.len(),
                "the offered instances changed"
            );
        }
        let kept: Vec<String> = cache.kept.keys().cloned().collect();
        let new = (cache.actual.len(), cache.offered.len(), cache.invalid.len());
        self.send(|s| {
            if (s.registered, s.offered, s.invalid) == new && s.kept == kept {
                return false;
            }
            (s.registered, s.offered, s.invalid) = new;
            s.kept = kept;
            true
        });
    }

    /// Changes the state with `change`, which says whether it changed it;
    /// if so, the gauges follow before anyone waiting on the state wakes.
    fn send(&self, change: impl FnOnce(&mut DiscoveryState) -> bool) {
        self.state.send_if_modified(|s| {
            let changed = change(s);
            if changed {
                self.gauges.set(s);
            }
            changed
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/services/ratings/";

    fn cache(share: f64) -> Cache {
        Cache::new(
            "ratings".into(),
            DIR.into(),
            share,
            Duration::from_secs(60),
            Duration::ZERO,
        )
    }

    fn put(id: &str, status: &str) -> KeyChange {
        KeyChange::Put(
            format!("{DIR}{id}").into_bytes(),
            format!(r#"{{"address":"{id}:80","status":"{status}"}}"#).into_bytes(),
        )
    }

    fn delete(id: &str) -> KeyChange {
        KeyChange::Delete(format!("{DIR}{id}").into_bytes())
    }

    fn full(ids: impl IntoIterator<Item = String>) -> Vec<(Vec<u8>, Vec<u8>)> {
        ids.into_iter()
            .map(|id| {
                let value = format!(r#"{{"address":"{id}:80","status":"UP"}}"#);
                (format!("{DIR}{id}").into_bytes(), value.into_bytes())
            })
            .collect()
    }

    fn twenty() -> Vec<String> {
        (0..20).map(|i| format!("i{i:02}")).collect()
    }

    fn offered(cache: &Cache) -> Vec<&str> {
        cache.offered.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn only_up_instances_are_offered() {
        let mut c = cache(0.15);
        c.changes(vec![
            put("a", "UP"),
            put("b", "STARTING"),
            put("c", "OUT_OF_SERVICE"),
        ]);
        assert_eq!(offered(&c), ["a"]);
        c.changes(vec![put("b", "UP"), put("a", "DOWN")]);
        assert_eq!(offered(&c), ["b"]);
        assert_eq!(c.actual.len(), 3);
        assert!(c.kept.is_empty(), "status changes are never kept");
    }

    #[test]
    fn a_share_up_to_the_threshold_goes_more_is_kept() {
        // 3 of 20 is 15 %: not more than the share, so they go.
        let mut c = cache(0.15);
        c.full(full(twenty()));
        c.changes(vec![delete("i00"), delete("i01"), delete("i02")]);
        assert_eq!(c.offered.len(), 17);
        assert!(c.kept.is_empty());
        // 3 of the 17 left is 17.6 %: kept.
        c.changes(vec![delete("i03"), delete("i04"), delete("i05")]);
        assert_eq!(c.offered.len(), 17);
        assert_eq!(c.kept.keys().collect::<Vec<_>>(), ["i03", "i04", "i05"]);
        assert_eq!(c.actual.len(), 14);
        // While preserving, any further vanishing is kept too (Eureka stops
        // evicting altogether).
        c.changes(vec![delete("i06")]);
        assert_eq!(c.offered.len(), 17);
        assert_eq!(c.kept.len(), 4);
        // New instances still join.
        c.changes(vec![put("new", "UP")]);
        assert_eq!(c.offered.len(), 18);
    }

    #[test]
    fn kept_instances_that_come_back_end_preservation() {
        let mut c = cache(0.15);
        c.full(full(["a", "b", "c"].map(String::from)));
        c.changes(vec![delete("a")]);
        assert_eq!(offered(&c), ["a", "b", "c"], "1 of 3 is more than 15 %");
        assert!(c.preserving_since.is_some());
        // Back, but DOWN: no longer kept, and not offered.
        c.changes(vec![put("a", "DOWN")]);
        assert_eq!(offered(&c), ["b", "c"]);
        assert!(c.kept.is_empty());
        assert!(c.preserving_since.is_none());
    }

    #[test]
    fn a_deliberate_departure_is_not_kept() {
        let mut c = cache(0.15);
        c.full(full(["a", "b", "c"].map(String::from)));
        // A shutdown: DOWN, then the key deleted, in one watch response.
        c.changes(vec![put("a", "DOWN"), delete("a")]);
        assert_eq!(offered(&c), ["b", "c"]);
        assert!(c.kept.is_empty());
    }

    #[test]
    fn share_one_never_keeps_share_zero_always_does() {
        let mut off = cache(1.0);
        off.full(full(["a", "b"].map(String::from)));
        off.changes(vec![delete("a"), delete("b")]);
        assert!(off.offered.is_empty(), "all may vanish with a share of 1");
        let mut strict = cache(0.0);
        strict.full(full(twenty()));
        strict.changes(vec![delete("i00")]);
        assert_eq!(strict.offered.len(), 20);
    }

    #[test]
    fn a_full_read_after_an_outage_is_one_update() {
        let mut c = cache(0.15);
        c.full(full(twenty()));
        // Read again after an outage: 5 gone (25 %), 1 new.
        let mut now: Vec<String> = twenty().into_iter().skip(5).collect();
        now.push("new".into());
        c.full(full(now));
        assert_eq!(c.offered.len(), 21);
        assert_eq!(c.kept.len(), 5);
        assert_eq!(c.actual.len(), 16);
    }

    #[test]
    fn undecodable_values_are_counted_and_not_offered() {
        let mut c = cache(1.0);
        c.changes(vec![
            put("a", "UP"),
            KeyChange::Put(format!("{DIR}b").into_bytes(), b"not json".to_vec()),
            KeyChange::Put(format!("{DIR}x/y").into_bytes(), b"{}".to_vec()),
        ]);
        assert_eq!(offered(&c), ["a"]);
        assert_eq!(c.invalid.len(), 2);
        // An instance whose value turns bad is as good as gone.
        c.changes(vec![KeyChange::Put(
            format!("{DIR}a").into_bytes(),
            b"[]".to_vec(),
        )]);
        assert!(c.offered.is_empty());
        assert_eq!(c.invalid.len(), 3);
        c.changes(vec![delete("b"), put("a", "UP")]);
        assert_eq!(c.invalid.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn kept_instances_expire_after_preserve_for() {
        let mut c = cache(0.15);
        c.full(full(["a", "b", "c"].map(String::from)));
        let start = Instant::now();
        c.changes(vec![delete("a"), delete("b")]);
        assert_eq!(c.next_deadline(), Some(start + Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(30)).await;
        // Coming back and vanishing again within the same preservation
        // does not restart the clock.
        c.changes(vec![put("a", "UP")]);
        c.changes(vec![delete("a")]);
        assert_eq!(c.next_deadline(), Some(start + Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(30)).await;
        c.tick(Instant::now());
        assert_eq!(offered(&c), ["c"]);
        assert_eq!(c.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn vanishings_within_the_window_count_together() {
        let mut c = cache(0.15);
        c.window = Duration::from_secs(30);
        c.full(full(twenty()));
        // Lease by lease, 10 s apart: each alone is 5 %.
        c.changes(vec![delete("i00")]);
        assert_eq!(c.offered.len(), 20, "still offered within the window");
        tokio::time::advance(Duration::from_secs(10)).await;
        c.tick(Instant::now());
        c.changes(vec![delete("i01")]);
        tokio::time::advance(Duration::from_secs(10)).await;
        c.tick(Instant::now());
        assert!(c.kept.is_empty(), "2 of 20 is 10 %");
        c.changes(vec![delete("i02")]);
        assert!(c.kept.is_empty(), "3 of 20 is 15 %, not more");
        c.changes(vec![delete("i03")]);
        assert_eq!(c.kept.len(), 4, "4 of 20 within 30 s: all kept");
        assert_eq!(c.offered.len(), 20);

        // Apart by more than the window, they go one by one.
        let mut c = cache(0.15);
        c.window = Duration::from_secs(30);
        c.full(full(twenty()));
        for i in 0..5 {
            c.changes(vec![delete(&format!("i{i:02}"))]);
            tokio::time::advance(Duration::from_secs(31)).await;
            c.tick(Instant::now());
        }
        assert!(c.kept.is_empty());
        assert_eq!(c.offered.len(), 15);
        // One that comes back within its window was never gone.
        c.changes(vec![delete("i10")]);
        c.changes(vec![put("i10", "UP")]);
        tokio::time::advance(Duration::from_secs(31)).await;
        c.tick(Instant::now());
        assert_eq!(c.offered.len(), 15);
    }
}
