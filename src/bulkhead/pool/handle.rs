//! Reading a pool's statistics.

use super::state::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A cloneable view of one pool's statistics (what Hystrix's dashboard
/// shows for a thread pool).
#[derive(Clone)]
pub struct PoolHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PoolHandle {
    // What an operator wants to see, not the runtime's internals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolHandle")
            .field("name", &self.name())
            .field("size", &self.size())
            .field("queue", &self.shared.queue())
            .field("active", &self.active())
            .field("queued", &self.queued())
            .field("completed", &self.completed())
            .field("rejected", &self.rejected())
            .finish()
    }
}

impl PoolHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        PoolHandle { shared }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Calls running on a pool thread now.
    pub fn active(&self) -> usize {
        self.shared.stats.active.load(Ordering::Relaxed)
    }

    /// Calls waiting for a thread now.
    pub fn queued(&self) -> usize {
        self.shared.stats.queued.load(Ordering::Relaxed)
    }

    /// Calls that ran to completion, since the pool started.
    pub fn completed(&self) -> u64 {
        self.shared.stats.completed.load(Ordering::Relaxed)
    }

    /// Calls rejected because every thread and queue place was taken.
    pub fn rejected(&self) -> u64 {
        self.shared.stats.rejected.load(Ordering::Relaxed)
    }

    /// The most calls running at once over the last 10 s.
    pub fn rolling_max_active(&self) -> u32 {
        self.shared.stats.rolling_max_active()
    }

    /// Threads in the pool.
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// Places in the queue now (as built, or as changed live).
    pub fn queue_capacity(&self) -> usize {
        self.shared.queue()
    }

    /// Changes the places in the queue (Hystrix's
    /// `queueSizeRejectionThreshold`, changeable at run time), from 0 to
    /// the builder's maximum, from the next call on. Lowered, calls
    /// already queued stay queued. The pool's size cannot change: its
    /// threads are a runtime's, started at build. A handle's value wins
    /// over what a [source](crate::config::Source) says until
    /// [`clear_queue_override`](Self::clear_queue_override).
    ///
    /// # Errors
    ///
    /// As [`Builder::queue`](super::Builder::queue) at build time; the old
    /// value stays.
    pub fn set_queue_capacity(&self, queue: usize) -> Result<(), crate::ConfigError> {
        self.shared.change(
            crate::config::Layer::Handle,
            Some(&queue.to_string()),
            false,
        )
    }

    /// Drops the value [`set_queue_capacity`](Self::set_queue_capacity)
    /// set: the queue is what the sources say again, or as built.
    pub fn clear_queue_override(&self) {
        let _ = self
            .shared
            .change(crate::config::Layer::Handle, None, false);
    }
}
