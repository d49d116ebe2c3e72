//! Discovery on etcd with Eureka's semantics, and properties kept in etcd
//! (feature `etcd`).
//!
//! Netflix found instances through Eureka: each instance registers with a
//! lease it renews, clients cache the registry and use only `UP`
//! instances, and a registry in trouble keeps the last known instances
//! rather than emptying them. rampart does the same on etcd, a store
//! already operated widely, with etcd's own naming recipe: a key per
//! instance bound to a lease, read with a prefix get and followed with a
//! watch from the next revision.
//!
//! - [`Registration`]: an instance at `/services/<service>/<id>`, bound to
//!   a lease it renews (Eureka's 90 s TTL, renewed every 30 s), with a
//!   [`Status`] (`UP`, `DOWN`, `STARTING`, `OUT_OF_SERVICE`, `UNKNOWN`),
//!   a zone and metadata; registered again if its lease is lost, removed
//!   on [`shutdown`](Registration::shutdown) or drop. Listed in a
//!   [`Registry`](crate::registry::Registry)
//!   ([`registrations`](crate::registry::Registry::registrations)) while
//!   it runs.
//! - [`Discovery`]: a service's `UP` instances as a balancer's
//!   [`Endpoints`](crate::balance::Endpoints), with Eureka's
//!   self-preservation (more than 15 % vanishing at once, or etcd out of
//!   reach, keeps the last known set, [reported](Discovery::preserving)).
//!   Listed in a [`Registry`](crate::registry::Registry)
//!   ([`discoveries`](crate::registry::Registry::discoveries)) while it
//!   runs, its counts reported as gauges (`rampart_discovery_*`, see
//!   [`crate::metrics`]).
//! - [`PropertyWatcher`]: the properties under `/rampart/<app>/` as a
//!   stream of [`PropertyEvent`]s (a full read, then each write and
//!   deletion; a fresh full read after each reconnection), for live
//!   reconfiguration (Archaius's dynamic properties, on etcd).
//!
//! # Example
//!
//! Needs an etcd (e.g. Debian's `etcd-server`: `etcd --data-dir
//! /tmp/etcd`, listening on `127.0.0.1:2379`).
//!
//! ```no_run
//! use rampart::balance::Balance;
//! use rampart::discovery::{Discovery, PropertyEvent, PropertyWatcher, Registration, Status};
//! use std::time::Duration;
//!
//! # async fn serve() {}
//! # async fn f() -> Result<(), rampart::BoxError> {
//! let etcd = etcd_client::Client::connect(["http://127.0.0.1:2379"], None).await?;
//!
//! // This instance: STARTING until it is ready, then UP.
//! let me = Registration::builder("ratings", "ratings-7", "10.0.0.7:8080")
//!     .status(Status::Starting)
//!     .zone("eu-west-1a")
//!     .metadata("version", "1.4.2")
//!     .start(etcd.clone())?;
//! me.set_status(Status::Up);
//!
//! // A client of the service: a balancer over its UP instances.
//! let discovery = Discovery::builder("ratings").start(etcd.clone())?;
//! discovery.synced().await;
//! # let http = |_: &str| tower::service_fn(|_: ()| async { Ok::<_, rampart::BoxError>(()) });
//! let ratings = Balance::builder("ratings")
//!     .build(discovery.endpoints(move |instance| http(&instance.address)))?;
//!
//! // Properties for live reconfiguration.
//! let mut properties = PropertyWatcher::builder("/rampart/shop").start(etcd)?;
//! tokio::spawn(async move {
//!     while let Some(event) = properties.next().await {
//!         if let PropertyEvent::Set(p) = event {
//!             println!("{}.{} = {}", p.component, p.name, p.value);
//!         }
//!     }
//! });
//!
//! serve().await;
//! me.shutdown().await?; // deregistered at once
//! # Ok(()) }
//! ```
//!
//! # Units, ranges, defaults
//!
//! | option | default | range | source |
//! |---|---|---|---|
//! | [`ttl`](RegistrationBuilder::ttl) | 90 s | whole seconds, 1 s to a day | Eureka `leaseExpirationDurationInSeconds` |
//! | [`renew_every`](RegistrationBuilder::renew_every) | 30 s | positive, below the TTL | Eureka `leaseRenewalIntervalInSeconds` |
//! | [`self_preservation`](DiscoveryBuilder::self_preservation) | 0.15 | 0 to 1 (1: off) | Eureka `renewalPercentThreshold` 0.85 |
//! | [`preserve_for`](DiscoveryBuilder::preserve_for) | 15 min | positive | Eureka `renewalThresholdUpdateIntervalMs` |
//! | [`vanish_window`](DiscoveryBuilder::vanish_window) | 30 s | 0 to an hour | Eureka `registryFetchIntervalSeconds` |
//! | `backoff` (each builder) | 100 ms doubling to 10 s, full jitter | see [`Backoff`](crate::retry::Backoff) | AWS "Exponential Backoff And Jitter" |
//!
//! Every builder's `start` returns a [`ConfigError`](crate::ConfigError)
//! naming each bad option, and spawns one task on the current tokio
//! runtime (it panics outside one, as `tokio::spawn` does).
//!
//! # What etcd must hold
//!
//! An instance's value is JSON (see [`Instance`]); a key under the
//! service's prefix that is not one is logged (`invalid_instance`) and
//! counted in [`DiscoveryState::invalid`], never offered. A property is
//! the UTF-8 value of `<prefix>/<component>/<property>`; anything else is
//! logged (`invalid_property`) and sent as [`PropertyEvent::Invalid`],
//! never applied. Whether a value suits its property (a number where a
//! number is due) is for whoever applies it to judge.
//!
//! # Connecting: TLS, user and password
//!
//! Every builder takes an [`etcd_client::Client`], built with whatever
//! [`etcd_client::ConnectOptions`] your etcd needs: `with_user(name,
//! password)`, `with_tls(...)` (enable etcd-client's `tls` feature in your
//! crate; rampart enables none), `with_keep_alive(interval, timeout)`.
//! Keep-alive is what notices an etcd that vanished without closing its
//! connections (a partition, not a crash): without it, a watch on such a
//! connection waits for TCP to give up. A `Client` is cheap to clone and
//! one is enough for a process. `Client::connect` does not fail when etcd
//! is down: the first requests do, and the tasks here retry them.
//!
//! # Who can steer the fleet
//!
//! Whoever can write `/rampart/<app>/` can force every breaker of the
//! fleet open, and whoever can write `/services/<service>/` can send its
//! clients' calls anywhere. Turn etcd's authentication on and give each
//! party only its prefix:
//!
//! ```text
//! # Services register themselves; clients only read.
//! etcdctl role add ratings-instance
//! etcdctl role grant-permission ratings-instance readwrite /services/ratings/ --prefix=true
//! etcdctl role add shop-reader
//! etcdctl role grant-permission shop-reader read /services/ --prefix=true
//! etcdctl role grant-permission shop-reader read /rampart/shop/ --prefix=true
//! # Operators (or your deploy tool) change properties.
//! etcdctl role add shop-operator
//! etcdctl role grant-permission shop-operator readwrite /rampart/shop/ --prefix=true
//! etcdctl user add ratings --new-user-password=...
//! etcdctl user grant-role ratings ratings-instance
//! etcdctl user grant-role ratings shop-reader
//! etcdctl user add root --new-user-password=...
//! etcdctl user grant-role root root
//! etcdctl auth enable
//! ```
//!
//! (`tests/etcd.rs` checks these grants: such a user registers, discovers
//! and reads properties, and is denied writing one.)
//!
//! A reader then connects with
//! `ConnectOptions::new().with_user("ratings", password)`, over TLS.
//!
//! # Events
//!
//! Logged with `tracing` under the target `rampart::discovery` (`layer`
//! is `discovery` or `properties`; `name` the instance's key, the service
//! or the prefix): `registered`, `renewed` (trace), `lease_lost`,
//! `instance_missing`,
//! `deregistered`, `deregister_failed`, `etcd_unreachable`, `reconnected`,
//! `resynced`, `instances_changed` (debug), `self_preservation`,
//! `self_preservation_ended`, `self_preservation_expired`,
//! `invalid_instance`, `invalid_property`. See [`crate::metrics`].
//!
//! # Not here yet
//!
//! Applying [`PropertyEvent`]s to running components (live
//! reconfiguration through their handles) is the config module's work;
//! this module only reads etcd.

mod feed;
mod instance;
mod properties;
mod registration;
mod source;

pub use instance::{Instance, Status, DEFAULT_PREFIX};
pub use properties::{Property, PropertyEvent, PropertyWatcher, PropertyWatcherBuilder};
pub use registration::{
    Registration, RegistrationBuilder, RegistrationHandle, DEFAULT_RENEW_EVERY, DEFAULT_RETRY_BASE,
    DEFAULT_RETRY_MAX, DEFAULT_TTL,
};
pub(crate) use source::Listed;
pub use source::{
    Discovery, DiscoveryBuilder, DiscoveryHandle, DiscoveryState, Preserving, DEFAULT_PRESERVE_FOR,
    DEFAULT_SELF_PRESERVATION, DEFAULT_VANISH_WINDOW,
};
