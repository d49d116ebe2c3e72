//! A retry budget shared by every client that holds it.

use crate::error::{ConfigError, Validator};
use crate::internal::clock::{micros, Clock, Reading};
use crate::window::{Category, Record, TimeWindow};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default share of recent requests that may be retried (Finagle, tower).
pub const DEFAULT_RETRY_RATIO: f64 = 0.2;
/// Default retries allowed per second whatever the traffic (Finagle, tower).
pub const DEFAULT_MIN_RETRIES_PER_SEC: u32 = 10;
/// Default span of "recent" (Finagle, tower).
pub const DEFAULT_BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// Caps retries at a share of recent requests, plus a small floor.
///
/// # Why a budget and not only a maximum number of attempts
///
/// "Retry up to 3 times" multiplies load by 4 exactly when the dependency
/// is failing and can least take it: a retry storm turns a partial outage
/// into a full one. A budget lets retries through while they are rare (the
/// floor, `min_per_sec`, covers quiet clients) and caps them at `ratio` of
/// recent requests otherwise, so during an outage total attempts stay
/// within `(1 + ratio) × requests + floor`.
///
/// Clone it into every client (every balancer) that should share it.
///
/// ```
/// use rampart::retry::RetryBudget;
/// use std::time::Duration;
///
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5)?;
/// for _ in 0..4 {
///     budget.deposit(); // four requests
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "50 % of 4 requests: two retries");
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    /// Deposits are tallied as successes, withdrawals as failures.
    window: TimeWindow,
    ratio: f64,
    reserve: f64,
}

impl RetryBudget {
    /// A budget over `window` allowing `min_per_sec` retries per second plus
    /// `ratio` of the requests in the window.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless `window` is 1 s to 60 s (in whole seconds),
    /// `ratio` is 0 to 10 and `min_per_sec` at most 1 000 000.
    pub fn new(window: Duration, min_per_sec: u32, ratio: f64) -> Result<RetryBudget, ConfigError> {
        let mut v = Validator::new("retry budget".into());
        v.check(
            window >= Duration::from_secs(1)
                && window <= Duration::from_secs(60)
                && window.subsec_nanos() == 0,
            "window",
            || format!("must be 1 to 60 whole seconds, got {window:?}"),
        );
        v.check((0.0..=10.0).contains(&ratio), "ratio", || {
            format!("must be in [0, 10], got {ratio}")
        });
        v.check(min_per_sec <= 1_000_000, "min_per_sec", || {
            format!("must be at most 1000000, got {min_per_sec}")
        });
        v.finish()?;
        let clock = Clock::new();
        let buckets = window.as_secs() as usize;
        Ok(RetryBudget {
            inner: Arc::new(Inner {
                window: TimeWindow::new(micros(Duration::from_secs(1)), buckets, clock.now()),
                clock,
                ratio,
                reserve: f64::from(min_per_sec) * window.as_secs_f64(),
            }),
        })
    }

    /// Counts one request (not a retry): earns `ratio` of a retry.
    pub fn deposit(&self) {
        let inner = &self.inner;
        inner
            .window
            .record(inner.clock.now(), Record::tally(Category::Success));
    }

    /// As [`deposit`](Self::deposit), at a time the caller has read already.
    pub(crate) fn deposit_at(&self, now: Reading) {
        let inner = &self.inner;
        inner
            .window
            .record(inner.clock.micros_at(now), Record::tally(Category::Success));
    }

    /// Takes one retry from the budget, if there is one.
    ///
    /// Threads withdrawing at the same moment may each take the last retry:
    /// the budget can be overdrawn by one retry per racing thread.
    pub fn try_withdraw(&self) -> bool {
        let inner = &self.inner;
        let now = inner.clock.now();
        if self.balance_at(now) < 1.0 {
            return false;
        }
        inner.window.record(now, Record::tally(Category::Failure));
        true
    }

    /// Takes one retry from this budget and one from `other`, or from
    /// neither: `other` is read before this one is charged, so its refusal
    /// leaves this one as it was. (Threads racing for the last retry of
    /// `other` may still take this one's for nothing, as they may overdraw
    /// one budget.)
    pub(crate) fn try_withdraw_with(&self, other: Option<&RetryBudget>) -> bool {
        other.is_none_or(|other| other.balance() >= 1.0)
            && self.try_withdraw()
            && other.is_none_or(RetryBudget::try_withdraw)
    }

    /// Retries left now.
    pub fn balance(&self) -> f64 {
        self.balance_at(self.inner.clock.now())
    }

    fn balance_at(&self, now: crate::internal::clock::Micros) -> f64 {
        let inner = &self.inner;
        let counts = inner.window.counts(now);
        inner.reserve + inner.ratio * counts.successes as f64 - counts.failures as f64
    }
}

impl Default for RetryBudget {
    /// 20 % of the last 10 s of requests plus 10 retries per second.
    fn default() -> Self {
        RetryBudget::new(
            DEFAULT_BUDGET_WINDOW,
            DEFAULT_MIN_RETRIES_PER_SEC,
            DEFAULT_RETRY_RATIO,
        )
        .expect("the defaults are valid")
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &self.inner.ratio)
            .field("reserve", &self.inner.reserve)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn floor_and_ratio_over_the_window() {
        let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.2).unwrap();
        // No traffic: the floor gives 1/s over 10 s.
        let mut retries = 0;
        while budget.try_withdraw() {
            retries += 1;
        }
        assert_eq!(retries, 10);
        // 100 requests earn 20 more.
        for _ in 0..100 {
            budget.deposit();
        }
        let mut retries = 0;
        while budget.try_withdraw() {
            retries += 1;
        }
        assert_eq!(retries, 20);
        // Ten seconds on, the window has forgotten both.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(budget.balance(), 10.0);
    }

    // ===== against a sequential model =====

    use proptest::prelude::*;

    /// Every deposit and withdrawal kept with its time; the window at `t`
    /// holds the 1 s bucket of `t` and the `window - 1` before it.
    struct Model {
        window: u64,
        reserve: f64,
        ratio: f64,
        /// (µs since the budget was made, a deposit (or a withdrawal)).
        events: Vec<(u64, bool)>,
    }

    impl Model {
        fn balance(&self, now: u64) -> f64 {
            let first = (now / 1_000_000 + 1).saturating_sub(self.window);
            let inside = |deposit: bool| {
                let n = self
                    .events
                    .iter()
                    .filter(|&&(t, d)| d == deposit && t / 1_000_000 >= first);
                n.count() as f64
            };
            self.reserve + self.ratio * inside(true) - inside(false)
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Deposit(u32),
        Withdraw,
        /// Milliseconds.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u32..30).prop_map(Op::Deposit),
            4 => Just(Op::Withdraw),
            2 => (0u64..1_500).prop_map(Op::Advance),
            // Idle for longer than any window.
            1 => (60_000u64..200_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// A withdrawal is granted exactly when the model holds at least one
        /// retry, and the balance is the model's after every step: the
        /// floor over the window plus `ratio` of the deposits in it, less
        /// the withdrawals in it; old buckets drop out whole.
        #[test]
        fn matches_the_sequential_model(
            window in 1u64..=60,
            min_per_sec in prop_oneof![Just(0u32), 0u32..4, Just(1_000_000)],
            ratio in prop_oneof![Just(0.0), Just(0.2), Just(10.0), 0.0..=10.0],
            ops in proptest::collection::vec(op(), 1..150),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let _entered = rt.enter();
            let budget = RetryBudget::new(Duration::from_secs(window), min_per_sec, ratio).unwrap();
            let mut model = Model {
                window,
                reserve: f64::from(min_per_sec) * window as f64,
                ratio,
                events: Vec::new(),
            };
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Deposit(n) => {
                        for _ in 0..n {
                            budget.deposit();
                            model.events.push((now, true));
                        }
                    }
                    Op::Withdraw => {
                        let expected = model.balance(now) >= 1.0;
                        prop_assert_eq!(budget.try_withdraw(), expected, "at {} µs", now);
                        if expected {
                            model.events.push((now, false));
                        }
                    }
                    Op::Advance(ms) => {
                        rt.block_on(tokio::time::advance(Duration::from_millis(ms)));
                        now += ms * 1_000;
                    }
                }
                prop_assert_eq!(budget.balance(), model.balance(now), "after {:?} at {} µs", op, now);
            }
        }
    }

    #[test]
    fn bad_values_are_config_errors() {
        assert!(RetryBudget::new(Duration::from_millis(500), 1, 0.2)
            .unwrap_err()
            .names("window"));
        assert!(RetryBudget::new(Duration::from_secs(10), 1, -0.2)
            .unwrap_err()
            .names("ratio"));
    }
}

/// Model-checked races on deposits and withdrawals (run with
/// `--cfg rampart_loom`; the window's tallies are loom atomics then).
///
/// Under loom every thread maps to one shard of the window (loom's threads
/// share one OS thread, and with it the shard hint), so these models check
/// the protocol over one shard; shards are summed the same way.
#[cfg(all(test, rampart_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// A budget whose window never rolls while the model runs: one bucket
    /// of an hour (the real clock moves between loom's executions).
    fn budget(reserve: f64, ratio: f64) -> RetryBudget {
        let clock = Clock::new();
        RetryBudget {
            inner: Arc::new(Inner {
                window: TimeWindow::new(micros(Duration::from_secs(3600)), 1, clock.now()),
                clock,
                ratio,
                reserve,
            }),
        }
    }

    fn withdrawals(budget: &RetryBudget, tries: usize) -> usize {
        (0..tries).filter(|_| budget.try_withdraw()).count()
    }

    #[test]
    fn loom_racing_deposits_are_all_counted() {
        loom::model(|| {
            let budget = budget(0.0, 1.0);
            let depositors: Vec<_> = (0..2)
                .map(|_| {
                    let budget = budget.clone();
                    thread::spawn(move || budget.deposit())
                })
                .collect();
            // A withdrawal racing the deposits may or may not see them…
            let early = budget.try_withdraw();
            for d in depositors {
                d.join().unwrap();
            }
            // …but never more than there is, and afterwards every deposit
            // is there to withdraw: none lost.
            let later = withdrawals(&budget, 3);
            assert_eq!(usize::from(early) + later, 2);
            assert_eq!(budget.balance(), 0.0);
        });
    }

    #[test]
    fn loom_racing_withdrawals_overdraw_by_at_most_one_each() {
        loom::model(|| {
            // Exactly one retry allowed: the floor's.
            let budget = budget(1.0, 0.0);
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let budget = budget.clone();
                    thread::spawn(move || withdrawals(&budget, 2))
                })
                .collect();
            let granted: usize = racers.into_iter().map(|t| t.join().unwrap()).sum();
            // Each racer checks the balance, then records its withdrawal:
            // both may take the last retry (the documented overdraw), but
            // neither takes a second one, and every one taken is counted.
            assert!((1..=2).contains(&granted), "granted {granted}");
            assert_eq!(budget.balance(), 1.0 - granted as f64);
            assert!(!budget.try_withdraw());
        });
    }

    #[test]
    fn loom_a_thread_withdraws_what_it_deposited_unless_a_racer_took_it() {
        loom::model(|| {
            // Half a retry per request, no floor: two deposits, one retry.
            let budget = budget(0.0, 0.5);
            let depositor = {
                let budget = budget.clone();
                thread::spawn(move || {
                    budget.deposit();
                    budget.deposit();
                    budget.try_withdraw()
                })
            };
            let racer = budget.try_withdraw();
            let after = depositor.join().unwrap();
            // The racer sees at most what was deposited; the depositor
            // sees its own deposits and the racer's withdrawal or not.
            let granted = usize::from(racer) + usize::from(after);
            assert!(granted <= 2, "granted {granted}");
            assert!(after || racer, "the depositor's retry is lost");
            assert_eq!(budget.balance(), 1.0 - granted as f64);
        });
    }
}
