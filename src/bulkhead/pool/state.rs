//! The pool: its own runtime, its admission count, and its statistics.

use super::future::{Job, Ticket, ACTIVE, GONE, QUEUED};
use crate::config::{parse_usize, Configurable, Kind, Layer, Layers};
use crate::error::ConfigError;
use crate::internal::clock::Clock;
use crate::metrics::{
    debug_enabled, event_counter, named_gauge, POOL_ACTIVE, POOL_QUEUED, TARGET_POOL,
};
use crate::window::RollingMax;
use metrics::{Counter, Gauge};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

const LAYER: &str = "pool";

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    /// Taken out and shut down in the background on drop: a runtime may not
    /// be dropped (blocking) from async code.
    runtime: Option<Runtime>,
    pub(crate) size: usize,
    /// Places in the queue (Hystrix's `queueSizeRejectionThreshold`): can
    /// change live.
    queue: AtomicUsize,
    layers: Layers<usize>,
    running: Arc<Semaphore>,
    pub(crate) stats: Arc<Stats>,
}

/// What the pool did; updated by the pool's threads.
#[derive(Debug)]
pub(crate) struct Stats {
    clock: Clock,
    /// Jobs admitted and not yet finished: active + queued.
    admitted: AtomicUsize,
    pub(crate) active: AtomicUsize,
    pub(crate) queued: AtomicUsize,
    pub(crate) completed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    max_active: RollingMax,
    active_gauge: Gauge,
    queued_gauge: Gauge,
    rejected_counter: Counter,
}

impl Stats {
    pub(crate) fn rolling_max_active(&self) -> u32 {
        self.max_active.max(self.clock.now())
    }

    /// Gives back a place that was `QUEUED` or `ACTIVE`.
    pub(crate) fn release(&self, was: u8) {
        if was == ACTIVE {
            self.active.fetch_sub(1, Ordering::Relaxed);
            self.active_gauge.decrement(1.0);
        } else {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.queued_gauge.decrement(1.0);
        }
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    pub(crate) fn new(name: Arc<str>, size: usize, queue: usize, runtime: Runtime) -> Self {
        let stats = Stats {
            clock: Clock::new(),
            admitted: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            // Hystrix's rolling window: 10 s in 10 buckets.
            max_active: RollingMax::new(1_000_000, 10),
            active_gauge: named_gauge(POOL_ACTIVE, &name),
            queued_gauge: named_gauge(POOL_QUEUED, &name),
            rejected_counter: event_counter(LAYER, &name, "rejected"),
        };
        Shared {
            name,
            runtime: Some(runtime),
            size,
            queue: AtomicUsize::new(queue),
            layers: Layers::new(queue),
            running: Arc::new(Semaphore::new(size)),
            stats: Arc::new(stats),
        }
    }

    /// Places in the queue now.
    #[inline]
    pub(crate) fn queue(&self) -> usize {
        self.queue.load(Ordering::Relaxed)
    }

    /// Sets (or clears) what `layer` says of the queue.
    pub(crate) fn change(
        &self,
        layer: Layer,
        value: Option<&str>,
        dry: bool,
    ) -> Result<(), ConfigError> {
        let component = format!("pool {:?}", self.name);
        self.layers.change(
            &component,
            layer,
            &[("queue", value)],
            dry,
            |queue, _, text| {
                *queue = parse_usize(text)?;
                Ok(())
            },
            |queue| super::config::validate(&self.name, self.size, *queue),
            |old, new| {
                self.queue.store(*new, Ordering::Relaxed);
                if old != new {
                    changed(&self.name, layer, *old, *new);
                }
            },
        )
    }

    /// Takes a thread or a queue place for a job, if one is free. Decided
    /// before the request is handed to the dependency's service: many
    /// clients start their work inside `call`.
    pub(crate) fn admit(&self) -> Option<Place> {
        let limit = self.size + self.queue();
        let admitted = self
            .stats
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        if admitted.is_err() {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            self.stats.rejected_counter.increment(1);
            if debug_enabled() {
                rejected(&self.name);
            }
            return None;
        }
        let stats = &self.stats;
        stats.queued.fetch_add(1, Ordering::Relaxed);
        stats.queued_gauge.increment(1.0);
        // The job holds only the stats: were it to hold `Shared`, the last
        // reference could drop on a pool thread and shut the runtime down
        // from inside itself.
        Some(Place {
            stats: self.stats.clone(),
            ticket: Arc::default(),
        })
    }

    /// Runs `job` on the pool in the place [`admit`](Self::admit) gave;
    /// with the ticket its caller shares with it. The job's output is
    /// `None` if the caller gave its place up while it was queued.
    pub(crate) fn spawn<F>(
        &self,
        place: Place,
        job: F,
    ) -> (JoinHandle<Option<F::Output>>, Arc<Ticket>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let running = self.running.clone();
        let runtime = self.runtime.as_ref().expect("present until dropped");
        let ticket = place.ticket.clone();
        let job = Job::new(job, ticket.clone());
        let handle = runtime.spawn(async move {
            let _thread = running.acquire_owned().await.expect("never closed");
            if !place.start() {
                return None;
            }
            let output = job.await;
            place.stats.completed.fetch_add(1, Ordering::Relaxed);
            drop(place);
            Some(output)
        });
        (handle, ticket)
    }
}

#[cold]
fn changed(name: &str, layer: Layer, from: usize, to: usize) {
    crate::config::property_changed!(TARGET_POOL, LAYER, name, layer, "queue", from, to);
}

impl Configurable for Shared {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Pool
    }

    fn set(
        &self,
        layer: Layer,
        _property: &'static str,
        value: Option<&str>,
        dry: bool,
    ) -> Result<(), ConfigError> {
        self.change(layer, value, dry)
    }
}

#[cold]
#[inline(never)]
fn rejected(name: &str) {
    tracing::debug!(
        target: TARGET_POOL,
        layer = LAYER,
        name,
        event = "rejected",
        "call rejected: pool full"
    );
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("queue", &self.queue())
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A job's place in the pool: queued, then active; given back when the job
/// ends or is aborted (or, when the inner `call` panics, never started),
/// or by its caller while still queued (see [`Ticket`]).
pub(crate) struct Place {
    stats: Arc<Stats>,
    ticket: Arc<Ticket>,
}

impl Place {
    /// Queued to active, unless the caller gave the place up first.
    fn start(&self) -> bool {
        let place: &AtomicU8 = &self.ticket.place;
        if place
            .compare_exchange(QUEUED, ACTIVE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let stats = &self.stats;
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        stats.queued_gauge.decrement(1.0);
        let active = stats.active.fetch_add(1, Ordering::Relaxed) + 1;
        stats.active_gauge.increment(1.0);
        stats.max_active.record(stats.clock.now(), active as u32);
        true
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let was = self.ticket.place.swap(GONE, Ordering::AcqRel);
        if was != GONE {
            self.stats.release(was);
        }
    }
}
