//! A lock-free counting semaphore, for bulkheads and the fallback cap.
//!
//! tokio's `Semaphore` takes a mutex on every release; rampart's call path
//! may not take a lock, so slots are counted with atomics, and a `Notify` is
//! only touched when somebody is actually waiting for a slot.

use super::sync::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// One waiter, in the upper half of [`Slots::word`]; the slots held are the
/// lower half.
const ONE_WAITING: u64 = 1 << 32;
const HELD: u64 = ONE_WAITING - 1;

#[derive(Debug)]
pub(crate) struct Slots {
    /// Can change while slots are held ([`set_max`](Slots::set_max)).
    max: AtomicUsize,
    /// `max`, capped so that the slots held never spill into the waiters'
    /// half (a cap of more than 2^32 - 1 calls at once is no cap anyway).
    limit: AtomicU64,
    /// Slots held (bits 0..32) and callers waiting for one (bits 32..64),
    /// in one word.
    ///
    /// Two counters would race: a release that frees a slot and then reads
    /// "nobody waits", against a waiter that joins and then reads "no slot
    /// free", could each miss the other's write (each reads before its own
    /// write is visible to the other thread), and the waiter would sleep
    /// until its deadline beside a free slot. In one word, the release and
    /// the joining are read-modify-writes of the same value: whichever
    /// comes second sees the first, so either the release sees the waiter
    /// and wakes it, or the waiter's re-check sees the free slot.
    word: AtomicU64,
    /// The most slots held at once since the last [`take_peak`]
    /// (Hystrix's rolling max concurrency, read by the stream).
    ///
    /// [`take_peak`]: Slots::take_peak
    peak: AtomicUsize,
    freed: Arc<Notify>,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Slots {
            max: AtomicUsize::new(max),
            limit: AtomicU64::new((max as u64).min(HELD)),
            word: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
            freed: Arc::new(Notify::new()),
        }
    }

    /// Takes a slot if one is free.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        self.acquire_from(self.word.load(Ordering::Relaxed))
    }

    /// [`try_acquire`](Self::try_acquire) for a waiter looking (again) for
    /// a slot. It starts from a read-modify-write, which reads the latest
    /// value: every slot freed before it is seen, whether or not the
    /// wake-up that brought the waiter here ordered the release before it
    /// (a plain load could return an older value, and the waiter go back
    /// to sleep beside a free slot). Waiters are rare: the extra write
    /// costs the call path nothing.
    pub(crate) fn try_acquire_waiting(&self) -> bool {
        self.acquire_from(self.word.fetch_add(0, Ordering::Acquire))
    }

    #[inline]
    fn acquire_from(&self, mut current: u64) -> bool {
        loop {
            if current & HELD >= self.limit.load(Ordering::Relaxed) {
                return false;
            }
            // Acquire pairs with `take_peak`'s read of the word: a slot
            // taken after a take sees the peak that take restarted.
            match self.word.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let held = ((current & HELD) + 1) as usize;
                    // A load of a line the CAS above just owned; the
                    // write happens only when a new peak is reached.
                    if held > self.peak.load(Ordering::Relaxed) {
                        self.peak.fetch_max(held, Ordering::Relaxed);
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
        // Reset first, then read the slots held with a read-modify-write
        // (it reads the latest value, and releases the reset to every slot
        // taken after it). A slot taken before that read is counted in the
        // restart; one taken after sees the reset peak and raises it
        // itself. Read the other way round, a slot taken between the read
        // and the reset could find the old peak high enough to skip its
        // update, and the reset would then wipe it out.
        let peak = self.peak.swap(0, Ordering::Relaxed);
        let held = (self.word.fetch_add(0, Ordering::Release) & HELD) as usize;
        self.peak.fetch_max(held, Ordering::Relaxed);
        peak
    }

    /// Gives a slot back, waking one waiter if there is any.
    #[inline]
    pub(crate) fn release(&self) {
        // Who waits is read in the same step that frees the slot. A slot
        // guards no memory of its own: the one word's coherence is all
        // the protocol needs (and the `Notify` orders its wake-up).
        let before = self.word.fetch_sub(1, Ordering::Relaxed);
        if before >= ONE_WAITING {
            self.freed.notify_one();
        }
    }

    /// Joins the waiters if fewer than `max_waiting` wait already.
    pub(crate) fn start_waiting(&self, max_waiting: usize) -> bool {
        let max_waiting = (max_waiting as u64).min(HELD);
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            if current / ONE_WAITING >= max_waiting {
                return false;
            }
            match self.word.compare_exchange_weak(
                current,
                current + ONE_WAITING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    pub(crate) fn stop_waiting(&self) {
        self.word.fetch_sub(ONE_WAITING, Ordering::Relaxed);
    }

    /// A future that completes when a slot may have been freed.
    pub(crate) fn freed(&self) -> OwnedNotified {
        self.freed.clone().notified_owned()
    }

    pub(crate) fn in_flight(&self) -> usize {
        (self.word.load(Ordering::Relaxed) & HELD) as usize
    }

    pub(crate) fn waiting(&self) -> usize {
        (self.word.load(Ordering::Relaxed) / ONE_WAITING) as usize
    }

    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes how many slots may be held at once, from the next
    /// acquisition on. Slots held beyond a lowered max stay held until
    /// released (no call is cut off); a raised max wakes every waiter to
    /// look again.
    #[cfg_attr(not(feature = "bulkhead"), allow(dead_code))]
    pub(crate) fn set_max(&self, max: usize) {
        let raised = max > self.max.swap(max, Ordering::Relaxed);
        self.limit.store((max as u64).min(HELD), Ordering::Relaxed);
        if raised {
            self.freed.notify_waiters();
        }
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

/// Model-checked races on the slots (run with `--cfg rampart_loom`).
///
/// The waits run tokio's real `Notify` (it needs no runtime); only its
/// wake-up goes through loom, by a waker that parks a loom thread, so a
/// waiter nobody wakes is reported by loom as a deadlock. The waker is
/// shared through a `std` `Arc`: tokio clones wakers while it holds the
/// `Notify`'s lock, and a loom `Arc` would let loom switch threads there.
#[cfg(all(test, rampart_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Wake, Waker};

    /// Wakes a thread parked in [`block_on`].
    struct Unpark(loom::sync::Notify);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.notify();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.notify();
        }
    }

    fn block_on<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
        let unpark = Arc::new(Unpark(loom::sync::Notify::new()));
        let waker = Waker::from(unpark.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(t) = poll(&mut cx) {
                return t;
            }
            unpark.0.wait();
        }
    }

    /// A slot as `Bulkhead::poll_ready` takes one (src/bulkhead/service.rs):
    /// at once if free, else among the waiters (if fewer than `max_waiting`
    /// wait), registering for the wake-up before each re-check. Only the
    /// wake-up's own ordering is invisible to loom (tokio's atomics are
    /// not loom's): the re-check must not rely on it. The
    /// bounded wait's deadline is not modelled as a timer: with
    /// `gives_up`, it fires the first time the waiter would sleep (the
    /// worst moment: a wake-up may be on its way to it); without, the
    /// waiter waits for good, so a lost wake-up is a deadlock.
    fn take_slot(slots: &Slots, max_waiting: usize, gives_up: bool) -> bool {
        /// The service's `Wait`: leaves the waiters when dropped, before
        /// its `Notified` goes (which passes on a wake-up it was given).
        struct Wait<'a> {
            slots: &'a Slots,
            freed: Pin<Box<OwnedNotified>>,
        }
        impl Drop for Wait<'_> {
            fn drop(&mut self) {
                // Not while loom unwinds a failed execution: a loom
                // operation then would abort the test run.
                if !std::thread::panicking() {
                    self.slots.stop_waiting();
                }
            }
        }
        let mut wait: Option<Wait<'_>> = None;
        block_on(|cx| loop {
            match &mut wait {
                None => {
                    if slots.try_acquire() {
                        return Poll::Ready(true);
                    }
                    if !slots.start_waiting(max_waiting) {
                        return Poll::Ready(false);
                    }
                    wait = Some(Wait {
                        slots,
                        freed: Box::pin(slots.freed()),
                    });
                }
                Some(w) => {
                    w.freed.as_mut().enable();
                    if slots.try_acquire_waiting() {
                        wait = None;
                        return Poll::Ready(true);
                    }
                    if w.freed.as_mut().poll(cx).is_ready() {
                        w.freed.set(slots.freed());
                        continue;
                    }
                    if gives_up {
                        wait = None;
                        return Poll::Ready(false);
                    }
                    return Poll::Pending;
                }
            }
        })
    }

    #[test]
    fn loom_a_release_wakes_the_waiter() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            assert!(slots.try_acquire());
            let waiter = {
                let slots = slots.clone();
                thread::spawn(move || take_slot(&slots, 1, false))
            };
            let releaser = {
                let slots = slots.clone();
                thread::spawn(move || slots.release())
            };
            releaser.join().unwrap();
            assert!(waiter.join().unwrap(), "the waiter waits for good");
            assert_eq!((slots.in_flight(), slots.waiting()), (1, 0));
        });
    }

    #[test]
    fn loom_a_waiter_giving_up_passes_its_wake_up_on() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let slots = Arc::new(Slots::new(1));
            assert!(slots.try_acquire());
            // Gives up the first time it would sleep; a slot it gets
            // nonetheless it gives straight back.
            let impatient = {
                let slots = slots.clone();
                thread::spawn(move || {
                    if take_slot(&slots, 2, true) {
                        slots.release();
                    }
                })
            };
            let patient = {
                let slots = slots.clone();
                thread::spawn(move || take_slot(&slots, 2, false))
            };
            slots.release();
            impatient.join().unwrap();
            assert!(patient.join().unwrap());
            assert_eq!((slots.in_flight(), slots.waiting()), (1, 0));
        });
    }

    #[test]
    fn loom_slots_are_never_over_admitted_lost_or_duplicated() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            // Bookkeeping outside the model: loom runs one thread at a
            // time, so a std atomic is exact here.
            let holders = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (slots, holders) = (slots.clone(), holders.clone());
                    thread::spawn(move || {
                        let got = slots.try_acquire();
                        if got {
                            let seq = std::sync::atomic::Ordering::SeqCst;
                            assert_eq!(holders.fetch_add(1, seq), 0, "a slot held twice");
                            assert!(slots.in_flight() <= slots.max());
                            holders.fetch_sub(1, seq);
                            slots.release();
                        }
                        got
                    })
                })
                .collect();
            let got = racers
                .into_iter()
                .filter_map(|t| t.join().unwrap().then_some(()))
                .count();
            assert!(got >= 1, "one of two callers always gets the free slot");
            assert_eq!(slots.in_flight(), 0, "every slot given back");
            assert!(slots.try_acquire(), "no slot lost");
            assert!(!slots.try_acquire(), "no slot made up");
            assert!(slots.take_peak() <= 1);
        });
    }

    #[test]
    fn loom_a_slot_held_across_take_peak_shows_in_the_next_peak() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(2));
            // An earlier peak of 1, still to be taken.
            assert!(slots.try_acquire());
            slots.release();
            let holder = {
                let slots = slots.clone();
                thread::spawn(move || assert!(slots.try_acquire()))
            };
            let first = slots.take_peak();
            holder.join().unwrap();
            assert!(first <= 2);
            assert_eq!(slots.in_flight(), 1);
            assert_eq!(
                slots.take_peak(),
                1,
                "the slot held since the last take is this interval's peak"
            );
        });
    }
}
