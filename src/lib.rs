//! # rampart
//!
//! Fault tolerance for [tower] services: the Netflix recipe as composable,
//! lock-free, allocation-free layers. Every call to a dependency goes
//! through a circuit breaker with a timeout, a concurrency limit and a
//! fallback (Hystrix); every client spreads calls over instances, retries on
//! another instance when one fails, and steps around unhealthy ones (Ribbon).
//!
//! | module | what it gives |
//! |---|---|
//! | [`circuit_breaker`] | a rolling-window circuit breaker: failure-rate, slow-call and consecutive-failure rules, half-open probes, manual control; one breaker per key (host, tenant, route), bounded by least recent use |
//! | [`bulkhead`] | concurrency isolation: a semaphore bulkhead with an optional bounded wait, and [`bulkhead::pool`] (calls on threads of their own) |
//! | [`timeout`] | per-call deadlines with a typed error |
//! | [`fallback`] | sync or async fallback closures, told why they run |
//! | [`collapse`] | request collapsing (Hystrix's collapser): single calls within a window batched into one call of a bulk service (feature `collapse`) |
//! | [`coalesce`] | identical calls in flight made one call, its answer shared (feature `coalesce`) |
//! | [`cache`] | a response cache on moka: by key, time to live, least-recently-used eviction; counted in a command's stream (feature `cache`) |
//! | [`catch_panic`] | a panicking dependency turned into an error the breaker counts and the fallback serves |
//! | [`Command`] | the Hystrix-style facade: one validated builder for all of the above |
//! | [`balance`] | client-side load balancing: selection rules, retries across instances, outlier ejection, discovery |
//! | [`hedge`] | hedged requests: a second copy of a slow call, the first success wins, capped extra load (feature `hedge`, on with `balance`) |
//! | [`deadline`] | deadlines that travel with the request, across layers and over the wire (`grpc-timeout`, `rampart-timeout-ms`) |
//! | [`rate_limit`] | rate limits (GCRA, on governor) for all calls or per key, rejecting with when to retry or waiting up to a bound (feature `rate-limit`) |
//! | [`retry`] | a retry layer for any service, backoff with jitter, and retry budgets shared with the balancer |
//! | [`limit`] | adaptive concurrency limits (Netflix's Vegas, Gradient2, AIMD) moved by measured round-trip times, with partitions guaranteeing each tenant its share (feature `limit`) |
//! | [`chaos`] | fault injection on purpose: delays, errors, responses, hangs, cut responses, switched at run time (feature `chaos`) |
//! | [`window`] | the rolling statistics beneath them: counts and latency percentiles |
//! | [`discovery`] | Eureka on etcd: instances registered under a lease they renew, a service's `UP` instances as a balancer's endpoints with self-preservation, properties kept in etcd as a stream of changes (feature `etcd`) |
//! | [`registry`] | every component built, listed for dashboards and admin endpoints |
//! | [`config`] | live configuration (Archaius): options of running components changed by name or through their handles, keeping their state; built < file < etcd < handle; a watched TOML file (feature `config-file`), properties kept in etcd for a whole fleet (feature `etcd`) |
//! | [`stream`] | see it live: hystrix.stream, a Turbine-style aggregator over many instances, and the dashboard page (feature `stream`) |
//! | [`metrics`] | the metric names rampart reports through the `metrics` facade |
//! | [`error`] | rampart's own failures, [`ErrorKind`], [`ConfigError`] |
//! | [`troubleshooting`] | the compile errors new users meet, and their fixes |
//! | [`axum`] | rampart's errors as HTTP responses for axum's `HandleErrorLayer`: 503 with `Retry-After`, 429 for a rate limit or a partition over its share of a limit, 504, 500 (feature `axum`) |
//! | [`tonic`] | gRPC status codes for the breaker, the balancer and retries (`UNAVAILABLE` fails, `INVALID_ARGUMENT` is the caller's), and rampart's errors as gRPC statuses (feature `tonic`) |
//! | [`tower_http`] | tower-http's response classifiers (`ServerErrorsAsFailures`, `GrpcErrorsAsFailures`) as breaker classifiers (feature `tower-http`) |
//! | [`reqwest`] | a balancer endpoint over one shared reqwest client, and breakers and commands as `reqwest_middleware` middleware (features `reqwest`, `reqwest-middleware`) |
//!
//! ## Where to start
//!
//! 1. One dependency: put its client behind a [`Command`] (the example
//!    below; the README's quick start does it for a hyper client against a
//!    real server).
//! 2. Several instances of it: [`balance`] spreads calls, retries on
//!    another instance and ejects the unhealthy.
//! 3. See it live: [`stream`] serves the Hystrix stream and a dashboard.
//! 4. When rustc's error is far from its cause: [`troubleshooting`].
//!
//! Each module's docs start with when to use it and a runnable example.
//!
//! Every layer's error type is [`BoxError`], so rampart layers drop into any
//! tower stack (in an axum server, behind `HandleErrorLayer`: see
//! `rampart::axum`, feature `axum`); [`ErrorKind::of`] tells a rejection
//! from a timeout from the dependency's own failure. Every builder validates its options and returns
//! a [`ConfigError`] naming each bad one. Tests run on a paused tokio
//! clock: see [Time](#time).
//!
//! ```
//! use rampart::Command;
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//!
//! // The dependency: any tower service (here, a stand-in for a client).
//! let inner = tower::service_fn(|_: ()| async { Ok::<_, rampart::BoxError>("titles") });
//!
//! let recommendations = Command::builder("RecommendationsGet")
//!     .timeout(Duration::from_millis(300))
//!     .bulkhead(10)
//!     .breaker(|b| b.failure_rate(0.5).min_calls(20))
//!     .fallback_sync(|_cause| Ok("popular titles"))
//!     .build()?;
//! let service = ServiceBuilder::new().layer(recommendations).service(inner);
//! # Ok::<(), rampart::ConfigError>(())
//! ```
//!
//! [tower]: https://docs.rs/tower
//!
//! # Time
//!
//! Breakers, windows, timeouts and latencies read the time of the runtime a
//! component is built in, chosen once, when it is built:
//!
//! - **On a current-thread runtime, or outside any runtime**: `tokio::time`.
//!   A test on a paused clock (`#[tokio::test(start_paused = true)]`,
//!   `tokio::time::pause`) drives every open time, window and timeout, and
//!   every latency is measured in paused time.
//! - **On a multi-thread runtime**: the CPU's time-stamp counter, through
//!   [`quanta`](https://docs.rs/quanta), calibrated against the OS clock.
//!   A read costs 10 to 12 ns there against 24 to 35 ns for
//!   `clock_gettime` (on the 2-core VMs rampart is measured on), and a
//!   call reads the time once or twice (a breaker under load times only
//!   some of its calls: see the circuit breaker's "Which calls are timed").
//!   tokio cannot pause a multi-thread runtime's clock (`pause`
//!   panics there), so no test can tell the difference. Without an
//!   invariant counter, `quanta` reads the OS clock.
//!
//! A component built on a multi-thread runtime and then used under a
//! paused clock (a `static` first built by a multi-thread test) does not
//! see the pause: build it in the paused test. The first component built
//! on a multi-thread runtime waits for the counter's calibration, once per
//! process: 10 to 20 ms, at most 200 ms.
//!
//! # Cargo features
//!
//! With default features off, each layer builds on its own (`.ci/run`
//! checks every one alone).
//!
#![doc = document_features::document_features!()]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]
// A build with only some features compiles shared internals (the windows,
// the registry's command list, the clock and cancel helpers) that only the
// other features use. The full build, which clippy checks with warnings
// denied, keeps dead code out; partial builds are checked for every other
// warning (`.ci/run`).
#![cfg_attr(
    not(all(
        feature = "command",
        feature = "balance",
        feature = "stream",
        feature = "chaos"
    )),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "balance")]
pub mod balance;
#[cfg(feature = "bulkhead")]
pub mod bulkhead;
#[cfg(feature = "cache")]
pub mod cache;
pub mod catch_panic;
#[cfg(feature = "chaos")]
pub mod chaos;
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
#[cfg(feature = "coalesce")]
pub mod coalesce;
#[cfg(feature = "collapse")]
pub mod collapse;
#[cfg(feature = "command")]
pub mod command;
pub mod config;
pub mod deadline;
#[cfg(feature = "etcd")]
pub mod discovery;
pub mod error;
#[cfg(feature = "fallback")]
pub mod fallback;
#[cfg(feature = "hedge")]
pub mod hedge;
mod integrations;
pub(crate) mod internal;
#[cfg(feature = "limit")]
pub mod limit;
pub mod metrics;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
pub mod registry;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(feature = "stream")]
pub mod stream;
#[cfg(feature = "timeout")]
pub mod timeout;
pub mod troubleshooting;
pub mod window;

#[cfg(feature = "axum")]
pub use integrations::axum;
#[cfg(feature = "reqwest")]
pub use integrations::reqwest;
#[cfg(feature = "tonic")]
pub use integrations::tonic;
#[cfg(feature = "tower-http")]
pub use integrations::tower_http;

#[cfg(feature = "command")]
pub use command::{Command, CommandLayer};
pub use error::{BoxError, ConfigError, ErrorKind};

/// The README's code blocks, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
