//! Adaptive concurrency limits: a limit that finds itself from measured
//! round-trip times (Netflix's concurrency-limits), with partitions that
//! guarantee each tenant its share.
//!
//! A [bulkhead](crate::bulkhead) asks for a number: how many calls may be
//! in flight at once. Guess low and capacity is wasted; guess high and an
//! overloaded service queues calls until every one of them is slow. The
//! right number moves, too, with deploys, with the machine, with what the
//! calls ask for. By Little's law, the calls a service can hold is its
//! throughput times its latency without queueing; past that, every extra
//! call only waits. A limiter measures the latency and moves the limit:
//! up while round-trip times stay flat, down when they rise (calls are
//! queueing) or when calls are dropped. The excess is rejected at once,
//! with [`LimitExceeded`], and the calls admitted keep their latency.
//!
//! # Example
//!
//! ```
//! use rampart::limit::{Gradient2, LimitLayer};
//! use rampart::ErrorKind;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let limit = LimitLayer::builder("recommendations")
//!     .algorithm(Gradient2::new().initial_limit(1).min_limit(1))
//!     .build()?;
//! let handle = limit.handle();
//! let mut svc = ServiceBuilder::new()
//!     .layer(limit)
//!     .service(service_fn(|_: ()| std::future::pending::<Result<(), rampart::BoxError>>()));
//!
//! let _stuck = svc.ready().await?.call(()); // holds the only permit
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::LimitExceeded);
//! assert_eq!((handle.limit(), handle.in_flight(), handle.rejected()), (1, 1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # The algorithms
//!
//! [`Vegas`] (the default), [`Gradient2`], [`Aimd`] and [`Fixed`], with
//! Netflix's defaults and formulas (each type's docs give them), or any
//! [`Algorithm`] of your own. Netflix recommends Vegas or Gradient2 on a
//! server, AIMD on a client (where drops, such as timeouts and the
//! server's own 503s, are the clearest signal).
//!
//! No algorithm raises the limit while fewer than half the permits are
//! in use: a service that is not busy says nothing about how much more it
//! could take.
//!
//! # Samples and windows
//!
//! As Netflix's `WindowedLimit`: calls' round-trip times (from the call
//! reaching the inner service to its answer) are gathered into windows,
//! and the algorithm is fed one [`Sample`] per window: the mean RTT, the
//! most calls in flight at once, and whether any call was dropped. A
//! window lasts twice its lowest RTT, within
//! [`min_window`](Builder::min_window) and
//! [`max_window`](Builder::max_window) (both 1 s by default); one with
//! fewer than [`min_samples`](Builder::min_samples) timed calls (10) is
//! dropped, and calls faster than [`min_rtt`](Builder::min_rtt) (100 µs)
//! are not samples.
//!
//! Not every call is timed: two clock reads cost more than the whole
//! admission. While traffic is light every call is; when it is heavy, one
//! in up to 64 (by admission order, so the choice is unbiased), for about
//! 100 timed calls a window. Drops are counted whether or not their call
//! was timed.
//!
//! # What a drop is
//!
//! By [`DefaultClassifier`]: a call that ends in a timeout, a passed
//! deadline, or a rejection by a layer beneath (a full bulkhead, an open
//! breaker, another limit). [`HttpClassifier`] adds a 503 or a 429
//! response. Other errors are ignored: a bad request says nothing about
//! load. A call cut off by rampart's [`Timeout`](crate::timeout::Timeout)
//! above the limiter is a drop too. [`classify`](Builder::classify) takes
//! a rule of your own.
//!
//! # Partitions
//!
//! [`partition`](Builder::partition) guarantees a share of the limit to
//! the calls of a partition named by [`partition_by`](Builder::partition_by)
//! (a tenant, a priority, a path); under the limit, anyone may use what
//! the others leave. A partition over its share while the limit is in use
//! is rejected with [`PartitionLimitExceeded`], so one noisy tenant cannot
//! take another's share.
//!
//! # On a server
//!
//! In front of an axum router (feature `axum`), behind `HandleErrorLayer`:
//! [`rampart::axum`](crate::axum) answers [`LimitExceeded`] with 503
//! Service Unavailable, and [`PartitionLimitExceeded`] with 429 Too Many
//! Requests (the caller's traffic is over its share; the server is not
//! down). The RTT is then the handler's time.
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # {
//! use axum::error_handling::HandleErrorLayer;
//! use axum::{routing::get, Router};
//! use rampart::limit::{HttpClassifier, LimitLayer, Vegas};
//! use tower::ServiceBuilder;
//!
//! let limit = LimitLayer::builder("api")
//!     .algorithm(Vegas::new())
//!     .classify(HttpClassifier) // the app's own 503s are drops too
//!     .partition("interactive", 0.8)
//!     .partition("batch", 0.2)
//!     .partition_by(|request: &http::Request<axum::body::Body>| {
//!         request.headers().get("x-priority").and_then(|v| v.to_str().ok())
//!     })
//!     .build()?;
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(rampart::axum::error_response))
//!         .layer(limit),
//! );
//! # }
//! # Ok::<(), rampart::ConfigError>(())
//! ```
//!
//! With plain hyper, turn the limiter's error into a response yourself,
//! and hand the stack to `serve_connection` through
//! `hyper_util::service::TowerToHyperService`:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use rampart::limit::{LimitLayer, PartitionLimitExceeded, Vegas};
//! use rampart::{BoxError, ErrorKind};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! /// A limiter's rejection as a response: 429 for a partition over its
//! /// share, 503 for the limit; 500 for anything else.
//! fn shed(error: BoxError) -> Response<Full<Bytes>> {
//!     let status = if error.is::<PartitionLimitExceeded>() {
//!         StatusCode::TOO_MANY_REQUESTS
//!     } else if ErrorKind::of(&error) == ErrorKind::LimitExceeded {
//!         StatusCode::SERVICE_UNAVAILABLE
//!     } else {
//!         StatusCode::INTERNAL_SERVER_ERROR
//!     };
//!     let mut response = Response::new(Full::default());
//!     *response.status_mut() = status;
//!     response
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // The handler (with hyper, its requests are `Request<Incoming>`).
//! let handler = tower::service_fn(|_: Request<String>| async {
//!     Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"hello"))))
//! });
//! let mut service = ServiceBuilder::new()
//!     // Every error answered: hyper only sees a `BoxError` if `poll_ready`
//!     // fails, which the limiter's never does.
//!     .map_result(|result: Result<Response<Full<Bytes>>, BoxError>| {
//!         Ok::<_, BoxError>(result.unwrap_or_else(shed))
//!     })
//!     .layer(LimitLayer::builder("api").algorithm(Vegas::new()).build()?)
//!     .service(handler);
//! // With hyper: `serve_connection(io, TowerToHyperService::new(service.clone()))`.
//! let response = service.ready().await?.call(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! [`LimitExceeded`] or [`PartitionLimitExceeded`]
//! ([`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded)), both
//! zero-sized: a rejection allocates nothing. The inner service's own
//! errors pass through, boxed. Beneath a circuit breaker, rejections count
//! as the bulkhead's do (Hystrix's accounting); a balancer or a retry layer
//! retries them, since the service never saw the call.
//!
//! # Cost
//!
//! Admission is one compare-and-swap against the limit, release one atomic
//! subtraction; no lock and no allocation on the call path, rejected or
//! admitted (the bounded wait allocates its timer, as the bulkhead's
//! does). The algorithm runs once a window, under a lock the call path
//! never waits for. `cargo bench --bench limit --features limit` measures
//! it.
//!
//! # Metrics
//!
//! `rampart_limit` (the limit), `rampart_limit_in_flight`,
//! `rampart_limit_rtt_seconds` (the last window's mean RTT), and per
//! partition `rampart_limit_partition` and
//! `rampart_limit_partition_in_flight`; `rampart_events_total` with
//! `layer="limit"` and `event` one of `success`, `dropped`, `ignored`,
//! `rejected` (per partition with a `partition` label). The
//! [`LimitHandle`] reads the same numbers, and
//! [`Registry::limits`](crate::registry::Registry::limits) lists every
//! limiter.
//!
//! # What is not here
//!
//! Netflix's lifo and deadline limiters, a partition's reject delay, and
//! replacing Vegas's α, β and step functions. A partitioned limiter does
//! not wait ([`max_wait`](Builder::max_wait) is for one without
//! partitions).

pub mod algorithm;
mod classify;
mod config;
mod error;
mod future;
mod handle;
mod layer;
mod partition;
mod service;
mod state;

pub use algorithm::{Aimd, Algorithm, Fixed, Gradient2, Sample, Vegas};
#[cfg(feature = "http")]
pub use classify::HttpClassifier;
pub use classify::{Classify, DefaultClassifier, Outcome};
pub use config::{
    Builder, DEFAULT_MAX_WINDOW, DEFAULT_MIN_RTT, DEFAULT_MIN_SAMPLES, DEFAULT_MIN_WINDOW,
};
pub use error::{LimitExceeded, PartitionLimitExceeded};
pub use future::ResponseFuture;
pub use handle::{LimitHandle, PartitionStats};
pub use layer::LimitLayer;
pub use partition::{PartitionBy, Partitioner, Unpartitioned};
pub use service::Limit;
pub(crate) use state::Shared;
