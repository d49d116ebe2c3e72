//! The atomics of rampart's lock-free state machines, swapped for loom's
//! under `--cfg rampart_loom` so their races can be model-checked:
//!
//! ```text
//! RUSTFLAGS="--cfg rampart_loom" cargo test --lib --release loom
//! ```

#[cfg(rampart_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(rampart_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
