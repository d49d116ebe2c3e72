//! Listeners told of a change once the locks it was made under are let go.
//!
//! A breaker's `on_state_change` listeners run where its state changes. A
//! change of options (through the registry, a source or a handle) is made
//! under the registry's lock and the component's own, and a `force_open`
//! switch changes the state in it: a listener that changed options again
//! from there would wait for a lock its own thread holds. So while a
//! thread holds those locks (inside [`outside_locks`]), what listeners are
//! told is queued, and told in order once the locks are let go. Calls
//! never take these locks: a call's state change tells its listeners at
//! once, at the cost of one thread-local read.

use std::cell::RefCell;
use std::sync::Arc;

/// One queued telling: its listeners and what they are told.
type Queued = Box<dyn FnOnce()>;

/// A listener of events of type `T`, as components keep them.
pub(crate) type Listener<T> = Arc<dyn Fn(&T) + Send + Sync>;

thread_local! {
    /// `Some` while this thread runs [`outside_locks`]'s closure.
    static QUEUED: RefCell<Option<Vec<Queued>>> = const { RefCell::new(None) };
}

/// Runs `f`, which takes locks listeners may want, and tells listeners
/// what `f` queued after it returns (its locks dropped). Within another
/// `outside_locks` on this thread, the outermost one tells them. If `f`
/// panics, what it queued is dropped untold.
pub(crate) fn outside_locks<R>(f: impl FnOnce() -> R) -> R {
    let outermost = QUEUED.with(|q| {
        let mut q = q.borrow_mut();
        q.is_none() && {
            *q = Some(Vec::new());
            true
        }
    });
    if !outermost {
        return f();
    }
    /// Stops queueing even if `f` unwinds.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            QUEUED.with(|q| q.borrow_mut().take());
        }
    }
    let stop = Stop;
    let result = f();
    let queued = QUEUED.with(|q| q.borrow_mut().take()).unwrap_or_default();
    drop(stop);
    // A listener here may change options again: it queues and tells its
    // own listeners in an `outside_locks` of its own.
    for tell in queued {
        tell();
    }
    result
}

/// Tells each of `listeners` of `event`: now, or once this thread lets go
/// of the locks an [`outside_locks`] covers.
#[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
pub(crate) fn tell<T: 'static>(listeners: &[Listener<T>], event: T) {
    let event = QUEUED.with(|q| match q.borrow_mut().as_mut() {
        Some(queue) => {
            let listeners = listeners.to_vec();
            queue.push(Box::new(move || {
                for listener in &listeners {
                    listener(&event);
                }
            }));
            None
        }
        None => Some(event),
    });
    if let Some(event) = event {
        for listener in listeners {
            listener(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<String>>>;

    fn listener(log: &Log, name: &'static str) -> Listener<u32> {
        let log = log.clone();
        Arc::new(move |n: &u32| log.lock().unwrap().push(format!("{name} {n}")))
    }

    #[test]
    fn listeners_are_told_at_once_outside_and_in_order_after_the_outermost() {
        let log = Log::default();
        let listeners = [listener(&log, "a"), listener(&log, "b")];
        tell(&listeners, 1);
        assert_eq!(*log.lock().unwrap(), ["a 1", "b 1"]);

        let returned = outside_locks(|| {
            tell(&listeners, 2);
            outside_locks(|| tell(&listeners, 3));
            assert_eq!(log.lock().unwrap().len(), 2, "nothing told under the locks");
            "f's result"
        });
        assert_eq!(returned, "f's result");
        assert_eq!(
            *log.lock().unwrap(),
            ["a 1", "b 1", "a 2", "b 2", "a 3", "b 3"]
        );
    }

    #[test]
    fn what_a_panicking_closure_queued_is_dropped_and_queueing_stops() {
        let log = Log::default();
        let listeners = [listener(&log, "a")];
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            outside_locks(|| {
                tell(&listeners, 1);
                panic!("inside");
            })
        }));
        assert!(unwound.is_err());
        tell(&listeners, 2);
        assert_eq!(*log.lock().unwrap(), ["a 2"], "told at once again");
    }
}
