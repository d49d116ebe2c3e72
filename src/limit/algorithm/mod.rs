//! The limit algorithms: what the limit should be, given the last window's
//! round-trip time, the calls in flight and whether any was dropped.
//!
//! Netflix's concurrency-limits keeps the *limit* (an algorithm fed
//! samples) apart from the *limiter* (permits, partitions, rejection);
//! rampart does the same. An algorithm is a plain state machine with no
//! clock and no locking: [`LimitLayer`](super::LimitLayer) feeds it one
//! [`Sample`] per window, under a lock taken once per window, never on a
//! call's path. Tests feed it sample sequences and check each number.
//!
//! | algorithm | signal | default limits | recommended for |
//! |---|---|---|---|
//! | [`Vegas`] | queueing estimated from RTT over the lowest RTT seen | initial 20, max 1000 | servers (Netflix's default) |
//! | [`Gradient2`] | RTT over its long-term average | initial 20, min 20, max 200 | servers with noisy RTTs |
//! | [`Aimd`] | drops and RTTs past a timeout | initial 20, min 20, max 200 | clients |
//! | [`Fixed`] | none | as given | a bulkhead with the limiter's partitions and metrics |

mod aimd;
mod fixed;
mod gradient2;
mod vegas;

pub use aimd::Aimd;
pub use fixed::Fixed;
pub use gradient2::Gradient2;
pub use vegas::Vegas;

use crate::error::Validator;
use crate::ConfigError;
use std::fmt;
use std::time::Duration;

/// One window's measurement: what an [`Algorithm`] is fed.
///
/// Netflix's `WindowedLimit` with its default `AverageSampleWindow`: the
/// mean round-trip time of the window's timed calls, the most calls in
/// flight at once during the window, and whether any call was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// The window's mean round-trip time (from the call reaching the
    /// limited service to its answer).
    pub rtt: Duration,
    /// The most calls in flight at once during the window, each counted
    /// with itself when it was admitted.
    pub in_flight: usize,
    /// Whether a call in the window was dropped: rejected or timed out
    /// beneath the limiter, or answered with an overload response (see
    /// [`Outcome::Dropped`](super::Outcome::Dropped)).
    pub dropped: bool,
}

impl Sample {
    /// A sample, for feeding an algorithm by hand (tests, simulations).
    pub const fn new(rtt: Duration, in_flight: usize, dropped: bool) -> Self {
        Sample {
            rtt,
            in_flight,
            dropped,
        }
    }
}

/// A limit algorithm (Netflix's `Limit`): turns window samples into a
/// concurrency limit.
///
/// rampart ships [`Vegas`], [`Gradient2`], [`Aimd`] and [`Fixed`]; any
/// other implementation can be given to
/// [`Builder::algorithm`](super::Builder::algorithm). The limiter calls
/// [`update`](Algorithm::update) once per window, under a lock, never on a
/// call's path; the value returned is used as given, except that a limit of
/// 0 counts as 1 (a limit of 0 would admit no call, so no sample could ever
/// raise it again). That lock is the one
/// [`LimitHandle::last_sample`](super::LimitHandle::last_sample) takes: an
/// `update` that reads its own limiter's `last_sample` waits for itself
/// (it has the sample as its argument). The handle's other readers take no
/// lock.
///
/// ```
/// use rampart::limit::{Algorithm, Sample, Vegas};
/// use std::time::Duration;
///
/// let mut vegas = Vegas::new();
/// // (`Vegas::initial_limit(n)` is the builder's setter.)
/// assert_eq!(Algorithm::initial_limit(&vegas), 20);
/// let ms = Duration::from_millis;
/// // The first sample sets the no-load RTT; the next, as fast and with the
/// // limit in use, finds no queue: the limit grows by β = 6.
/// assert_eq!(vegas.update(Sample::new(ms(10), 20, false)), 20);
/// assert_eq!(vegas.update(Sample::new(ms(10), 20, false)), 26);
/// ```
pub trait Algorithm: fmt::Debug + Send + 'static {
    /// The limit before the first sample.
    fn initial_limit(&self) -> usize;

    /// Takes one window's sample and answers the new limit.
    fn update(&mut self, sample: Sample) -> usize;

    /// Checks the algorithm's options; [`LimitLayer`](super::LimitLayer)'s
    /// `build()` reports what this returns with its own violations. By
    /// default, nothing to check.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each option out of its range.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// `⌊log10 limit⌋`, at least 1: Netflix's `Log10RootIntFunction` (its
/// table for limits under 1000, and `log10` above), which scales Vegas's
/// thresholds and steps with the limit.
pub(crate) fn log10_root(limit: usize) -> usize {
    // `ilog10` of 0 would panic; 0 gets the floor of 1 like 1..10 do.
    limit.checked_ilog10().unwrap_or(0).max(1) as usize
}

/// The largest limit any built-in algorithm accepts (as the bulkhead's
/// `max_concurrent`).
pub(crate) const MAX_LIMIT: usize = 1 << 24;

/// The range checks every algorithm with a floor makes: `max_limit` from 1
/// to [`MAX_LIMIT`], `min_limit` from 1 to it, `initial_limit` between.
pub(crate) fn check_limits(v: &mut Validator, min: usize, initial: usize, max: usize) {
    v.check((1..=MAX_LIMIT).contains(&max), "max_limit", || {
        format!("must be from 1 to {MAX_LIMIT}, got {max}")
    });
    v.check(min >= 1 && min <= max, "min_limit", || {
        format!("must be from 1 to max_limit ({max}), got {min}")
    });
    v.check(initial >= min && initial <= max, "initial_limit", || {
        format!("must be from min_limit ({min}) to max_limit ({max}), got {initial}")
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log10_root_follows_netflix_table() {
        for (limit, lg) in [
            (0, 1),
            (1, 1),
            (9, 1),
            (10, 1),
            (99, 1),
            (100, 2),
            (999, 2),
            (1000, 3),
            (20_000, 4),
        ] {
            assert_eq!(log10_root(limit), lg, "limit {limit}");
        }
    }
}
