//! A rolling-window circuit breaker: Hystrix's semantics, as a tower layer.
//!
//! A breaker watches the calls to one dependency. When too many fail (or are
//! slow) it **opens**: calls are rejected at once with [`CircuitOpen`],
//! without reaching the dependency, so the dependency can recover and
//! callers fail fast (and fall back) instead of queueing behind timeouts.
//! After [`open_for`](Builder::open_for) it turns **half-open** and lets
//! [`probes`](Builder::probes) calls through; if all succeed it **closes**
//! with an empty window, if one fails it opens again (for longer, with
//! [`open_for_max`](Builder::open_for_max)).
//!
//! # Trip rules
//!
//! Any enabled rule trips the breaker:
//! - failure rate ≥ [`failure_rate`](Builder::failure_rate) (default 50 %)
//!   once the window holds ≥ [`min_calls`](Builder::min_calls) (default 20);
//! - slow-call rate ≥ the rate given to [`slow_call`](Builder::slow_call),
//!   with the same minimum;
//! - [`consecutive_failures`](Builder::consecutive_failures) in a row.
//!
//! What counts as a failure is decided by a [`Classify`] closure (by default
//! every `Err`). Timeouts and rejections by a bulkhead beneath the breaker
//! are failures, as in Hystrix; the breaker's own rejections never are.
//!
//! # Example
//!
//! ```
//! use rampart::circuit_breaker::{CircuitBreakerLayer, State};
//! use rampart::ErrorKind;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let layer = CircuitBreakerLayer::builder("recommendations")
//!     .min_calls(4)
//!     .open_for(Duration::from_secs(5))
//!     .build()?;
//! let handle = layer.handle();
//!
//! // A dependency that always fails.
//! let inner = service_fn(|_: ()| async { Err::<(), _>("connection refused") });
//! let mut svc = ServiceBuilder::new().layer(layer).service(inner);
//!
//! for _ in 0..4 {
//!     let _ = svc.ready().await?.call(()).await;
//! }
//! assert_eq!(handle.state(), State::Open);
//!
//! // Now calls fail fast without reaching the dependency.
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! Admitting a call in the closed state is one atomic load; recording it
//! touches only counters private to the calling thread's shard. Neither
//! path allocates or takes a lock. See the README's benchmark table.
//!
//! # Which calls are timed
//!
//! Every call is counted, but not every call is timed under load: a
//! timed call reads the clock twice (start and end), one not timed once
//! (its end, for the rolling window's bucket), and a read of the CPU's
//! time-stamp counter is a quarter of a closed call's cost. While the last
//! full bucket of the rolling window held about 100 calls or fewer (looked
//! at as each bucket starts), every call is timed; above that, one call in
//! up to 64 (a power of two, drawn at random, so the choice is unbiased),
//! for about 100 timed calls a bucket. That is what Hystrix's rolling
//! percentile keeps (100 latencies a bucket,
//! `metrics.rollingPercentile.bucketSize`). Every call is timed:
//!
//! - with the slow-call rule on: it judges each call;
//! - in a [`Command`](crate::Command): its fallback's windows take each
//!   failed call's time from the breaker, and its timeout reads the
//!   clock at the call's start anyway, so timing costs nothing more;
//! - after a reset, until the next bucket starts.
//!
//! A count window of N calls keeps about 100 timed ones too: at most one
//! call in N / 100 goes untimed.
//!
//! What the timed calls feed: [`latencies`](CircuitBreakerHandle::latencies)
//! (their count is the timed calls'), the stream's latency percentiles and
//! means, and the `rampart_call_duration_seconds` histogram (whose count is
//! so the timed calls'; `rampart_events_total` counts every call). A
//! timeout beneath the breaker takes its deadline from a timed call's
//! start read, and reads the clock itself for the others.
//!
//! # One breaker per key
//!
//! A dependency is often many: one host of many behind a client, one
//! tenant's backend, one route. A single breaker for all of them opens for
//! everybody when one fails. [`Builder::keyed`] gives one breaker per key
//! taken from each request, all with the same settings, as
//! resilience4j's `CircuitBreakerRegistry` hands out one breaker per name
//! from one config (and Polly's `ResiliencePipelineRegistry<TKey>`), but
//! chosen per call:
//!
//! ```
//! use rampart::circuit_breaker::{CircuitBreakerLayer, State};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! // Requests name their host; "down.example" always fails.
//! let per_host = CircuitBreakerLayer::builder("hosts")
//!     .consecutive_failures(3)
//!     .keyed(|host: &&str| host.to_string())
//!     .max_keys(10_000)
//!     .build()?;
//! let hosts = per_host.handle();
//! let mut svc = ServiceBuilder::new().layer(per_host).service(service_fn(|host: &'static str| async move {
//!     if host == "down.example" { Err("connection refused") } else { Ok(host.len()) }
//! }));
//!
//! for _ in 0..3 {
//!     let _ = svc.ready().await?.call("down.example").await;
//! }
//! assert_eq!(hosts.get(&"down.example".into()).unwrap().state(), State::Open);
//! // The other hosts are not touched by it.
//! assert!(svc.ready().await?.call("up.example").await.is_ok());
//! assert_eq!(hosts.get(&"up.example".into()).unwrap().state(), State::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! - **Bounded.** At most [`max_keys`](keyed::Builder::max_keys) keys
//!   (default 1000) are held; past it, the least recently used are
//!   forgotten with their state, in batches down to 7/8 of the bound, on
//!   the call that brings a new key (a call with a known key never pays
//!   for it). "Recently" is the time of the key's last call, to the
//!   microsecond; keys last used in the same microsecond go in no set
//!   order, but the new key whose call sweeps is never forgotten by its
//!   own sweep (on a paused clock, where every key ties, too). A
//!   forgotten key starts over with a closed breaker.
//! - **Seen.** Each key's breaker is named `name/key` (the key in its
//!   `Debug` form, as the balancer names endpoints), is listed by
//!   [`KeyedCircuitBreakerHandle::breakers`] and by
//!   [`Registry::breakers`](crate::registry::Registry::breakers), and so
//!   shows in the [stream](crate::stream) and on the dashboard as a
//!   breaker of its own; its metrics carry its own `name`, so a metric has
//!   up to `max_keys` series per layer.
//! - **Cost.** A call hashes its key and looks it up in a sharded map
//!   under the shard's read lock, then does what a single breaker does
//!   (`benches/keyed.rs` measures the look-up at 10, 1000 and 100 000
//!   keys); no allocation for a key already held. A new key makes its
//!   breaker: about 2.2 KB, its rolling window's counts (a breaker per
//!   key keeps one window shard, not one per thread pair, and no latency
//!   histograms: each would take 1.2 KB a bucket, 16 KB a key in all).
//!   So 1000 keys take about 2.2 MB, 100 000 about 220 MB. A key's
//!   breaker decides on counts only, so nothing is lost for its rules;
//!   what it does not have is a latency distribution: its
//!   [`latencies`](CircuitBreakerHandle::latencies) read empty and
//!   its latency percentiles in the stream read 0. Each call touches a few cache
//!   lines of its key's breaker, so once the breakers outgrow the CPU's
//!   caches a call costs a few cache misses more than with one breaker.
//!
//! # Breakers for a balancer's endpoints
//!
//! The [balancer](crate::balance) already steps around failing endpoints
//! by itself (outlier ejection and failure accrual, Envoy's and Finagle's
//! per-endpoint "breakers"), counting failures in a row with a cap on how
//! much of the set is out. A Hystrix-style breaker per endpoint adds
//! rolling failure and slow-call rates, half-open probes and a handle to
//! force one open. [`KeyedCircuitBreakerLayer::for_key`] gives each
//! endpoint's service its key's breaker, so one keyed layer holds, lists
//! and streams them all, and [`Endpoint::breaker`](crate::balance::Endpoint::breaker)
//! lets the [`AvailabilityFilter`](crate::balance::rule::AvailabilityFilter)
//! skip endpoints whose breaker is open:
//!
//! ```
//! # #[cfg(feature = "balance")] {
//! use rampart::balance::{Balance, Endpoint, Endpoints};
//! use rampart::circuit_breaker::CircuitBreakerLayer;
//! use tower::{service_fn, Layer};
//!
//! let breakers = CircuitBreakerLayer::builder("ratings")
//!     .keyed(|addr: &&str| addr.to_string())
//!     .build()?;
//! let endpoint = |addr: &'static str| {
//!     let breaker = breakers.for_key(&addr.to_string());
//!     let handle = breaker.handle();
//!     let client = service_fn(|_: ()| async { Ok::<_, rampart::BoxError>("ok") });
//!     Endpoint::new(addr, breaker.layer(client)).breaker(handle)
//! };
//! let balancer = Balance::builder("ratings")
//!     .build(Endpoints::fixed(["10.0.0.1:80", "10.0.0.2:80"].map(endpoint)))?;
//! assert_eq!(breakers.handle().len(), 2);
//! # }
//! # Ok::<(), rampart::BoxError>(())
//! ```

mod classify;
mod config;
mod error;
mod events;
mod future;
mod handle;
pub mod keyed;
mod layer;
mod live;
mod service;
mod state;
mod telemetry;

pub use classify::{Classify, DefaultClassifier, Outcome};
pub use config::{
    Builder, CircuitBreakerOptions, Window, DEFAULT_BUCKETS, DEFAULT_FAILURE_RATE,
    DEFAULT_MIN_CALLS, DEFAULT_OPEN_FOR, DEFAULT_PROBES, DEFAULT_PROBE_TIMEOUT,
    DEFAULT_SLOW_CALL_RATE, DEFAULT_WINDOW,
};
pub use error::CircuitOpen;
pub use events::{State, StateChange, TransitionReason};
pub use future::ResponseFuture;
pub use handle::CircuitBreakerHandle;
pub use keyed::{KeyedCircuitBreaker, KeyedCircuitBreakerHandle, KeyedCircuitBreakerLayer};
pub use layer::CircuitBreakerLayer;
pub use service::CircuitBreaker;
pub(crate) use state::Breaker;
