//! Selection rules: which endpoint gets the next call.
//!
//! A [`Rule`] chooses among [`Candidates`]: a view of the endpoint set that
//! already leaves out endpoints that are ejected or that this call has
//! tried, so a rule only weighs load. Built in:
//!
//! | rule | Ribbon / Finagle name | cost per call |
//! |---|---|---|
//! | [`PowerOfTwoChoices`] (default) | P2C + peak EWMA (Finagle, tower) | O(1) |
//! | [`RoundRobin`] | RoundRobinRule | O(1) amortised |
//! | [`Random`] | RandomRule | O(1) amortised |
//! | [`LeastConcurrent`] | BestAvailableRule | O(n) |
//! | [`WeightedResponseTime`] | WeightedResponseTimeRule | O(n) |
//! | [`AvailabilityFilter`] | AvailabilityFilteringRule | its inner rule's (twice when all are filtered out) |
//! | [`ZoneAffinity`] | ZoneAvoidanceRule (simplified) | O(n) |
//!
//! # Changing the rule live
//!
//! The rules that need no parameters change live by name, as the `rule`
//! property (see [`config`](crate::config)): `p2c` ([`PowerOfTwoChoices`]),
//! `round_robin`, `random`, `least_concurrent` and
//! `weighted_response_time`. Any rule, these two with parameters
//! ([`AvailabilityFilter`], [`ZoneAffinity`]) or your own, changes live
//! through [`BalanceHandle::set_rule`](super::BalanceHandle::set_rule)
//! only. The endpoints keep their state (load estimates, calls in flight,
//! ejections); the new rule starts with its own state fresh (a round robin
//! starts again at the first endpoint). Going back to the built rule (by
//! clearing the property) gets the built rule object back, with its state.

use crate::internal::rng;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Chooses the endpoint for the next call.
///
/// Implement it for a rule of your own:
///
/// ```
/// use rampart::balance::rule::{Candidates, Rule};
///
/// /// Always the first eligible endpoint: a primary with fail-over.
/// #[derive(Debug)]
/// struct Primary;
///
/// impl Rule for Primary {
///     fn choose(&self, candidates: &Candidates<'_>) -> Option<usize> {
///         (0..candidates.len()).find(|&i| candidates.eligible(i))
///     }
/// }
/// ```
pub trait Rule: fmt::Debug + Send + Sync + 'static {
    /// The index of the chosen endpoint (one for which
    /// [`Candidates::eligible`] is true), or `None` if none will do.
    fn choose(&self, candidates: &Candidates<'_>) -> Option<usize>;
}

/// The rules settable by name, as the `rule` property names them.
pub(crate) const NAMED: &[&str] = &[
    "p2c",
    "round_robin",
    "random",
    "least_concurrent",
    "weighted_response_time",
];

/// The rule named as the `rule` property names it: its index in [`NAMED`].
pub(crate) fn named(name: &str) -> Result<usize, String> {
    NAMED.iter().position(|n| *n == name.trim()).ok_or_else(|| {
        format!(
            "{name:?} is no rule settable by name; known: {}",
            NAMED.join(", ")
        )
    })
}

/// What a rule may know of the endpoints, by index.
pub(crate) trait View {
    fn len(&self) -> usize;
    fn eligible(&self, i: usize) -> bool;
    fn in_flight(&self, i: usize) -> usize;
    fn latency(&self, i: usize) -> f64;
    fn zone(&self, i: usize) -> Option<&str>;
    fn rejecting(&self, i: usize) -> bool;
}

/// The endpoints a rule chooses from, by index `0..len()`.
pub struct Candidates<'a> {
    view: &'a dyn View,
    only: Option<&'a dyn Fn(usize) -> bool>,
    /// The candidates this view narrows: their filters apply too.
    outer: Option<&'a Candidates<'a>>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(view: &'a dyn View) -> Self {
        Candidates {
            view,
            only: None,
            outer: None,
        }
    }

    /// How many endpoints there are (eligible or not).
    pub fn len(&self) -> usize {
        self.view.len()
    }

    /// Whether there are no endpoints at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether endpoint `i` may be chosen: not ejected, not already tried
    /// by this call, and not excluded by an enclosing rule.
    #[inline]
    pub fn eligible(&self, i: usize) -> bool {
        match self.outer {
            Some(outer) => outer.eligible(i) && self.only.is_none_or(|only| only(i)),
            None => self.view.eligible(i) && self.only.is_none_or(|only| only(i)),
        }
    }

    /// Calls in flight to endpoint `i`.
    #[inline]
    pub fn in_flight(&self, i: usize) -> usize {
        self.view.in_flight(i)
    }

    /// Endpoint `i`'s peak-EWMA latency estimate, in microseconds.
    #[inline]
    pub fn latency(&self, i: usize) -> f64 {
        self.view.latency(i)
    }

    /// Endpoint `i`'s zone, if it has one.
    pub fn zone(&self, i: usize) -> Option<&str> {
        self.view.zone(i)
    }

    /// Whether endpoint `i`'s own circuit breaker rejects calls now.
    pub fn breaker_rejecting(&self, i: usize) -> bool {
        self.view.rejecting(i)
    }

    /// The same candidates, narrowed further to those `only` accepts (every
    /// enclosing rule's narrowing still applies).
    pub fn narrowed<'b>(&'b self, only: &'b dyn Fn(usize) -> bool) -> Candidates<'b>
    where
        'a: 'b,
    {
        Candidates {
            view: self.view,
            only: Some(only),
            outer: Some(self),
        }
    }

    /// A uniformly random eligible endpoint other than `except`: a few
    /// random probes, then one pass over all of them.
    pub fn random_eligible(&self, except: Option<usize>) -> Option<usize> {
        random_eligible(self.len(), except, |i| self.eligible(i))
    }
}

/// A uniformly random index in `0..n` other than `except` for which
/// `eligible` is true: a few random probes, then one pass over all.
#[inline]
fn random_eligible(
    n: usize,
    except: Option<usize>,
    eligible: impl Fn(usize) -> bool,
) -> Option<usize> {
    // Drawn from the others only: `except` is never drawn, so a small set
    // needs no second draw for it.
    let others = n - usize::from(except.is_some_and(|e| e < n));
    if others == 0 {
        return None;
    }
    for _ in 0..8 {
        let mut i = rng::below(others);
        if except.is_some_and(|e| i >= e) {
            i += 1;
        }
        if eligible(i) {
            return Some(i);
        }
    }
    reservoir(n, &|i| Some(i) != except && eligible(i))
}

/// Reservoir sampling after eight draws found nothing eligible: uniform,
/// one pass, no allocation; rare, so out of line.
#[cold]
#[inline(never)]
fn reservoir(n: usize, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
    let mut chosen = None;
    let mut seen = 0;
    for i in (0..n).filter(|&i| ok(i)) {
        seen += 1;
        if rng::below(seen) == 0 {
            chosen = Some(i);
        }
    }
    chosen
}

/// The rule a pick runs (see `Shared::with_chooser`).
#[derive(Clone, Copy)]
pub(crate) enum Chooser<'a> {
    /// [`PowerOfTwoChoices`], run by [`two_choices`] on the set's view.
    TwoChoices,
    Rule(&'a dyn Rule),
}

/// [`PowerOfTwoChoices`] over `n` endpoints, on any view of them: generic,
/// so that the balancer's own pick of its default rule is compiled for
/// its own view, with no call through a trait object per look.
#[inline]
pub(crate) fn two_choices(
    n: usize,
    eligible: impl Fn(usize) -> bool,
    in_flight: impl Fn(usize) -> usize,
    latency: impl Fn(usize) -> f64,
) -> Option<usize> {
    let a = random_eligible(n, None, &eligible)?;
    let Some(b) = random_eligible(n, Some(a), &eligible) else {
        return Some(a);
    };
    let cost = |i: usize| latency(i) * (in_flight(i) + 1) as f64;
    Some(if cost(b) < cost(a) { b } else { a })
}

impl fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidates")
            .field("len", &self.len())
            .finish()
    }
}

/// Power of two choices on peak-EWMA load (the default): picks two
/// endpoints at random and sends the call to the one with the lower
/// `latency × (in flight + 1)`. O(1) whatever the set's size; avoids both
/// the herd a "least loaded" rule sends to one endpoint and slow endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct PowerOfTwoChoices;

impl Rule for PowerOfTwoChoices {
    #[inline]
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        two_choices(
            c.len(),
            |i| c.eligible(i),
            |i| c.in_flight(i),
            |i| c.latency(i),
        )
    }
}

/// Each endpoint in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A round robin starting at the first endpoint.
    pub fn new() -> Self {
        RoundRobin::default()
    }
}

impl RoundRobin {
    /// Starts again at the first endpoint, as a new round robin would.
    pub(crate) fn restart(&self) {
        self.next.store(0, Ordering::Relaxed);
    }
}

impl Rule for RoundRobin {
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        // Each endpoint looked at uses up its turn, so one left out does
        // not hand its share to its neighbour.
        (0..n)
            .map(|_| self.next.fetch_add(1, Ordering::Relaxed) % n)
            .find(|&i| c.eligible(i))
    }
}

/// An endpoint at random.
#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl Rule for Random {
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        c.random_eligible(None)
    }
}

/// The endpoint with the fewest calls in flight (Ribbon's BestAvailable);
/// ties are broken at random so they do not all go to the first.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastConcurrent;

impl Rule for LeastConcurrent {
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        let mut best = None;
        let mut ties = 0;
        for i in (0..c.len()).filter(|&i| c.eligible(i)) {
            let load = c.in_flight(i);
            match best {
                Some((_, least)) if load > least => {}
                Some((_, least)) if load == least => {
                    ties += 1;
                    if rng::below(ties) == 0 {
                        best = Some((i, load));
                    }
                }
                _ => {
                    best = Some((i, load));
                    ties = 1;
                }
            }
        }
        best.map(|(i, _)| i)
    }
}

/// An endpoint at random, weighted by the inverse of its latency estimate:
/// an endpoint twice as fast gets twice the calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedResponseTime;

impl Rule for WeightedResponseTime {
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        let weight = |i: usize| 1.0 / c.latency(i).max(1.0);
        let total: f64 = (0..c.len()).filter(|&i| c.eligible(i)).map(weight).sum();
        if total <= 0.0 {
            return None;
        }
        let mut target = rng::unit() * total;
        let mut last = None;
        for i in (0..c.len()).filter(|&i| c.eligible(i)) {
            target -= weight(i);
            last = Some(i);
            if target <= 0.0 {
                break;
            }
        }
        last
    }
}

/// Skips endpoints whose circuit breaker rejects calls, or that already
/// have `max_in_flight` calls, then lets `inner` choose (Ribbon's
/// AvailabilityFilteringRule). When every endpoint is filtered out, `inner`
/// chooses among all of them rather than fail the call.
#[derive(Debug, Clone)]
pub struct AvailabilityFilter<R> {
    inner: R,
    max_in_flight: Option<usize>,
}

impl<R: Rule> AvailabilityFilter<R> {
    /// Filters out endpoints whose breaker rejects calls.
    pub fn new(inner: R) -> Self {
        AvailabilityFilter {
            inner,
            max_in_flight: None,
        }
    }

    /// Also filters out endpoints with this many calls in flight.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = Some(max);
        self
    }
}

impl<R: Rule> Rule for AvailabilityFilter<R> {
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        let available = |i: usize| {
            !c.breaker_rejecting(i) && self.max_in_flight.is_none_or(|max| c.in_flight(i) < max)
        };
        self.inner
            .choose(&c.narrowed(&available))
            .or_else(|| self.inner.choose(c))
    }
}

/// Prefers endpoints in the caller's zone while enough of them are
/// eligible: at least `min_share` of the zone's endpoints (default half),
/// and at least one. Otherwise chooses among all zones.
#[derive(Debug, Clone)]
pub struct ZoneAffinity<R> {
    zone: Arc<str>,
    min_share: f64,
    inner: R,
}

impl<R: Rule> ZoneAffinity<R> {
    /// Prefers `zone`, choosing within it (or across zones) with `inner`.
    pub fn new(zone: impl Into<Arc<str>>, inner: R) -> Self {
        ZoneAffinity {
            zone: zone.into(),
            min_share: 0.5,
            inner,
        }
    }

    /// The share of the zone's endpoints that must be eligible to stay in
    /// the zone, clamped to [0, 1].
    pub fn min_share(mut self, share: f64) -> Self {
        self.min_share = if share.is_nan() {
            0.5
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }
}

impl<R: Rule> Rule for ZoneAffinity<R> {
    fn choose(&self, c: &Candidates<'_>) -> Option<usize> {
        let in_zone = |i: usize| c.zone(i) == Some(&*self.zone);
        let members = (0..c.len()).filter(|&i| in_zone(i)).count();
        let healthy = (0..c.len())
            .filter(|&i| in_zone(i) && c.eligible(i))
            .count();
        if healthy >= 1 && healthy as f64 >= self.min_share * members as f64 {
            if let Some(i) = self.inner.choose(&c.narrowed(&in_zone)) {
                return Some(i);
            }
        }
        self.inner.choose(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed set of endpoints for testing rules in isolation.
    struct Fake {
        eligible: Vec<bool>,
        in_flight: Vec<usize>,
        latency: Vec<f64>,
        zone: Vec<&'static str>,
        rejecting: Vec<bool>,
    }

    impl Fake {
        fn new(n: usize) -> Fake {
            Fake {
                eligible: vec![true; n],
                in_flight: vec![0; n],
                latency: vec![1_000.0; n],
                zone: vec!["a"; n],
                rejecting: vec![false; n],
            }
        }
        fn tally(&self, rule: &dyn Rule, calls: usize) -> Vec<usize> {
            let mut hits = vec![0; self.eligible.len()];
            for _ in 0..calls {
                hits[rule.choose(&Candidates::new(self)).expect("a choice")] += 1;
            }
            hits
        }
    }

    impl View for Fake {
        fn len(&self) -> usize {
            self.eligible.len()
        }
        fn eligible(&self, i: usize) -> bool {
            self.eligible[i]
        }
        fn in_flight(&self, i: usize) -> usize {
            self.in_flight[i]
        }
        fn latency(&self, i: usize) -> f64 {
            self.latency[i]
        }
        fn zone(&self, i: usize) -> Option<&str> {
            Some(self.zone[i])
        }
        fn rejecting(&self, i: usize) -> bool {
            self.rejecting[i]
        }
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_ineligible() {
        let mut f = Fake::new(4);
        f.eligible[2] = false;
        let rule = RoundRobin::new();
        let picks: Vec<_> = (0..6)
            .map(|_| rule.choose(&Candidates::new(&f)).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 3, 0, 1, 3], "2's turn is not given to 3");
    }

    #[test]
    fn random_spreads_evenly_over_the_eligible() {
        let mut f = Fake::new(4);
        f.eligible[0] = false;
        let hits = f.tally(&Random, 30_000);
        assert_eq!(hits[0], 0);
        assert!(
            hits[1..].iter().all(|&h| (9_000..11_000).contains(&h)),
            "{hits:?}"
        );
    }

    #[test]
    fn p2c_avoids_the_slow_and_the_busy() {
        let mut f = Fake::new(3);
        f.latency[0] = 50_000.0; // 50× slower
        let hits = f.tally(&PowerOfTwoChoices, 30_000);
        // The slow one wins only when both picks are it: never, as picks differ.
        assert_eq!(hits[0], 0, "{hits:?}");
        let mut f = Fake::new(3);
        f.in_flight[1] = 10;
        let hits = f.tally(&PowerOfTwoChoices, 30_000);
        assert_eq!(hits[1], 0, "{hits:?}");
        // A single eligible endpoint is still chosen.
        let mut f = Fake::new(3);
        f.eligible = vec![false, true, false];
        assert_eq!(f.tally(&PowerOfTwoChoices, 10), [0, 10, 0]);
        let none = Fake {
            eligible: vec![false; 3],
            ..Fake::new(3)
        };
        assert_eq!(PowerOfTwoChoices.choose(&Candidates::new(&none)), None);
    }

    #[test]
    fn a_random_eligible_other_is_drawn_evenly_from_the_others_only() {
        let mut f = Fake::new(4);
        let c = Candidates::new(&f);
        let mut hits = [0usize; 4];
        for _ in 0..30_000 {
            hits[c.random_eligible(Some(2)).unwrap()] += 1;
        }
        assert_eq!(hits[2], 0);
        assert!(
            [0, 1, 3]
                .iter()
                .all(|&i| (9_000..11_000).contains(&hits[i])),
            "{hits:?}"
        );
        // None left but `except`, or none eligible but `except`.
        assert_eq!(
            Candidates::new(&Fake::new(1)).random_eligible(Some(0)),
            None
        );
        f.eligible = vec![false, false, true, false];
        assert_eq!(Candidates::new(&f).random_eligible(Some(2)), None);
        // An `except` out of range excludes nothing.
        assert!(Candidates::new(&Fake::new(1)).random_eligible(Some(5)) == Some(0));
    }

    #[test]
    fn least_concurrent_picks_the_idlest() {
        let mut f = Fake::new(3);
        f.in_flight = vec![3, 1, 2];
        assert_eq!(f.tally(&LeastConcurrent, 100), [0, 100, 0]);
        f.in_flight = vec![1, 1, 2];
        let hits = f.tally(&LeastConcurrent, 10_000);
        assert!(
            hits[0] > 4_000 && hits[1] > 4_000 && hits[2] == 0,
            "ties split: {hits:?}"
        );
    }

    #[test]
    fn weighted_response_time_favours_the_fast() {
        let mut f = Fake::new(2);
        f.latency = vec![1_000.0, 3_000.0];
        let hits = f.tally(&WeightedResponseTime, 40_000);
        let ratio = hits[0] as f64 / hits[1] as f64;
        assert!((2.7..3.3).contains(&ratio), "{hits:?}");
    }

    #[test]
    fn availability_filter_skips_open_breakers_and_busy_endpoints() {
        let mut f = Fake::new(3);
        f.rejecting[0] = true;
        f.in_flight[1] = 5;
        let rule = AvailabilityFilter::new(Random).max_in_flight(5);
        assert_eq!(f.tally(&rule, 100), [0, 0, 100]);
        // Everything filtered: fall back to all rather than fail.
        f.rejecting = vec![true; 3];
        assert_eq!(f.tally(&rule, 100).iter().sum::<usize>(), 100);
    }

    #[test]
    fn nested_rules_keep_every_narrowing() {
        // Zone affinity over an availability filter: the inner filter must
        // not undo the zone preference, nor the zone the filter.
        let mut f = Fake::new(6);
        f.zone = vec!["a", "a", "a", "b", "b", "b"];
        f.rejecting[0] = true;
        let only_1_and_2 =
            |hits: Vec<usize>| hits[0] == 0 && hits[3..] == [0, 0, 0] && hits[1] > 0 && hits[2] > 0;
        let rule = ZoneAffinity::new("a", AvailabilityFilter::new(RoundRobin::new()));
        assert!(only_1_and_2(f.tally(&rule, 60)));
        let rule = AvailabilityFilter::new(ZoneAffinity::new("a", RoundRobin::new()));
        assert!(only_1_and_2(f.tally(&rule, 60)));
    }

    #[test]
    fn zone_affinity_stays_home_while_the_zone_is_healthy() {
        let mut f = Fake::new(4);
        f.zone = vec!["a", "a", "b", "b"];
        let rule = ZoneAffinity::new("a", Random);
        let hits = f.tally(&rule, 1_000);
        assert_eq!(hits[2] + hits[3], 0);
        // Half of zone a gone: still home (min share 0.5).
        f.eligible[0] = false;
        assert_eq!(f.tally(&rule, 1_000), [0, 1_000, 0, 0]);
        // All of zone a gone: spill over.
        f.eligible[1] = false;
        let hits = f.tally(&rule, 1_000);
        assert_eq!(hits[2] + hits[3], 1_000);
    }
}
