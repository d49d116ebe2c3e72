//! The endpoint set: an immutable snapshot swapped atomically when
//! discovery changes it, so selection never takes a lock.

use super::ejection::{Check, Ejected, Ejection, LiveEjection, Out};
use super::endpoint::{Ended, EndpointState};
use super::rule::{two_choices, Candidates, Chooser, View};
use super::service::LAYER;
use super::source::{Change, Source};
use crate::internal::clock::{Clock, Micros};
use crate::metrics::{event_counter, TARGET_BALANCE};
use arc_swap::ArcSwap;
use metrics::Counter;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::Context;

pub(crate) type Snapshot<K, S> = Vec<Arc<EndpointState<K, S>>>;

pub(crate) struct EndpointSet<K, S> {
    pub(crate) name: Arc<str>,
    snapshot: ArcSwap<Snapshot<K, S>>,
    source: Mutex<Box<dyn Source<K, S>>>,
    /// A fixed list, once loaded: nothing more to poll.
    settled: AtomicBool,
    pub(crate) ejected: Ejected,
    pub(crate) ejection: LiveEjection,
    next_id: AtomicU64,
    pub(crate) clock: Clock,
    /// The time of a recent completion, for decaying latency estimates
    /// without reading the clock on every selection.
    recent: AtomicU64,
    initial_latency: f64,
    decay: Micros,
    marked_dead: Counter,
}

/// Endpoint ids this call has tried (and seen fail).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tried {
    ids: smallvec_lite::SmallIds,
}

mod smallvec_lite {
    /// Up to four ids inline; more spill to the heap (a call retried on
    /// more than four endpoints is rare and already slow).
    #[derive(Debug, Default, Clone)]
    pub(crate) struct SmallIds {
        inline: [u64; 4],
        len: usize,
        spill: Vec<u64>,
    }

    impl SmallIds {
        pub(crate) fn push(&mut self, id: u64) {
            if self.len < 4 {
                self.inline[self.len] = id;
                self.len += 1;
            } else {
                self.spill.push(id);
            }
        }

        pub(crate) fn contains(&self, id: u64) -> bool {
            self.inline[..self.len].contains(&id) || self.spill.contains(&id)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.len == 0
        }
    }
}

impl Tried {
    pub(crate) fn push(&mut self, id: u64) {
        self.ids.push(id);
    }

    #[inline]
    fn contains(&self, id: u64) -> bool {
        !self.ids.is_empty() && self.ids.contains(id)
    }
}

impl<K, S> EndpointSet<K, S>
where
    K: PartialEq + fmt::Debug,
{
    pub(crate) fn new(
        name: Arc<str>,
        source: Box<dyn Source<K, S>>,
        ejection: Ejection,
        initial_latency: Micros,
        decay: Micros,
    ) -> Self {
        EndpointSet {
            name: name.clone(),
            snapshot: ArcSwap::from_pointee(Vec::new()),
            source: Mutex::new(source),
            settled: AtomicBool::new(false),
            ejected: Ejected::default(),
            ejection: LiveEjection::new(ejection),
            next_id: AtomicU64::new(1),
            clock: Clock::new(),
            recent: AtomicU64::new(0),
            initial_latency: initial_latency as f64,
            decay,
            marked_dead: event_counter(LAYER, &name, "marked_dead"),
        }
    }

    /// Applies whatever discovery has delivered since last time.
    pub(crate) fn refresh(&self, cx: &mut Context<'_>) {
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        // One caller at a time polls the source; the others go on with the
        // current snapshot. A source that panicked (user code: a `Discover`
        // stream, a feed's `make`) poisoned the lock but left itself
        // consistent: polling it again is safe, and refusing to would stop
        // discovery for good.
        let mut source = match self.source.try_lock() {
            Ok(source) => source,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let mut changes = Vec::new();
        source.poll_changes(cx, &self.name, &mut changes);
        if source.is_fixed() {
            self.settled.store(true, Ordering::Release);
        }
        drop(source);
        if !changes.is_empty() {
            self.apply(changes);
        }
    }

    fn apply(&self, changes: Vec<Change<K, S>>) {
        let now = self.clock.now();
        let mut next: Snapshot<K, S> = (**self.snapshot.load()).clone();
        for change in changes {
            match change {
                Change::Insert(endpoint) => {
                    if let Some(old) = next.iter().position(|e| e.key == endpoint.key) {
                        let old = next.remove(old);
                        super::ejection::removed(&old.health, &self.ejected);
                    }
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    next.push(Arc::new(EndpointState::new(
                        id,
                        endpoint,
                        &self.name,
                        self.initial_latency,
                        self.decay,
                        now,
                    )));
                }
                Change::Remove(key) => {
                    if let Some(old) = next.iter().position(|e| e.key == key) {
                        // Calls in flight hold their own pointer and finish.
                        let old = next.remove(old);
                        super::ejection::removed(&old.health, &self.ejected);
                    }
                }
            }
        }
        tracing::debug!(
            target: TARGET_BALANCE,
            layer = LAYER,
            name = &*self.name,
            event = "endpoints_changed",
            endpoints = next.len(),
            "endpoint set changed"
        );
        self.snapshot.store(Arc::new(next));
    }
}

impl<K, S> EndpointSet<K, S> {
    pub(crate) fn snapshot(&self) -> Arc<Snapshot<K, S>> {
        self.snapshot.load_full()
    }

    pub(crate) fn len(&self) -> usize {
        self.snapshot.load().len()
    }

    /// Whether endpoint `e` is in, ejected or marked dead at `now` (ending
    /// its spell out if its time is up: `Check::Returned` is never
    /// returned).
    pub(crate) fn status(&self, e: &EndpointState<K, S>, now: Micros) -> Check {
        match super::ejection::check(&e.health, &self.ejected, now) {
            Check::Returned => {
                tracing::info!(
                    target: TARGET_BALANCE,
                    layer = LAYER,
                    name = &*self.name,
                    event = "unejected",
                    endpoint = e.label.as_str(),
                    "endpoint back from ejection, on probation"
                );
                self.returned(e, now);
                Check::In
            }
            out => out,
        }
    }

    /// Whether endpoint `e` is out (ejected or marked dead) at `now`.
    pub(crate) fn is_out(&self, e: &EndpointState<K, S>, now: Micros) -> bool {
        self.status(e, now) != Check::In
    }

    /// Records how an attempt on `e` ended at `now`, after `rtt` µs if it
    /// was sent: its counts and load estimate, and its health (a failure
    /// may eject it or mark it dead).
    pub(crate) fn ended(
        &self,
        e: &EndpointState<K, S>,
        ended: Ended,
        now: Micros,
        rtt: Option<u64>,
    ) {
        e.record(ended, now, rtt);
        if rtt.is_some() {
            self.note_time(now);
        }
        if ended == Ended::Success {
            super::ejection::succeeded(&e.health);
            return;
        }
        if !ended.is_failure() {
            return;
        }
        match self
            .ejection
            .get()
            .failed(&e.health, &self.ejected, self.len(), now)
        {
            Some(Out::Ejected(out_for)) => {
                e.ejections_counter.increment(1);
                tracing::warn!(
                    target: TARGET_BALANCE,
                    layer = LAYER,
                    name = &*self.name,
                    event = "ejected",
                    endpoint = e.label.as_str(),
                    ejected_for_ms = out_for / 1_000,
                    "endpoint ejected"
                );
            }
            Some(Out::MarkedDead(out_for)) => {
                self.marked_dead.increment(1);
                tracing::warn!(
                    target: TARGET_BALANCE,
                    layer = LAYER,
                    name = &*self.name,
                    event = "marked_dead",
                    endpoint = e.label.as_str(),
                    marked_dead_for_ms = out_for / 1_000,
                    "endpoint marked dead (the ejection cap is reached)"
                );
            }
            None => {}
        }
    }

    /// An endpoint back from ejection starts level with the others: the
    /// mean of their latency estimates now (the initial estimate if it is
    /// alone). Its own old estimate has decayed toward zero while nobody
    /// called it and would draw every call to it at once; the initial
    /// estimate, above the others' decayed ones, would draw none.
    fn returned(&self, e: &EndpointState<K, S>, now: Micros) {
        let snapshot = self.snapshot.load();
        let (sum, n) = snapshot
            .iter()
            .filter(|other| other.id != e.id)
            .fold((0.0, 0u32), |(sum, n), other| {
                (sum + other.latency.estimate(now), n + 1)
            });
        let level = if n == 0 {
            self.initial_latency
        } else {
            sum / f64::from(n)
        };
        e.latency.reset(level, now);
    }

    /// Notes that a response completed at `now`, for latency decay.
    pub(crate) fn note_time(&self, now: Micros) {
        // Written at most once per millisecond: a shared line stays shared.
        if now >= self.recent.load(Ordering::Relaxed) + 1_000 {
            self.recent.store(now, Ordering::Relaxed);
        }
    }

    /// Chooses an endpoint for an attempt, never one in `tried` while
    /// another will do, and never an ejected or marked-dead one unless
    /// nothing else will (ejected ones are let in too in panic mode).
    pub(crate) fn pick(
        &self,
        rule: Chooser<'_>,
        tried: &Tried,
    ) -> Option<Arc<EndpointState<K, S>>> {
        self.pick_among(rule, tried, true)
    }

    /// As [`pick`](Self::pick), but never an endpoint in `tried`: for a
    /// hedge, which goes to another instance or nowhere.
    pub(crate) fn pick_other(
        &self,
        rule: Chooser<'_>,
        tried: &Tried,
    ) -> Option<Arc<EndpointState<K, S>>> {
        self.pick_among(rule, tried, false)
    }

    fn pick_among(
        &self,
        rule: Chooser<'_>,
        tried: &Tried,
        or_tried: bool,
    ) -> Option<Arc<EndpointState<K, S>>> {
        let snapshot = self.snapshot.load();
        if snapshot.is_empty() {
            return None;
        }
        let mut view = SetView {
            set: self,
            endpoints: &snapshot,
            tried: Some(tried),
            respect_ejection: !self.panicking(&snapshot),
            respect_dead: true,
            now: Cell::new(None),
            recent: self.recent.load(Ordering::Relaxed),
        };
        // A rule is user code: an index out of range counts as no choice.
        let choose = |view: &SetView<'_, K, S>| {
            match rule {
                Chooser::TwoChoices => two_choices(
                    view.len(),
                    |i| view.eligible(i),
                    |i| view.in_flight(i),
                    |i| view.latency(i),
                ),
                Chooser::Rule(rule) => rule.choose(&Candidates::new(view)),
            }
            .and_then(|i| snapshot.get(i).cloned())
        };
        if let Some(endpoint) = choose(&view) {
            return Some(endpoint);
        }
        // Every endpoint is out or tried: first let those out in, then
        // tried ones, rather than fail a call that has somewhere to go.
        view.respect_ejection = false;
        view.respect_dead = false;
        if let Some(endpoint) = choose(&view) {
            return Some(endpoint);
        }
        if !or_tried {
            return None;
        }
        view.tried = None;
        choose(&view)
    }

    /// Envoy's panic mode: too few healthy endpoints to honour ejections.
    fn panicking(&self, snapshot: &Snapshot<K, S>) -> bool {
        let ejected = self.ejected.count();
        if ejected == 0 {
            return false;
        }
        let total = snapshot.len();
        if !self.ejection.panicking(ejected, total) {
            return false;
        }
        // The count may include ejections that have run out but that no
        // selection has looked at yet: end those, then count again.
        let now = self.clock.now();
        for e in snapshot.iter() {
            self.status(e, now);
        }
        self.ejection.panicking(self.ejected.count(), total)
    }
}

struct SetView<'a, K, S> {
    set: &'a EndpointSet<K, S>,
    endpoints: &'a Snapshot<K, S>,
    tried: Option<&'a Tried>,
    /// Pass over ejected endpoints (not in panic mode).
    respect_ejection: bool,
    /// Pass over endpoints marked dead (whatever the panic threshold).
    respect_dead: bool,
    /// Read from the clock only if an ejected endpoint is looked at.
    now: Cell<Option<Micros>>,
    recent: Micros,
}

impl<K, S> SetView<'_, K, S> {
    /// [`eligible`](View::eligible) for an endpoint that is out (ejected
    /// or marked dead), or was until its spell ran out: rare, so out of
    /// the pick's line. The time is read only here.
    #[cold]
    #[inline(never)]
    fn eligible_while_out(&self, e: &EndpointState<K, S>) -> bool {
        if !(self.respect_ejection || self.respect_dead) {
            return true;
        }
        match self.set.status(e, self.now()) {
            Check::Ejected => !self.respect_ejection,
            Check::MarkedDead => !self.respect_dead,
            Check::In | Check::Returned => true,
        }
    }

    fn now(&self) -> Micros {
        self.now.get().unwrap_or_else(|| {
            let now = self.set.clock.now();
            self.now.set(Some(now));
            now
        })
    }
}

impl<K, S> View for SetView<'_, K, S> {
    fn len(&self) -> usize {
        self.endpoints.len()
    }

    #[inline]
    fn eligible(&self, i: usize) -> bool {
        let e = &self.endpoints[i];
        if self.tried.is_some_and(|t| t.contains(e.id)) {
            return false;
        }
        !e.health.is_out_at_all() || self.eligible_while_out(e)
    }

    #[inline]
    fn in_flight(&self, i: usize) -> usize {
        self.endpoints[i].in_flight.load(Ordering::Relaxed)
    }

    #[inline]
    fn latency(&self, i: usize) -> f64 {
        self.endpoints[i].latency.estimate(self.recent)
    }

    fn zone(&self, i: usize) -> Option<&str> {
        self.endpoints[i].zone.as_deref()
    }

    fn rejecting(&self, i: usize) -> bool {
        self.endpoints[i]
            .breaker
            .as_ref()
            .is_some_and(|b| !b.is_call_permitted())
    }
}
