//! Which shard a thread records into.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many shards a sharded structure should have: one per core, rounded up
/// to a power of two so a shard is picked with a mask, at most 32.
pub(crate) fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .next_power_of_two()
            .min(32)
    })
}

/// A small number fixed per thread, handed out round robin, so threads that
/// record at the same time usually land on different shards.
#[inline]
pub(crate) fn thread_hint() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    HINT.with(|hint| {
        let h = hint.get();
        if h != usize::MAX {
            return h;
        }
        let h = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        hint.set(h);
        h
    })
}
