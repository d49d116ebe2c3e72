//! Properties kept in etcd, as a stream of changes for live
//! reconfiguration (Archaius's dynamic properties, on etcd).

use super::feed::{dir, KeyChange, PrefixFeed, Update};
use super::registration::{DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX};
use crate::error::{ConfigError, Validator};
use crate::metrics::TARGET_DISCOVERY;
use crate::retry::Backoff;
use etcd_client::Client;
use std::collections::BTreeMap;
use std::fmt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const LAYER: &str = "properties";

/// How many events may wait for the reader before the watcher waits too.
const CAPACITY: usize = 64;

/// One property: the value of `<prefix>/<component>/<name>`, as
/// [`Registry::apply`](crate::registry::Registry::apply) takes it (its
/// value as written, UTF-8, surrounding whitespace trimmed).
pub use crate::config::Property;

/// What a [`PropertyWatcher`] saw in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyEvent {
    /// Every property under the prefix, read at one revision: at start and
    /// after every reconnection. Properties absent from the list are no
    /// longer set in etcd (they return to their value from elsewhere).
    /// A key whose value is invalid now but was valid before appears with
    /// its last good value: a bad write changes nothing.
    Replace(Vec<Property>),
    /// One property was written.
    Set(Property),
    /// One property was deleted: it returns to its value from elsewhere.
    Delete {
        /// The component's name.
        component: String,
        /// The property's name.
        name: String,
    },
    /// A key under the prefix is not a property (not
    /// `<prefix>/<component>/<name>`), or its value is not UTF-8: nothing
    /// was applied for it.
    Invalid {
        /// The key, lossily decoded.
        key: String,
        /// What is wrong with it.
        error: String,
    },
    /// etcd cannot be reached (or the watch broke): the values seen so
    /// far stay. Sent once per outage; a [`Replace`](PropertyEvent::Replace)
    /// follows the reconnection.
    Unreachable {
        /// etcd's error.
        error: String,
    },
}

/// Options for a [`PropertyWatcher`]; from [`PropertyWatcher::builder`].
#[derive(Debug, Clone)]
pub struct PropertyWatcherBuilder {
    prefix: String,
    backoff: Result<Backoff, ConfigError>,
}

impl PropertyWatcherBuilder {
    /// The backoff between attempts while etcd cannot be reached. Default:
    /// exponential with full jitter from 100 ms up to 10 s.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Ok(backoff);
        self
    }

    /// Checks the options and starts watching in the background.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming every bad option.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns its task), as `tokio::spawn` does.
    pub fn start(self, client: Client) -> Result<PropertyWatcher, ConfigError> {
        let mut v = Validator::new(format!("property watcher \"{}\"", self.prefix));
        v.check(
            self.prefix.starts_with('/') && self.prefix.trim_end_matches('/').len() > 1,
            "prefix",
            || {
                format!(
                    "must start with '/' and name something, got {:?}",
                    self.prefix
                )
            },
        );
        let backoff = v.absorb(self.backoff);
        v.finish()?;
        let dir = dir(&self.prefix);
        let (events, events_rx) = mpsc::channel(CAPACITY);
        let feed = PrefixFeed::new(
            client,
            dir.clone().into_bytes(),
            backoff.unwrap_or_default(),
        );
        let task = Task {
            dir,
            feed,
            events,
            values: BTreeMap::new(),
        };
        Ok(PropertyWatcher {
            prefix: self.prefix,
            events: events_rx,
            task: tokio::spawn(task.run()),
        })
    }
}

/// Follows the properties kept in etcd under a prefix, one key per
/// property: `<prefix>/<component>/<name>`, e.g.
/// `/rampart/shop/ratings/force_open` = `true`.
///
/// - At start, everything under the prefix is read and sent as one
///   [`Replace`](PropertyEvent::Replace); then the prefix is watched from
///   the next revision, and each write or deletion is sent as a
///   [`Set`](PropertyEvent::Set) or a [`Delete`](PropertyEvent::Delete), in
///   etcd's order.
/// - When etcd cannot be reached, nothing destructive is sent: an
///   [`Unreachable`](PropertyEvent::Unreachable), then, once it answers
///   again (retried with backoff), a fresh `Replace`. A watch cancelled
///   by etcd (its start revision compacted) is handled the same way.
/// - A key that is not `<component>/<name>` under the prefix, or a value
///   that is not UTF-8, is logged (`invalid_property`, target
///   `rampart::discovery`) and sent as [`Invalid`](PropertyEvent::Invalid),
///   never as a value.
///
/// Events wait for the reader (up to 64 queued): a reader that stops
/// reading holds the watcher back, it loses nothing. Dropping the watcher
/// stops it.
pub struct PropertyWatcher {
    prefix: String,
    events: mpsc::Receiver<PropertyEvent>,
    task: JoinHandle<()>,
}

impl PropertyWatcher {
    /// Options to follow the properties under `prefix`, e.g.
    /// `/rampart/<app>`.
    pub fn builder(prefix: impl Into<String>) -> PropertyWatcherBuilder {
        PropertyWatcherBuilder {
            prefix: prefix.into(),
            backoff: Backoff::exponential(DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX),
        }
    }

    /// The next event; never `None` while the watcher runs.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event not returned stays queued.
    pub async fn next(&mut self) -> Option<PropertyEvent> {
        self.events.recv().await
    }
}

impl Drop for PropertyWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for PropertyWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropertyWatcher")
            .field("prefix", &self.prefix)
            .field("queued", &self.events.len())
            .finish()
    }
}

// ===== the background task =====

struct Task {
    dir: String,
    feed: PrefixFeed,
    events: mpsc::Sender<PropertyEvent>,
    /// The last good value of every key, for a `Replace` to keep them over
    /// bad writes.
    values: BTreeMap<Vec<u8>, Property>,
}

impl Task {
    async fn run(mut self) {
        let mut reachable = true;
        loop {
            let update = tokio::select! {
                _ = self.events.closed() => return,
                update = self.feed.next() => update,
            };
            let sent = match update {
                Update::Full(all) => {
                    if !reachable {
                        tracing::info!(
                            target: TARGET_DISCOVERY,
                            layer = LAYER,
                            name = %self.dir,
                            event = "resynced",
                            properties = all.len(),
                            "etcd reachable again; read every property"
                        );
                    }
                    reachable = true;
                    self.full(all).await
                }
                Update::Changes(changes) => self.changes(changes).await,
                Update::Lost { error, retries } => {
                    if reachable {
                        reachable = false;
                        tracing::warn!(
                            target: TARGET_DISCOVERY,
                            layer = LAYER,
                            name = %self.dir,
                            event = "etcd_unreachable",
                            error = %error,
                            "cannot reach etcd; keeping the last values and reconnecting"
                        );
                        self.send(PropertyEvent::Unreachable { error }).await
                    } else {
                        tracing::debug!(
                            target: TARGET_DISCOVERY,
                            layer = LAYER,
                            name = %self.dir,
                            event = "etcd_unreachable",
                            error = %error,
                            retries,
                            "still cannot reach etcd"
                        );
                        Ok(())
                    }
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    async fn full(&mut self, all: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), Closed> {
        let mut values = BTreeMap::new();
        for (key, value) in all {
            match self.decode(&key, &value) {
                Ok(property) => {
                    values.insert(key, property);
                }
                Err(event) => {
                    if let Some(good) = self.values.remove(&key) {
                        values.insert(key, good);
                    }
                    self.send(event).await?;
                }
            }
        }
        self.values = values;
        let all = self.values.values().cloned().collect();
        self.send(PropertyEvent::Replace(all)).await
    }

    async fn changes(&mut self, changes: Vec<KeyChange>) -> Result<(), Closed> {
        for change in changes {
            match change {
                KeyChange::Put(key, value) => match self.decode(&key, &value) {
                    Ok(property) => {
                        self.values.insert(key, property.clone());
                        self.send(PropertyEvent::Set(property)).await?;
                    }
                    Err(event) => self.send(event).await?,
                },
                KeyChange::Delete(key) => {
                    self.values.remove(&key);
                    if let Ok((component, name)) = self.split(&key) {
                        let (component, name) = (component.to_owned(), name.to_owned());
                        self.send(PropertyEvent::Delete { component, name }).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn split<'k>(&self, key: &'k [u8]) -> Result<(&'k str, &'k str), String> {
        let text = std::str::from_utf8(key).map_err(|_| "key is not UTF-8".to_owned())?;
        let rest = text
            .strip_prefix(self.dir.as_str())
            .ok_or_else(|| format!("key {text:?} is not under {}", self.dir))?;
        match rest.split_once('/') {
            Some((component, name))
                if !component.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok((component, name))
            }
            _ => Err(format!(
                "key {text:?} is not {}<component>/<property>",
                self.dir
            )),
        }
    }

    /// The property at `key`, or the `Invalid` event saying why not (logged).
    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Property, PropertyEvent> {
        let decoded = self.split(key).and_then(|(component, name)| {
            let value =
                std::str::from_utf8(value).map_err(|e| format!("value is not UTF-8: {e}"))?;
            Ok(Property {
                component: component.to_owned(),
                name: name.to_owned(),
                value: value.trim().to_owned(),
            })
        });
        decoded.map_err(|error| {
            let key = String::from_utf8_lossy(key).into_owned();
            tracing::warn!(
                target: TARGET_DISCOVERY,
                layer = LAYER,
                name = %self.dir,
                event = "invalid_property",
                key = %key,
                error = %error,
                "a key under the prefix is not a property; not applied"
            );
            PropertyEvent::Invalid { key, error }
        })
    }

    async fn send(&self, event: PropertyEvent) -> Result<(), Closed> {
        self.events.send(event).await.map_err(|_| Closed)
    }
}

/// The reader dropped the watcher.
struct Closed;
