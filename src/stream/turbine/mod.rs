//! Turbine-style aggregation: one stream per cluster, merged from the
//! Hystrix streams of all its instances, for a dashboard that watches a
//! fleet rather than a host.
//!
//! A [`Turbine`] follows the `hystrix.stream` of every instance its
//! sources list (each [`Instance`] is a cluster name and a stream URL) and
//! serves `GET …/turbine.stream?cluster=NAME`: every interval, one object
//! per command, pool and endpoint, summed over the cluster's hosts, in
//! the same format as [`HystrixStream`](super::HystrixStream)'s. Point the
//! Hystrix dashboard at it as at one instance. A turbine's stream can
//! itself be an instance of another turbine (tiers: one per zone, one
//! over the zones).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rampart::stream::turbine::{Instance, Turbine};
//! use rampart::stream::Server;
//!
//! // Fixed clusters, plus instances from a registry feed.
//! let (registry, feed) = tokio::sync::watch::channel(vec![
//!     Instance::new("search", "http://10.0.1.1:9000/hystrix.stream"),
//! ]);
//! let turbine = Turbine::builder()
//!     .cluster("api", [
//!         "http://10.0.0.1:9000/hystrix.stream",
//!         "http://10.0.0.2:9000/hystrix.stream",
//!     ])
//!     .instances(feed)
//!     .build()?;
//! let serving = Server::new(turbine).port(8989).start().await?;
//! println!("{}", serving.url("/turbine.stream?cluster=api"));
//!
//! // Later: a new search instance is followed, and its numbers added.
//! registry.send(vec![
//!     Instance::new("search", "http://10.0.1.1:9000/hystrix.stream"),
//!     Instance::new("search", "http://10.0.1.2:9000/hystrix.stream"),
//! ])?;
//! # Ok(()) }
//! ```
//!
//! # The wire format
//!
//! As the Hystrix stream's (see the [stream module](super#the-wire-format)):
//! `200` with `text/event-stream;charset=UTF-8` and the no-cache headers,
//! one `data: {json}` event per object every interval, `ping: ` when there
//! is nothing to say, `?delay=MS` (100 to 600 000; default 500 ms), at
//! most 5 subscribers at once per cluster (`503` beyond), `GET` or `HEAD`
//! only (`405`), a path that does not end in `/turbine.stream` `404`. And:
//!
//! - `?cluster=NAME` picks the cluster (percent-encoded; absent or empty:
//!   [`DEFAULT_CLUSTER`], `"default"`, as Turbine). A cluster that no
//!   source lists now is answered `404`, naming it and the clusters known;
//!   a `cluster` that does not decode is answered `400`.
//! - Turbine 1.x pushes changes every 100 ms; rampart sends the whole
//!   merged state at each interval, as the Hystrix stream does, so a
//!   subscriber never waits for a change to see an object.
//!
//! # The merge (Turbine 1.x)
//!
//! For each `(type, name)`, the turbine keeps each host's latest object
//! and sends the merge of those: a host's new object replaces its old one
//! (Turbine's per-host delta), and a host that goes away is subtracted.
//!
//! - Numbers are summed over hosts: every count and gauge, and, as Turbine
//!   1.x does, `errorPercentage`, the latency means, every key of the
//!   latency maps (`latencyExecute`, `latencyTotal`) and the
//!   `propertyValue_*` settings. The dashboard divides what must be
//!   averaged by `reportingHosts`.
//! - `reportingHosts` is the sum of the hosts' (1 each; a turbine below
//!   counts for all its hosts).
//! - Strings, booleans (and `null`) are counted per value when hosts
//!   differ: `"isCircuitBreakerOpen": {"true":1,"false":2}`, which the
//!   dashboard shows as "Open 1 Closed 2". When every host says the same,
//!   the value is sent plain, in its own type (`false`, `"closed"`), as
//!   Turbine 1.x does. An input value that is already such a count map (a
//!   turbine below) is summed per key, and a plain value from a turbine
//!   below counts for its `reportingHosts`, so tiers count hosts, not
//!   turbines.
//! - Identity keys stay one plain string, the value most hosts report:
//!   `type`, `name`, `group`, `threadPool`,
//!   `propertyValue_executionIsolationStrategy` (the dashboard needs it to
//!   be `THREAD` or `SEMAPHORE`),
//!   `propertyValue_executionIsolationThreadPoolKeyOverride`, and
//!   `RampartEndpoint`'s `balancer`, `endpoint` and `zone`. Turbine 1.x
//!   counts these too when hosts disagree, which breaks the dashboard's
//!   tile; rampart departs from it here.
//! - `currentTime` is the newest host's (Turbine 1.x sums it).
//! - An object with `"deleteData":"true"` forgets that host's object;
//!   when the last host of an object is gone, the turbine sends
//!   `{"type":…,"name":…,"deleteData":"true"}` once.
//! - Numbers stay whole when they all are (summed exactly); a number with
//!   a fraction makes the sum a float. Sums never overflow into invalid
//!   JSON.
//!
//! # Instances, and when they fail
//!
//! Instances come from any mix of a fixed list
//! ([`cluster`](Builder::cluster)), a `watch` feed of lists
//! ([`instances`](Builder::instances)) and a
//! [`Discover`](tower::discover::Discover) stream
//! ([`discover`](Builder::discover)); the feed and the stream are re-read
//! while the turbine runs. Only `http://` URLs are followed (the client is
//! hyper's plain HTTP/1 client); a bad URL in a fixed list fails the
//! build, one from a feed is logged and skipped.
//!
//! A cluster's instances are followed only while somebody subscribes to
//! it, and for 30 s after the last subscriber leaves, so the turbine takes
//! none of the instances' subscriber places for nothing. An instance that
//! refuses the connection, answers anything but `200`, ends its stream, or
//! sends nothing (not even a ping) for the source timeout (10 s,
//! [`DEFAULT_SOURCE_TIMEOUT`]) is taken out of the aggregate at once and
//! tried again after a backoff with full jitter (from 250 ms, doubling up
//! to 10 s; see [`Builder::reconnect`]). An object an instance stops
//! sending without deleting it leaves the aggregate after the same
//! timeout.
//!
//! Malformed input never stops the turbine: an event that is not JSON, an
//! object without a string `type` and `name`, an event over 1 MiB, are
//! skipped (logged at `debug` by `tracing`); named events and comments are
//! ignored. A cluster holds at most 10 000 objects.

mod client;
mod driver;
mod merge;
mod service;
mod source;
mod sse;

pub use service::{
    Builder, ResponseFuture, Turbine, DEFAULT_CLUSTER, DEFAULT_RECONNECT_BASE,
    DEFAULT_RECONNECT_MAX, DEFAULT_SOURCE_TIMEOUT,
};
pub use source::Instance;
