//! An instance registered in etcd under a lease it keeps alive (Eureka's
//! register / renew / cancel).

use super::instance::{Instance, Status, DEFAULT_PREFIX};
use crate::error::{ConfigError, Validator};
use crate::metrics::TARGET_DISCOVERY;
use crate::registry::Registry;
use crate::retry::Backoff;
use etcd_client::{Client, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Eureka's lease duration (`leaseExpirationDurationInSeconds`): an
/// instance that stops renewing disappears after this.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90);
/// Eureka's renewal interval (`leaseRenewalIntervalInSeconds`).
pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(30);
/// First bound of the backoff between attempts to reach etcd.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(100);
/// Cap on the backoff between attempts to reach etcd.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

/// How long [`Registration::shutdown`] waits for etcd to revoke the lease.
const REVOKE_LIMIT: Duration = Duration::from_secs(5);

const LAYER: &str = "discovery";

/// Options for a [`Registration`]; from [`Registration::builder`].
#[derive(Debug, Clone)]
pub struct RegistrationBuilder {
    service: String,
    id: String,
    address: String,
    status: Status,
    zone: Option<String>,
    metadata: BTreeMap<String, String>,
    prefix: String,
    ttl: Duration,
    renew_every: Duration,
    backoff: Result<Backoff, ConfigError>,
    registry: Option<Registry>,
}

impl RegistrationBuilder {
    /// The status registered first. Default [`Status::Up`]; register
    /// [`Status::Starting`] and [`set_status`](RegistrationHandle::set_status)
    /// `Up` when ready, as Eureka clients do.
    pub fn status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// The instance's availability zone. Default: none.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Adds a metadata entry. Default: none.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The key prefix. Default [`DEFAULT_PREFIX`] (`/services`); the key is
    /// `<prefix>/<service>/<id>`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The lease's time to live: if the instance stops renewing (killed,
    /// cut off from etcd), its key disappears after this. Whole seconds
    /// (etcd's unit), from 1 s to a day; default 90 s (Eureka's). etcd may
    /// grant more than a very short TTL asks (its minimum follows its
    /// election timeout, about 2 s by default).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How often the lease is renewed. Positive and shorter than the TTL;
    /// default 30 s (Eureka's). A third of the TTL leaves two renewals to
    /// lose before the lease runs out.
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = every;
        self
    }

    /// The backoff between attempts while etcd cannot be reached. Default:
    /// exponential with full jitter from [`DEFAULT_RETRY_BASE`] up to
    /// [`DEFAULT_RETRY_MAX`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Ok(backoff);
        self
    }

    /// The [`Registry`] to list this registration in while it runs (for an
    /// admin endpoint that takes the instance out of service, as Eureka's
    /// status override does). Default: [`Registry::global`].
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    fn check(&self) -> Result<Backoff, ConfigError> {
        let mut v = Validator::new(format!("registration \"{}/{}\"", self.service, self.id));
        let segment = |s: &str| !s.is_empty() && !s.contains('/');
        v.check(segment(&self.service), "service", || {
            format!("must be non-empty without '/', got {:?}", self.service)
        });
        v.check(segment(&self.id), "id", || {
            format!("must be non-empty without '/', got {:?}", self.id)
        });
        v.check(!self.address.is_empty(), "address", || {
            "must be non-empty".to_owned()
        });
        v.check(self.prefix.starts_with('/'), "prefix", || {
            format!("must start with '/', got {:?}", self.prefix)
        });
        let ttl = self.ttl;
        v.check(
            ttl >= Duration::from_secs(1)
                && ttl <= Duration::from_secs(86_400)
                && ttl.subsec_nanos() == 0,
            "ttl",
            || format!("must be whole seconds from 1 s to a day, got {ttl:?}"),
        );
        let every = self.renew_every;
        v.check(every > Duration::ZERO && every < ttl, "renew_every", || {
            format!("must be positive and shorter than the ttl ({ttl:?}), got {every:?}")
        });
        let backoff = v.absorb(self.backoff.clone());
        v.finish()?;
        Ok(backoff.unwrap_or_default())
    }

    /// Checks the options and starts registering: the instance is written
    /// under a new lease in the background, at once, then renewed every
    /// `renew_every`. While etcd cannot be reached it keeps trying, after
    /// a backoff. `client` comes with its connection options (endpoints,
    /// TLS, user and password: see the [module docs](super)).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming every bad option.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns its task), as `tokio::spawn` does.
    pub fn start(self, client: Client) -> Result<Registration, ConfigError> {
        let backoff = self.check()?;
        let dir = super::feed::dir(&self.prefix);
        let key = format!("{dir}{}/{}", self.service, self.id);
        let instance = Instance {
            id: self.id,
            address: self.address,
            status: self.status,
            zone: self.zone,
            metadata: self.metadata,
        };
        let (status, status_rx) = watch::channel(self.status);
        let (registered, registered_rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let handle = RegistrationHandle {
            key: Arc::from(key.as_str()),
            status: Arc::new(status),
            registered: registered_rx,
        };
        let listed = Arc::new(handle.clone());
        self.registry
            .unwrap_or_else(Registry::global)
            .register(&listed);
        let task = Task {
            client,
            key: key.clone(),
            instance,
            ttl: self.ttl,
            renew_every: self.renew_every,
            backoff,
            status: status_rx,
            registered,
            stop: stop_rx,
            _listed: listed,
        };
        let task = tokio::spawn(task.run());
        Ok(Registration {
            handle,
            stop,
            task: Some(task),
        })
    }
}

/// An instance registered in etcd under a lease it keeps alive: Eureka's
/// registration, on etcd's own naming recipe (a key per instance, bound to
/// a lease).
///
/// - **Register**: a lease with the TTL is granted and the instance
///   written at `<prefix>/<service>/<id>` under it, as JSON (see
///   [`Instance`]).
/// - **Renew**: the lease is kept alive every `renew_every`. A keep-alive
///   answered with a TTL of 0 means the lease is gone (it ran out while
///   the instance was cut off, or someone revoked it): the instance
///   registers again under a new lease. Each renewal also looks for the
///   instance's key: one deleted by hand is written again under the same
///   lease (Eureka registers again when a renewal finds the instance gone).
/// - **Status**: [`RegistrationHandle::set_status`] rewrites the value
///   under the same lease; only `UP` instances receive traffic.
/// - **Cancel**: [`shutdown`](Registration::shutdown) writes the instance
///   `DOWN` (so readers take it as a deliberate departure, which
///   self-preservation does not hold back), then revokes the lease, which
///   deletes the key at once. Dropping the registration does the same
///   in the background, as long as the runtime still runs; a process that
///   dies leaves its key until the lease runs out.
/// - **etcd unreachable**: every step is retried after a jittered,
///   growing [backoff](RegistrationBuilder::backoff); the key stays in etcd
///   until its lease runs out.
///
/// Events are logged under the `rampart::discovery` target (see
/// [`crate::metrics`]).
pub struct Registration {
    handle: RegistrationHandle,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), etcd_client::Error>>>,
}

impl Registration {
    /// Options for instance `id` of `service`, reachable at `address`.
    /// Defaults: status `UP`, no zone or metadata, prefix `/services`,
    /// Eureka's TTL (90 s) and renewal (30 s).
    pub fn builder(
        service: impl Into<String>,
        id: impl Into<String>,
        address: impl Into<String>,
    ) -> RegistrationBuilder {
        RegistrationBuilder {
            service: service.into(),
            id: id.into(),
            address: address.into(),
            status: Status::Up,
            zone: None,
            metadata: BTreeMap::new(),
            prefix: DEFAULT_PREFIX.to_owned(),
            ttl: DEFAULT_TTL,
            renew_every: DEFAULT_RENEW_EVERY,
            backoff: Backoff::exponential(DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX),
            registry: None,
        }
    }

    /// A handle to change the status and see the lease.
    pub fn handle(&self) -> RegistrationHandle {
        self.handle.clone()
    }

    /// Sets the status; see [`RegistrationHandle::set_status`].
    pub fn set_status(&self, status: Status) {
        self.handle.set_status(status);
    }

    /// Deregisters: writes the instance `DOWN`, revokes the lease (deleting
    /// the key) and stops renewing.
    ///
    /// # Errors
    ///
    /// etcd's error if it could not revoke the lease within 5 s (it then
    /// runs out after its TTL), or if the registration task panicked.
    ///
    /// # Cancel safety
    ///
    /// Cancelled, the revocation still goes on in the background.
    pub async fn shutdown(mut self) -> Result<(), etcd_client::Error> {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(result) => result,
            Err(e) => Err(etcd_client::Error::Internal(format!(
                "the registration task failed: {e}"
            ))),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The task sees the stop and revokes the lease, best effort.
        let _ = self.stop.send(true);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.handle.key)
            .field("status", &self.handle.status())
            .field("lease", &self.handle.lease())
            .finish()
    }
}

/// Changes a [`Registration`]'s status and reports its lease; cheap to
/// clone. It does not keep the registration alive.
#[derive(Clone)]
pub struct RegistrationHandle {
    key: Arc<str>,
    status: Arc<watch::Sender<Status>>,
    /// The lease and the status etcd holds, when it holds the instance.
    registered: watch::Receiver<Option<(i64, Status)>>,
}

impl RegistrationHandle {
    /// Whether its task still runs (a registration listed, not shut down).
    pub(crate) fn running(&self) -> bool {
        self.registered.has_changed().is_ok()
    }

    /// The instance's key in etcd.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The status last set.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Sets the status: written to etcd under the same lease as soon as
    /// etcd can be reached (readers see it within their watch's latency).
    /// `DOWN`, `STARTING`, `OUT_OF_SERVICE` and `UNKNOWN` take the
    /// instance out of every balancer's rotation; `UP` puts it back.
    pub fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }

    /// The lease the instance is registered under, if etcd holds its
    /// current value now (`None` before the first registration, while a
    /// write is pending, and after a lost lease until it registers again).
    pub fn lease(&self) -> Option<i64> {
        self.holds(*self.registered.borrow())
    }

    /// The lease, if `registered` says etcd holds the status last set.
    fn holds(&self, registered: Option<(i64, Status)>) -> Option<i64> {
        // A status set since is a write pending, whether or not the task
        // has seen it yet (found by a user trial: during an outage it
        // looks only after its backoff).
        registered
            .filter(|&(_, status)| status == self.status())
            .map(|(lease, _)| lease)
    }

    /// Waits until etcd holds the instance's current value (see
    /// [`lease`](Self::lease)) and returns its lease; `None` if the
    /// registration has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn registered(&self) -> Option<i64> {
        let mut registered = self.registered.clone();
        let held = registered
            .wait_for(|r| self.holds(*r).is_some())
            .await
            .ok()?;
        self.holds(*held)
    }
}

impl fmt::Debug for RegistrationHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationHandle")
            .field("key", &self.key)
            .field("status", &self.status())
            .field("lease", &self.lease())
            .finish()
    }
}

// ===== the background task =====

struct Task {
    client: Client,
    key: String,
    instance: Instance,
    ttl: Duration,
    renew_every: Duration,
    backoff: Backoff,
    status: watch::Receiver<Status>,
    registered: watch::Sender<Option<(i64, Status)>>,
    stop: watch::Receiver<bool>,
    /// Listed in the registry while the task runs.
    _listed: Arc<RegistrationHandle>,
}

/// What a keep-alive found.
enum Renewal {
    Renewed,
    /// Answered with a TTL of 0: the lease is gone.
    Lost,
}

/// The lease being kept alive.
struct Lease {
    id: i64,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    /// etcd holds the current status.
    written: bool,
}

impl Task {
    async fn run(mut self) -> Result<(), etcd_client::Error> {
        let mut lease: Option<Lease> = None;
        let mut failures = 0u32;
        let mut previous_delay = Duration::ZERO;
        let mut renew_at = Instant::now() + self.renew_every;
        loop {
            if *self.stop.borrow() {
                return self.revoke(lease.as_ref()).await;
            }
            if failures > 0 {
                let delay = self.backoff.delay(failures, previous_delay);
                previous_delay = delay;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.stop.changed() => continue,
                }
            }
            // A stop cuts a step short, even one waiting on an etcd that
            // does not answer; the lease is revoked at the loop's top.
            let mut stop = self.stop.clone();
            let stepped = tokio::select! {
                stepped = self.step(&mut lease, &mut renew_at) => stepped,
                _ = stop.changed() => continue,
            };
            match stepped {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(
                            target: TARGET_DISCOVERY,
                            layer = LAYER,
                            name = %self.key,
                            event = "reconnected",
                            "etcd reachable again"
                        );
                    }
                    failures = 0;
                    previous_delay = Duration::ZERO;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(
                            target: TARGET_DISCOVERY,
                            layer = LAYER,
                            name = %self.key,
                            event = "etcd_unreachable",
                            error = %e,
                            "cannot reach etcd to keep the registration; retrying with backoff"
                        );
                    }
                    if let Some(lease) = &mut lease {
                        lease.keeper = None;
                    }
                    // Renew as soon as etcd answers again.
                    renew_at = Instant::now();
                }
            }
        }
    }

    /// One step: register, write a new status, or renew, whichever is due
    /// (waiting for the renewal or a status change). Cancelled by a stop.
    async fn step(
        &mut self,
        lease: &mut Option<Lease>,
        renew_at: &mut Instant,
    ) -> Result<(), etcd_client::Error> {
        let Some(current) = lease else {
            let ttl = self.ttl.as_secs() as i64;
            let granted = bounded(self.renew_every, self.client.lease_grant(ttl, None)).await?;
            *lease = Some(Lease {
                id: granted.id(),
                keeper: None,
                written: false,
            });
            *renew_at = Instant::now() + self.renew_every;
            return Ok(());
        };
        if !current.written || self.status.has_changed().unwrap_or(false) {
            self.instance.status = *self.status.borrow_and_update();
            self.registered.send_replace(None);
            current.written = false;
            let put = bounded(
                self.renew_every,
                self.client.put(
                    self.key.as_bytes(),
                    self.instance.encode(),
                    Some(PutOptions::new().with_lease(current.id)),
                ),
            )
            .await;
            if let Err(e) = put {
                if e.to_string().contains("lease not found") {
                    // It ran out while etcd was out of reach: a new one.
                    *lease = None;
                }
                return Err(e);
            }
            current.written = true;
            self.registered
                .send_replace(Some((current.id, self.instance.status)));
            tracing::info!(
                target: TARGET_DISCOVERY,
                layer = LAYER,
                name = %self.key,
                event = "registered",
                lease = current.id,
                status = %self.instance.status,
                "instance written to etcd"
            );
            return Ok(());
        }
        tokio::select! {
            // A due renewal first: after a failure it is due at once, and
            // it proves etcd reachable again (a status change alone does
            // not; it stays pending for the next step's check).
            biased;
            _ = tokio::time::sleep_until(*renew_at) => {}
            // `changed` marks the new status seen: write it next step.
            _ = self.status.changed() => {
                current.written = false;
                return Ok(());
            }
        }
        let renewal = match &mut current.keeper {
            None => {
                // Opening the stream sends the first keep-alive, and
                // etcd-client turns an answer of TTL 0 into this error.
                match bounded(self.renew_every, self.client.lease_keep_alive(current.id)).await {
                    Ok(keeper) => {
                        current.keeper = Some(keeper);
                        Renewal::Renewed
                    }
                    Err(etcd_client::Error::LeaseKeepAliveError(e)) if e == "lease not found" => {
                        Renewal::Lost
                    }
                    Err(e) => return Err(e),
                }
            }
            Some((keeper, answers)) => {
                let answer = bounded(self.renew_every, async {
                    keeper.keep_alive().await?;
                    answers.message().await
                })
                .await?;
                match answer {
                    Some(answer) if answer.ttl() > 0 => Renewal::Renewed,
                    Some(_) => Renewal::Lost,
                    None => {
                        current.keeper = None;
                        return Err(etcd_client::Error::LeaseKeepAliveError(
                            "the keep-alive stream ended".to_owned(),
                        ));
                    }
                }
            }
        };
        match renewal {
            Renewal::Renewed => {
                // Eureka registers again when a renewal finds the instance
                // gone (a 404); etcd's keep-alive does not look at the key,
                // which someone may have deleted by hand: look.
                let held = bounded(
                    self.renew_every,
                    self.client.get(
                        self.key.as_bytes(),
                        Some(GetOptions::new().with_keys_only()),
                    ),
                )
                .await?;
                if held.kvs().is_empty() {
                    tracing::warn!(
                        target: TARGET_DISCOVERY,
                        layer = LAYER,
                        name = %self.key,
                        event = "instance_missing",
                        lease = current.id,
                        "the instance's key is gone though its lease lives; writing it again"
                    );
                    current.written = false;
                    self.registered.send_replace(None);
                    return Ok(());
                }
                *renew_at = Instant::now() + self.renew_every;
                tracing::trace!(
                    target: TARGET_DISCOVERY,
                    layer = LAYER,
                    name = %self.key,
                    event = "renewed",
                    lease = current.id,
                    "lease renewed"
                );
            }
            Renewal::Lost => {
                // TTL 0: the lease ran out (or was revoked), and the key
                // with it. Register again under a new one.
                tracing::warn!(
                    target: TARGET_DISCOVERY,
                    layer = LAYER,
                    name = %self.key,
                    event = "lease_lost",
                    lease = current.id,
                    "the lease is gone; registering again"
                );
                *lease = None;
                self.registered.send_replace(None);
            }
        }
        Ok(())
    }

    async fn revoke(&mut self, lease: Option<&Lease>) -> Result<(), etcd_client::Error> {
        self.registered.send_replace(None);
        let Some(lease) = lease else {
            return Ok(());
        };
        // DOWN first, then the revocation: readers see a deliberate
        // departure, not a vanishing that self-preservation would keep
        // (Eureka's cancel is not an expiry either).
        let (client, key, id) = (&mut self.client, &self.key, lease.id);
        let mut instance = self.instance.clone();
        instance.status = Status::Down;
        let revoked = tokio::time::timeout(REVOKE_LIMIT, async move {
            let down = Some(PutOptions::new().with_lease(id));
            client.put(key.as_bytes(), instance.encode(), down).await?;
            client.lease_revoke(id).await
        })
        .await;
        let result = match revoked {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(etcd_client::Error::LeaseKeepAliveError(format!(
                "etcd did not revoke the lease within {REVOKE_LIMIT:?}"
            ))),
        };
        match &result {
            Ok(()) => tracing::info!(
                target: TARGET_DISCOVERY,
                layer = LAYER,
                name = %self.key,
                event = "deregistered",
                lease = lease.id,
                "lease revoked, instance removed"
            ),
            Err(e) => tracing::warn!(
                target: TARGET_DISCOVERY,
                layer = LAYER,
                name = %self.key,
                event = "deregister_failed",
                error = %e,
                "could not revoke the lease; the key stays until its TTL runs out"
            ),
        }
        result
    }
}

/// `request`, failed if etcd does not answer within `limit` (the renewal
/// interval: an answer later than that is as good as none, and a
/// partitioned etcd may never answer at all).
async fn bounded<T>(
    limit: Duration,
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, etcd_client::Error> {
    match tokio::time::timeout(limit, request).await {
        Ok(answer) => answer,
        Err(_) => Err(etcd_client::Error::IoError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("etcd did not answer within {limit:?}"),
        ))),
    }
}
