//! Hedged requests ("backup requests"): when a call is slower than most,
//! send one more copy and take the first success.
//!
//! A few slow calls (a GC pause, a busy host, a lost packet) make the tail
//! of a service's latency; a second copy sent once the first is slower than
//! usual almost always beats them. Finagle's backup requests, tower's
//! `Hedge` and Polly's hedging strategy do this; rampart's [`HedgeLayer`]
//! adds the limits that keep it safe in an outage:
//!
//! - **When**: after a [fixed delay](HedgeDelay::fixed), or once the call is
//!   slower than a [percentile](HedgeDelay::percentile) of recent
//!   successful calls (default p95, as Finagle and tower; no hedging until
//!   a minimum number of samples; recomputed once a period).
//! - **How many**: up to [`max_hedged`](Builder::max_hedged) more copies
//!   (1 to 10, Polly's range; default 1), each after another delay.
//! - **First success wins**; the other attempts are dropped (cancelled).
//!   An attempt that fails does not end the call while another runs; when
//!   every attempt has failed, the last error comes back (retrying is the
//!   [retry layer](crate::retry)'s job).
//! - **Only what is safe to send twice**: the [`Policy`] decides
//!   ([`Policy::may_send_twice`]; [`HttpPolicy`] says yes for idempotent
//!   methods). `DefaultPolicy` says no to every request, so hedging with
//!   it is a `ConfigError` rather than a layer that silently does nothing.
//! - **Success by the policy**: an attempt the policy's
//!   [`outcome`](crate::retry::Policy::outcome) calls a failure (an error,
//!   or with `HttpPolicy` a 5xx response) does not win; the call waits
//!   for the others, and returns the last failure if none succeeds.
//! - **Bounded extra load**: hedges are capped at
//!   [`max_extra_load`](Builder::max_extra_load) of recent calls (Finagle's
//!   `maxExtraLoad`, default 5 %), and, given a [`RetryBudget`], also
//!   draw from it, so hedges and retries together stay within one budget.
//!   A slow outage therefore never doubles traffic.
//! - **Counted**: `rampart_events_total{layer="hedge",event="hedge_sent"|"hedge_won"|"hedge_cancelled"}`,
//!   and the [`HedgeHandle`].
//!
//! [`Policy`]: crate::retry::Policy
//! [`Policy::may_send_twice`]: crate::retry::Policy::may_send_twice
//! [`HttpPolicy`]: crate::retry::HttpPolicy
//! [`RetryBudget`]: crate::retry::RetryBudget
//!
//! # With a retry layer
//!
//! Put the hedge layer beneath the [retry layer](crate::retry) and give
//! both one [`RetryBudget`] (`ServiceBuilder::new().layer(retry).layer(hedge)`):
//! the retry layer counts each caller's request once, and its retries and
//! the hedges draw from the same balance, so attempts stay within
//! `(1 + ratio) × requests + floor`. Above the retry layer, every hedge copy
//! is a request the retry layer counts, earning `ratio` of a retry more
//! (with a ratio of 0.2, 100 failing calls make up to 124 attempts rather
//! than 120), and each copy is retried on its own.
//!
//! The [balancer](crate::balance) hedges too
//! ([`hedge`](crate::balance::Builder::hedge)), sending the copy to
//! another instance than the one the call is on.

mod config;
mod delay;
mod future;
mod layer;
mod service;

pub use config::{Builder, DEFAULT_MAX_EXTRA_LOAD, DEFAULT_MAX_HEDGED};
pub use delay::{HedgeDelay, DEFAULT_MIN_SAMPLES, DEFAULT_PERCENTILE};
pub use future::ResponseFuture;
pub(crate) use layer::Shared as HedgeShared;
pub use layer::{HedgeHandle, HedgeLayer};
pub use service::Hedge;

/// Whether `P` is [`DefaultPolicy`](crate::retry::DefaultPolicy), which
/// knows nothing of requests and so sends none twice: hedging with it
/// would do nothing, silently.
pub(crate) fn sends_nothing_twice<P>() -> bool {
    std::any::type_name::<P>() == std::any::type_name::<crate::retry::DefaultPolicy>()
}

pub(crate) const NOTHING_TWICE: &str =
    "DefaultPolicy sends no request twice, so nothing would be hedged: \
     use a policy that says which requests may be (`HttpPolicy`: idempotent methods, \
     or your own `Policy::may_send_twice`)";
