//! Options for a pool, and the builder that validates them.

use super::layer::PoolLayer;
use super::state::Shared;
use crate::error::{ConfigError, Validator};
use std::sync::Arc;

/// Default number of pool threads (Hystrix `coreSize`).
pub const DEFAULT_SIZE: usize = 10;
/// Default queue length: none, as Hystrix's default `maxQueueSize` of -1.
pub const DEFAULT_QUEUE: usize = 0;

const MAX_SIZE: usize = 1024;
const MAX_QUEUE: usize = 1 << 20;

/// Builds a [`PoolLayer`]; every option is checked by [`build`](Builder::build).
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    size: usize,
    queue: usize,
    registry: Option<crate::registry::Registry>,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            size: DEFAULT_SIZE,
            queue: DEFAULT_QUEUE,
            registry: None,
        }
    }

    /// The [`Registry`](crate::registry::Registry) to list this component
    /// in. Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Threads in the pool, and calls running at once. Default 10; valid
    /// from 1 to 1024.
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Calls waiting for a thread; the next is rejected. Default 0; valid
    /// up to 2^20.
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }

    /// Checks the options, starts the pool's threads and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range, or
    /// naming `size` if the operating system would not start the threads.
    pub fn build(self) -> Result<PoolLayer, ConfigError> {
        validate(&self.name, self.size, self.queue)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.size)
            .thread_name(format!("rampart-pool-{}", self.name))
            .enable_all()
            .build();
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => {
                let mut v = Validator::new(format!("pool {:?}", self.name));
                v.check(false, "size", || {
                    format!("{} threads could not be started: {e}", self.size)
                });
                return Err(v.finish().expect_err("one violation"));
            }
        };
        let shared = Shared::new(self.name.into(), self.size, self.queue, runtime);
        let shared = Arc::new(shared);
        self.registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register_configurable(&shared);
        Ok(PoolLayer::from_shared(shared))
    }
}

/// The builder's checks, shared with live changes of the queue.
pub(crate) fn validate(name: &str, size: usize, queue: usize) -> Result<(), ConfigError> {
    let mut v = Validator::new(format!("pool {:?}", name));
    v.check(!name.is_empty(), "name", || "must not be empty".into());
    // It names the pool's threads, and the OS takes a thread's name as
    // a C string: std panics on a NUL rather than start the thread.
    v.check(!name.contains('\0'), "name", || {
        format!(
            "must not contain a NUL byte (it names the pool's threads), got {:?}",
            name
        )
    });
    v.check((1..=MAX_SIZE).contains(&size), "size", || {
        format!("must be from 1 to {MAX_SIZE}, got {}", size)
    });
    v.check(queue <= MAX_QUEUE, "queue", || {
        format!("must be at most {MAX_QUEUE}, got {}", queue)
    });
    v.finish()
}
