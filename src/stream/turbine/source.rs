//! Where instances come from: a fixed list, a `watch` channel of lists (a
//! registry feed, as Eureka's), or any `tower::discover::Discover` stream,
//! as the balancer's endpoints do.

use http::Uri;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::watch;
use tower::discover::{Change, Discover};

/// One instance to aggregate: the cluster it belongs to and the URL of
/// its Hystrix stream (`http://host:port/hystrix.stream`, or a turbine's
/// `…/turbine.stream?cluster=NAME` to tier turbines).
///
/// ```
/// use rampart::stream::turbine::Instance;
///
/// let instance = Instance::new("api", "http://10.0.0.1:9000/hystrix.stream");
/// assert_eq!(instance.cluster(), "api");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instance {
    cluster: String,
    url: String,
}

impl Instance {
    /// `url`'s stream, in `cluster`.
    pub fn new(cluster: impl Into<String>, url: impl Into<String>) -> Self {
        Instance {
            cluster: cluster.into(),
            url: url.into(),
        }
    }

    /// The cluster it is aggregated in.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Its stream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Why an instance cannot be followed: the turbine speaks plain HTTP/1.
pub(crate) fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "{url:?} is not an http:// URL with a host (https is not supported)"
        ));
    }
    Ok(uri)
}

/// The instances a [`Discover`] stream inserted, under their keys, with
/// the key type erased.
pub(crate) trait DiscoverInstances: Send {
    /// Applies every change ready now: `Ready` if any was (or the stream
    /// just ended), `Pending` otherwise.
    fn poll_apply(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// The stream has ended: its last instances stay, nothing more comes.
    fn is_ended(&self) -> bool;

    /// The instances inserted and not removed.
    fn instances(&self) -> Vec<Instance>;
}

struct Discovered<D: Discover> {
    discover: Pin<Box<D>>,
    known: HashMap<D::Key, Instance>,
    ended: bool,
}

pub(crate) fn discovered<D>(discover: D) -> Box<dyn DiscoverInstances>
where
    D: Discover<Service = Instance> + Send + 'static,
    D::Key: Hash + Eq + Send,
    D::Error: fmt::Display,
{
    Box::new(Discovered {
        discover: Box::pin(discover),
        known: HashMap::new(),
        ended: false,
    })
}

impl<D> DiscoverInstances for Discovered<D>
where
    D: Discover<Service = Instance> + Send,
    D::Key: Hash + Eq + Send,
    D::Error: fmt::Display,
{
    fn poll_apply(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut changed = false;
        while !self.ended {
            match self.discover.as_mut().poll_discover(cx) {
                Poll::Ready(Some(Ok(Change::Insert(key, instance)))) => {
                    self.known.insert(key, instance);
                    changed = true;
                }
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    changed |= self.known.remove(&key).is_some();
                }
                Poll::Ready(Some(Err(e))) => {
                    // Keep the instances known so far and say so, as the
                    // balancer does with its endpoints; the driver polls
                    // again at its next look.
                    tracing::warn!(error = %e, "turbine: instance discovery failed");
                    break;
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    changed = true;
                }
                Poll::Pending => break,
            }
        }
        if changed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn is_ended(&self) -> bool {
        self.ended
    }

    fn instances(&self) -> Vec<Instance> {
        self.known.values().cloned().collect()
    }
}

/// Every source a turbine reads, merged into one set of instances.
pub(crate) struct Sources {
    pub(crate) fixed: Vec<Instance>,
    pub(crate) watched: Option<watch::Receiver<Vec<Instance>>>,
    pub(crate) discovered: Option<Box<dyn DiscoverInstances>>,
    /// The feed's sender is gone: its last list stays, nothing more will
    /// come.
    pub(crate) watch_ended: bool,
}

impl Sources {
    /// The instances every source lists now (each once), and the clusters
    /// they make up.
    pub(crate) fn current(&mut self) -> (HashSet<Instance>, BTreeSet<String>) {
        let mut instances: HashSet<Instance> = self.fixed.iter().cloned().collect();
        if let Some(feed) = &mut self.watched {
            instances.extend(feed.borrow_and_update().iter().cloned());
        }
        if let Some(discovered) = &self.discovered {
            instances.extend(discovered.instances());
        }
        let clusters = instances.iter().map(|i| i.cluster.clone()).collect();
        (instances, clusters)
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("fixed", &self.fixed)
            .field("watched", &self.watched.is_some())
            .field("discovered", &self.discovered.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:9000/hystrix.stream").is_ok());
        assert!(check_url("http://h/turbine.stream?cluster=a").is_ok());
        assert!(check_url("https://h/hystrix.stream").is_err());
        assert!(check_url("/hystrix.stream").is_err());
        assert!(check_url("not a url").is_err());
    }
}
