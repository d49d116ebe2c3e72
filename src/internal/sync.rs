//! The atomics of rampart's lock-free state machines, swapped for loom's
//! under `--cfg rampart_loom` so their races can be model-checked:
//!
//! ```text
//! RUSTFLAGS="--cfg rampart_loom" cargo test --lib --release loom
//! ```

// Each feature uses its own subset (a build with the bulkhead alone has no
// breaker's AtomicBool), so an unused one is no sign of dead code.
#[cfg(rampart_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(rampart_loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
