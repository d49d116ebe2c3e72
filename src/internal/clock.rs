//! The time source: `tokio::time`, so tests on a paused clock drive every
//! deadline, window and latency in rampart.
//!
//! Time inside rampart is a `u64` count of microseconds since the owning
//! component was built. It fits in an atomic word, so deadlines and window
//! slots are read and compared without locks, and a microsecond is finer than
//! any timeout or latency bucket rampart reasons about.

use std::time::Duration;
use tokio::time::Instant;

/// Microseconds since a [`Clock`]'s origin.
pub(crate) type Micros = u64;

/// Reads `tokio::time::Instant` relative to a fixed origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub(crate) fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Microseconds elapsed since the origin.
    #[inline]
    pub(crate) fn now(&self) -> Micros {
        self.at(Instant::now())
    }

    /// `instant`, in microseconds since the origin: lets one clock read
    /// serve several clocks.
    #[inline]
    pub(crate) fn at(&self, instant: Instant) -> Micros {
        micros(instant.saturating_duration_since(self.origin))
    }
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
#[inline]
pub(crate) fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// [`Clock`]'s time for governor's rate limiters, whose own clocks read
/// `std::time::Instant` (or the TSC): nanoseconds since this clock was
/// made, read from `tokio::time::Instant`, so a paused tokio clock drives
/// rampart's rate limits like everything else.
#[cfg(feature = "rate-limit")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct GovernorClock {
    origin: Instant,
}

#[cfg(feature = "rate-limit")]
impl GovernorClock {
    pub(crate) fn new() -> Self {
        GovernorClock {
            origin: Instant::now(),
        }
    }

    /// The instant a reading of this clock stands for.
    pub(crate) fn instant(&self, at: governor::nanos::Nanos) -> Instant {
        self.origin + Duration::from_nanos(at.as_u64())
    }
}

#[cfg(feature = "rate-limit")]
impl governor::clock::Clock for GovernorClock {
    type Instant = governor::nanos::Nanos;

    #[inline]
    fn now(&self) -> Self::Instant {
        let since = Instant::now().saturating_duration_since(self.origin);
        governor::nanos::Nanos::new(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_tokio_clock() {
        let clock = Clock::new();
        assert_eq!(clock.now(), 0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), 1_500_000);
    }

    #[cfg(feature = "rate-limit")]
    #[tokio::test(start_paused = true)]
    async fn governor_clock_follows_the_paused_tokio_clock() {
        use governor::clock::Clock as _;
        let clock = GovernorClock::new();
        assert_eq!(clock.now().as_u64(), 0);
        tokio::time::advance(Duration::from_millis(3)).await;
        assert_eq!(clock.now().as_u64(), 3_000_000);
        assert_eq!(clock.instant(clock.now()), Instant::now());
    }

    #[test]
    fn micros_saturates() {
        assert_eq!(micros(Duration::MAX), u64::MAX);
        assert_eq!(micros(Duration::from_nanos(1999)), 1);
    }
}
