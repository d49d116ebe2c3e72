//! One publisher, many subscribers: each frame is produced and serialised
//! once and shared by every subscriber.
//!
//! The publisher is a task that runs only while somebody subscribes: it
//! produces a frame every interval (the shortest delay any subscriber
//! asked for) and replaces the previous one in a `watch` channel. A
//! subscriber's body takes the newest frame when its own delay has passed,
//! so a slow subscriber skips frames instead of queueing them: what it
//! holds is one shared frame and hyper's bounded write buffer. One that
//! takes nothing for longer than the slow-subscriber bound is dropped,
//! freeing its place.

use super::service::{
    DEFAULT_DELAY, DEFAULT_MAX_SUBSCRIBERS, DEFAULT_SLOW_SUBSCRIBER_TIMEOUT, MAX_DELAY, MIN_DELAY,
};
use crate::error::Validator;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Produces the next frame: every event of one interval, already encoded.
pub(crate) type Produce = Box<dyn FnMut() -> Bytes + Send>;

/// How subscribers are served: the options the stream's and the
/// turbine's builders share, checked the same way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The interval for subscribers that do not pass `?delay=`.
    pub(crate) delay: Duration,
    pub(crate) max_subscribers: usize,
    pub(crate) slow_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            delay: DEFAULT_DELAY,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            slow_after: DEFAULT_SLOW_SUBSCRIBER_TIMEOUT,
        }
    }
}

impl Limits {
    pub(crate) fn check(&self, v: &mut Validator) {
        v.check(
            (MIN_DELAY..=MAX_DELAY).contains(&self.delay),
            "delay",
            || format!("must be from 100 ms to 10 min, got {:?}", self.delay),
        );
        v.check(
            (1..=10_000).contains(&self.max_subscribers),
            "max_subscribers",
            || format!("must be from 1 to 10000, got {}", self.max_subscribers),
        );
        v.check(
            (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.slow_after),
            "slow_subscriber_timeout",
            || format!("must be from 1 s to 1 h, got {:?}", self.slow_after),
        );
    }
}

pub(crate) struct Hub {
    produce: Mutex<Produce>,
    frames: watch::Sender<Bytes>,
    limits: Limits,
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    publishing: bool,
    subscribers: Vec<Arc<Subscriber>>,
}

/// One subscriber, as the publisher sees it.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) delay: Duration,
    /// When its body last took a frame or a ping (µs since the hub's epoch).
    last_taken: AtomicU64,
    /// Set by the body when dropped, or by the publisher when it was too
    /// slow; either way its place is free.
    gone: AtomicBool,
}

impl Subscriber {
    pub(crate) fn took(&self, hub: &Hub) {
        self.last_taken.store(hub.elapsed(), Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }
}

/// The subscriber limit was reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Full(pub(crate) usize);

impl Hub {
    pub(crate) fn new(produce: Produce, limits: Limits) -> Arc<Self> {
        Arc::new(Hub {
            produce: Mutex::new(produce),
            frames: watch::Sender::new(Bytes::new()),
            limits,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    fn elapsed(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for a subscriber with this delay, starting the
    /// publisher if it is not running.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        delay: Duration,
    ) -> Result<(Arc<Subscriber>, watch::Receiver<Bytes>), Full> {
        let mut state = self.state();
        state.subscribers.retain(|s| !s.is_gone());
        if state.subscribers.len() >= self.limits.max_subscribers {
            return Err(Full(self.limits.max_subscribers));
        }
        let subscriber = Arc::new(Subscriber {
            delay,
            last_taken: AtomicU64::new(self.elapsed()),
            gone: AtomicBool::new(false),
        });
        state.subscribers.push(subscriber.clone());
        let frames = self.frames.subscribe();
        if !state.publishing {
            state.publishing = true;
            tokio::spawn(publish(self.clone()));
        }
        Ok((subscriber, frames))
    }

    /// Drops the subscribers that left or fell behind; the shortest delay
    /// of those left, or `None` (and the publisher stops) when none are.
    fn next_interval(&self) -> Option<Duration> {
        let now = self.elapsed();
        let mut state = self.state();
        state.subscribers.retain(|s| {
            let idle = now.saturating_sub(s.last_taken.load(Ordering::Relaxed));
            let slow = idle > (s.delay + self.limits.slow_after).as_micros() as u64;
            if slow {
                // Its body ends at its next poll; its place is free now.
                s.leave();
            }
            !s.is_gone()
        });
        let interval = state.subscribers.iter().map(|s| s.delay).min();
        if interval.is_none() {
            state.publishing = false;
        }
        interval
    }
}

async fn publish(hub: Arc<Hub>) {
    while let Some(interval) = hub.next_interval() {
        // A snapshot of a thousand commands takes milliseconds: off the
        // async workers, so it never holds up the service's own tasks.
        let producing = hub.clone();
        let frame = tokio::task::spawn_blocking(move || {
            let mut produce = producing
                .produce
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            produce()
        })
        .await;
        match frame {
            Ok(frame) => {
                hub.frames.send_replace(frame);
            }
            // A panic in a snapshot is a bug; subscribers get the next
            // interval's frame instead of this one.
            Err(e) => tracing::error!(error = %e, "hystrix stream: taking a snapshot failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
