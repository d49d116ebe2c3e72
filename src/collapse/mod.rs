//! Request collapsing (Hystrix's `HystrixCollapser`): many single-item
//! calls made within a short window become one batch call.
//!
//! When callers each ask a dependency for one thing (a title, a user, a
//! price) and the dependency has a bulk endpoint, one call for a hundred
//! things costs about what one call for one thing does. Netflix used
//! Hystrix's collapser to turn thousands of per-title lookups into a few
//! bulk requests. [`CollapseLayer`] wraps a *batch* service (`Vec<Req>` in,
//! a batch response out) and gives back a service of single requests:
//!
//! - **Window**: a batch collects requests for [`window`](Builder::window)
//!   from its first (default 10 ms, Hystrix's `timerDelayInMilliseconds`),
//!   then is sent; no request waits longer than the window to be sent.
//! - **Bound**: a batch holds at most [`max_batch`](Builder::max_batch)
//!   requests (default 100; Hystrix's `maxRequestsInBatch` is unbounded,
//!   rampart's is not); a full batch is sent at once.
//! - **Answers**: item `i` of the batch's `Vec` answers request `i`
//!   ([`InOrder`]), or items are matched by key in any order
//!   ([`match_by`](Builder::match_by), [`ByKey`]), or by a [`Mapping`] of
//!   your own. A request no item answers fails alone with
//!   [`MissingItem`]: never a hang.
//! - **Errors**: a failed batch fails each of its callers with
//!   [`BatchFailed`], whose source is the batch's error (shared), so
//!   [`ErrorKind::of`](crate::ErrorKind::of) tells a timeout from a
//!   rejection from the dependency's failure for each caller. A panic in
//!   the batch service or the mapping is
//!   [`Panicked`](crate::catch_panic::Panicked) inside it.
//! - **Slow batches** hold up only their own callers: each batch runs in a
//!   task of its own while the next is collected. Bound the batches in
//!   flight with a bulkhead (or a [`Command`](crate::Command)) beneath.
//!
//! ```
//! use rampart::collapse::CollapseLayer;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! // The dependency's bulk endpoint: titles by id, in the order asked.
//! let bulk = service_fn(|ids: Vec<u32>| async move {
//!     Ok::<_, rampart::BoxError>(ids.iter().map(|id| format!("title {id}")).collect::<Vec<_>>())
//! });
//! let collapser = CollapseLayer::builder("TitlesGet")
//!     .window(Duration::from_millis(10))
//!     .max_batch(100)
//!     .build()?;
//! let handle = collapser.handle();
//! let titles = ServiceBuilder::new().layer(collapser).service(bulk);
//!
//! // Three callers, one batch.
//! let (a, b, c) = tokio::join!(
//!     titles.clone().oneshot(1),
//!     titles.clone().oneshot(2),
//!     titles.clone().oneshot(3),
//! );
//! assert_eq!((a?, b?, c?), ("title 1".into(), "title 2".into(), "title 3".into()));
//! assert_eq!((handle.batches(), handle.requests_batched()), (1, 3));
//! # Ok(())
//! # }
//! ```
//!
//! **Scope**: a collapser batches the calls of every caller of its
//! service (Hystrix's `GLOBAL` scope). Hystrix's default, `REQUEST`,
//! batched only within one request context, which rampart does not have.
//!
//! # Cancel safety
//!
//! A caller that drops its future leaves its batch: if the batch has not
//! been sent, its request is not sent; if it has, its item is dropped.
//! The other callers are not disturbed. Dropping every service handle
//! ends the batching task once the requests already made are answered.
//!
//! # With a command, and in the stream
//!
//! Put the collapser above a [`Command`](crate::Command) whose calls are
//! the batches, and name it with [`command`](Builder::command): the
//! stream then reports the requests batched into its calls as the
//! command's `rollingCountCollapsedRequests`, as Hystrix counts them on
//! the batch command. The command's breaker, bulkhead, timeout and
//! fallback see batches; a fallback answers a whole batch.
//!
//! Each collapser is also its own `HystrixCollapser` object in the
//! stream: `rollingCountRequestsBatched`, `rollingCountBatches`,
//! `batchSize_mean` and the `batchSize` percentiles over the last 10 s,
//! and its settings (see [`stream`](crate::stream)). Metrics:
//! `rampart_events_total{layer="collapse", event="batch"|"batched"|"batch_failed"|"missing_item"|"abandoned"}`
//! (`batched` counts requests, the others batches or requests as named).
//!
//! To send each key once per batch, put a [coalescer](crate::coalesce)
//! above the collapser: identical requests in flight become one, before
//! they are batched.
//!
//! # Costs
//!
//! Per request: a oneshot channel (one allocation) and a place in an
//! unbounded queue to the batching task; per batch: the request `Vec`,
//! the answers and a task. The queue is not bounded: while the batch
//! service is not ready, requests wait in it (a bulkhead beneath that
//! rejects rather than waits keeps it short).

mod config;
mod error;
mod future;
mod handle;
mod layer;
mod mapping;
mod service;
mod stats;
mod worker;

pub use config::{Builder, DEFAULT_MAX_BATCH, DEFAULT_WINDOW};
pub use error::{BatchFailed, CollapserClosed, MissingItem};
pub use future::ResponseFuture;
pub use handle::CollapseHandle;
pub use layer::CollapseLayer;
pub use mapping::{ByKey, InOrder, Mapping};
pub use service::Collapse;
pub(crate) use stats::Stats;
