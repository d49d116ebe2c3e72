//! The time source: `tokio::time` wherever tokio's clock can be paused, the
//! CPU's time-stamp counter everywhere else.
//!
//! Time inside rampart is a `u64` count of microseconds since the owning
//! component was built. It fits in an atomic word, so deadlines and window
//! slots are read and compared without locks, and a microsecond is finer than
//! any timeout or latency bucket rampart reasons about.
//!
//! # Which clock a component reads
//!
//! Reading `tokio::time::Instant::now()` is a `clock_gettime` call: 24 to
//! 35 ns on the 2-core VMs rampart is measured on, two thirds of what a
//! closed breaker's call cost with it. The CPU's time-stamp counter, read
//! through [`quanta`] (one `rdtsc`, scaled to nanoseconds by a factor it
//! calibrated against the OS clock once per process), costs 10 to 12 ns
//! there.
//!
//! But tests pause tokio's clock and drive every deadline and window with
//! it, and the counter does not stop when tokio's clock does. tokio allows a
//! paused clock on a current-thread runtime only (`pause()` panics on a
//! multi-thread runtime, and `start_paused` is a current-thread option), so
//! the choice is made once per component, when it is built:
//!
//! - built inside a multi-thread runtime: the time-stamp counter (when the
//!   CPU has no invariant one, `quanta` reads the OS clock instead, as
//!   tokio would);
//! - built inside a current-thread runtime, or outside any runtime:
//!   `tokio::time`, so a paused clock drives it.
//!
//! A component built in a multi-thread runtime and later used under a
//! paused clock (a `static` first touched by a multi-thread test, then
//! used by a paused one) would not see the pause; nothing else can tell
//! the two clocks apart. The first component to pick the counter waits for
//! `quanta`'s calibration: 10 to 20 ms, never more than 200 ms, once per
//! process.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::Instant;

/// Microseconds since a [`Clock`]'s origin.
pub(crate) type Micros = u64;

/// One read of a clock's source: see [`Clock::read`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reading {
    Tokio(Instant),
    Counter(u64),
}

/// Reads the time relative to a fixed origin, from tokio's clock or from
/// the time-stamp counter (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
    /// `None` when this clock reads tokio's clock.
    counter: Option<Counter>,
}

/// What a clock that reads the time-stamp counter needs for a read: the
/// process's counter, its value at the clock's origin, and the counter's
/// rate as `quanta` calibrated it, as one multiplier per unit. A read is
/// then one `rdtsc` and one multiplication to microseconds, where
/// `quanta`'s nanoseconds and a division by 1000 took two dependent
/// multiplications after a check of the process's `OnceLock`.
#[derive(Debug, Clone, Copy)]
struct Counter {
    tsc: &'static quanta::Clock,
    origin: u64,
    /// Nanoseconds per 2^32 ticks (31 bits at 3 GHz: exact to 1 ppb).
    nanos_per_2_32: u64,
    /// Microseconds per 2^48 ticks (37 bits at 3 GHz).
    micros_per_2_48: u64,
}

impl Counter {
    #[inline]
    fn nanos_at(&self, raw: u64) -> u64 {
        scale(raw.saturating_sub(self.origin), self.nanos_per_2_32, 32)
    }

    #[inline]
    fn micros_at(&self, raw: u64) -> Micros {
        scale(raw.saturating_sub(self.origin), self.micros_per_2_48, 48)
    }
}

/// `ticks × per / 2^shift`, saturating.
#[inline]
fn scale(ticks: u64, per: u64, shift: u32) -> u64 {
    u64::try_from((u128::from(ticks) * u128::from(per)) >> shift).unwrap_or(u64::MAX)
}

/// The process's calibrated counter (`quanta` reads the OS clock instead
/// when the CPU has no invariant time-stamp counter). Looked up when a
/// clock is built; a clock keeps it.
fn tsc() -> &'static quanta::Clock {
    static TSC: OnceLock<quanta::Clock> = OnceLock::new();
    TSC.get_or_init(quanta::Clock::new)
}

impl Clock {
    /// A clock whose zero is now, reading the counter when built on a
    /// multi-thread runtime (see the module docs).
    pub(crate) fn new() -> Self {
        let pausable = Handle::try_current().map_or(true, |handle| {
            handle.runtime_flavor() != RuntimeFlavor::MultiThread
        });
        if pausable {
            return Clock {
                origin: Instant::now(),
                counter: None,
            };
        }
        // Both origins at one moment: the counter's read between two of
        // tokio's, taken again if the thread was preempted in between (the
        // counter's first use, which calibrates it, comes before).
        let tsc = tsc();
        let nanos_per_2_32 = tsc.delta_as_nanos(0, 1 << 32);
        let micros_per_2_48 = tsc.delta_as_nanos(0, 1 << 48) / 1_000;
        let mut tries = 0;
        loop {
            let before = Instant::now();
            let raw = tsc.raw();
            let gap = before.elapsed();
            tries += 1;
            if gap < Duration::from_micros(20) || tries == 5 {
                return Clock {
                    origin: before + gap / 2,
                    counter: Some(Counter {
                        tsc,
                        origin: raw,
                        nanos_per_2_32,
                        micros_per_2_48,
                    }),
                };
            }
        }
    }

    /// Microseconds elapsed since the origin.
    #[inline]
    pub(crate) fn now(&self) -> Micros {
        match self.counter {
            Some(counter) => counter.micros_at(counter.tsc.raw()),
            None => self.at(Instant::now()),
        }
    }

    /// Nanoseconds elapsed since the origin (for governor's rate limits,
    /// whose emission intervals can be shorter than a microsecond).
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        match self.counter {
            Some(counter) => counter.nanos_at(counter.tsc.raw()),
            None => {
                let since = Instant::now().saturating_duration_since(self.origin);
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            }
        }
    }

    /// The tokio instant `nanos` after the origin, for a timer.
    #[inline]
    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    /// One reading of this clock's source, for several clocks to convert
    /// ([`micros_at`](Self::micros_at)): one read serves them all.
    #[inline]
    pub(crate) fn read(&self) -> Reading {
        match self.counter {
            Some(counter) => Reading::Counter(counter.tsc.raw()),
            None => Reading::Tokio(Instant::now()),
        }
    }

    /// `reading`, in microseconds since this clock's origin. A reading of
    /// the other source (components built on different runtimes) costs a
    /// read of this clock's own, unless it is tokio's instant, which every
    /// clock can place (a counter clock is never paused, so tokio's time
    /// and the counter's agree).
    #[inline]
    pub(crate) fn micros_at(&self, reading: Reading) -> Micros {
        match (reading, self.counter) {
            (Reading::Counter(raw), Some(counter)) => counter.micros_at(raw),
            (Reading::Tokio(instant), _) => self.at(instant),
            (Reading::Counter(_), None) => self.now(),
        }
    }

    /// The tokio instant `after` from now, for a
    /// timer: one read of this clock rather than of tokio's; none when a
    /// layer above [lent](lend) its reading.
    #[inline]
    pub(crate) fn instant_after(&self, after: Duration) -> Instant {
        let now = match (LENT.with(Cell::get), self.counter) {
            (Some(Reading::Tokio(instant)), _) => instant,
            (Some(Reading::Counter(raw)), Some(counter)) => self.instant_at(counter.nanos_at(raw)),
            _ => self.instant_at(self.nanos()),
        };
        now + after
    }

    /// `instant`, in microseconds since the origin: lets one clock read
    /// serve several clocks.
    #[inline]
    pub(crate) fn at(&self, instant: Instant) -> Micros {
        micros(instant.saturating_duration_since(self.origin))
    }

    /// Whether this clock reads the time-stamp counter rather than
    /// tokio's clock.
    #[cfg(test)]
    pub(crate) fn reads_counter(&self) -> bool {
        self.counter.is_some()
    }
}

thread_local! {
    static LENT: Cell<Option<Reading>> = const { Cell::new(None) };
}

/// Runs `call` with `reading` lent to the layers it calls on this thread
/// before it returns, so that a timeout beneath a breaker takes its
/// deadline from the breaker's start rather than reading the clock again
/// (a command's call reads it twice, not three times). Only what runs
/// inside `call` sees it: a request queued for later (a `Buffer`) reads
/// its own time when it is called.
#[inline]
pub(crate) fn lend<R>(reading: Reading, call: impl FnOnce() -> R) -> R {
    /// Puts back what was lent before, also when `call` unwinds: a reading
    /// left behind would give a later timeout a deadline in the past.
    struct Restore(Option<Reading>);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            LENT.with(|lent| lent.set(self.0));
        }
    }
    let _restore = Restore(LENT.with(|lent| lent.replace(Some(reading))));
    call()
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
#[inline]
pub(crate) fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A [`Clock`] as governor's rate limiters read time (their own clocks
/// read `std::time::Instant` or the counter, never a paused tokio clock):
/// nanoseconds since the clock was built, from the same source as every
/// other component built where this one was.
#[cfg(feature = "rate-limit")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct GovernorClock(Clock);

#[cfg(feature = "rate-limit")]
impl GovernorClock {
    pub(crate) fn new() -> Self {
        GovernorClock(Clock::new())
    }

    /// The instant a reading of this clock stands for.
    pub(crate) fn instant(&self, at: governor::nanos::Nanos) -> Instant {
        self.0.instant_at(at.as_u64())
    }
}

#[cfg(feature = "rate-limit")]
impl governor::clock::Clock for GovernorClock {
    type Instant = governor::nanos::Nanos;

    #[inline]
    fn now(&self) -> Self::Instant {
        governor::nanos::Nanos::new(self.0.nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_tokio_clock() {
        let clock = Clock::new();
        assert!(!clock.reads_counter());
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

    #[tokio::test(start_paused = true)]
    async fn a_lent_reading_serves_a_timer_beneath_and_only_there() {
        let clock = Clock::new();
        let second = Duration::from_secs(1);
        let then = Instant::now();
        let lent = clock.read();
        tokio::time::advance(Duration::from_millis(5)).await;
        // Inside the lending call: the deadline runs from the lent reading.
        assert_eq!(lend(lent, || clock.instant_after(second)), then + second);
        // After it, and after a lending call that panicked: its own read.
        assert_eq!(clock.instant_after(second), Instant::now() + second);
        let unwound = std::panic::catch_unwind(|| lend(lent, || panic!("in the inner call")));
        assert!(unwound.is_err());
        assert_eq!(clock.instant_after(second), Instant::now() + second);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_lent_counter_reading_is_placed_on_the_borrowers_clock() {
        let (lender, borrower) = (Clock::new(), Clock::new());
        assert!(lender.reads_counter() && borrower.reads_counter());
        let reading = lender.read();
        std::thread::sleep(Duration::from_millis(20));
        let second = Duration::from_secs(1);
        let lent = lend(reading, || borrower.instant_after(second));
        let own = borrower.instant_after(second);
        // The lent deadline is the older one, by the 20 ms slept and
        // however long a busy machine took to wake this thread (the bound
        // only says the reading was placed near its time, not at an origin).
        assert!(own - lent >= Duration::from_millis(19), "{:?}", own - lent);
        assert!(own - lent < Duration::from_secs(5), "{:?}", own - lent);
    }

    #[test]
    fn outside_a_runtime_reads_tokios_clock() {
        assert!(!Clock::new().reads_counter());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn on_a_multi_thread_runtime_reads_the_counter() {
        let clock = Clock::new();
        assert!(clock.reads_counter());
        // The counter and tokio's clock agree: calibrated against the same
        // OS clock, a counter read falls between the tokio reads around it
        // (give or take the calibration's error: 0.1 % and 100 µs allowed).
        std::thread::sleep(Duration::from_millis(20));
        let before = clock.at(Instant::now());
        let by_counter = clock.now();
        let after = clock.at(Instant::now());
        assert!(before >= 20_000, "{before} µs");
        let slack = 100 + after / 1_000;
        assert!(
            before.saturating_sub(slack) <= by_counter && by_counter <= after + slack,
            "{before} <= {by_counter} <= {after}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_counters_own_scaling_agrees_with_quantas() {
        let counter = Clock::new().counter.expect("reads the counter");
        for ticks in [0, 1_000, 3_000_000_000, 1 << 40, 1 << 50] {
            let raw = counter.origin + ticks;
            let quantas = counter.tsc.delta_as_nanos(counter.origin, raw);
            // Within 1 ns a second (1 ppb), plus one for rounding.
            let ours = counter.nanos_at(raw);
            assert!(
                ours.abs_diff(quantas) <= 1 + quantas / 1_000_000_000,
                "{ticks}: {ours} vs {quantas}"
            );
            let ours = counter.micros_at(raw);
            let quantas = quantas / 1_000;
            assert!(
                ours.abs_diff(quantas) <= 1 + quantas / 1_000_000_000,
                "{ticks}: {ours} vs {quantas}"
            );
        }
        assert_eq!(
            counter.micros_at(counter.origin - 1),
            0,
            "before the origin: 0, not a wrap"
        );
    }

    #[test]
    fn micros_saturates() {
        assert_eq!(micros(Duration::MAX), u64::MAX);
        assert_eq!(micros(Duration::from_nanos(1999)), 1);
    }
}
