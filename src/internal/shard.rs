//! Spreading shared state over per-thread shards, so threads that call at
//! the same time write to different cache lines.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// How many shards a sharded structure should have: two per core, rounded
/// up to a power of two so a shard is picked with a mask; 4 to 64.
pub(crate) fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        (2 * std::thread::available_parallelism().map_or(1, |n| n.get()))
            .next_power_of_two()
            .clamp(4, 64)
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

/// Owning pointers to one shared `T`, one per shard, each with a reference
/// count of its own.
///
/// A response future must own a pointer to the state it reports to. Were
/// every future to clone one `Arc<T>`, every call on every thread would
/// write its one reference count, and two threads would trade that cache
/// line back and forth on each call. A future clones its thread's lane
/// instead: a separate allocation, so a separate count.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    shared: Arc<T>,
    lanes: Box<[Arc<Lane<T>>]>,
}

/// One shard's owning pointer to the shared `T`.
#[derive(Debug)]
pub(crate) struct Lane<T>(Arc<T>);

impl<T> Lanes<T> {
    pub(crate) fn new(shared: Arc<T>) -> Self {
        Lanes {
            lanes: (0..shard_count())
                .map(|_| Arc::new(Lane(shared.clone())))
                .collect(),
            shared,
        }
    }

    /// The shared value itself, for everything but a future's pointer.
    pub(crate) fn shared(&self) -> &Arc<T> {
        &self.shared
    }

    /// An owning pointer for a future started on this thread.
    #[inline]
    pub(crate) fn pick(&self) -> Arc<Lane<T>> {
        self.lanes[thread_hint() & (self.lanes.len() - 1)].clone()
    }
}

impl<T> Deref for Lane<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
