//! The pool's own failure.

use std::sync::Arc;

/// The pool's threads and queue were all taken: the call was rejected
/// without reaching the dependency (Hystrix's `THREAD_POOL_REJECTED`).
///
/// [`ErrorKind::of`](crate::ErrorKind::of) reports it as
/// [`ErrorKind::BulkheadFull`](crate::ErrorKind::BulkheadFull): a pool is a
/// bulkhead. It names the pool; making it allocates nothing beyond what a
/// pooled call already does (a reference count).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool {name:?} is full: every thread and queue place is taken")]
pub struct PoolFull {
    name: Arc<str>,
}

impl PoolFull {
    pub(crate) fn new(name: Arc<str>) -> Self {
        PoolFull { name }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
