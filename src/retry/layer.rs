//! The retry layer, and what its services share.

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::config::Builder;
use super::service::Retry;
use crate::metrics::event_counter;
use metrics::Counter;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// The `layer` label and field of the retry layer's metrics and events.
pub(super) const LAYER: &str = "retry";

/// Retries calls to any service, within a [`RetryBudget`]: what the
/// [balancer](crate::balance) does across instances, for one dependency
/// (or anything else that is a `Service`).
///
/// # When to use it
///
/// Around a single endpoint, a Hystrix command, or a client that does its
/// own balancing. Over several instances, prefer the balancer, which
/// retries on another instance and steps around unhealthy ones.
///
/// # Behaviour
///
/// - A call makes at most [`max_attempts`](Builder::max_attempts)
///   attempts (default 3, the first included). After each failed attempt
///   the [`Policy`](super::Policy) decides whether the request may be sent
///   again; the layer then takes a retry from the budget (no retry left:
///   the result comes back, an error wrapped in
///   [`RetryBudgetExhausted`](super::RetryBudgetExhausted), a response
///   marked through [`Policy::on_retry_budget_exhausted`](super::Policy::on_retry_budget_exhausted)),
///   waits its [backoff](Builder::backoff) (at least the `Retry-After` the
///   policy reads, and no retry at all past
///   [`max_retry_after`](Builder::max_retry_after)), waits for the service
///   to be ready, and sends a clone of the request.
/// - Every call deposits into the budget; each retry withdraws one.
/// - A short-circuit ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen))
///   is not retried unless [`retry_circuit_open`](Builder::retry_circuit_open)
///   says so: put the retry layer *outside* a breaker (or a
///   [`Command`](crate::Command)) and each attempt counts in the breaker,
///   and an open breaker ends the call at once.
/// - The decision is taken on the service's result: for HTTP, on the
///   response head. A body that fails while the caller reads it is never
///   retried (the response has left the layer); to retry those, collect
///   the body beneath the layer so that its failure is the call's error.
/// - The request and the inner service must be `Clone`: the layer keeps a
///   copy of the request per call while attempts remain (an
///   `http::Request` clone copies its headers; a streaming body such as
///   axum's `Body` is not `Clone`: collect it into `Bytes` first), and
///   retries through a clone of the service (a `BoxService` is not `Clone`:
///   use `BoxCloneService`). Without them, `.ready()` fails to compile with
///   "the trait bounds were not satisfied". The layer itself allocates
///   nothing on a call that succeeds at once.
///
/// # Example
///
/// ```
/// use rampart::retry::{Backoff, HttpPolicy, RetryLayer};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), rampart::BoxError> {
/// let retry = RetryLayer::builder("catalog")
///     .policy(HttpPolicy)
///     .max_attempts(3)
///     .backoff(Backoff::exponential(Duration::from_millis(20), Duration::from_secs(1))?)
///     .build()?;
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// let mut client = ServiceBuilder::new().layer(retry).service(service_fn(move |_: http::Request<()>| {
///     // A dependency that answers 503 once, then 200.
///     let status = if seen.fetch_add(1, Ordering::SeqCst) == 0 { 503 } else { 200 };
///     async move { Ok::<_, rampart::BoxError>(http::Response::builder().status(status).body(()).unwrap()) }
/// }));
///
/// let response = client.ready().await?.call(http::Request::get("/titles").body(())?).await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(calls.load(Ordering::SeqCst), 2, "one retry");
/// # Ok(())
/// # }
/// ```
pub struct RetryLayer<P> {
    shared: Arc<Shared<P>>,
}

/// What every service of one retry layer shares.
pub(crate) struct Shared<P> {
    pub(crate) name: Arc<str>,
    pub(crate) policy: P,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) budget: RetryBudget,
    pub(crate) max_retry_after: Duration,
    pub(crate) retry_circuit_open: bool,
    pub(crate) retried: Counter,
    pub(crate) budget_exhausted: Counter,
    pub(crate) counts: Arc<Counts>,
}

/// Counts of one layer, shared with its handles.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) retries: AtomicU64,
    pub(crate) refusals: AtomicU64,
}

impl<P> Shared<P> {
    pub(crate) fn new(
        name: &str,
        policy: P,
        max_attempts: u32,
        backoff: Backoff,
        budget: RetryBudget,
        max_retry_after: Duration,
        retry_circuit_open: bool,
    ) -> Self {
        Shared {
            name: name.into(),
            policy,
            max_attempts,
            backoff,
            budget,
            max_retry_after,
            retry_circuit_open,
            retried: event_counter(LAYER, name, "retry"),
            budget_exhausted: event_counter(LAYER, name, "retry_budget_exhausted"),
            counts: Arc::default(),
        }
    }
}

impl RetryLayer<super::DefaultPolicy> {
    /// Starts a retry layer named `name` (for metrics and events) with
    /// [`DefaultPolicy`](super::DefaultPolicy), 3 attempts, the default
    /// backoff and its own default budget.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }
}

impl<P> RetryLayer<P> {
    pub(crate) fn new(shared: Arc<Shared<P>>) -> Self {
        RetryLayer { shared }
    }

    /// A handle to read the layer's counts and budget.
    pub fn handle(&self) -> RetryHandle {
        RetryHandle::of(&self.shared)
    }
}

impl<P> Clone for RetryLayer<P> {
    fn clone(&self) -> Self {
        RetryLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, P> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.shared.clone())
    }
}

impl<P> fmt::Debug for RetryLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("name", &self.shared.name)
            .field("max_attempts", &self.shared.max_attempts)
            .field("backoff", &self.shared.backoff)
            .finish_non_exhaustive()
    }
}

/// Reads one retry layer's counts; from [`RetryLayer::handle`].
#[derive(Clone)]
pub struct RetryHandle {
    name: Arc<str>,
    budget: RetryBudget,
    counts: Arc<Counts>,
}

impl RetryHandle {
    pub(crate) fn of<P>(shared: &Shared<P>) -> RetryHandle {
        RetryHandle {
            name: shared.name.clone(),
            budget: shared.budget.clone(),
            counts: shared.counts.clone(),
        }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Retries sent so far.
    pub fn retries(&self) -> u64 {
        self.counts.retries.load(Ordering::Relaxed)
    }

    /// Retries the policy allowed and the budget refused, so far.
    pub fn budget_exhausted(&self) -> u64 {
        self.counts.refusals.load(Ordering::Relaxed)
    }

    /// The budget the layer draws from.
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandle")
            .field("name", &self.name)
            .field("retries", &self.retries())
            .field("budget_exhausted", &self.budget_exhausted())
            .finish()
    }
}
