//! Retrying well: a retry layer for any service, exponential or
//! decorrelated backoff with jitter, and a retry budget that keeps
//! retries from multiplying load during an outage.
//!
//! - [`RetryLayer`]: retries calls to one service (an endpoint, a
//!   [`Command`](crate::Command), any tower service) as its [`Policy`]
//!   allows, within [`max_attempts`](Builder::max_attempts), after a
//!   [`Backoff`], while the [`RetryBudget`] has retries left.
//! - The [load balancer](crate::balance) retries across instances with
//!   the same policies, backoff and budget; one budget cloned into both
//!   caps their retries together.
//!
//! # Where it goes in a stack
//!
//! ```text
//!  caller → Fallback → Retry → CircuitBreaker → Bulkhead → Timeout → dependency
//! ```
//!
//! Outside the breaker, each attempt is counted by the breaker, and a
//! short-circuit ends the call at once (it is not retried, unless
//! [`retry_circuit_open`](Builder::retry_circuit_open)); inside the
//! fallback, the fallback serves only once retries are spent. The timeout
//! beneath bounds each attempt, not the whole call.
//!
//! Whatever the policy:
//!
//! - a [`DeadlineExceeded`](crate::deadline::DeadlineExceeded) is never
//!   retried (by the retry layer or the balancer): the deadline has
//!   passed, and a [deadline layer](crate::deadline) beneath that sets a
//!   fresh deadline per attempt would otherwise stretch the caller's;
//! - a [`RateLimited`](crate::rate_limit::RateLimited) rejection from
//!   beneath is read as a `Retry-After` of its
//!   [`retry_after`](crate::rate_limit::RateLimited::retry_after): the
//!   retry waits for the permit, or, past
//!   [`max_retry_after`](Builder::max_retry_after), does not happen;
//! - no retry starts whose wait outlasts the caller's
//!   [deadline](crate::deadline). One that starts may still be cut off by
//!   it: an attempt that takes 90 ms, retried 5 ms before a 100 ms
//!   deadline, ends in `DeadlineExceeded` rather than its first answer,
//!   and counts as a timeout for the breaker beneath. Give each attempt a
//!   timeout well within the deadline, or fewer attempts.

mod backoff;
mod budget;
mod config;
mod error;
mod future;
mod layer;
mod policy;
mod service;

pub use backoff::{Backoff, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX};
pub use budget::{
    RetryBudget, DEFAULT_BUDGET_WINDOW, DEFAULT_MIN_RETRIES_PER_SEC, DEFAULT_RETRY_RATIO,
};
pub use config::{Builder, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RETRY_AFTER};
pub use error::{RetryBudgetExhausted, RetryBudgetExhaustedMarker};
pub use future::ResponseFuture;
pub use layer::{RetryHandle, RetryLayer};
#[cfg(feature = "tonic")]
pub(crate) use policy::is_retryable_error;
pub use policy::{DefaultPolicy, HttpPolicy, Policy};
pub use service::Retry;
