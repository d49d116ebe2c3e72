//! Exponential backoff with full jitter.

use crate::error::{ConfigError, Validator};
use std::time::Duration;

/// How long to wait before a retry: exponential with full jitter (the
/// default), or decorrelated jitter, both from AWS's study of backoff
/// ("Exponential Backoff And Jitter", Marc Brooker, 2015), which found
/// them the two that spread contending clients best.
///
/// - [exponential](Backoff::exponential): a random time between zero and
///   `base × 2^(retry - 1)`, capped at `max`;
/// - [decorrelated](Backoff::decorrelated): a random time between `base`
///   and three times the previous wait, capped at `max`; never less than
///   `base`, and less bunched over successive retries.
///
/// ```
/// use rampart::retry::Backoff;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// let backoff = Backoff::exponential(ms(10), Duration::from_secs(1))?;
/// for _ in 0..100 {
///     assert!(backoff.delay(1, Duration::ZERO) <= ms(10));
///     assert!(backoff.delay(20, Duration::ZERO) <= Duration::from_secs(1));
/// }
/// let decorrelated = Backoff::decorrelated(ms(10), Duration::from_secs(1))?;
/// let first = decorrelated.delay(1, Duration::ZERO);
/// assert!(first >= ms(10) && first <= ms(30));
/// let next = decorrelated.delay(2, first);
/// assert!(next >= ms(10) && next <= first * 3);
/// assert_eq!(Backoff::none().delay(3, ms(5)), Duration::ZERO);
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    jitter: Jitter,
    base: Duration,
    max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Jitter {
    Full,
    Decorrelated,
}

/// Default first backoff bound.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(10);
/// Default cap on a backoff.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Backoff {
    /// Waits up to `base` before the first retry, doubling up to `max`,
    /// with full jitter.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless `0 < base <= max <= 1 hour`.
    pub fn exponential(base: Duration, max: Duration) -> Result<Backoff, ConfigError> {
        Backoff::checked(Jitter::Full, base, max)
    }

    /// Waits from `base` to three times the previous wait, up to `max`
    /// (decorrelated jitter).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless `0 < base <= max <= 1 hour`.
    pub fn decorrelated(base: Duration, max: Duration) -> Result<Backoff, ConfigError> {
        Backoff::checked(Jitter::Decorrelated, base, max)
    }

    fn checked(jitter: Jitter, base: Duration, max: Duration) -> Result<Backoff, ConfigError> {
        let mut v = Validator::new("backoff".into());
        v.check(base > Duration::ZERO, "base", || {
            format!("must be positive, got {base:?}")
        });
        v.check(
            max >= base && max <= Duration::from_secs(3600),
            "max",
            || format!("must be from base ({base:?}) to an hour, got {max:?}"),
        );
        v.finish()?;
        Ok(Backoff { jitter, base, max })
    }

    /// No waiting: retry at once.
    pub const fn none() -> Backoff {
        Backoff {
            jitter: Jitter::Full,
            base: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), given
    /// the wait before the previous one (`Duration::ZERO` before the
    /// first; only decorrelated jitter reads it).
    pub fn delay(&self, retry: u32, previous: Duration) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let (base, max) = (self.base.as_secs_f64(), self.max.as_secs_f64());
        let unit = crate::internal::rng::unit();
        let seconds = match self.jitter {
            Jitter::Full => {
                let factor = 2f64.powi(retry.saturating_sub(1).min(62) as i32);
                (base * factor).min(max) * unit
            }
            Jitter::Decorrelated => {
                let high = (previous.as_secs_f64().max(base) * 3.0).min(max);
                (base + (high - base) * unit).min(max)
            }
        };
        Duration::from_secs_f64(seconds)
    }
    /// Reads a backoff as a live property writes it: `none`,
    /// `exponential <base>..<max>` or `decorrelated <base>..<max>`, with
    /// durations as [`humantime`](https://docs.rs/humantime) reads them
    /// (`exponential 10ms..1s`). Checked as [`exponential`](Self::exponential)
    /// and [`decorrelated`](Self::decorrelated) check it.
    #[cfg(feature = "balance")]
    pub(crate) fn parse(text: &str) -> Result<Backoff, String> {
        let text = text.trim();
        if text == "none" {
            return Ok(Backoff::none());
        }
        let form = "\"none\", \"exponential 10ms..1s\" or \"decorrelated 10ms..1s\"";
        let (kind, range) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("cannot read {text:?} as a backoff ({form})"))?;
        let (base, max) = range
            .trim()
            .split_once("..")
            .ok_or_else(|| format!("cannot read {text:?} as a backoff ({form})"))?;
        let (base, max) = (
            crate::config::parse_duration(base)?,
            crate::config::parse_duration(max)?,
        );
        match kind {
            "exponential" => Backoff::exponential(base, max),
            "decorrelated" => Backoff::decorrelated(base, max),
            _ => return Err(format!("cannot read {text:?} as a backoff ({form})")),
        }
        .map_err(|e| e.to_string())
    }

    /// The backoff as [`parse`](Self::parse) reads it back.
    #[cfg(feature = "balance")]
    pub(crate) fn show(&self) -> String {
        if self.base.is_zero() {
            return "none".to_owned();
        }
        let kind = match self.jitter {
            Jitter::Full => "exponential",
            Jitter::Decorrelated => "decorrelated",
        };
        let show = crate::config::show_duration;
        format!("{kind} {}..{}", show(self.base), show(self.max))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            jitter: Jitter::Full,
            base: DEFAULT_BACKOFF_BASE,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}

#[cfg(all(test, feature = "balance"))]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_reads_back_as_it_is_shown_and_is_checked() {
        let ms = Duration::from_millis;
        for backoff in [
            Backoff::none(),
            Backoff::default(),
            Backoff::exponential(ms(250), Duration::from_secs(90)).unwrap(),
            Backoff::decorrelated(ms(10), ms(10)).unwrap(),
        ] {
            assert_eq!(Backoff::parse(&backoff.show()), Ok(backoff));
        }
        assert_eq!(
            Backoff::parse(" decorrelated 20ms..2s "),
            Backoff::decorrelated(ms(20), Duration::from_secs(2)).map_err(|e| e.to_string())
        );
        for bad in [
            "",
            "exponential",
            "exponential 1s",
            "linear 1s..2s",
            "exponential 2s..1s",
            "exponential 0s..1s",
            "exponential 1s..2h",
        ] {
            assert!(Backoff::parse(bad).is_err(), "{bad:?}");
        }
    }
}
