//! Client-side load balancing: spread calls over the instances of a
//! dependency, retry a failed call on another instance, and step around
//! instances that keep failing (Netflix's Ribbon, with Envoy's outlier
//! ejection and Finagle's power of two choices).
//!
//! - [`Endpoints`] come from a fixed list, a `tokio::sync::watch` channel
//!   of lists (a registry feed), or a `tower::discover::Discover` stream;
//!   removed endpoints finish the calls they have in flight.
//! - A [`Rule`](rule::Rule) picks the endpoint for each attempt;
//!   [`PowerOfTwoChoices`](rule::PowerOfTwoChoices) on peak-EWMA latency is
//!   the default, O(1) and allocation-free.
//! - Retries follow Ribbon: `retries_same` on the endpoint, then
//!   `retries_next` other endpoints, never one that already failed the call
//!   while another is available; only for requests and results the
//!   [`Policy`] allows ([`DefaultPolicy`]: only errors that prove the
//!   endpoint never received the request); each drawn from a shared
//!   [`RetryBudget`](crate::retry::RetryBudget) after a jittered
//!   [`Backoff`](crate::retry::Backoff).
//! - Outlier ejection: after `eject_after` failures in a row an endpoint
//!   is left out for `eject_for` (doubling up to a cap), never more than
//!   `max_ejected` of the set, and not at all in panic mode.
//! - Failure accrual: a failing endpoint the ejection cap has no place for
//!   is marked dead on the same schedule, and passed over while any other
//!   endpoint will do (uncapped, whatever the panic threshold; see
//!   [`Builder::failure_accrual`]).
//!
//! # Failure awareness
//!
//! A failed or timed-out attempt is evidence that the endpoint is bad,
//! never that it is fast:
//!
//! - it counts toward ejection and failure accrual, and raises the
//!   endpoint's load estimate (at least doubling it; a failure never lowers
//!   it), so the default rule steers calls away from it at once;
//! - an attempt cut off by rampart's [`Timeout`](crate::timeout::Timeout)
//!   (or a [`Command`](crate::Command), with a bulkhead or a pool) *above*
//!   the balancer counts as a timeout for its endpoint; a caller's own
//!   cancellation does not, though
//!   its time, if already longer than the estimate, raises the estimate;
//! - a panic in an endpoint's service or future counts as a failure, and
//!   leaves no load count behind;
//! - [`EndpointStats`] counts each endpoint's successes, failures,
//!   timeouts, ignored results and cancellations, and
//!   `rampart_endpoint_duration_seconds` is labelled by `outcome`.
//!
//! # When the retry budget says no
//!
//! A call that could have been retried but for the budget returns its last
//! attempt's result, marked: an error is wrapped in
//! [`RetryBudgetExhausted`](crate::retry::RetryBudgetExhausted)
//! ([`ErrorKind::RetryBudgetExhausted`](crate::ErrorKind::RetryBudgetExhausted));
//! a response (say a 503) goes through
//! [`Policy::on_retry_budget_exhausted`], with which [`HttpPolicy`] inserts
//! a [`RetryBudgetExhaustedMarker`](crate::retry::RetryBudgetExhaustedMarker)
//! into its extensions.
//!
//! # Example
//!
//! ```
//! use rampart::balance::{Balance, Endpoint, Endpoints};
//! use tower::{service_fn, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! // Three instances; the first refuses connections.
//! let instance = |n: u32| service_fn(move |_: ()| async move {
//!     if n == 0 {
//!         Err::<u32, rampart::BoxError>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
//!     } else {
//!         Ok(n)
//!     }
//! });
//! let mut client = Balance::builder("ratings")
//!     .build(Endpoints::fixed((0..3).map(|n| Endpoint::new(n, instance(n)))))?;
//!
//! // Every call succeeds: one that lands on instance 0 is retried on another.
//! for _ in 0..20 {
//!     let answer = client.ready().await?.call(()).await?;
//!     assert_ne!(answer, 0);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoint services
//!
//! Each endpoint's service is cloned for every attempt and shared between
//! threads, so it must be `Clone + Send + Sync` (hyper's and reqwest's
//! clients are). To erase its type, prefer returning `impl Service<..,
//! Future: Send> + Clone + Send + Sync` to `BoxCloneSyncService`: with the
//! latter, today's rustc cannot prove a future awaiting the balancer inside
//! `tokio::spawn` is `Send` ("implementation of `From` is not general
//! enough"), as it cannot for tower's own layers over that type.
//!
//! # Making requests retryable
//!
//! Retries need `Req: Clone`. For HTTP, keep the body as [`bytes::Bytes`]
//! (e.g. `http::Request<http_body_util::Full<Bytes>>`): cloning it copies a
//! pointer, not the body.
//!
//! Over reqwest, `rampart::reqwest::ReqwestEndpoint` (feature `reqwest`)
//! is such an endpoint service, and `rampart::reqwest::endpoints(&client,
//! addresses)` the whole list: `http::Request<Bytes>` in, answered by the
//! instance at each address through one shared client.
//!
//! [`bytes::Bytes`]: https://docs.rs/bytes

mod config;
mod ejection;
mod endpoint;
mod error;
mod ewma;
mod future;
mod handle;
pub mod rule;
mod service;
mod set;
mod source;

/// The retry policies, shared with the [retry layer](crate::retry::RetryLayer).
pub use crate::retry::{DefaultPolicy, HttpPolicy, Policy};
pub use config::{
    Builder, DEFAULT_EJECT_AFTER, DEFAULT_EJECT_FOR, DEFAULT_EJECT_FOR_MAX,
    DEFAULT_INITIAL_LATENCY, DEFAULT_LATENCY_DECAY, DEFAULT_MAX_EJECTED, DEFAULT_PANIC_THRESHOLD,
    DEFAULT_RETRIES_NEXT, DEFAULT_RETRIES_SAME,
};
pub use endpoint::Endpoint;
pub use error::NoHealthyEndpoint;
pub use future::ResponseFuture;
pub(crate) use handle::Report;
pub use handle::{BalanceHandle, EndpointStats};
pub use service::Balance;
pub use source::Endpoints;
