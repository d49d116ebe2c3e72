//! Why a future is being dropped: by a timeout (or deadline) above it, or
//! by its caller.
//!
//! A call cut off by a timeout is evidence that the dependency is slow; a
//! caller that walks away is not. A dropped future cannot be told which, so
//! rampart's own timeout drops the call it gives up on inside
//! [`timed_out`], and layers beneath ask [`is_timing_out`] from their
//! `Drop`. The drop runs synchronously on the timeout's thread, so a
//! thread-local flag carries the reason without any allocation or lock.
//! A pool between them drops the call later, on one of its own threads:
//! it carries the mark across with the job (`bulkhead::pool`'s `CutOff`).
//! Timeouts that are not rampart's (tower's, `tokio::time::timeout`) drop
//! the call later, from their own owner, and read as a caller's cancellation.

use std::cell::Cell;

thread_local! {
    static TIMING_OUT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `drop` (which drops a call in flight) marked as a timeout's doing.
pub(crate) fn timed_out<R>(drop: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            TIMING_OUT.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(TIMING_OUT.with(|t| t.replace(true)));
    drop()
}

/// Whether the drop now running was started by a timeout above.
pub(crate) fn is_timing_out() -> bool {
    TIMING_OUT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_drops_inside_the_scope_and_nests() {
        assert!(!is_timing_out());
        timed_out(|| {
            assert!(is_timing_out());
            timed_out(|| assert!(is_timing_out()));
            assert!(is_timing_out(), "an inner scope restores the outer one");
        });
        assert!(!is_timing_out());
    }
}
