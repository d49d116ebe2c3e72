//! What a breaker tells the fallback right above it, within one poll.
//!
//! Hystrix's `latencyTotal` is the dependency's time plus the fallback's.
//! The fallback sees only the error, not how long the call took; rather
//! than read the clock on every call to time it again, the breaker hands
//! the latency it measured over in a thread-local, on the error path only,
//! in the same poll in which the fallback receives the error (in a
//! command, the fallback polls the breaker's future directly). The
//! breaker clears it when it rejects a call, so a rejection never hands
//! over an older call's latency.

use super::clock::Micros;
use std::cell::Cell;

thread_local! {
    static EXECUTE_LATENCY: Cell<Option<Micros>> = const { Cell::new(None) };
}

/// Hands over how long the failed call now returning took (`None`: it was
/// not executed, or not recorded).
#[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
#[inline]
pub(crate) fn hand_over(latency: Option<Micros>) {
    EXECUTE_LATENCY.with(|l| l.set(latency));
}

/// Takes what the breaker beneath handed over in this poll.
#[cfg_attr(not(feature = "fallback"), allow(dead_code))]
pub(crate) fn take() -> Option<Micros> {
    EXECUTE_LATENCY.with(Cell::take)
}
