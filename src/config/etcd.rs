//! etcd as a source of live properties: one key steers a fleet (feature
//! `etcd`).

use super::Source;
use crate::discovery::{PropertyEvent, PropertyWatcher};
use crate::error::ConfigError;
use crate::metrics::TARGET_CONFIG;
use crate::registry::Registry;
use crate::retry::Backoff;
use etcd_client::Client;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;

/// Live properties kept in etcd, applied as [`Source::Etcd`] (above a
/// file, below handles) to the components of a registry: the key
/// `<prefix>/<component>/<property>` sets that
/// [property](crate::config#properties) of every component named
/// `<component>`, in every process watching the prefix. Writing
/// `/rampart/shop/Bookmarks/force_open = true` forces the `Bookmarks`
/// breaker open fleet-wide; deleting the key returns each process to its
/// next layer down (its file's value, or the built one).
///
/// Built on [`PropertyWatcher`]: the prefix is read whole at start
/// ([`Registry::replace`]) and watched from the next revision
/// ([`Registry::apply`] per write or deletion). A value a component
/// refuses (a bad number, an unknown property) changes nothing: it is
/// logged (`property_rejected`, target `rampart::config`) and listed by
/// [`EtcdWatch::errors`] until a good value replaces it. While etcd cannot
/// be reached every value stays as it was; the watcher reconnects with
/// backoff and reads the prefix whole again, so a change made meanwhile
/// lands then.
///
/// # Security
///
/// Whoever can write the prefix can steer every process watching it:
/// force breakers open, set timeouts to a millisecond. Give the processes
/// a read-only role on it and keep write access to operators, with
/// etcd's own authentication (connect with
/// `ConnectOptions::with_user`, and TLS through etcd-client's `tls`
/// feature):
///
/// ```text
/// etcdctl role add rampart-reader
/// etcdctl role grant-permission rampart-reader read /rampart/ --prefix=true
/// etcdctl role add rampart-operator
/// etcdctl role grant-permission rampart-operator readwrite /rampart/ --prefix=true
/// ```
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use rampart::config::EtcdSource;
/// use rampart::registry::Registry;
/// use rampart::Command;
///
/// let bookmarks = Command::builder("Bookmarks").build()?; // in Registry::global()
/// let client = etcd_client::Client::connect(["http://127.0.0.1:2379"], None).await?;
/// let watch = EtcdSource::watch(client, "/rampart/shop", &Registry::global())?;
/// // `etcdctl put /rampart/shop/Bookmarks/force_open true` now opens it here
/// // and in every other process watching /rampart/shop.
/// # drop((bookmarks, watch));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EtcdSource;

impl EtcdSource {
    /// Applies the properties under `prefix` (e.g. `/rampart/<app>`) to
    /// `registry`, now and on every change, until the returned
    /// [`EtcdWatch`] is dropped; reconnects with the default backoff
    /// (100 ms up to 10 s, full jitter).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `prefix` if it does not start with `/` or
    /// names nothing. etcd being unreachable is not an error: the watch
    /// waits for it.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns its task), as `tokio::spawn`
    /// does.
    pub fn watch(
        client: Client,
        prefix: &str,
        registry: &Registry,
    ) -> Result<EtcdWatch, ConfigError> {
        Self::watch_with(client, prefix, registry, None)
    }

    /// [`watch`](Self::watch) with a backoff of one's own between
    /// attempts while etcd cannot be reached.
    ///
    /// # Errors
    ///
    /// As [`watch`](Self::watch).
    pub fn watch_with_backoff(
        client: Client,
        prefix: &str,
        registry: &Registry,
        backoff: Backoff,
    ) -> Result<EtcdWatch, ConfigError> {
        Self::watch_with(client, prefix, registry, Some(backoff))
    }

    fn watch_with(
        client: Client,
        prefix: &str,
        registry: &Registry,
        backoff: Option<Backoff>,
    ) -> Result<EtcdWatch, ConfigError> {
        let mut builder = PropertyWatcher::builder(prefix);
        if let Some(backoff) = backoff {
            builder = builder.backoff(backoff);
        }
        let watcher = builder.start(client)?;
        let status = Arc::new(Mutex::new(Status::default()));
        let task = tokio::spawn(follow(watcher, registry.clone(), status.clone()));
        Ok(EtcdWatch {
            prefix: prefix.to_owned(),
            status,
            task,
        })
    }
}

#[derive(Default)]
struct Status {
    /// Refused values, by component and property.
    refused: BTreeMap<(String, String), ConfigError>,
    /// Events applied: full reads, writes and deletions.
    updates: u64,
    /// Whether etcd answered last (a full read since the last outage).
    reachable: bool,
}

fn status_of(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    // Each change is one insert, remove or counter: a panic leaves it whole.
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn follow(mut watcher: PropertyWatcher, registry: Registry, status: Arc<Mutex<Status>>) {
    while let Some(event) = watcher.next().await {
        match event {
            PropertyEvent::Replace(properties) => {
                let errors = registry.replace(Source::Etcd, &properties);
                let mut status = status_of(&status);
                // Keyed by the property each error is about, so a later
                // good write of it clears it.
                status.refused = errors
                    .into_iter()
                    .map(|error| {
                        let key = properties
                            .iter()
                            .find(|p| refuses(&error, &p.component, &p.name))
                            .map(|p| (p.component.clone(), p.name.clone()))
                            .unwrap_or_else(|| (error.component().to_owned(), error.to_string()));
                        (key, error)
                    })
                    .collect();
                status.updates += 1;
                status.reachable = true;
            }
            PropertyEvent::Set(property) => {
                let result = registry.apply(
                    Source::Etcd,
                    &property.component,
                    &property.name,
                    Some(&property.value),
                );
                if let Err(error) = &result {
                    refused(&property.component, error);
                }
                let mut status = status_of(&status);
                let key = (property.component, property.name);
                match result {
                    Ok(()) => status.refused.remove(&key),
                    Err(error) => status.refused.insert(key, error),
                };
                status.updates += 1;
            }
            PropertyEvent::Delete { component, name } => {
                // A deletion refused (an unknown property's, or one that
                // would bring back a value under it that breaks a rule) is
                // logged; the key is gone from etcd, so no longer listed.
                if let Err(error) = registry.apply(Source::Etcd, &component, &name, None) {
                    refused(&component, &error);
                }
                let mut status = status_of(&status);
                status.refused.remove(&(component, name));
                status.updates += 1;
            }
            // Logged by the watcher; nothing to apply.
            PropertyEvent::Invalid { .. } => {}
            PropertyEvent::Unreachable { error } => {
                status_of(&status).reachable = false;
                tracing::warn!(
                    target: TARGET_CONFIG,
                    event = "source_unreachable",
                    source = "etcd",
                    error,
                    "etcd cannot be reached: live properties keep their values"
                );
            }
        }
    }
}

/// Logs a write or deletion a component refused, as a full read's are.
fn refused(component: &str, error: &ConfigError) {
    super::rejected(Source::Etcd.layer(), component, error, super::REFUSED);
}

/// Whether `error` is about `property` of `component`.
fn refuses(error: &ConfigError, component: &str, property: &str) -> bool {
    error.component().contains(component) && error.names(property)
}

/// The properties under a prefix being applied (see
/// [`EtcdSource::watch`]); the watch stops when this is dropped. The
/// values it applied stay.
pub struct EtcdWatch {
    prefix: String,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

impl EtcdWatch {
    /// The values in etcd that their components refuse now (each kept its
    /// previous value), one error per property; empty when every value
    /// applied.
    pub fn errors(&self) -> Vec<ConfigError> {
        status_of(&self.status).refused.values().cloned().collect()
    }

    /// Full reads, writes and deletions applied so far.
    pub fn updates(&self) -> u64 {
        status_of(&self.status).updates
    }

    /// Whether etcd answered last: false from an outage until the full
    /// read after it (and before the first one).
    pub fn is_reachable(&self) -> bool {
        status_of(&self.status).reachable
    }

    /// The prefix watched.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        // Dropping the task drops its watcher, which stops its own.
        self.task.abort();
    }
}

impl fmt::Debug for EtcdWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdWatch")
            .field("prefix", &self.prefix)
            .field("updates", &self.updates())
            .field("reachable", &self.is_reachable())
            .finish_non_exhaustive()
    }
}
