//! Outlier ejection and failure accrual: step around an endpoint that
//! keeps failing.
//!
//! A plain state machine over atomics, tested on its own:
//!
//! ```text
//!  healthy --K failures in a row--> out for base × 2^(n-1) (capped):
//!                                   ejected if the cap has room, else
//!                                   marked dead (failure accrual)
//!  out --time passes-------------> probation
//!  probation --one failure-------> out again, for twice as long
//!  probation --one success-------> healthy (the count n starts over)
//! ```
//!
//! At most `max_ejected` of the set (at least one endpoint) is ejected at
//! once, and selection ignores ejections altogether when fewer than
//! `panic_threshold` of the set is healthy (Envoy's outlier ejection and
//! panic mode: better to spread load over sick endpoints than to pile it
//! onto the few left).
//!
//! A failing endpoint the cap leaves no place for is *marked dead* instead
//! (Finagle's failure accrual: each endpoint its own breaker, uncapped): it
//! is passed over while any endpoint that is neither ejected nor marked
//! dead will do, whatever the panic threshold, and takes no place under
//! the cap. Without it, two dead endpoints of three (one ejected, the
//! other kept in by the cap) would go on taking calls.
//!
//! Both kinds of spell live in one word, `out_until`: 0 when in, else the
//! end of the spell in µs, odd for a dead mark and even (never 0) for an
//! ejection, so that the kind and the end change together.

use crate::internal::clock::Micros;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Ejection settings, validated by the balancer's builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ejection {
    pub(crate) consecutive_failures: u32,
    pub(crate) base: Micros,
    pub(crate) max: Micros,
    pub(crate) max_ejected: f64,
    pub(crate) panic_threshold: f64,
    /// Mark dead the failing endpoints the cap keeps in.
    pub(crate) accrual: bool,
}

/// The ejection settings calls read, each in an atomic so that they can
/// change live; read whole (a handful of plain loads) where they are used.
#[derive(Debug)]
pub(crate) struct LiveEjection {
    consecutive_failures: AtomicU32,
    base: AtomicU64,
    max: AtomicU64,
    max_ejected: AtomicU64,
    panic_threshold: AtomicU64,
    accrual: AtomicBool,
}

impl LiveEjection {
    pub(crate) fn new(e: Ejection) -> Self {
        let live = LiveEjection {
            consecutive_failures: AtomicU32::new(0),
            base: AtomicU64::new(0),
            max: AtomicU64::new(0),
            max_ejected: AtomicU64::new(0),
            panic_threshold: AtomicU64::new(0),
            accrual: AtomicBool::new(false),
        };
        live.store(e);
        live
    }

    /// Each setting lands on its own: a call racing a change may read a
    /// mix, each value of which was checked.
    pub(crate) fn store(&self, e: Ejection) {
        let r = Ordering::Relaxed;
        self.consecutive_failures.store(e.consecutive_failures, r);
        self.base.store(e.base, r);
        self.max.store(e.max, r);
        self.max_ejected.store(e.max_ejected.to_bits(), r);
        self.panic_threshold.store(e.panic_threshold.to_bits(), r);
        self.accrual.store(e.accrual, r);
    }

    /// Whether so few endpoints are healthy that ejections are ignored:
    /// one load, on every selection.
    #[inline]
    pub(crate) fn panicking(&self, ejected: usize, total: usize) -> bool {
        let threshold = f64::from_bits(self.panic_threshold.load(Ordering::Relaxed));
        total > 0 && ((total - ejected.min(total)) as f64) < threshold * total as f64
    }

    #[inline]
    pub(crate) fn get(&self) -> Ejection {
        let r = Ordering::Relaxed;
        Ejection {
            consecutive_failures: self.consecutive_failures.load(r),
            base: self.base.load(r),
            max: self.max.load(r),
            max_ejected: f64::from_bits(self.max_ejected.load(r)),
            panic_threshold: f64::from_bits(self.panic_threshold.load(r)),
            accrual: self.accrual.load(r),
        }
    }
}

/// One endpoint's health.
#[derive(Debug, Default)]
pub(crate) struct Health {
    consecutive: AtomicU32,
    /// 0 when in; else when the spell out ends (µs): odd when marked dead,
    /// even (and never 0) when ejected.
    out_until: AtomicU64,
    times_ejected: AtomicU32,
    probation: AtomicBool,
    /// Out of the set: a call still in flight to it must not eject it.
    removed: AtomicBool,
    pub(crate) ejections: AtomicU64,
    pub(crate) marked_dead: AtomicU64,
}

/// Whether a spell out (`out_until`, not 0) is an ejection, holding a place
/// under the cap.
#[inline]
fn is_ejection(until: u64) -> bool {
    until & 1 == 0
}

/// What [`Ejection::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// In the set (not out).
    In,
    /// Ejected now.
    Ejected,
    /// Marked dead now (failure accrual).
    MarkedDead,
    /// Its ejection ended just now: it is back, on probation.
    Returned,
}

/// A failure that put an endpoint out, and for how long (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    Ejected(Micros),
    MarkedDead(Micros),
}

/// The set-wide count of ejected endpoints.
#[derive(Debug, Default)]
pub(crate) struct Ejected {
    count: AtomicUsize,
}

impl Ejected {
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Ejection {
    /// How many of `total` endpoints may be ejected at once.
    fn allowed(&self, total: usize) -> usize {
        ((self.max_ejected * total as f64).floor() as usize).max(1)
    }

    /// Whether so few endpoints are healthy that ejections are ignored.
    #[cfg(test)]
    pub(crate) fn panicking(&self, ejected: usize, total: usize) -> bool {
        total > 0 && ((total - ejected.min(total)) as f64) < self.panic_threshold * total as f64
    }

    /// How long the `n`-th ejection in a row lasts.
    fn duration(&self, n: u32) -> Micros {
        let factor = 1u64 << n.saturating_sub(1).min(40);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Records a success.
    #[cfg(test)]
    #[inline]
    pub(crate) fn succeeded(&self, health: &Health) {
        succeeded(health);
    }

    /// Records a failure; returns how long the endpoint is out for, and
    /// how, if this failure puts it out.
    pub(crate) fn failed(
        &self,
        health: &Health,
        set: &Ejected,
        total: usize,
        now: Micros,
    ) -> Option<Out> {
        let on_probation = health.probation.load(Ordering::Relaxed);
        let in_a_row = health.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if !on_probation && in_a_row < self.consecutive_failures {
            return None;
        }
        if health.removed.load(Ordering::SeqCst) {
            return None;
        }
        if health.out_until.load(Ordering::Relaxed) != 0 {
            return None;
        }
        // Take a place among the ejected, if the cap allows; else mark it
        // dead, if accrual is on.
        let allowed = self.allowed(total);
        let ejected = set
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < allowed).then_some(n + 1)
            })
            .is_ok();
        if !ejected && !self.accrual {
            return None;
        }
        let n = health.times_ejected.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = self.duration(n);
        let until = now.saturating_add(duration);
        let until = if ejected {
            (until & !1).max(2)
        } else {
            until | 1
        };
        if health
            .out_until
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            // Another thread put it out first.
            if ejected {
                set.count.fetch_sub(1, Ordering::AcqRel);
            }
            health.times_ejected.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        if health.removed.load(Ordering::SeqCst) {
            // Removed while we put it out: `removed` may have run before our
            // swap, so give the place back here (once, whoever gets there).
            let was = health.out_until.swap(0, Ordering::AcqRel);
            if was != 0 && is_ejection(was) {
                set.count.fetch_sub(1, Ordering::AcqRel);
            }
            return None;
        }
        health.probation.store(false, Ordering::Relaxed);
        if ejected {
            health.consecutive.store(0, Ordering::Relaxed);
            health.ejections.fetch_add(1, Ordering::Relaxed);
            Some(Out::Ejected(duration))
        } else {
            // The failures in a row stay visible: the cap, not the
            // endpoint, kept it from being ejected.
            health.marked_dead.fetch_add(1, Ordering::Relaxed);
            Some(Out::MarkedDead(duration))
        }
    }

    /// Whether the endpoint is ejected at `now`; an ejection that has run
    /// its time ends here, putting the endpoint on probation.
    #[cfg(test)]
    pub(crate) fn is_ejected(&self, health: &Health, set: &Ejected, now: Micros) -> bool {
        self.check(health, set, now) == Check::Ejected
    }

    /// Whether the endpoint is out at `now`, and how, telling apart a
    /// spell that ends with this very check (the endpoint is back, on
    /// probation).
    #[cfg(test)]
    pub(crate) fn check(&self, health: &Health, set: &Ejected, now: Micros) -> Check {
        check(health, set, now)
    }

    /// The endpoint leaves the set: give back its ejected place, if any.
    #[cfg(test)]
    pub(crate) fn removed(&self, health: &Health, set: &Ejected) {
        removed(health, set);
    }
}

/// Records a success (reads no setting).
#[inline]
pub(crate) fn succeeded(health: &Health) {
    if health.consecutive.load(Ordering::Relaxed) != 0 {
        health.consecutive.store(0, Ordering::Relaxed);
    }
    if health.probation.load(Ordering::Relaxed) {
        health.probation.store(false, Ordering::Relaxed);
        health.times_ejected.store(0, Ordering::Relaxed);
    }
}

/// Whether the endpoint is out at `now` (reads no setting): see
/// [`Ejection::check`].
pub(crate) fn check(health: &Health, set: &Ejected, now: Micros) -> Check {
    let until = health.out_until.load(Ordering::Relaxed);
    if until == 0 {
        return Check::In;
    }
    if now < until {
        return if is_ejection(until) {
            Check::Ejected
        } else {
            Check::MarkedDead
        };
    }
    if health
        .out_until
        .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        health.probation.store(true, Ordering::Relaxed);
        health.consecutive.store(0, Ordering::Relaxed);
        if is_ejection(until) {
            set.count.fetch_sub(1, Ordering::AcqRel);
        }
        return Check::Returned;
    }
    Check::In
}

/// The endpoint leaves the set (reads no setting).
pub(crate) fn removed(health: &Health, set: &Ejected) {
    health.removed.store(true, Ordering::SeqCst);
    let until = health.out_until.swap(0, Ordering::AcqRel);
    if until != 0 && is_ejection(until) {
        set.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Health {
    /// Whether a spell out is recorded (perhaps one whose time is up): a
    /// cheap test before reading the clock.
    #[inline]
    pub(crate) fn is_out_at_all(&self) -> bool {
        self.out_until.load(Ordering::Relaxed) != 0
    }

    /// How long the current spell out (ejected or marked dead) lasts after
    /// `now`; zero when in.
    pub(crate) fn out_for(&self, now: Micros) -> Micros {
        self.out_until.load(Ordering::Relaxed).saturating_sub(now)
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn envoy() -> Ejection {
        Ejection {
            consecutive_failures: 5,
            base: 10 * S,
            max: 30 * S,
            max_ejected: 0.1,
            panic_threshold: 0.5,
            accrual: false,
        }
    }

    fn ejected(out: Option<Out>) -> Option<Micros> {
        match out {
            Some(Out::Ejected(d)) => Some(d),
            _ => None,
        }
    }

    #[test]
    fn the_schedule_doubles_to_the_cap_and_probation_re_ejects_at_once() {
        let e = envoy();
        let (h, set) = (Health::default(), Ejected::default());
        for _ in 0..4 {
            assert_eq!(e.failed(&h, &set, 10, 0), None);
        }
        e.succeeded(&h); // breaks the run
        for _ in 0..4 {
            assert_eq!(e.failed(&h, &set, 10, 0), None);
        }
        assert_eq!(e.failed(&h, &set, 10, 0), Some(Out::Ejected(10 * S)));
        assert!(e.is_ejected(&h, &set, 10 * S - 1));
        assert!(!e.is_ejected(&h, &set, 10 * S), "back after 10 s");
        assert_eq!(set.count(), 0);
        // On probation: one failure ejects again, for 20 s, then 30 s (cap).
        assert_eq!(ejected(e.failed(&h, &set, 10, 10 * S)), Some(20 * S));
        assert!(!e.is_ejected(&h, &set, 30 * S));
        assert_eq!(ejected(e.failed(&h, &set, 10, 30 * S)), Some(30 * S));
        assert!(!e.is_ejected(&h, &set, 60 * S));
        assert_eq!(ejected(e.failed(&h, &set, 10, 60 * S)), Some(30 * S));
        // A success on probation makes it healthy: the schedule starts over.
        assert!(!e.is_ejected(&h, &set, 90 * S));
        e.succeeded(&h);
        for _ in 0..4 {
            assert_eq!(e.failed(&h, &set, 10, 90 * S), None);
        }
        assert_eq!(ejected(e.failed(&h, &set, 10, 90 * S)), Some(10 * S));
    }

    #[test]
    fn never_more_than_the_cap_but_always_one() {
        let e = envoy();
        let set = Ejected::default();
        let hs: Vec<Health> = (0..25).map(|_| Health::default()).collect();
        let ejected = hs
            .iter()
            .filter(|h| (0..5).filter_map(|_| e.failed(h, &set, 25, 0)).count() == 1)
            .count();
        assert_eq!(ejected, 2, "10 % of 25");
        let few: Vec<Health> = (0..3).map(|_| Health::default()).collect();
        let set = Ejected::default();
        let ejected = few
            .iter()
            .filter(|h| (0..5).filter_map(|_| e.failed(h, &set, 3, 0)).count() == 1)
            .count();
        assert_eq!(ejected, 1, "at least one, even of 3");
    }

    #[test]
    fn past_the_cap_failing_endpoints_are_marked_dead_uncapped() {
        let e = Ejection {
            accrual: true,
            ..envoy()
        };
        let set = Ejected::default();
        let hs: Vec<Health> = (0..3).map(|_| Health::default()).collect();
        let outs: Vec<Option<Out>> = hs
            .iter()
            .map(|h| (0..5).find_map(|_| e.failed(h, &set, 3, 0)))
            .collect();
        assert_eq!(
            outs,
            [
                Some(Out::Ejected(10 * S)),
                Some(Out::MarkedDead(10 * S)),
                Some(Out::MarkedDead(10 * S))
            ]
        );
        assert_eq!(set.count(), 1, "marks take no place under the cap");
        assert_eq!(e.check(&hs[1], &set, S), Check::MarkedDead);
        assert_eq!(hs[1].consecutive_failures(), 5, "still visible");
        // Back on probation after its spell; a failure marks it again, for
        // twice as long; its return gives back no place it never took. (A
        // mark ends a microsecond late: its end is odd.)
        assert_eq!(e.check(&hs[1], &set, 10 * S + 1), Check::Returned);
        assert_eq!(set.count(), 1);
        assert_eq!(
            e.failed(&hs[1], &set, 3, 10 * S + 1),
            Some(Out::MarkedDead(20 * S))
        );
        // Removal of a marked endpoint gives back nothing either.
        e.removed(&hs[1], &set);
        assert_eq!(set.count(), 1);
        e.removed(&hs[0], &set);
        assert_eq!(set.count(), 0);
    }

    #[test]
    fn panic_mode_below_the_threshold() {
        let e = envoy();
        assert!(!e.panicking(5, 10));
        assert!(e.panicking(6, 10));
        assert!(!e.panicking(0, 0));
    }

    #[test]
    fn a_removed_endpoint_is_never_ejected_again() {
        let e = envoy();
        let (h, set) = (Health::default(), Ejected::default());
        e.removed(&h, &set);
        for _ in 0..10 {
            assert_eq!(e.failed(&h, &set, 10, 0), None);
        }
        assert_eq!(
            set.count(),
            0,
            "no place taken for an endpoint out of the set"
        );
    }

    #[test]
    fn removal_frees_the_place() {
        let e = envoy();
        let (h, set) = (Health::default(), Ejected::default());
        for _ in 0..5 {
            e.failed(&h, &set, 10, 0);
        }
        assert_eq!(set.count(), 1);
        e.removed(&h, &set);
        assert_eq!(set.count(), 0);
    }

    // ===== against a sequential model =====

    use proptest::prelude::*;

    /// A spell out, as the module's doc describes it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Spell {
        Ejected,
        Dead,
    }

    /// One endpoint, in plain fields.
    #[derive(Debug, Clone, Default)]
    struct ModelEndpoint {
        in_a_row: u32,
        /// The spell and when it ends: an ejection's end rounded down to
        /// even (never 0), a mark's up to odd, as documented.
        out: Option<(Spell, Micros)>,
        /// Spells in a row: the n of `base × 2^(n-1)`.
        spells: u32,
        probation: bool,
        removed: bool,
        ejections: u64,
        marked_dead: u64,
    }

    /// The schedule, sequentially: every endpoint of the set, removed ones
    /// included (a call in flight may still report on them).
    #[derive(Debug)]
    struct Model {
        e: Ejection,
        endpoints: Vec<ModelEndpoint>,
    }

    impl Model {
        fn total(&self) -> usize {
            self.endpoints.iter().filter(|m| !m.removed).count()
        }

        fn ejected(&self) -> usize {
            let ejected = |m: &&ModelEndpoint| matches!(m.out, Some((Spell::Ejected, _)));
            self.endpoints.iter().filter(ejected).count()
        }

        /// The cap: a share of the set, but always at least one.
        fn cap(&self, total: usize) -> usize {
            ((self.e.max_ejected * total as f64).floor() as usize).max(1)
        }

        fn failed(&mut self, i: usize, now: Micros) -> Option<Out> {
            let (total, ejected) = (self.total(), self.ejected());
            let room = ejected < self.cap(total);
            let (k, accrual) = (self.e.consecutive_failures, self.e.accrual);
            let (base, max) = (self.e.base, self.e.max);
            let m = &mut self.endpoints[i];
            m.in_a_row += 1;
            // K in a row puts a healthy endpoint out; on probation, one.
            if !(m.probation || m.in_a_row >= k) || m.removed || m.out.is_some() {
                return None;
            }
            if !room && !accrual {
                return None;
            }
            m.spells += 1;
            let duration = (0..m.spells - 1)
                .take(40)
                .fold(base, |d, _| d.saturating_mul(2))
                .min(max);
            let end = now.saturating_add(duration);
            m.probation = false;
            if room {
                m.out = Some((Spell::Ejected, (end & !1).max(2)));
                m.in_a_row = 0;
                m.ejections += 1;
                Some(Out::Ejected(duration))
            } else {
                m.out = Some((Spell::Dead, end | 1));
                m.marked_dead += 1;
                Some(Out::MarkedDead(duration))
            }
        }

        fn succeeded(&mut self, i: usize) {
            let m = &mut self.endpoints[i];
            m.in_a_row = 0;
            if m.probation {
                m.probation = false;
                m.spells = 0;
            }
        }

        fn check(&mut self, i: usize, now: Micros) -> Check {
            let m = &mut self.endpoints[i];
            match m.out {
                None => Check::In,
                Some((Spell::Ejected, end)) if now < end => Check::Ejected,
                Some((Spell::Dead, end)) if now < end => Check::MarkedDead,
                Some(_) => {
                    m.out = None;
                    m.probation = true;
                    m.in_a_row = 0;
                    Check::Returned
                }
            }
        }

        fn removed(&mut self, i: usize) {
            let m = &mut self.endpoints[i];
            m.removed = true;
            m.out = None;
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Fail(usize),
        Succeed(usize),
        Check(usize),
        Remove(usize),
        Add,
        Advance(Micros),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..8).prop_map(Op::Fail),
            2 => (0usize..8).prop_map(Op::Succeed),
            3 => (0usize..8).prop_map(Op::Check),
            1 => (0usize..8).prop_map(Op::Remove),
            1 => Just(Op::Add),
            3 => (0u64..20_000).prop_map(Op::Advance),
            // Far ahead: durations and ends saturate instead of wrapping.
            1 => Just(Op::Advance(u64::MAX / 3)),
        ]
    }

    fn settings() -> impl Strategy<Value = Ejection> {
        (
            1u32..4,
            prop_oneof![Just(1u64), 1u64..5_000],
            0u64..20_000,
            prop_oneof![
                Just(0.0),
                Just(0.1),
                Just(0.34),
                Just(0.5),
                Just(1.0),
                0.0..=1.0
            ],
            prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0..=1.0],
            any::<bool>(),
        )
            .prop_map(
                |(consecutive_failures, base, extra, max_ejected, panic_threshold, accrual)| {
                    Ejection {
                        consecutive_failures,
                        base,
                        max: base + extra,
                        max_ejected,
                        panic_threshold,
                        accrual,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Failures, successes, removals, additions and time, one at a
        /// time: every answer and every count is the model's; an ejection
        /// never takes the set past its cap; panic mode follows the
        /// healthy share.
        #[test]
        fn matches_the_sequential_model(
            e in settings(),
            first in 1usize..6,
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let set = Ejected::default();
            let mut real: Vec<Health> = (0..first).map(|_| Health::default()).collect();
            let mut model = Model { e, endpoints: vec![ModelEndpoint::default(); first] };
            let mut now: Micros = 0;
            for op in ops {
                let n = real.len();
                match op {
                    Op::Fail(i) => {
                        let total = model.total();
                        let got = e.failed(&real[i % n], &set, total, now);
                        prop_assert_eq!(got, model.failed(i % n, now), "{:?} at {}", op, now);
                        if let Some(Out::Ejected(_)) = got {
                            prop_assert!(set.count() <= model.cap(total), "past the cap");
                        }
                    }
                    Op::Succeed(i) => {
                        e.succeeded(&real[i % n]);
                        model.succeeded(i % n);
                    }
                    Op::Check(i) => {
                        let got = e.check(&real[i % n], &set, now);
                        prop_assert_eq!(got, model.check(i % n, now), "{:?} at {}", op, now);
                    }
                    Op::Remove(i) => {
                        e.removed(&real[i % n], &set);
                        model.removed(i % n);
                    }
                    Op::Add => {
                        real.push(Health::default());
                        model.endpoints.push(ModelEndpoint::default());
                    }
                    Op::Advance(dt) => now = now.saturating_add(dt),
                }
                prop_assert_eq!(set.count(), model.ejected(), "ejected count after {:?}", op);
                for (h, m) in real.iter().zip(&model.endpoints) {
                    prop_assert_eq!(h.consecutive_failures(), m.in_a_row);
                    prop_assert_eq!(h.is_out_at_all(), m.out.is_some());
                    prop_assert_eq!(h.out_for(now), m.out.map_or(0, |(_, end)| end.saturating_sub(now)));
                    prop_assert_eq!(h.ejections.load(Ordering::Relaxed), m.ejections);
                    prop_assert_eq!(h.marked_dead.load(Ordering::Relaxed), m.marked_dead);
                }
                // Panic mode as the set asks it, once every spell that has
                // run out has ended: fewer than panic_threshold of the set
                // healthy (not ejected; dead marks take no part).
                let total = model.total();
                let healthy = total - model.ejected().min(total);
                let panicking = total > 0 && (healthy as f64) < e.panic_threshold * total as f64;
                prop_assert_eq!(e.panicking(set.count(), total), panicking);
            }
        }
    }
}
