//! Retrying well: exponential backoff with full jitter, and a retry budget
//! that keeps retries from multiplying load during an outage.
//!
//! Retries across instances of a dependency are done by the
//! [load balancer](crate::balance), which uses both.

mod backoff;
mod budget;
mod error;

pub use backoff::{Backoff, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX};
pub use budget::{
    RetryBudget, DEFAULT_BUDGET_WINDOW, DEFAULT_MIN_RETRIES_PER_SEC, DEFAULT_RETRY_RATIO,
};
pub use error::{RetryBudgetExhausted, RetryBudgetExhaustedMarker};
