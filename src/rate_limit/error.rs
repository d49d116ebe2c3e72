//! The rate limiter's own failure.

use std::error::Error as StdError;
use std::time::Duration;

/// The call went over its rate limit and was not made: at once, or after
/// waiting up to `max_wait` for a permit.
///
/// Carries when a call with the same key could next go through
/// ([`retry_after`](Self::retry_after)), which
/// [`rampart::axum`](crate::axum) sends as `Retry-After` with a
/// `429 Too Many Requests`. Recognise it in a boxed error with
/// [`ErrorKind::of`](crate::ErrorKind::of)
/// ([`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited)), or
/// `downcast_ref::<RateLimited>()` for the time.
///
/// Unlike rampart's zero-sized rejections, it carries a value, so boxing
/// it allocates (16 bytes) once per rejected call: the time to come back
/// differs per key and per call, and a server answering 429 needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: retry after {retry_after:?}")]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    /// A rejection whose next permit comes after `retry_after`.
    pub const fn new(retry_after: Duration) -> Self {
        RateLimited { retry_after }
    }

    /// How long from the rejection until a call (with the same key) would
    /// be let through, if none takes the permit first: GCRA's earliest
    /// conforming time. Never zero for a rejected call.
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

/// The time a [`RateLimited`] in `error`'s chain (a rejected fallback's
/// cause included: it is its source) says to come back after: for a 429's
/// `Retry-After`, and for the retry layer's wait.
pub(crate) fn retry_after_in(error: &(dyn StdError + 'static)) -> Option<Duration> {
    crate::error::chain(error)
        .find_map(|e| e.downcast_ref::<RateLimited>())
        .map(RateLimited::retry_after)
}
