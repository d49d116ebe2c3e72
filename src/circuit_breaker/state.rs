//! The breaker's state machine: a plain, clock-driven value with no Service
//! in sight, so every transition can be tested on its own.
//!
//! Everything a call needs to be admitted lives in one atomic word:
//!
//! ```text
//!  bits 0..3    state tag (Closed, Open, HalfOpen, ForcedOpen, ...)
//!  bits 3..16   generation: +1 on every transition, so a call admitted in
//!               an earlier period cannot sway the current one
//!  bits 16..64  Open: the deadline (µs since the breaker was built)
//!               HalfOpen: probes admitted (16..32), probes succeeded (32..48)
//! ```
//!
//! A closed breaker admits a call with one load. Transitions are single
//! compare-and-swaps on the word, so exactly one thread performs each one,
//! announces it, and resets what it resets. No lock is ever taken.

use super::config::{CircuitBreakerOptions, Listener, Window, WindowKind};
use super::events::{State, StateChange, TransitionReason};
use super::live::{LiveOptions, LiveSettings};
use super::telemetry::Telemetry;
use crate::config::Layers;
use crate::internal::clock::{Clock, Micros};
use crate::internal::notify;
use crate::internal::stride;
use crate::internal::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::window::{Category, CountWindow, Counts, LatencySnapshot, Record, TimeWindow};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// The start of a call that is not timed.
pub(crate) const UNTIMED: Micros = Micros::MAX;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED_OPEN: u64 = 3;
const FORCED_CLOSED: u64 = 4;
const DISABLED: u64 = 5;
const METRICS_ONLY: u64 = 6;

const TAG_MASK: u64 = 0b111;
const GEN_SHIFT: u32 = 3;
const GEN_MASK: u64 = (1 << 13) - 1;
const PAYLOAD_SHIFT: u32 = 16;
const MAX_DEADLINE: Micros = (1 << 48) - 1;
const ADMITTED_ONE: u64 = 1 << 16;
const SUCCEEDED_SHIFT: u32 = 32;
const SUCCEEDED_ONE: u64 = 1 << SUCCEEDED_SHIFT;
const COUNT_MASK: u64 = 0xFFFF;

fn tag(w: u64) -> u64 {
    w & TAG_MASK
}
fn generation(w: u64) -> u16 {
    ((w >> GEN_SHIFT) & GEN_MASK) as u16
}
fn deadline(w: u64) -> Micros {
    w >> PAYLOAD_SHIFT
}
fn admitted(w: u64) -> u32 {
    ((w >> PAYLOAD_SHIFT) & COUNT_MASK) as u32
}
fn succeeded(w: u64) -> u32 {
    ((w >> SUCCEEDED_SHIFT) & COUNT_MASK) as u32
}
/// The word for `tag` in the generation after `w`'s.
fn next_word(w: u64, tag: u64, payload: u64) -> u64 {
    let generation = (u64::from(generation(w)) + 1) & GEN_MASK;
    tag | generation << GEN_SHIFT | payload << PAYLOAD_SHIFT
}

fn state_of(w: u64) -> State {
    match tag(w) {
        CLOSED => State::Closed,
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        FORCED_OPEN => State::ForcedOpen,
        FORCED_CLOSED => State::ForcedClosed,
        DISABLED => State::Disabled,
        _ => State::MetricsOnly,
    }
}

fn tag_of(state: State) -> u64 {
    match state {
        State::Closed => CLOSED,
        State::Open => OPEN,
        State::HalfOpen => HALF_OPEN,
        State::ForcedOpen => FORCED_OPEN,
        State::ForcedClosed => FORCED_CLOSED,
        State::Disabled => DISABLED,
        State::MetricsOnly => METRICS_ONLY,
    }
}

/// Validated options, times in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) window: WindowKind,
    pub(crate) min_calls: u64,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call: Option<(Micros, f64)>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) open_for: Micros,
    pub(crate) open_for_max: Option<Micros>,
    pub(crate) open_for_jitter: f64,
    pub(crate) probes: u32,
    pub(crate) probe_timeout: Micros,
}

/// What a call was admitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Counted in the windows; may trip the breaker if `generation` is current.
    Counted { generation: u16 },
    /// A half-open probe: its outcome closes or re-opens the breaker.
    Probe { generation: u16 },
    /// Disabled breaker: nothing is measured.
    Uncounted,
}

/// Keeps a value on its own cache line, away from fields written often.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

/// One circuit breaker, shared by every service built from its layer.
pub(crate) struct Breaker {
    /// Read by every call; written only on transitions and by probes.
    word: Padded<AtomicU64>,
    /// Failures in a row (Closed); zeroed by a success.
    consecutive: Padded<AtomicU32>,
    /// Set while the window holds fewer than `min_calls` calls and some of
    /// them failed or were slow: then a success, by bringing the window to
    /// `min_calls`, can trip the breaker and must be evaluated too.
    armed: AtomicBool,
    /// The last window bucket whose start was evaluated (time windows):
    /// old buckets dropping out can raise a rate without any new failure.
    evaluated_bucket: AtomicU64,
    /// `stride − 1`: a call is timed when a random draw has none of these
    /// bits set, one call in `stride` (see [`Breaker::times_next_call`]).
    stride_mask: AtomicU64,
    /// The last rolling-window bucket whose start set `stride_mask`.
    strided_bucket: AtomicU64,
    /// Every call is timed, whatever the traffic: set for a command's
    /// breaker (see [`time_every_call`](Breaker::time_every_call)).
    every_call_timed: AtomicBool,
    /// Opens since the breaker last closed: the exponent of `open_for` growth.
    trips: AtomicU32,
    /// When the current half-open period gives up on its probes.
    probe_deadline: AtomicU64,
    /// MetricsOnly: whether "would open" has been logged for the current run.
    would_open: AtomicBool,
    /// The state a handle forced by hand (`CLOSED`: none), until a reset:
    /// where the breaker goes back to when the switch properties go off.
    forced_by_hand: AtomicU64,
    /// When a call last came (µs), for a keyed layer's least-recently-used
    /// bound; written only by keyed layers.
    last_used: AtomicU64,
    name: Arc<str>,
    /// As built: the window's shape, which never changes.
    settings: Settings,
    /// The options in force, read by calls.
    live: LiveSettings,
    /// What live configuration says, taken only to change options. None
    /// for a keyed layer's breakers, whose options are the layer's, as
    /// built: a key's breaker costs no more for live configuration than
    /// the atomics it reads.
    layers: Option<Box<Layers<LiveOptions>>>,
    clock: Clock,
    /// Rolling counts and latencies for rates (time window) and dashboards.
    stats: TimeWindow,
    /// The last N calls, when the rates are computed over a count window.
    decisions: Option<CountWindow>,
    telemetry: Telemetry,
    listeners: Box<[Listener]>,
    /// Woken on every transition: a service whose call was admitted but
    /// waits on a layer beneath (a bulkhead's queue) learns of a force, a
    /// reset or a trip while it waits.
    changed: Arc<Notify>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("options", &self.options())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub(crate) fn new(name: Arc<str>, settings: Settings, listeners: Box<[Listener]>) -> Self {
        let built = LiveOptions::built(CircuitBreakerOptions::from_settings(&settings));
        let mut breaker = Self::build(name, settings, listeners, TimeWindow::new);
        breaker.layers = Some(Box::new(Layers::new(built)));
        breaker
    }

    /// A breaker of which there are very many (one per key), on a
    /// [lean](TimeWindow::lean) window: [`new`](Self::new)'s spread over
    /// threads and latency histograms would take about 16 KB a key.
    pub(crate) fn for_key(name: Arc<str>, settings: Settings, listeners: Box<[Listener]>) -> Self {
        Self::build(name, settings, listeners, TimeWindow::lean)
    }

    fn build(
        name: Arc<str>,
        settings: Settings,
        listeners: Box<[Listener]>,
        window: fn(Micros, usize, Micros) -> TimeWindow,
    ) -> Self {
        let clock = Clock::new();
        let (bucket_len, buckets) = match settings.window {
            WindowKind::Time { length, buckets } => (
                crate::internal::clock::micros(length) / u64::from(buckets),
                buckets as usize,
            ),
            // Dashboards still get Hystrix's rolling 10 s of counts.
            WindowKind::Count { .. } => (1_000_000, 10),
        };
        let decisions = match settings.window {
            WindowKind::Count { calls } => Some(CountWindow::new(calls as usize)),
            WindowKind::Time { .. } => None,
        };
        Breaker {
            word: Padded(AtomicU64::new(CLOSED)),
            consecutive: Padded(AtomicU32::new(0)),
            armed: AtomicBool::new(false),
            evaluated_bucket: AtomicU64::new(0),
            stride_mask: AtomicU64::new(0),
            strided_bucket: AtomicU64::new(0),
            every_call_timed: AtomicBool::new(false),
            trips: AtomicU32::new(0),
            probe_deadline: AtomicU64::new(0),
            would_open: AtomicBool::new(false),
            forced_by_hand: AtomicU64::new(CLOSED),
            last_used: AtomicU64::new(0),
            telemetry: Telemetry::new(&name),
            name,
            stats: window(bucket_len, buckets, clock.now()),
            decisions,
            live: LiveSettings::new(&settings),
            layers: None,
            settings,
            clock,
            listeners,
            changed: Arc::new(Notify::new()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn now(&self) -> Micros {
        self.clock.now()
    }

    /// The clock this breaker reads.
    #[inline]
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Notes a call at `now` (µs on this breaker's clock), for a keyed
    /// layer's bound: a plain store, of a time the call read anyway.
    #[inline]
    pub(crate) fn touch(&self, now: Micros) {
        self.last_used.store(now, Ordering::Relaxed);
    }

    /// When a call last came, as noted by [`touch`](Self::touch).
    pub(crate) fn last_used(&self) -> Micros {
        self.last_used.load(Ordering::Relaxed)
    }

    // ===== admission =====

    /// `poll_ready`'s decision, which never reads the clock to reject:
    /// admits a closed breaker's call (or a disabled one's, uncounted),
    /// takes a free half-open probe place, and otherwise says no without
    /// the time. An open breaker whose open time has run out says no here
    /// too: the service's `call` decides such a call again with
    /// [`acquire`](Self::acquire), at the call's own time, in the one clock
    /// read that also dates the rejection (rule (c) of
    /// `tests/circuit_breaker_model.rs`).
    #[inline]
    pub(crate) fn admit(&self) -> Option<Permit> {
        let w = self.word.0.load(Ordering::Acquire);
        match tag(w) {
            CLOSED | FORCED_CLOSED | METRICS_ONLY => Some(Permit::Counted {
                generation: generation(w),
            }),
            DISABLED => Some(Permit::Uncounted),
            HALF_OPEN if admitted(w) < self.live.probes() => self.acquire().ok(),
            _ => None,
        }
    }

    /// The time of a call's rejection (µs on this breaker's clock) when the
    /// breaker is open and its open time has not run out: the one decision
    /// an open breaker makes for nearly every call, inlined into the
    /// caller. `None` for anything else, which [`acquire`](Self::acquire)
    /// decides.
    #[inline]
    pub(crate) fn still_open(&self) -> Option<Micros> {
        let w = self.word.0.load(Ordering::Acquire);
        if tag(w) != OPEN {
            return None;
        }
        let now = self.clock.now();
        (now < deadline(w)).then_some(now)
    }

    /// Admits a call, or rejects it with the time of the rejection when
    /// the decision read it (a forced-open breaker decides without the
    /// time). An open breaker whose open time has passed turns half-open
    /// here, admitting this call as its first probe.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Permit, Option<Micros>> {
        let mut w = self.word.0.load(Ordering::Acquire);
        loop {
            let (next, permit) = match tag(w) {
                CLOSED | FORCED_CLOSED | METRICS_ONLY => {
                    return Ok(Permit::Counted {
                        generation: generation(w),
                    })
                }
                DISABLED => return Ok(Permit::Uncounted),
                FORCED_OPEN => return Err(None),
                OPEN => {
                    let now = self.clock.now();
                    if now < deadline(w) {
                        return Err(Some(now));
                    }
                    self.start_probe_clock(now);
                    let next = next_word(w, HALF_OPEN, 0) + ADMITTED_ONE;
                    (
                        next,
                        Permit::Probe {
                            generation: generation(next),
                        },
                    )
                }
                _ => {
                    if admitted(w) >= self.live.probes() {
                        // Every probe place is taken: give up on probes that
                        // have run past the probe timeout.
                        let now = self.clock.now();
                        if now >= self.probe_deadline.load(Ordering::Relaxed) {
                            let _ = self.open(w, TransitionReason::ProbeTimedOut, now);
                        }
                        return Err(Some(now));
                    }
                    if admitted(w) == 0 {
                        // The first probe of a half-open period entered by a
                        // reader (see `current_word`) starts the probe clock.
                        self.start_probe_clock(self.clock.now());
                    }
                    (
                        w + ADMITTED_ONE,
                        Permit::Probe {
                            generation: generation(w),
                        },
                    )
                }
            };
            match self
                .word
                .0
                .compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if tag(w) == OPEN {
                        self.announce(w, next, TransitionReason::OpenElapsed, None);
                    }
                    return Ok(permit);
                }
                Err(current) => w = current,
            }
        }
    }

    /// Written before the swap that admits the first probe: racing threads
    /// write almost the same value, and none reads it until a probe is in.
    fn start_probe_clock(&self, now: Micros) {
        self.probe_deadline.store(
            now.saturating_add(self.live.probe_timeout()),
            Ordering::Relaxed,
        );
    }

    /// The state word as a call would meet it: an open breaker whose open
    /// time has passed is moved to half-open (no probe admitted yet), so
    /// that whoever reads the state to decide (a handle, an availability
    /// filter, a gauge, the dashboard) sees what a call would meet, even
    /// when no call comes.
    fn current_word(&self) -> u64 {
        let mut w = self.word.0.load(Ordering::Acquire);
        while tag(w) == OPEN && self.clock.now() >= deadline(w) {
            let next = next_word(w, HALF_OPEN, 0);
            match self.swap(w, next) {
                Ok(()) => {
                    self.announce(w, next, TransitionReason::OpenElapsed, None);
                    return next;
                }
                Err(current) => w = current,
            }
        }
        w
    }

    /// Whether a call made now would be let through: closed (in any of its
    /// forms), or half-open with a probe place free. Takes no place.
    pub(crate) fn is_call_permitted(&self) -> bool {
        let w = self.current_word();
        match tag(w) {
            OPEN | FORCED_OPEN => false,
            HALF_OPEN => admitted(w) < self.live.probes(),
            _ => true,
        }
    }

    /// A future that completes at the next transition.
    pub(crate) fn changed(&self) -> OwnedNotified {
        self.changed.clone().notified_owned()
    }

    /// Gives back a probe place that was taken but never used (the service
    /// holding it was dropped before its call).
    pub(crate) fn release(&self, permit: Permit) {
        let Permit::Probe { generation: g } = permit else {
            return;
        };
        let mut w = self.word.0.load(Ordering::Acquire);
        while tag(w) == HALF_OPEN && generation(w) == g && admitted(w) > 0 {
            match self.swap(w, w - ADMITTED_ONE) {
                Ok(()) => return,
                Err(current) => w = current,
            }
        }
    }

    /// Whether a permit taken earlier still belongs to the current period.
    #[inline]
    pub(crate) fn is_current(&self, permit: Permit) -> bool {
        let w = self.word.0.load(Ordering::Acquire);
        match permit {
            Permit::Counted { generation: g } | Permit::Probe { generation: g } => {
                generation(w) == g
            }
            Permit::Uncounted => tag(w) == DISABLED,
        }
    }

    /// Counts a call rejected at `now` without reaching the dependency.
    /// Recorded at its time, moving the window forward first: a
    /// short-circuit after a quiet gap longer than the window would
    /// otherwise land in a bucket that has already rolled out.
    #[inline]
    pub(crate) fn reject(&self, now: Micros) {
        self.stats.record(now, Record::short_circuit());
        self.telemetry.short_circuit(&self.name);
    }

    // ===== timing =====

    /// Whether the call starting now is timed: every call while the last
    /// full bucket of the rolling window held about
    /// [`TIMED_PER_WINDOW`](stride::TIMED_PER_WINDOW) calls or fewer, or
    /// while the slow-call rule is on (it judges each call); above that,
    /// one call in up to [`MAX_STRIDE`](stride::MAX_STRIDE), drawn at
    /// random so the choice is unbiased. A call not timed reads the clock once,
    /// not twice: one read of the time-stamp counter costs a closed call
    /// about a quarter of its time. As Hystrix's rolling percentile, which
    /// keeps 100 latencies a bucket (`metrics.rollingPercentile.bucketSize`).
    #[inline]
    pub(crate) fn times_next_call(&self) -> bool {
        let mask = self.stride_mask.load(Ordering::Relaxed);
        // The draw's high bits: xorshift64*'s low ones are its weakest.
        mask == 0
            || self.live.slow_call_bound().is_some()
            || (crate::internal::rng::next_u64() >> 32) & mask == 0
    }

    /// Times every call from now on, whatever the traffic: for a command's
    /// breaker, whose fallback's windows take the dependency's time of each
    /// call that failed (a sampled breaker would hand them none), and whose
    /// timeout beneath reads the clock at each call's start anyway, so that
    /// timing it costs nothing more.
    #[cfg_attr(not(feature = "command"), allow(dead_code))]
    pub(crate) fn time_every_call(&self) {
        self.every_call_timed.store(true, Ordering::Relaxed);
        self.stride_mask.store(0, Ordering::Relaxed);
    }

    /// Sets the stride at the start of a rolling-window bucket, from the
    /// calls in the window's last full bucket.
    #[cold]
    fn set_stride(&self) {
        let mut calls = self.stats.last_bucket_calls();
        // A count window of N calls (the one `latencies` reads) holds
        // about 100 timed ones too, or all of them when N is under 200.
        if let Some(decisions) = &self.decisions {
            calls = calls.min(decisions.size() as u64);
        }
        if self.every_call_timed.load(Ordering::Relaxed) {
            calls = 0;
        }
        self.stride_mask.store(
            stride::mask(calls, stride::TIMED_PER_WINDOW),
            Ordering::Relaxed,
        );
    }

    // ===== outcomes =====

    /// Records the end of an admitted call started at `started` ([`UNTIMED`]
    /// for a call not timed); returns its latency when it was timed and
    /// went into the windows (not for a call from an earlier period).
    pub(crate) fn complete(
        &self,
        permit: Permit,
        category: Category,
        started: Micros,
    ) -> Option<Micros> {
        let now = self.clock.now();
        let record = if started == UNTIMED {
            Record::tally(category)
        } else {
            let latency = now.saturating_sub(started);
            let slow = self
                .live
                .slow_call_bound()
                .is_some_and(|bound| latency >= bound);
            Record::call(category, slow, latency)
        };
        self.telemetry.call(&record);
        // A call admitted in an earlier period (before a trip, a close, a
        // force or a reset), probes included, is reported, but stays out of
        // the windows the current period decides on.
        if let Permit::Counted { generation: g } | Permit::Probe { generation: g } = permit {
            if generation(self.word.0.load(Ordering::Acquire)) != g {
                return None;
            }
        }
        let bucket = self.stats.record(now, record);
        if first_in(&self.strided_bucket, bucket) {
            self.set_stride();
        }
        if let Some(decisions) = &self.decisions {
            decisions.record(record);
        }
        match permit {
            Permit::Counted { generation } => self.after_call(generation, record, bucket, now),
            Permit::Probe { generation } => self.after_probe(generation, record, now),
            Permit::Uncounted => {}
        }
        record.latency
    }

    /// The response future of an admitted call was dropped before it ended.
    /// A probe counts as failed (see [`TransitionReason::ProbeAbandoned`]);
    /// any other call counts for nothing.
    pub(crate) fn abandon(&self, permit: Permit) {
        if let Permit::Probe { generation: g } = permit {
            let mut w = self.word.0.load(Ordering::Acquire);
            while tag(w) == HALF_OPEN && generation(w) == g {
                match self.open(w, TransitionReason::ProbeAbandoned, self.clock.now()) {
                    Ok(()) => return,
                    Err(current) => w = current,
                }
            }
        }
    }

    fn after_call(&self, g: u16, record: Record, bucket: u64, now: Micros) {
        let w = self.word.0.load(Ordering::Acquire);
        if generation(w) != g || !matches!(tag(w), CLOSED | METRICS_ONLY) {
            return;
        }
        let mut evaluate = record.slow || self.armed.load(Ordering::Relaxed);
        match record.category {
            Category::Success => {
                // Read first: a breaker that sees no failures never writes here.
                if self.consecutive.0.load(Ordering::Relaxed) != 0 {
                    self.consecutive.0.store(0, Ordering::Relaxed);
                }
            }
            Category::Ignored | Category::ShortCircuited => {}
            Category::Failure | Category::Timeout | Category::Rejected => {
                self.consecutive.0.fetch_add(1, Ordering::Relaxed);
                evaluate = true;
            }
        }
        if self.decisions.is_none() && first_in(&self.evaluated_bucket, bucket) {
            evaluate = true;
        }
        if evaluate {
            self.evaluate(w, now);
        }
    }

    fn after_probe(&self, g: u16, record: Record, now: Micros) {
        // `slow` is only ever set when the slow-call rule is on.
        let failed = is_failed(record.category) || record.slow;
        let mut w = self.word.0.load(Ordering::Acquire);
        while tag(w) == HALF_OPEN && generation(w) == g {
            let done = if record.category == Category::Ignored {
                // Not a verdict: give the place to another call.
                self.swap(w, w - ADMITTED_ONE)
            } else if failed {
                self.open(w, TransitionReason::ProbeFailed, now)
            } else if succeeded(w) + 1 >= self.live.probes() {
                self.close(w, TransitionReason::ProbesSucceeded, now)
            } else {
                self.swap(w, w + SUCCEEDED_ONE)
            };
            match done {
                Ok(()) => return,
                Err(current) => w = current,
            }
        }
    }

    /// Applies the trip rules to the window as it is at `now`.
    fn evaluate(&self, w: u64, now: Micros) {
        let counts = self.counts_at(now);
        self.telemetry.rates(&counts);
        let s = &self.live;
        let min_calls = s.min_calls();
        let calls = counts.calls();
        let mut reason = None;
        if let Some(limit) = s.consecutive_failures() {
            let count = self.consecutive.0.load(Ordering::Relaxed);
            if count >= limit {
                reason = Some(TransitionReason::ConsecutiveFailures { count });
            }
        }
        if calls >= min_calls {
            let failure_rate = counts.failure_rate();
            let slow_rate = counts.slow_call_rate();
            if reason.is_none() && s.failure_rate().is_some_and(|t| failure_rate >= t) {
                reason = Some(TransitionReason::FailureRate { rate: failure_rate });
            }
            if reason.is_none() && s.slow_call_rate().is_some_and(|t| slow_rate >= t) {
                reason = Some(TransitionReason::SlowCallRate { rate: slow_rate });
            }
        }
        self.armed.store(
            calls < min_calls && (counts.failed() > 0 || counts.slow > 0),
            Ordering::Relaxed,
        );
        let Some(reason) = reason else {
            self.would_open.store(false, Ordering::Relaxed);
            return;
        };
        if tag(w) == METRICS_ONLY {
            if !self.would_open.swap(true, Ordering::Relaxed) {
                self.telemetry.would_open(&self.name, reason);
            }
        } else {
            let _ = self.open(w, reason, now);
        }
    }

    // ===== transitions =====

    fn swap(&self, from: u64, to: u64) -> Result<(), u64> {
        self.word
            .0
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
    }

    fn open(&self, from: u64, reason: TransitionReason, now: Micros) -> Result<(), u64> {
        let open_for = self.open_duration(self.trips.load(Ordering::Relaxed));
        let until = now.saturating_add(open_for).min(MAX_DEADLINE);
        let to = next_word(from, OPEN, until);
        self.swap(from, to)?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.armed.store(false, Ordering::Relaxed);
        self.announce(from, to, reason, Some(Duration::from_micros(open_for)));
        Ok(())
    }

    fn close(&self, from: u64, reason: TransitionReason, now: Micros) -> Result<(), u64> {
        // Emptied before the new period is published, so that no call of the
        // new period is ever weighed against the old one's counts. Should the
        // swap fail, nothing is lost: half-open windows hold only probes.
        self.empty_windows(now);
        let to = next_word(from, CLOSED, 0);
        self.swap(from, to)?;
        self.trips.store(0, Ordering::Relaxed);
        self.announce(from, to, reason, None);
        Ok(())
    }

    /// Empties the windows and the running counts the trip rules read.
    fn empty_windows(&self, now: Micros) {
        self.stats.reset(now);
        if let Some(decisions) = &self.decisions {
            decisions.reset();
        }
        self.consecutive.0.store(0, Ordering::Relaxed);
        self.armed.store(false, Ordering::Relaxed);
        self.would_open.store(false, Ordering::Relaxed);
        // Empty windows: every call is timed until the next bucket says
        // otherwise.
        self.stride_mask.store(0, Ordering::Relaxed);
        self.evaluated_bucket
            .store(now / self.stats.bucket_len(), Ordering::Relaxed);
    }

    /// `open_for`, doubled per earlier trip up to `open_for_max`, then
    /// jittered (around the cap too, as resilience4j's randomized
    /// exponential backoff: cut at the cap, breakers at the cap would all
    /// probe at once).
    fn open_duration(&self, trips: u32) -> Micros {
        let s = &self.live;
        let mut d = s.open_for() as f64;
        if let Some(max) = s.open_for_max() {
            d = (d * 2f64.powi(trips.min(64) as i32)).min(max as f64);
        }
        let jitter = s.open_for_jitter();
        if jitter > 0.0 {
            d *= 1.0 + rand::random_range(-jitter..=jitter);
        }
        // At least 1 ms, even should a change race this read.
        d.clamp(1_000.0, MAX_DEADLINE as f64) as Micros
    }

    fn announce(&self, from: u64, to: u64, reason: TransitionReason, open_for: Option<Duration>) {
        self.changed.notify_waiters();
        // The gauge at once, whatever is told later: set from a queued
        // telling, it could overwrite a newer state set meanwhile.
        self.telemetry.set_state(state_of(to));
        let change = StateChange {
            name: self.name.clone(),
            from: state_of(from),
            to: state_of(to),
            reason,
            open_for,
        };
        if notify::holding() {
            // A change of options, under locks a listener or a `tracing`
            // subscriber may want: told once they are let go.
            let (telemetry, listeners) = (self.telemetry.clone(), self.listeners.clone());
            notify::later(move || tell(&telemetry, &listeners, &change));
        } else {
            tell(&self.telemetry, &self.listeners, &change);
        }
    }

    // ===== the handle's view =====

    pub(crate) fn state(&self) -> State {
        state_of(self.current_word())
    }

    /// Moves to `state` (any but Closed, Open and HalfOpen), by hand or
    /// by a property (`reason`).
    pub(crate) fn force(&self, state: State, reason: TransitionReason) {
        let tag = tag_of(state);
        let mut w = self.word.0.load(Ordering::Acquire);
        while self::tag(w) != tag {
            let to = next_word(w, tag, 0);
            match self.swap(w, to) {
                Ok(()) => {
                    self.announce(w, to, reason, None);
                    return;
                }
                Err(current) => w = current,
            }
        }
    }

    /// Moves to `state` by hand (a handle's `force_open`, ...), which the
    /// breaker goes back to when a switch property goes off, until a reset.
    pub(crate) fn force_by_hand(&self, state: State) {
        self.forced_by_hand.store(tag_of(state), Ordering::Relaxed);
        self.force(state, TransitionReason::Manual);
    }

    /// The state last forced by hand, if no reset came since.
    pub(crate) fn forced_by_hand(&self) -> Option<State> {
        let tag = self.forced_by_hand.load(Ordering::Relaxed);
        (tag != CLOSED).then(|| state_of(tag))
    }

    /// Forgets the state forced by hand (a reset).
    pub(crate) fn forget_forced_by_hand(&self) {
        self.forced_by_hand.store(CLOSED, Ordering::Relaxed);
    }

    /// Back to Closed with empty windows, whatever the state.
    pub(crate) fn reset(&self) {
        self.reset_to(State::Closed, TransitionReason::Manual);
    }

    /// To `state` (Closed, or a state a switch forces) with empty windows
    /// and the trip count at 0, whatever the state: one transition at
    /// most, none when already there.
    pub(crate) fn reset_to(&self, state: State, reason: TransitionReason) {
        let target = tag_of(state);
        self.empty_windows(self.clock.now());
        let mut w = self.word.0.load(Ordering::Acquire);
        loop {
            let to = next_word(w, target, 0);
            match self.swap(w, to) {
                Ok(()) => {
                    self.trips.store(0, Ordering::Relaxed);
                    if tag(w) != target {
                        self.announce(w, to, reason, None);
                    }
                    return;
                }
                Err(current) => w = current,
            }
        }
    }

    /// The counts the trip rules see now.
    pub(crate) fn counts(&self) -> Counts {
        self.counts_at(self.clock.now())
    }

    fn counts_at(&self, now: Micros) -> Counts {
        match &self.decisions {
            Some(decisions) => decisions.counts(),
            None => self.stats.counts(now),
        }
    }

    /// Hystrix-style rolling counts (the time window, short-circuits included).
    pub(crate) fn rolling_counts(&self) -> Counts {
        self.stats.counts(self.clock.now())
    }

    /// Latencies over the time window (Hystrix's rolling percentiles),
    /// whatever window the rates use.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn rolling_latencies(&self) -> LatencySnapshot {
        self.stats.latencies(self.clock.now())
    }

    /// The length of the time window [`rolling_counts`](Self::rolling_counts)
    /// covers.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn rolling_window(&self) -> Duration {
        match self.settings.window {
            WindowKind::Time { length, .. } => length,
            WindowKind::Count { .. } => Duration::from_secs(10),
        }
    }

    /// The clock and bucket layout of the time window, for windows that
    /// must line up with it (a command's fallback).
    #[cfg_attr(not(feature = "command"), allow(dead_code))]
    pub(crate) fn rolling_shape(&self) -> (Clock, Micros, usize) {
        (self.clock, self.stats.bucket_len(), self.stats.buckets())
    }

    /// The options in force now.
    pub(crate) fn options(&self) -> CircuitBreakerOptions {
        let s = &self.live;
        let duration = std::time::Duration::from_micros;
        CircuitBreakerOptions {
            window: Window(self.settings.window),
            min_calls: u32::try_from(s.min_calls()).unwrap_or(u32::MAX),
            failure_rate: s.failure_rate(),
            slow_call: s
                .slow_call_bound()
                .zip(s.slow_call_rate())
                .map(|(bound, rate)| (duration(bound), rate)),
            consecutive_failures: s.consecutive_failures(),
            open_for: duration(s.open_for()),
            open_for_max: s.open_for_max().map(duration),
            open_for_jitter: s.open_for_jitter(),
            probes: s.probes(),
            probe_timeout: duration(s.probe_timeout()),
        }
    }

    pub(crate) fn live(&self) -> &LiveSettings {
        &self.live
    }

    /// The layers of live configuration; None for a keyed layer's breakers.
    pub(crate) fn layers(&self) -> Option<&Layers<LiveOptions>> {
        self.layers.as_deref()
    }

    /// Latencies over the rates' window.
    pub(crate) fn latencies(&self) -> LatencySnapshot {
        match &self.decisions {
            Some(decisions) => decisions.latencies(),
            None => self.stats.latencies(self.clock.now()),
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive.0.load(Ordering::Relaxed)
    }

    /// How long until an open breaker lets a probe through.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let w = self.current_word();
        (tag(w) == OPEN)
            .then(|| Duration::from_micros(deadline(w).saturating_sub(self.clock.now())))
    }
}

/// Tells metrics, `tracing` and the listeners of one state change (the
/// state gauge is set at once, in `announce`).
fn tell(telemetry: &Telemetry, listeners: &[Listener], change: &StateChange) {
    let StateChange {
        name,
        from,
        to,
        reason,
        open_for,
    } = change;
    telemetry.transition(name, *from, *to, *reason, *open_for);
    for listener in listeners {
        listener(change);
    }
}

/// Whether this call is the first to see `bucket` start, of those that
/// note it in `mark` (the last bucket seen): one call per bucket does the
/// work a bucket's start asks for. A load first, so that calls within a
/// bucket write nothing.
#[inline]
fn first_in(mark: &AtomicU64, bucket: u64) -> bool {
    bucket > mark.load(Ordering::Relaxed) && mark.fetch_max(bucket, Ordering::Relaxed) < bucket
}

fn is_failed(category: Category) -> bool {
    matches!(
        category,
        Category::Failure | Category::Timeout | Category::Rejected
    )
}

/// Model-checked races on the state word (run with `--cfg rampart_loom`).
#[cfg(all(test, rampart_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn breaker(probes: u32, listener: Option<Listener>) -> Breaker {
        let settings = Settings {
            window: WindowKind::Count { calls: 4 },
            min_calls: 1,
            failure_rate: Some(0.5),
            slow_call: None,
            consecutive_failures: None,
            // An hour, so that the real clock, which runs on while loom
            // explores, never ends an open period a test asserts on.
            open_for: 3_600_000_000,
            open_for_max: None,
            open_for_jitter: 0.0,
            probes,
            probe_timeout: 3_600_000_000,
        };
        Breaker::new("loom".into(), settings, listener.into_iter().collect())
    }

    /// Open, with its open time already over.
    fn expired_open(b: &Breaker) {
        b.word.0.store(OPEN | 1 << GEN_SHIFT, Ordering::SeqCst);
    }

    #[test]
    fn exactly_one_caller_wins_the_only_probe_place() {
        loom::model(|| {
            let b = Arc::new(breaker(1, None));
            expired_open(&b);
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.acquire())
                })
                .collect();
            let probes = racers
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|p| matches!(p, Ok(Permit::Probe { .. })))
                .count();
            assert_eq!(probes, 1);
            assert_eq!(b.state(), State::HalfOpen);
        });
    }

    #[test]
    fn two_successful_probes_close_the_breaker_exactly_once() {
        loom::model(|| {
            let closes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let seen = closes.clone();
            let listener: Listener = std::sync::Arc::new(move |c: &StateChange| {
                if c.to == State::Closed {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
            let b = Arc::new(breaker(2, Some(listener)));
            expired_open(&b);
            let permits = [b.acquire().unwrap(), b.acquire().unwrap()];
            let probes: Vec<_> = permits
                .into_iter()
                .map(|permit| {
                    let b = b.clone();
                    thread::spawn(move || b.complete(permit, Category::Success, 0))
                })
                .collect();
            for p in probes {
                p.join().unwrap();
            }
            assert_eq!(b.state(), State::Closed);
            assert_eq!(closes.load(std::sync::atomic::Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_failed_probe_racing_a_successful_one_leaves_the_breaker_open() {
        loom::model(|| {
            let b = Arc::new(breaker(2, None));
            expired_open(&b);
            let ok = b.acquire().unwrap();
            let failed = b.acquire().unwrap();
            let t1 = {
                let b = b.clone();
                thread::spawn(move || b.complete(ok, Category::Success, 0))
            };
            let t2 = {
                let b = b.clone();
                thread::spawn(move || b.complete(failed, Category::Failure, 0))
            };
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(b.state(), State::Open, "one failed probe re-opens it");
        });
    }

    // ===== half-open probe places racing each other and the handle =====

    /// A listener that logs the state each transition goes to.
    fn counting() -> (Listener, std::sync::Arc<std::sync::Mutex<Vec<State>>>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let listener: Listener = std::sync::Arc::new(move |c: &StateChange| {
            log.lock().unwrap().push(c.to);
        });
        (listener, seen)
    }

    /// The breaker is not wedged half-open: it has left half-open, or a
    /// new call would get a probe place.
    fn not_wedged(b: &Breaker) -> bool {
        let w = b.word.0.load(Ordering::SeqCst);
        tag(w) != HALF_OPEN || admitted(w) < b.live.probes()
    }

    fn spawn<T: 'static>(
        b: &Arc<Breaker>,
        f: impl FnOnce(&Breaker) -> T + 'static,
    ) -> thread::JoinHandle<T> {
        let b = b.clone();
        thread::spawn(move || f(&b))
    }

    #[test]
    fn loom_probes_admitted_never_exceed_probes() {
        // Three threads: bounded, or the exploration runs for many minutes.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let b = Arc::new(breaker(2, None));
            expired_open(&b);
            let racers: Vec<_> = (0..3).map(|_| spawn(&b, |b| b.acquire())).collect();
            let probes = racers
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|p| matches!(p, Ok(Permit::Probe { .. })))
                .count();
            assert_eq!(probes, 2, "two places, three callers: two probes");
            let w = b.word.0.load(Ordering::SeqCst);
            assert_eq!((tag(w), admitted(w)), (HALF_OPEN, 2));
        });
    }

    #[test]
    fn loom_a_released_place_goes_to_the_next_caller_only() {
        loom::model(|| {
            let b = Arc::new(breaker(1, None));
            expired_open(&b);
            let held = b.acquire().unwrap();
            let releaser = spawn(&b, move |b| b.release(held));
            let caller = spawn(&b, |b| b.acquire());
            releaser.join().unwrap();
            let got = caller.join().unwrap();
            let w = b.word.0.load(Ordering::SeqCst);
            match got {
                // Only once the place was given back.
                Ok(Permit::Probe { .. }) => assert_eq!(admitted(w), 1),
                _ => {
                    assert_eq!(admitted(w), 0, "the released place is free again");
                    assert!(matches!(b.acquire(), Ok(Permit::Probe { .. })));
                }
            }
            assert_eq!(tag(w), HALF_OPEN);
        });
    }

    #[test]
    fn loom_an_abandoned_probe_re_opens_once_whatever_races_it() {
        loom::model(|| {
            let (listener, seen) = counting();
            let b = Arc::new(breaker(2, Some(listener)));
            expired_open(&b);
            let (dropped, failed) = (b.acquire().unwrap(), b.acquire().unwrap());
            let t1 = spawn(&b, move |b| b.abandon(dropped));
            let t2 = spawn(&b, move |b| {
                b.complete(failed, Category::Failure, 0);
            });
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(b.state(), State::Open);
            let seen = seen.lock().unwrap();
            let opens = seen.iter().filter(|&&s| s == State::Open).count();
            assert_eq!(opens, 1, "one period, one trip: {seen:?}");
        });
    }

    #[test]
    fn loom_an_abandoned_probe_beats_a_successful_one() {
        loom::model(|| {
            let b = Arc::new(breaker(2, None));
            expired_open(&b);
            let (dropped, ok) = (b.acquire().unwrap(), b.acquire().unwrap());
            let t1 = spawn(&b, move |b| b.abandon(dropped));
            let t2 = spawn(&b, move |b| {
                b.complete(ok, Category::Success, 0);
            });
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(b.state(), State::Open, "a dropped probe counts as failed");
        });
    }

    #[test]
    fn loom_probes_given_back_or_ignored_never_wedge_half_open() {
        loom::model(|| {
            let b = Arc::new(breaker(2, None));
            expired_open(&b);
            let (p1, p2, p3) = (b.acquire().unwrap(), b.acquire().unwrap(), b.acquire());
            assert!(p3.is_err(), "both places taken");
            let t1 = spawn(&b, move |b| {
                b.complete(p1, Category::Ignored, 0);
            });
            let t2 = spawn(&b, move |b| b.release(p2));
            let t3 = spawn(&b, |b| b.acquire());
            t1.join().unwrap();
            t2.join().unwrap();
            let p3 = t3.join().unwrap();
            assert!(not_wedged(&b), "a new call finds a place");
            // Every probe in flight succeeding closes the breaker.
            let mut probes: Vec<Permit> = p3.into_iter().collect();
            while let Ok(p) = b.acquire() {
                probes.push(p);
            }
            assert_eq!(probes.len(), 2);
            for p in probes {
                b.complete(p, Category::Success, 0);
            }
            assert_eq!(b.state(), State::Closed);
        });
    }

    #[test]
    fn loom_a_force_wins_over_a_racing_probe() {
        loom::model(|| {
            let b = Arc::new(breaker(1, None));
            expired_open(&b);
            let probe = b.acquire().unwrap();
            let t1 = spawn(&b, move |b| {
                b.complete(probe, Category::Success, 0);
            });
            let t2 = spawn(&b, |b| b.force(State::ForcedOpen, TransitionReason::Manual));
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(b.state(), State::ForcedOpen);
            assert!(!b.is_current(probe), "the force began a new period");
        });
    }

    #[test]
    fn loom_a_reset_wins_over_a_racing_failed_or_dropped_probe() {
        for abandon in [false, true] {
            loom::model(move || {
                let b = Arc::new(breaker(1, None));
                expired_open(&b);
                let probe = b.acquire().unwrap();
                let t1 = spawn(&b, move |b| {
                    if abandon {
                        b.abandon(probe);
                    } else {
                        b.complete(probe, Category::Failure, 0);
                    }
                });
                let t2 = spawn(&b, |b| b.reset());
                t1.join().unwrap();
                t2.join().unwrap();
                assert_eq!(b.state(), State::Closed, "a late probe never re-opens");
            });
        }
    }

    #[test]
    fn loom_a_probe_admitted_before_a_reset_is_stale_after_it() {
        loom::model(|| {
            let b = Arc::new(breaker(1, None));
            expired_open(&b);
            let caller = spawn(&b, |b| b.acquire());
            let t2 = spawn(&b, |b| b.reset());
            t2.join().unwrap();
            let permit = caller.join().unwrap().unwrap();
            // Admitted before the reset, it is a probe of the period the
            // reset ended; after, a call of the new closed period, whose
            // failure (1 of 1 calls, min_calls 1) trips the breaker.
            let probe = matches!(permit, Permit::Probe { .. });
            b.complete(permit, Category::Failure, 0);
            if probe {
                assert_eq!(b.state(), State::Closed, "a stale probe counts for nothing");
            } else {
                assert_eq!(b.state(), State::Open, "a counted failure at rate 1 trips");
            }
        });
    }
}
