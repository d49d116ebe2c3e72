//! Fault injection on purpose: a tower layer that slows calls down, fails
//! them or hangs them, while switched on (Netflix's Latency Monkey,
//! Envoy's fault filter).
//!
//! A failing dependency should degrade a feature, not take the service
//! down; the only way to know it does is to make a dependency fail while
//! watching. Put a [`ChaosLayer`] beneath a command (or beneath a
//! balancer, per instance), leave it off, and switch it on from its
//! [`ChaosHandle`] during a game day.
//!
//! - **Delay**: [fixed](Delay::fixed), [uniform](Delay::uniform) or
//!   [log-normal](Delay::log_normal) latency added before the call, for a
//!   percentage of requests.
//! - **Abort**: instead of the call, an [error](Abort::error) of your
//!   choice, a [response](Abort::response) (e.g. an HTTP 503), or a
//!   [hang](Abort::hang) (the call never completes), or the real call
//!   with its response [cut mid-body](Abort::cut_mid_response) (a
//!   connection closed under the response), for a percentage of requests.
//!   With a delay too: latency, then the abort.
//! - **Selection**: a [predicate](Faults::when) on the request (a header, a
//!   tenant, a path), then the percentages, as Envoy's fault filter.
//! - **Deterministic** under a [seed](Builder::seed): the same requests in
//!   the same order meet the same faults.
//! - **Off by default**, and cheap when off: one relaxed atomic load per
//!   call, and the inner future passed through with no state of its own
//!   (criterion: `cargo bench --all-features --bench command`, group
//!   `chaos`: disabled vs absent).
//! - **Labelled**: every injected fault counts in
//!   `rampart_events_total{layer="chaos",event="delay_injected"|"abort_injected",injected="true"}`
//!   and logs a `tracing` event with `injected = true`, so an injected
//!   fault is never taken for a real one. The injected error itself is
//!   yours, unwrapped, so breakers, retry policies and fallbacks treat it
//!   as they would the real thing.
//!
//! ```
//! use rampart::chaos::{Abort, ChaosLayer, Delay};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let chaos = ChaosLayer::builder("ratings")
//!     .delay(Delay::fixed(Duration::from_millis(300)), 100.0)
//!     .abort(Abort::error(|| "injected: connection refused"), 50.0)
//!     .seed(7)
//!     .build()?;
//! let monkey = chaos.handle();
//! let mut svc = ServiceBuilder::new()
//!     .layer(chaos)
//!     .service(service_fn(|_: &str| async { Ok::<_, rampart::BoxError>("4.5 stars") }));
//!
//! // Off: calls go straight through.
//! assert_eq!(svc.ready().await?.call("/ratings").await?, "4.5 stars");
//!
//! monkey.enable();
//! let started = tokio::time::Instant::now();
//! let _ = svc.ready().await?.call("/ratings").await; // 300 ms later: answered or refused
//! assert!(started.elapsed() >= Duration::from_millis(300));
//! assert_eq!(monkey.injected_delays(), 1);
//! monkey.disable();
//! # Ok(())
//! # }
//! ```

mod config;
mod cut;
mod faults;
mod future;
mod handle;
mod layer;
mod service;
mod state;

pub use config::Builder;
pub use cut::{ConnectionCut, CutBody, CutMidResponse};
pub use faults::{Abort, Delay, Faults};
pub use future::ResponseFuture;
pub use handle::ChaosHandle;
pub use layer::ChaosLayer;
pub use service::Chaos;
