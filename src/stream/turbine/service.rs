//! The turbine as a tower service: answers `GET …/turbine.stream?cluster=NAME`.

use super::driver::{drive, Clusters, FollowSettings};
use super::source::{check_url, discovered, DiscoverInstances, Instance, Sources};
use crate::error::Validator;
use crate::retry::Backoff;
use crate::stream::hub::Limits;
use crate::stream::service::{check_get, dashboard, last_segment, not_found, plain, subscribe};
use crate::stream::ResponseBody;
use crate::ConfigError;
use http::{Request, Response, StatusCode};
use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::discover::Discover;
use tower_service::Service;

/// The cluster of a request that names none (Turbine's).
pub const DEFAULT_CLUSTER: &str = "default";
/// Default longest silence of an instance (no event, not even a ping)
/// before it counts as down and its share is taken out.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first bound of the backoff between attempts to reach an
/// instance that is down.
pub const DEFAULT_RECONNECT_BASE: Duration = Duration::from_millis(250);
/// Default cap on the backoff between attempts to reach an instance.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);

/// How long a request waits for the turbine's first read of its sources
/// (at its first request) before it is answered with what is known.
const FIRST_READ: Duration = Duration::from_secs(1);

/// A Turbine-style aggregator: follows the Hystrix streams of many
/// instances and serves each cluster's merged stream at
/// `…/turbine.stream?cluster=NAME`.
///
/// A tower service to mount in an axum or hyper app, or to run on its own
/// with [`Server`](crate::stream::Server); see the [module](super) for the
/// merge, the sources and the status codes. Clones share one turbine.
///
/// It starts nothing when built: at its first request it reads its
/// sources, and it follows a cluster's instances only while somebody
/// subscribes to that cluster (and for 30 s after the last one leaves).
/// Requests must be served on a tokio runtime. Dropping the last clone
/// stops everything.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use rampart::stream::{turbine::Turbine, Server};
///
/// let turbine = Turbine::builder()
///     .cluster("api", ["http://10.0.0.1:9000/hystrix.stream", "http://10.0.0.2:9000/hystrix.stream"])
///     .build()?;
/// let serving = Server::new(turbine).port(8989).start().await?;
/// println!("{}", serving.url("/turbine.stream?cluster=api"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Turbine {
    inner: Arc<Inner>,
}

struct Inner {
    clusters: Arc<Clusters>,
    delay: Duration,
    start: Mutex<Start>,
}

struct Start {
    /// What the driver needs, until it is started.
    idle: Option<Box<(Sources, FollowSettings)>>,
    running: Option<Running>,
}

struct Running {
    driver: JoinHandle<()>,
    /// Set once the driver has read the sources once.
    ready: watch::Receiver<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let start = self.start.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = &start.running {
            // Its followers stop with it.
            running.driver.abort();
        }
    }
}

impl Inner {
    /// Starts the driver on the current runtime, once; what tells when it
    /// has read its sources.
    fn start(&self) -> watch::Receiver<bool> {
        let mut start = self.start.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = &start.running {
            return running.ready.clone();
        }
        let Some(idle) = start.idle.take() else {
            // Only if spawning panicked (no runtime): nothing to wait for.
            return watch::channel(true).1;
        };
        let (sources, settings) = *idle;
        let (tell, ready) = watch::channel(false);
        let driver = tokio::spawn(drive(self.clusters.clone(), sources, settings, tell));
        start.running = Some(Running {
            driver,
            ready: ready.clone(),
        });
        ready
    }

    fn answer(&self, cluster: &str, query: Option<&str>) -> Response<ResponseBody> {
        if !self.clusters.is_known(cluster) {
            return unknown_cluster(cluster, &self.clusters);
        }
        let state = self.clusters.cluster(cluster);
        state.touch();
        let response = subscribe(&state.hub, query, self.delay);
        // Start following the cluster's instances now, not at the next look.
        self.clusters.wake();
        response
    }
}

fn unknown_cluster(cluster: &str, clusters: &Clusters) -> Response<ResponseBody> {
    let known = clusters.known();
    // A few names help; thousands would not.
    let mut names: Vec<String> = known.iter().take(20).map(|c| format!("{c:?}")).collect();
    if known.len() > names.len() {
        names.push(format!("and {} more", known.len() - names.len()));
    }
    let list = if names.is_empty() {
        "none yet".to_owned()
    } else {
        names.join(", ")
    };
    plain(
        StatusCode::NOT_FOUND,
        format!("unknown cluster {cluster:?}: this turbine aggregates {list}"),
    )
}

impl Turbine {
    /// Starts a turbine with options; give it at least one source.
    pub fn builder() -> Builder {
        Builder {
            fixed: Vec::new(),
            watched: None,
            discovered: None,
            limits: Limits::default(),
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            reconnect: None,
        }
    }

    /// The clusters its sources list now (once it has read them, at its
    /// first request; before, those of the fixed list and of the feed).
    pub fn clusters(&self) -> Vec<String> {
        self.inner.clusters.known().into_iter().collect()
    }
}

impl fmt::Debug for Turbine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turbine")
            .field("clusters", &self.inner.clusters.known())
            .field("delay", &self.inner.delay)
            .finish_non_exhaustive()
    }
}

/// Options of a [`Turbine`], checked by [`build`](Builder::build).
pub struct Builder {
    fixed: Vec<(String, Vec<String>)>,
    watched: Option<watch::Receiver<Vec<Instance>>>,
    discovered: Option<Box<dyn DiscoverInstances>>,
    limits: Limits,
    source_timeout: Duration,
    reconnect: Option<Backoff>,
}

impl Builder {
    /// A cluster of fixed instances: the URLs of their streams. May be
    /// given several times, for several clusters (or to add to one).
    pub fn cluster<U: Into<String>>(
        mut self,
        name: impl Into<String>,
        urls: impl IntoIterator<Item = U>,
    ) -> Self {
        self.fixed
            .push((name.into(), urls.into_iter().map(Into::into).collect()));
        self
    }

    /// Instances from a feed (a registry's, as Eureka's): each list sent
    /// replaces the previous one; instances that appear are followed,
    /// those that leave are taken out of their cluster's aggregate. When
    /// the sender is dropped, the last list stays.
    pub fn instances(mut self, feed: watch::Receiver<Vec<Instance>>) -> Self {
        self.watched = Some(feed);
        self
    }

    /// Instances from a [`Discover`] stream of [`Instance`]s, under keys of
    /// its own: inserted ones are followed, removed ones taken out. An
    /// error is logged and the instances known so far kept.
    pub fn discover<D>(mut self, discover: D) -> Self
    where
        D: Discover<Service = Instance> + Send + 'static,
        D::Key: Hash + Eq + Send,
        D::Error: fmt::Display,
    {
        self.discovered = Some(discovered(discover));
        self
    }

    /// Interval between frames for subscribers that do not pass `?delay=`.
    /// Default 500 ms (the stream's); valid from 100 ms to 10 minutes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.limits.delay = delay;
        self
    }

    /// Most subscribers at once, per cluster; the next is answered `503`.
    /// Default 5; valid from 1 to 10 000.
    pub fn max_subscribers(mut self, max: usize) -> Self {
        self.limits.max_subscribers = max;
        self
    }

    /// How long a subscriber may take nothing beyond its own delay before
    /// it is dropped. Default 10 s; valid from 1 s to an hour.
    pub fn slow_subscriber_timeout(mut self, timeout: Duration) -> Self {
        self.limits.slow_after = timeout;
        self
    }

    /// How long an instance may send nothing (no event, no ping; nor
    /// answer a connection) before it counts as down: its share is taken
    /// out of the aggregate and it is tried again after a backoff. Also
    /// how long an object an instance stopped sending stays in the
    /// aggregate. Must be longer than the instances' own interval.
    /// Default 10 s; valid from 1 s to an hour.
    pub fn source_timeout(mut self, timeout: Duration) -> Self {
        self.source_timeout = timeout;
        self
    }

    /// The wait between attempts to reach an instance that is down: full
    /// jitter, doubling with each failed attempt, starting again once the
    /// instance has sent something. Default
    /// `Backoff::exponential(250 ms, 10 s)`; [`Backoff::none`] is refused
    /// (it would hammer a refusing instance).
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = Some(backoff);
        self
    }

    /// Checks the options and builds the turbine. Building starts nothing.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each bad option: no source at all, a
    /// fixed cluster with an empty name, no URL, a URL twice or a URL that
    /// is not `http://host…`, or an option out of its range.
    pub fn build(self) -> Result<Turbine, ConfigError> {
        let mut v = Validator::new("turbine".to_owned());
        v.check(
            !self.fixed.is_empty() || self.watched.is_some() || self.discovered.is_some(),
            "sources",
            || "none given: add a cluster, an instance feed or a discover stream".to_owned(),
        );
        let mut fixed = Vec::new();
        for (cluster, urls) in &self.fixed {
            v.check(!cluster.is_empty(), "cluster", || {
                "a cluster's name must not be empty".to_owned()
            });
            v.check(!urls.is_empty(), "cluster", || {
                format!("{cluster:?} lists no stream URL")
            });
            let mut seen = HashSet::new();
            for url in urls {
                if let Err(why) = check_url(url) {
                    v.check(false, "cluster", || format!("{cluster:?}: {why}"));
                }
                let instance = Instance::new(cluster.clone(), url.clone());
                v.check(seen.insert(url), "cluster", || {
                    format!("{cluster:?} lists {url:?} twice")
                });
                fixed.push(instance);
            }
        }
        self.limits.check(&mut v);
        let second_to_hour = Duration::from_secs(1)..=Duration::from_secs(3600);
        v.check(
            second_to_hour.contains(&self.source_timeout),
            "source_timeout",
            || format!("must be from 1 s to 1 h, got {:?}", self.source_timeout),
        );
        v.check(self.reconnect != Some(Backoff::none()), "reconnect", || {
            "must wait between attempts: Backoff::none() would retry a refusing instance in a tight loop"
                .to_owned()
        });
        v.finish()?;
        let backoff = match self.reconnect {
            Some(backoff) => backoff,
            None => Backoff::exponential(DEFAULT_RECONNECT_BASE, DEFAULT_RECONNECT_MAX)?,
        };
        let mut sources = Sources {
            fixed,
            watched: self.watched,
            discovered: self.discovered,
            watch_ended: false,
        };
        let (_, known) = sources.current();
        let limits = self.limits;
        let settings = FollowSettings {
            silence: self.source_timeout,
            backoff,
        };
        Ok(Turbine {
            inner: Arc::new(Inner {
                clusters: Arc::new(Clusters::new(known, limits, self.source_timeout)),
                delay: self.limits.delay,
                start: Mutex::new(Start {
                    idle: Some(Box::new((sources, settings))),
                    running: None,
                }),
            }),
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("fixed", &self.fixed)
            .field("instances", &self.watched.is_some())
            .field("discover", &self.discovered.is_some())
            .field("limits", &self.limits)
            .field("source_timeout", &self.source_timeout)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

/// The future of a [`Turbine`]'s response: at the turbine's first
/// request it waits (up to a second) for the first read of the sources,
/// so that a discovered cluster is not answered `404`; else it is ready
/// at once.
pub struct ResponseFuture(Respond);

enum Respond {
    Ready(Option<Response<ResponseBody>>),
    Waiting(Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>),
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Respond::Ready(response) => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after it completed"))),
            Respond::Waiting(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for Turbine {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: a subscriber over the limit is answered `503`.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let ready = |response| ResponseFuture(Respond::Ready(Some(response)));
        let path = request.uri().path();
        match last_segment(path) {
            "turbine.stream" => {}
            // The same page as next to an instance's stream, pointed here
            // with `?stream=turbine.stream%3Fcluster%3DNAME`.
            "" | "dashboard" | "index.html" => {
                return ready(check_get(request.method()).unwrap_or_else(dashboard));
            }
            _ => {
                return ready(not_found(
                    path,
                    "turbine.stream, and the dashboard page at …/dashboard?stream=turbine.stream%3Fcluster%3DNAME",
                ))
            }
        }
        if let Some(refused) = check_get(request.method()) {
            return ready(refused);
        }
        let query = request.uri().query().map(str::to_owned);
        let cluster = match cluster_of(query.as_deref()) {
            Ok(cluster) => cluster,
            Err(message) => return ready(plain(StatusCode::BAD_REQUEST, message)),
        };
        let mut first_read = self.inner.start();
        if *first_read.borrow() {
            return ready(self.inner.answer(&cluster, query.as_deref()));
        }
        let inner = self.inner.clone();
        ResponseFuture(Respond::Waiting(Box::pin(async move {
            // Bounded: a driver that cannot read its sources (it panicked,
            // a discovery stream blocks) must not hold requests forever.
            let _ = tokio::time::timeout(FIRST_READ, first_read.wait_for(|read| *read)).await;
            inner.answer(&cluster, query.as_deref())
        })))
    }
}

/// The `cluster` query parameter, percent-decoded; [`DEFAULT_CLUSTER`]
/// when absent or empty.
fn cluster_of(query: Option<&str>) -> Result<String, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("cluster="))
    else {
        return Ok(DEFAULT_CLUSTER.to_owned());
    };
    match percent_decode(value) {
        Some(name) if name.is_empty() => Ok(DEFAULT_CLUSTER.to_owned()),
        Some(name) => Ok(name),
        None => Err(format!(
            "bad query parameter `cluster`: {value:?} is not percent-encoded UTF-8"
        )),
    }
}

/// Decodes `%XX` escapes and `+` (a space, in a query); `None` for a bad
/// escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'%' => {
                let hex = tail.get(..2)?;
                // Two hex digits exactly: `from_str_radix` alone would
                // take a sign (`%+1`).
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &tail[2..];
            }
            b'+' => {
                bytes.push(b' ');
                rest = tail;
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_parameter_is_decoded_and_defaults() {
        assert_eq!(cluster_of(None).unwrap(), "default");
        assert_eq!(cluster_of(Some("delay=100")).unwrap(), "default");
        assert_eq!(cluster_of(Some("cluster=")).unwrap(), "default");
        assert_eq!(cluster_of(Some("cluster=api")).unwrap(), "api");
        assert_eq!(
            cluster_of(Some("delay=100&cluster=my%20api%2Fv2")).unwrap(),
            "my api/v2"
        );
        assert_eq!(cluster_of(Some("cluster=a+b")).unwrap(), "a b");
        assert!(cluster_of(Some("cluster=%zz")).is_err());
        assert!(cluster_of(Some("cluster=%2")).is_err());
        assert!(cluster_of(Some("cluster=%ff")).is_err());
        assert!(cluster_of(Some("cluster=%+1")).is_err());
    }

    #[test]
    fn the_builder_names_every_bad_option() {
        let err = Turbine::builder().build().unwrap_err();
        assert!(err.names("sources"), "{err}");
        let err = Turbine::builder()
            .cluster("", ["http://a/hystrix.stream"])
            .cluster("empty", Vec::<String>::new())
            .cluster(
                "api",
                ["https://a/hystrix.stream", "http://b/x", "http://b/x"],
            )
            .delay(Duration::from_millis(10))
            .max_subscribers(0)
            .source_timeout(Duration::ZERO)
            .slow_subscriber_timeout(Duration::ZERO)
            .reconnect(Backoff::none())
            .build()
            .unwrap_err();
        let text = err.to_string();
        for field in [
            "cluster",
            "delay",
            "max_subscribers",
            "source_timeout",
            "slow_subscriber_timeout",
            "reconnect",
        ] {
            assert!(err.names(field), "{field} not named in: {text}");
        }
        assert!(text.contains("\"empty\" lists no stream URL"), "{text}");
        assert!(text.contains("https is not supported"), "{text}");
        assert!(text.contains("\"http://b/x\" twice"), "{text}");
        assert!(text.contains("must not be empty"), "{text}");
    }

    #[test]
    fn a_valid_turbine_knows_its_fixed_clusters() {
        let (_feed, rx) = watch::channel(vec![Instance::new("fed", "http://c/hystrix.stream")]);
        let turbine = Turbine::builder()
            .cluster("api", ["http://a/hystrix.stream"])
            .cluster("web", ["http://b/hystrix.stream"])
            .instances(rx)
            .build()
            .unwrap();
        assert_eq!(turbine.clusters(), ["api", "fed", "web"]);
    }
}
