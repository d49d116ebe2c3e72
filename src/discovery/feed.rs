//! Following a key prefix in etcd: a full read, then a watch from the
//! next revision; on any failure (etcd unreachable, the watch cancelled or
//! compacted) a backoff and a fresh full read. Shared by the endpoint
//! source and the property watcher, which only interpret the keys.

use crate::retry::Backoff;
use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};
use std::time::Duration;

/// How long a full read (and the watch's creation) may take: an etcd
/// partitioned away may never answer, and the last known values are kept
/// meanwhile anyway.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// One key changed under the prefix.
#[derive(Debug)]
pub(crate) enum KeyChange {
    /// The key was written: its full name and value.
    Put(Vec<u8>, Vec<u8>),
    /// The key was deleted (or its lease ran out).
    Delete(Vec<u8>),
}

/// What following the prefix produced next.
#[derive(Debug)]
pub(crate) enum Update {
    /// Every key under the prefix, read at one revision: the whole truth,
    /// replacing whatever came before.
    Full(Vec<(Vec<u8>, Vec<u8>)>),
    /// The changes of one watch response (one revision or a few), in order.
    Changes(Vec<KeyChange>),
    /// etcd could not be read or the watch broke; `retries` counts the
    /// failed attempts since the last good read (1 on the first). The next
    /// call waits out a backoff, then reads everything again.
    Lost { error: String, retries: u32 },
}

/// The state of following one prefix. Not shared: one task owns it.
pub(crate) struct PrefixFeed {
    client: Client,
    prefix: Vec<u8>,
    backoff: Backoff,
    watch: Option<WatchStream>,
    /// Failed attempts since the last good full read.
    failures: u32,
    previous_delay: Duration,
}

impl PrefixFeed {
    /// Follows every key starting with `prefix` (a full key prefix,
    /// including its trailing `/`).
    pub(crate) fn new(client: Client, prefix: Vec<u8>, backoff: Backoff) -> Self {
        PrefixFeed {
            client,
            prefix,
            backoff,
            watch: None,
            failures: 0,
            previous_delay: Duration::ZERO,
        }
    }

    /// The next update.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense that matters here: cancelled while waiting
    /// for a watch response, nothing is lost (the next call waits for it
    /// again); cancelled during a backoff or a full read, the next call
    /// starts that backoff or read over.
    pub(crate) async fn next(&mut self) -> Update {
        loop {
            if let Some(watch) = &mut self.watch {
                let lost = match watch.message().await {
                    Ok(Some(response)) => {
                        if response.canceled() {
                            // A start revision already compacted away, or
                            // etcd cancelling the watch: read everything again.
                            format!(
                                "watch cancelled by etcd (compact revision {}, reason {:?})",
                                response.compact_revision(),
                                response.cancel_reason()
                            )
                        } else if response.events().is_empty() {
                            // The creation answer, or a progress notice.
                            continue;
                        } else {
                            let changes = response
                                .events()
                                .iter()
                                .filter_map(|event| {
                                    let kv = event.kv()?;
                                    Some(match event.event_type() {
                                        EventType::Put => {
                                            KeyChange::Put(kv.key().to_vec(), kv.value().to_vec())
                                        }
                                        EventType::Delete => KeyChange::Delete(kv.key().to_vec()),
                                    })
                                })
                                .collect();
                            return Update::Changes(changes);
                        }
                    }
                    Ok(None) => "the watch stream ended".to_owned(),
                    Err(e) => format!("watch failed: {e}"),
                };
                self.watch = None;
                self.failures += 1;
                return Update::Lost {
                    error: lost,
                    retries: self.failures,
                };
            }
            if self.failures > 0 {
                let delay = self.backoff.delay(self.failures, self.previous_delay);
                self.previous_delay = delay;
                tokio::time::sleep(delay).await;
            }
            let read = tokio::time::timeout(READ_LIMIT, self.read_and_watch()).await;
            let read = read.unwrap_or_else(|_| {
                Err(etcd_client::Error::IoError(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("etcd did not answer a full read within {READ_LIMIT:?}"),
                )))
            });
            match read {
                Ok(all) => {
                    self.failures = 0;
                    self.previous_delay = Duration::ZERO;
                    return Update::Full(all);
                }
                Err(e) => {
                    self.failures += 1;
                    return Update::Lost {
                        error: e.to_string(),
                        retries: self.failures,
                    };
                }
            }
        }
    }

    /// Reads the prefix, then watches it from the revision after that read,
    /// so no change falls between the two (etcd's own recipe).
    async fn read_and_watch(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, etcd_client::Error> {
        let got = self
            .client
            .get(self.prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = got.header().map_or(0, |h| h.revision());
        let all = got
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        let watch = self
            .client
            .watch(
                self.prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        self.watch = Some(watch);
        Ok(all)
    }
}

/// `prefix` with exactly one trailing `/`.
pub(crate) fn dir(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}
