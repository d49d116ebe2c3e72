//! The deadline of the call being made on this thread, if any: set by a
//! [`DeadlineLayer`](crate::deadline::DeadlineLayer) around its inner
//! service's `call` and every poll of its future, read by the layers
//! beneath (a timeout takes the earlier of its own and this; retries,
//! hedges and backoffs do not start past it).
//!
//! A thread-local set for the span of a poll, as tokio's task-locals are:
//! whatever runs inside that poll (the layers beneath, and client calls
//! made by a server's handler) sees it; a task spawned from there does
//! not, unless given it.

use std::cell::Cell;
use tokio::time::Instant;

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline in force on this thread.
#[inline]
pub(crate) fn current() -> Option<Instant> {
    CURRENT.with(Cell::get)
}

/// Runs `f` with `deadline` in force (the earlier of it and one already
/// in force), restoring the previous one after, even on a panic.
#[inline]
pub(crate) fn within<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let previous = current();
    let effective = previous.map_or(deadline, |p| p.min(deadline));
    CURRENT.with(|c| c.set(Some(effective)));
    let _restore = Restore(previous);
    f()
}

/// Whether the deadline in force (if any) passes before `wait` is over:
/// then no retry, hedge or backoff should start. Reads the clock only
/// when a deadline is in force.
pub(crate) fn leaves_no_time_for(wait: std::time::Duration) -> bool {
    current().is_some_and(|deadline| Instant::now() + wait >= deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earlier_deadline_wins_and_scopes_nest() {
        let now = Instant::now();
        let (near, far) = (
            now + Duration::from_millis(10),
            now + Duration::from_millis(50),
        );
        assert_eq!(current(), None);
        within(far, || {
            assert_eq!(current(), Some(far));
            within(near, || assert_eq!(current(), Some(near)));
            within(now + Duration::from_secs(1), || {
                assert_eq!(current(), Some(far), "a later deadline does not extend it")
            });
            assert_eq!(current(), Some(far));
        });
        assert_eq!(current(), None);
    }
}
