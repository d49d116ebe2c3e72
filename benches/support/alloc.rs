//! A counting global allocator, shared by the benches (`support`) and
//! `tests/allocations.rs` (through `#[path]`).
//!
//! It wraps the system allocator and counts the allocations a thread makes
//! while its `COUNTING` flag is set, so other threads (the test harness,
//! tests running in parallel) are never counted. Set
//! `RAMPART_ALLOC_BACKTRACE=1` to print a backtrace for every counted
//! allocation.

// `unsafe impl GlobalAlloc`; unsafe code stays forbidden in the library
// itself (src/lib.rs).
#![allow(unsafe_code)]
// Not every includer uses every helper.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed, by every thread (for memory bounds,
/// not for per-call counts).
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without destructors: reading them never
    // allocates, so they are safe to use inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static BACKTRACE: Cell<bool> = const { Cell::new(false) };
}

impl CountingAllocator {
    #[inline]
    fn note(&self) {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            if BACKTRACE.try_with(Cell::get).unwrap_or(false) {
                // Capturing and printing allocate: stop counting meanwhile.
                COUNTING.with(|c| c.set(false));
                eprintln!("counted allocation:\n{}", Backtrace::force_capture());
                COUNTING.with(|c| c.set(true));
            }
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the bookkeeping around it
// only touches an atomic and const-initialised thread-locals, and never
// allocates itself (the debug backtrace runs with counting switched off, so
// its own allocations go straight to `System`).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations counted so far, on every thread.
pub fn total() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Runs `f` with this thread's allocations counted.
pub fn counting<R>(f: impl FnOnce() -> R) -> R {
    let backtrace = std::env::var_os("RAMPART_ALLOC_BACKTRACE").is_some();
    BACKTRACE.with(|b| b.set(backtrace));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

/// Allocations this thread made while running `f` (with no other thread
/// counting at the same time).
pub fn allocations_in(f: impl FnOnce()) -> usize {
    let before = total();
    counting(f);
    total() - before
}

/// Bytes allocated and not yet freed, by every thread of the process.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}
