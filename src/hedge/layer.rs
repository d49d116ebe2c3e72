//! The hedge layer, and what its services share.

use super::config::Builder;
use super::delay::Tracker;
use super::service::Hedge;
use crate::metrics::event_counter;
use crate::retry::RetryBudget;
use metrics::Counter;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tower_layer::Layer;

/// The `layer` label and field of the hedge layer's metrics and events.
pub(super) const LAYER: &str = "hedge";

/// Sends a second copy of a slow call and takes the first success; see the
/// [module docs](super) for the rules and limits.
///
/// ```
/// use rampart::hedge::{HedgeDelay, HedgeLayer};
/// use rampart::retry::HttpPolicy;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), rampart::BoxError> {
/// let hedge = HedgeLayer::builder("catalog", HttpPolicy)
///     .delay(HedgeDelay::fixed(Duration::from_millis(20)))
///     .max_extra_load(1.0) // this example hedges its only call
///     .build()?;
/// let handle = hedge.handle();
/// let copies = Arc::new(AtomicU32::new(0));
/// let mut svc = ServiceBuilder::new().layer(hedge).service(service_fn(move |_: http::Request<()>| {
///     // The first copy is stuck behind a slow host; the second is quick.
///     let wait = if copies.fetch_add(1, Ordering::SeqCst) == 0 { 1000 } else { 5 };
///     async move {
///         tokio::time::sleep(Duration::from_millis(wait)).await;
///         Ok::<_, rampart::BoxError>(http::Response::new(wait))
///     }
/// }));
///
/// let started = tokio::time::Instant::now();
/// let response = svc.ready().await?.call(http::Request::get("/titles").body(())?).await?;
/// assert_eq!(*response.body(), 5, "the hedge won");
/// assert_eq!(started.elapsed(), Duration::from_millis(25));
/// assert_eq!((handle.sent(), handle.won(), handle.cancelled()), (1, 1, 1));
/// # Ok(())
/// # }
/// ```
pub struct HedgeLayer<P> {
    shared: Arc<Shared<P>>,
}

/// What every service of one hedge layer shares.
pub(crate) struct Shared<P> {
    pub(crate) name: Arc<str>,
    pub(crate) policy: P,
    pub(crate) tracker: Tracker,
    pub(crate) max_hedged: u32,
    /// `max_extra_load`, as a budget every call deposits into.
    pub(crate) cap: RetryBudget,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) sent_counter: Counter,
    pub(crate) won_counter: Counter,
    pub(crate) cancelled_counter: Counter,
    pub(crate) counts: Arc<Counts>,
}

/// Counts of one layer, shared with its handles.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) sent: AtomicU64,
    pub(crate) won: AtomicU64,
    pub(crate) cancelled: AtomicU64,
}

impl<P> Shared<P> {
    pub(crate) fn new(
        name: &str,
        policy: P,
        tracker: Tracker,
        max_hedged: u32,
        cap: RetryBudget,
        budget: Option<RetryBudget>,
    ) -> Self {
        Shared {
            name: name.into(),
            policy,
            tracker,
            max_hedged,
            cap,
            budget,
            sent_counter: event_counter(LAYER, name, "hedge_sent"),
            won_counter: event_counter(LAYER, name, "hedge_won"),
            cancelled_counter: event_counter(LAYER, name, "hedge_cancelled"),
            counts: Arc::default(),
        }
    }

    /// Takes one hedge from the cap and the budget, if both allow it; a
    /// budget that refuses leaves the cap as it was (but for threads
    /// racing for the budget's last retry: see
    /// [`RetryBudget::try_withdraw_with`]).
    pub(crate) fn try_hedge(&self) -> bool {
        self.cap.try_withdraw_with(self.budget.as_ref())
    }

    pub(crate) fn sent(&self) {
        self.sent_counter.increment(1);
        self.counts.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn won(&self) {
        self.won_counter.increment(1);
        self.counts.won.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cancelled(&self, n: u64) {
        if n > 0 {
            self.cancelled_counter.increment(n);
            self.counts.cancelled.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl<P> HedgeLayer<P> {
    /// Starts a hedge layer named `name` (for metrics and events) whose
    /// `policy` says which requests may be sent twice (e.g.
    /// [`HttpPolicy`](crate::retry::HttpPolicy): idempotent methods).
    pub fn builder(name: impl Into<String>, policy: P) -> Builder<P> {
        Builder::new(name.into(), policy)
    }

    pub(crate) fn new(shared: Arc<Shared<P>>) -> Self {
        HedgeLayer { shared }
    }

    /// What its services share (the balancer hedges with it).
    pub(crate) fn shared(&self) -> Arc<Shared<P>> {
        self.shared.clone()
    }

    /// A handle to read the layer's counts.
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle::of(&self.shared)
    }
}

impl<P> Clone for HedgeLayer<P> {
    fn clone(&self) -> Self {
        HedgeLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, P> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(inner, self.shared.clone())
    }
}

impl<P> fmt::Debug for HedgeLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.shared.name)
            .field("max_hedged", &self.shared.max_hedged)
            .finish_non_exhaustive()
    }
}

/// Reads one hedge layer's counts; from [`HedgeLayer::handle`].
#[derive(Clone)]
pub struct HedgeHandle {
    name: Arc<str>,
    counts: Arc<Counts>,
}

impl HedgeHandle {
    pub(crate) fn of<P>(shared: &Arc<Shared<P>>) -> HedgeHandle {
        HedgeHandle {
            name: shared.name.clone(),
            counts: shared.counts.clone(),
        }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hedges sent so far.
    pub fn sent(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed)
    }

    /// Calls a hedge answered first, so far.
    pub fn won(&self) -> u64 {
        self.counts.won.load(Ordering::Relaxed)
    }

    /// Attempts (first copies or hedges) dropped because another won.
    pub fn cancelled(&self) -> u64 {
        self.counts.cancelled.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for HedgeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeHandle")
            .field("name", &self.name)
            .field("sent", &self.sent())
            .field("won", &self.won())
            .field("cancelled", &self.cancelled())
            .finish()
    }
}
