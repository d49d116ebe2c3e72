//! What a change tells others (a breaker's `on_state_change` listeners,
//! `tracing` events and metrics) is told once the locks the change was
//! made under are let go.
//!
//! A change of options (through the registry, a source or a handle) is
//! made under the registry's lock and the component's own, and a
//! `force_open` switch changes a breaker's state in it. A listener or a
//! `tracing` subscriber that reached the registry or changed options again
//! from there would wait for a lock its own thread holds. So while a
//! thread runs inside [`outside_locks`], what is to be told is queued, and
//! told in order once the outermost `outside_locks` has let its locks go,
//! before it returns. What a queued telling changes in turn (a listener's
//! own change of options, or a call it makes that trips a breaker) is
//! queued behind it, so everyone hears one thread's changes in the order
//! they were made; such a nested change returns before it is told. Calls
//! never take these locks: a call's state change, made anywhere else,
//! tells at once, at the cost of one thread-local read.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// One queued telling.
type Queued = Box<dyn FnOnce()>;

thread_local! {
    /// `Some` while this thread runs [`outside_locks`]: its closure, then
    /// the tellings it queued (and those they queue in turn).
    static QUEUED: RefCell<Option<VecDeque<Queued>>> = const { RefCell::new(None) };
}

/// Runs `f`, which takes locks others may want, then tells what `f`
/// queued, in order, after `f` returns (its locks dropped). Within another
/// `outside_locks` on this thread, `f` just runs: the outermost tells.
///
/// Every queued telling is told once, even if `f` or a telling panics;
/// then the first panic (`f`'s first) goes on.
pub(crate) fn outside_locks<R>(f: impl FnOnce() -> R) -> R {
    let outermost = QUEUED.with(|q| {
        let mut q = q.borrow_mut();
        q.is_none() && {
            *q = Some(VecDeque::new());
            true
        }
    });
    if !outermost {
        return f();
    }
    /// Stops queueing, however this ends.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            QUEUED.with(|q| q.borrow_mut().take());
        }
    }
    let stop = Stop;
    let result = catch_unwind(AssertUnwindSafe(f));
    let mut first_panic = None;
    // Queueing stays on while telling: a telling that changes something
    // queues behind the rest, and is told in this loop.
    while let Some(tell) = QUEUED.with(|q| q.borrow_mut().as_mut().and_then(VecDeque::pop_front)) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(tell)) {
            first_panic.get_or_insert(payload);
        }
    }
    drop(stop);
    match (result, first_panic) {
        (Err(payload), _) | (Ok(_), Some(payload)) => resume_unwind(payload),
        (Ok(result), None) => result,
    }
}

/// Whether this thread is inside [`outside_locks`]: what it tells must
/// go through [`later`].
#[inline]
pub(crate) fn holding() -> bool {
    // `try_with`: a breaker changing state from a thread-local's
    // destructor is told at once.
    QUEUED.try_with(|q| q.borrow().is_some()).unwrap_or(false)
}

/// Tells `tell` once this thread lets go of the locks an
/// [`outside_locks`] covers, or at once outside one.
pub(crate) fn later(tell: impl FnOnce() + 'static) {
    let mut tell = Some(tell);
    let _ = QUEUED.try_with(|q| {
        if let Some(queue) = q.borrow_mut().as_mut() {
            let tell = tell.take().expect("taken once");
            queue.push_back(Box::new(tell));
        }
    });
    if let Some(tell) = tell {
        tell();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<String>>>;

    fn say(log: &Log, what: impl Into<String>) -> impl FnOnce() + 'static {
        let (log, what) = (log.clone(), what.into());
        move || log.lock().unwrap().push(what)
    }

    fn said(log: &Log) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    #[test]
    fn told_at_once_outside_and_in_order_after_the_outermost() {
        let log = Log::default();
        assert!(!holding());
        later(say(&log, "1"));
        assert_eq!(said(&log), ["1"]);

        let returned = outside_locks(|| {
            assert!(holding());
            later(say(&log, "2"));
            outside_locks(|| later(say(&log, "3")));
            assert_eq!(said(&log), ["1"], "nothing told under the locks");
            "f's result"
        });
        assert_eq!(returned, "f's result");
        assert_eq!(said(&log), ["1", "2", "3"]);
        assert!(!holding());
    }

    #[test]
    fn what_a_telling_changes_is_told_after_what_was_queued_before_it() {
        let log = Log::default();
        outside_locks(|| {
            // The first telling makes a change of its own (in an
            // `outside_locks` of its own, as a registry change would).
            let inner = log.clone();
            later(move || {
                inner.lock().unwrap().push("a".into());
                outside_locks(|| later(say(&inner, "c")));
            });
            later(say(&log, "b"));
        });
        assert_eq!(said(&log), ["a", "b", "c"]);
    }

    #[test]
    fn every_telling_is_told_though_one_panics_and_then_the_panic_goes_on() {
        let log = Log::default();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            outside_locks(|| {
                later(|| panic!("a listener's bug"));
                later(say(&log, "after the panic"));
            })
        }));
        let payload = unwound.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"a listener's bug"));
        assert_eq!(said(&log), ["after the panic"]);
        assert!(!holding());
    }

    #[test]
    fn what_a_panicking_closure_queued_is_told_and_its_panic_goes_on() {
        let log = Log::default();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            outside_locks(|| {
                later(say(&log, "queued before the panic"));
                panic!("inside");
            })
        }));
        assert_eq!(unwound.unwrap_err().downcast_ref::<&str>(), Some(&"inside"));
        assert_eq!(said(&log), ["queued before the panic"]);
        later(say(&log, "at once again"));
        assert_eq!(said(&log), ["queued before the panic", "at once again"]);
    }
}
