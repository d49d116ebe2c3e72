//! A lock-free counting semaphore, for bulkheads and the fallback cap.
//!
//! tokio's `Semaphore` takes a mutex on every release; rampart's call path
//! may not take a lock, so slots are counted with atomics, and a `Notify` is
//! only touched when somebody is actually waiting for a slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    in_flight: AtomicUsize,
    /// The most slots held at once since the last [`take_peak`]
    /// (Hystrix's rolling max concurrency, read by the stream).
    ///
    /// [`take_peak`]: Slots::take_peak
    peak: AtomicUsize,
    waiting: AtomicUsize,
    freed: Arc<Notify>,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Slots {
            max,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Arc::new(Notify::new()),
        }
    }

    /// Takes a slot if one is free.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return false;
            }
            // SeqCst pairs with `release`: a waiter that re-checks after
            // registering either sees the freed slot or is notified.
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // A load of a line the CAS above just owned; the
                    // write happens only when a new peak is reached.
                    if current + 1 > self.peak.load(Ordering::Relaxed) {
                        self.peak.fetch_max(current + 1, Ordering::Relaxed);
                    }
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    /// The most slots held at once since the last call, restarting from
    /// the number held now. One reader (the stream's snapshot) takes it;
    /// two would split the peaks between them.
    pub(crate) fn take_peak(&self) -> usize {
        self.peak
            .swap(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed)
    }

    /// Gives a slot back, waking one waiter if there is any.
    #[inline]
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// Joins the waiters if fewer than `max_waiting` wait already.
    pub(crate) fn start_waiting(&self, max_waiting: usize) -> bool {
        let mut current = self.waiting.load(Ordering::Relaxed);
        loop {
            if current >= max_waiting {
                return false;
            }
            match self.waiting.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    pub(crate) fn stop_waiting(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// A future that completes when a slot may have been freed.
    pub(crate) fn freed(&self) -> OwnedNotified {
        self.freed.clone().notified_owned()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_admits_more_than_max_under_contention() {
        let slots = Arc::new(Slots::new(3));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (slots, peak) = (slots.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if slots.try_acquire() {
                            peak.fetch_max(slots.in_flight(), Ordering::Relaxed);
                            slots.release();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::Relaxed) <= 3);
        assert_eq!(slots.in_flight(), 0);
    }
}
