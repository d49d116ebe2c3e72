//! See it live: the Hystrix metrics stream (`hystrix.stream`), served with
//! hyper, that the Hystrix dashboard, Turbine and rampart's own dashboard
//! page read.
//!
//! [`HystrixStream`] is a tower service over a
//! [`Registry`](crate::registry::Registry): mount it in an axum or hyper
//! app, or run it on its own port with [`Server`]. Every command, lone
//! circuit breaker (each key's breaker of a
//! [keyed layer](crate::circuit_breaker::KeyedCircuitBreakerLayer)
//! included), pool and balancer endpoint built in the registry appears
//! without wiring, and leaves when dropped (or, for a key, forgotten).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rampart::stream::{HystrixStream, Server};
//!
//! let stream = HystrixStream::builder()
//!     .max_subscribers(10)
//!     .build()?;
//! let serving = Server::new(stream).port(9000).start().await?;
//! // Open rampart's dashboard in a browser:
//! println!("{}", serving.url("/"));
//! // or point the Hystrix dashboard (or Turbine) at:
//! println!("{}", serving.url("/hystrix.stream"));
//! # Ok(()) }
//! ```
//!
//! To watch a fleet rather than one host, a [`Turbine`] merges the streams
//! of many instances into one per cluster (see [`turbine`]).
//!
//! # What it reveals
//!
//! The stream names every component (command, group, pool, balancer and
//! endpoint names, which may be host names and ports) and shows its call
//! rates, error rates, latencies and settings. [`Server`] binds
//! `127.0.0.1` unless told otherwise; expose the stream only where your
//! other admin endpoints are exposed.
//!
//! # The wire format (Hystrix's servlet)
//!
//! - `GET …/hystrix.stream` answers `200` with `Content-Type:
//!   text/event-stream;charset=UTF-8`, `Cache-Control: no-cache, no-store,
//!   max-age=0, must-revalidate` and `Pragma: no-cache`, and never ends.
//! - Every interval, each object is its own unnamed event, `data: {json}`
//!   and a blank line; an interval with nothing to report sends
//!   `ping: ` and a blank line.
//! - The interval is 500 ms ([`DEFAULT_DELAY`]); a subscriber may ask for
//!   another with `?delay=MS`, whole milliseconds from 100 to 600 000. A
//!   delay that does not parse or is out of range is answered `400`,
//!   naming the parameter.
//! - At most 5 subscribers at once ([`DEFAULT_MAX_SUBSCRIBERS`]); the next
//!   is answered `503` with the body `MaxConcurrentConnections reached: 5`.
//! - A path ending in `/`, `/dashboard` or `/index.html` is answered with
//!   the [dashboard page](#the-dashboard-page); any other path that does
//!   not end in `/hystrix.stream` is answered `404`, a method other than
//!   `GET` (or `HEAD`) `405`.
//! - A subscriber that goes away frees its place at once; one that reads
//!   nothing for 10 s beyond its delay
//!   ([`DEFAULT_SLOW_SUBSCRIBER_TIMEOUT`]) is dropped. Each frame is taken
//!   and serialised once, then shared by every subscriber; a subscriber
//!   never has more than one frame waiting (it skips frames instead), so
//!   memory does not grow with a slow reader. The snapshot runs only while
//!   somebody subscribes.
//! - Memory, measured (`tests/stream_memory.rs`): 1000 commands make a
//!   1.9 MB frame (about 1.9 KB per command); with 10 subscribers the
//!   stream holds 3.2 MB in all (the frame, the next one's buffer, and a
//!   few samples per component), and that does not grow while they read.
//!
//! # What the stream says
//!
//! One `HystrixCommand` object per command, and per circuit breaker used
//! outside a command (a keyed layer's breakers one per key, named
//! `layer/key`, so a layer of 1000 keys adds about 1.9 MB to each frame);
//! one `HystrixThreadPool` per pool; one `RampartEndpoint` per endpoint of
//! each balancer; one `RampartDiscovery` per running
//! [discovery](crate::discovery::Discovery) (feature `etcd`). A component that goes away is announced once as
//! `{"type":…,"name":…,"deleteData":"true"}`.
//! Numbers are whole, finite JSON numbers; latencies are whole
//! milliseconds. Rolling counts cover the breaker's time window
//! (`propertyValue_metricsRollingStatisticalWindowInMilliseconds`, 10 s by
//! default), which a command's fallback keeps lined up with its breaker's;
//! counts the layers keep as running totals (pools, balancer endpoints)
//! are turned into rolling counts by the stream itself, from the moment it
//! first saw the component.
//!
//! How rampart's outcomes map onto Hystrix's events:
//!
//! | Hystrix field | rampart |
//! |---|---|
//! | `rollingCountSuccess` | calls the breaker's classifier called a success |
//! | `rollingCountFailure` | calls classified as failures (a panic included) |
//! | `rollingCountTimeout` | calls cut off by the command's timeout (or a timeout beneath the breaker) |
//! | `rollingCountSemaphoreRejected` / `ThreadPoolRejected` | calls the command's bulkhead / pool refused |
//! | `rollingCountShortCircuited` | calls the breaker rejected (open, forced open, half-open with every probe place taken) |
//! | `rollingCountBadRequests` | calls the classifier ignored (not the dependency's fault, e.g. a 404) |
//! | `rollingCountFallbackSuccess` / `Failure` / `Rejection` | fallbacks that served / failed / were refused by the fallback cap |
//! | `rollingCountFallbackMissing` | failed calls of a command without a fallback |
//! | `rollingCountExceptionsThrown` | errors that reached the caller: fallback failures, rejections and missing fallbacks |
//! | `rollingCountCollapsedRequests` | requests batched into the command's calls by the [collapsers](crate::collapse) that name it (`CollapseLayer::builder(..).command(&command)`) |
//! | `rollingCountResponsesFromCache` | calls the command's [cache](crate::command::CommandBuilder::cache) answered (they reach neither the breaker nor the counts above, as in Hystrix) |
//! | `propertyValue_requestCacheEnabled` | whether the command has a cache |
//! | `rollingCountEmit`, `FallbackEmit` | 0: rampart has no observables |
//! | `errorCount`, `requestCount`, `errorPercentage` | failures + timeouts + rejections; those + successes; their ratio in whole percent (short-circuits and ignored calls excluded, as Hystrix's health counts) |
//! | `isCircuitBreakerOpen` | open, half-open or forced open (Hystrix's `isOpen()`) |
//! | `rampartCircuitState` | rampart's own: the state's name (`closed`, `open`, `half_open`, `forced_open`, `forced_closed`, `disabled`, `metrics_only`) |
//! | `currentConcurrentExecutionCount` | calls holding the bulkhead / running on the pool |
//! | `rollingMaxConcurrentExecutionCount` | the most at once over the window |
//! | `latencyExecute`, `latencyExecute_mean` | the dependency's time, as the breaker measured it |
//! | `latencyTotal`, `latencyTotal_mean` | what the caller waited: the dependency's time, plus the fallback's for calls a fallback served (short-circuited ones included) |
//! | `propertyValue_circuitBreakerRequestVolumeThreshold` | the breaker's minimum calls |
//! | `propertyValue_circuitBreakerSleepWindowInMilliseconds` | its (first) open time |
//! | `propertyValue_circuitBreakerErrorThresholdPercentage` | its failure-rate threshold in percent; 100 without a failure-rate rule |
//! | `propertyValue_executionIsolationStrategy` | `SEMAPHORE` (bulkhead) or `THREAD` (pool) |
//! | `propertyValue_execution(IsolationThread)TimeoutInMilliseconds` | the command's timeout |
//! | `propertyValue_executionIsolationSemaphoreMaxConcurrentRequests` | the bulkhead's size (the pool's for `THREAD`) |
//! | `propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests` | the fallback cap (0: uncapped) |
//! | `threadPool` | the pool's name, or the group for `SEMAPHORE` |
//!
//! `HystrixCollapser` (one per [collapser](crate::collapse); the Hystrix
//! dashboard ignores it, Turbine merges it): `name`, `currentTime`,
//! `rollingCountRequestsBatched` and `rollingCountBatches` over the last
//! 10 s, `rollingCountResponsesFromCache` (0: the collapser keeps no
//! cache), `batchSize_mean` and `batchSize` (percentiles "25" to "100",
//! as Hystrix sends them) over the same 10 s,
//! `propertyValue_requestCacheEnabled` (false),
//! `propertyValue_maxRequestsInBatch`,
//! `propertyValue_timerDelayInMilliseconds` (the window), `reportingHosts`.
//!
//! A circuit breaker used outside a command reports `SEMAPHORE` with a
//! size and timeout of 0, and no fallback or exception counts (what
//! reached its caller is not its to see).
//!
//! `RampartEndpoint` (ignored by the Hystrix dashboard; rampart's page
//! shows it): `name` (`balancer/endpoint`), `balancer`, `endpoint`,
//! `zone`, `rollingCount{Selected, Success, Failure, Timeout, Ignored,
//! Cancelled, Ejections, MarkedDead}`, `currentInFlight`,
//! `latencyEstimateMs` (the peak-EWMA estimate), `consecutiveFailures`,
//! `ejected`, `markedDead`, `outForMs` (until it is back in),
//! `propertyValue_metricsRollingStatisticalWindowInMilliseconds`,
//! `reportingHosts`.
//!
//! `RampartDiscovery` (ignored by the Hystrix dashboard; rampart's page
//! shows it): `name` (the service), `synced`, `reachable` (whether the
//! last read or watch of etcd succeeded: `false` while the last known set
//! is kept), `registered` (instances in etcd, any status), `offered`
//! (`UP`, and those kept), `kept` (by self-preservation), `invalid` (keys
//! that are no instance), `reportingHosts`.
//!
//! # The dashboard page
//!
//! Next to the stream, [`HystrixStream`] serves rampart's own dashboard:
//! one self-contained page (its script and styles inline, nothing fetched
//! from elsewhere, so it works offline) that reads the stream with an
//! `EventSource` and shows, for operators in an incident:
//!
//! - a tile per command: request rate, error percentage, a two-minute
//!   sparkline of the rate, the breaker's state in colour (closed, open,
//!   half-open, forced open, forced closed, disabled, metrics only), the
//!   rolling counts, latency percentiles (50th, 90th, 99th, 99.5th, mean)
//!   and how full its bulkhead or pool is;
//! - a tile per pool, and a panel per balancer with each endpoint's
//!   traffic, calls in flight, latency estimate, failures and timeouts,
//!   and whether it is ejected or marked dead (and for how long);
//! - a row per discovery: instances offered, registered and kept, and
//!   whether etcd is reached or the last known set is being kept;
//! - sorting as the Hystrix dashboard sorts (error then volume, volume,
//!   name, mean, median, 90th, 99th, 99.5th percentile, plus breaker state
//!   first), a filter on names, and whether the stream is connected.
//!
//! It reads the stream named by its `?stream=` parameter, relative to the
//! page, `hystrix.stream` by default: so it works wherever the service is
//! mounted, and through an aggregator
//! (`?stream=turbine.stream%3Fcluster%3Ddefault`). It reads values as the
//! Hystrix dashboard does (error percentage, latencies and window divided
//! by `reportingHosts`; aggregated booleans and strings as count-maps such
//! as `{"true":1,"false":2}`), and uses `rampartCircuitState` where
//! present. Its DOM hooks for scripts and tests (`data-command`,
//! `data-field="state"`, `data-state`, …) are listed at the top of the
//! page's source, `src/stream/dashboard.html`.

mod body;
mod hub;
mod hystrix;
mod server;
mod service;
pub mod turbine;

pub use body::{EventStream, SlowSubscriber};
pub use server::{Server, Serving};
pub use service::{
    Builder, HystrixStream, ResponseBody, DEFAULT_DELAY, DEFAULT_MAX_SUBSCRIBERS,
    DEFAULT_SLOW_SUBSCRIBER_TIMEOUT, MAX_DELAY, MIN_DELAY,
};
pub use turbine::Turbine;
