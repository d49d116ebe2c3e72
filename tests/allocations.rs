//! rampart's per-call paths do not allocate.
//!
//! A counting global allocator wraps the system allocator and counts the
//! allocations made by the current thread while its `COUNTING` flag is set,
//! so the test harness's other threads (and other tests running in parallel)
//! are never counted. Tests that count are serialized by `SERIAL` because the
//! counter itself is shared.
//!
//! Calls are driven synchronously: `poll_ready`, `call`, and one poll of the
//! response future with a no-op waker (the no-op inner service is always
//! ready, so nothing is ever pending).
//!
//! The breaker's clock is `tokio::time::Instant`; each test builds its
//! breaker inside a paused current-thread runtime's context, so time stands
//! still and 1000 calls can never straddle a window bucket boundary by
//! chance. Crossing a boundary is tested on its own, on purpose.
//!
//! Set `RAMPART_ALLOC_BACKTRACE=1` to print a backtrace for every counted
//! allocation.

// The counting allocator needs `unsafe impl GlobalAlloc`; unsafe code stays
// forbidden in the library itself (src/lib.rs).
#![allow(unsafe_code)]

use futures::task::noop_waker_ref;
use rampart::circuit_breaker::{CircuitBreakerLayer, State};
use rampart::{BoxError, ErrorKind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::future::{ready, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{service_fn, Layer, Service};

// ===== the counting allocator =====

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

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
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Serializes the tests that count: `ALLOCATIONS` is shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A failed test must not fail the others through poisoning.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> usize {
    let backtrace = std::env::var_os("RAMPART_ALLOC_BACKTRACE").is_some();
    BACKTRACE.with(|b| b.set(backtrace));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

// ===== driving calls =====

/// `poll_ready`, `call`, and the response future polled to completion, on a
/// no-op waker. Panics if anything is pending: nothing here ever waits.
fn call<S: Service<()>>(svc: &mut S) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(noop_waker_ref());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => panic!("poll_ready pending"),
    }
    let mut response = pin!(svc.call(()));
    match response.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("response pending"),
    }
}

fn ok_service() -> impl Service<(), Response = (), Error = BoxError> + Clone {
    service_fn(|_: ()| ready(Ok::<_, BoxError>(())))
}

fn failing_service() -> impl Service<(), Response = (), Error = BoxError> + Clone {
    service_fn(|_: ()| ready(Err::<(), BoxError>("connection refused".into())))
}

fn never_service() -> impl Service<(), Response = (), Error = BoxError> + Clone {
    service_fn(|_: ()| std::future::pending::<Result<(), BoxError>>())
}

/// A paused current-thread runtime: entered, it freezes `tokio::time`.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

const CALLS: usize = 1000;
const WARM_UP: usize = 100;

// ===== the tests =====

#[test]
fn closed_calls_do_not_allocate() {
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = CircuitBreakerLayer::builder("alloc-closed")
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(ok_service());
    for _ in 0..WARM_UP {
        call(&mut svc).unwrap();
    }

    let allocations = allocations_in(|| {
        for _ in 0..CALLS {
            call(&mut svc).unwrap();
        }
    });
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.counts().successes, (WARM_UP + CALLS) as u64);
    assert_eq!(
        allocations, 0,
        "{CALLS} closed calls allocated {allocations} times"
    );
}

#[test]
fn open_rejections_do_not_allocate() {
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = CircuitBreakerLayer::builder("alloc-open")
        .min_calls(1)
        .open_for(Duration::from_secs(3600))
        .build()
        .unwrap();
    let handle = layer.handle();
    // One real failure through a service sharing the breaker: really Open.
    call(&mut layer.layer(failing_service())).unwrap_err();
    assert_eq!(handle.state(), State::Open);

    let mut svc = layer.layer(ok_service());
    for _ in 0..WARM_UP {
        let err = call(&mut svc).unwrap_err();
        assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    }

    let allocations = allocations_in(|| {
        for _ in 0..CALLS {
            let err = call(&mut svc).unwrap_err();
            assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
        }
    });
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        handle.rolling_counts().short_circuited,
        (WARM_UP + CALLS) as u64
    );
    assert_eq!(
        allocations, 0,
        "{CALLS} rejections allocated {allocations} times"
    );
}

#[test]
fn half_open_rejections_do_not_allocate() {
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = CircuitBreakerLayer::builder("alloc-half-open")
        .min_calls(1)
        .open_for(Duration::from_millis(1))
        .probes(1)
        .probe_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let handle = layer.handle();
    call(&mut layer.layer(failing_service())).unwrap_err();
    assert_eq!(handle.state(), State::Open);
    rt.block_on(tokio::time::advance(Duration::from_millis(2)));

    // The only probe place, taken by a call that never ends: every other
    // call is a surplus call and is rejected.
    let mut prober = layer.layer(never_service());
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(prober.poll_ready(&mut cx).is_ready());
    let probe = prober.call(());
    assert_eq!(handle.state(), State::HalfOpen);

    let mut svc = layer.layer(ok_service());
    for _ in 0..WARM_UP {
        call(&mut svc).unwrap_err();
    }
    let allocations = allocations_in(|| {
        for _ in 0..CALLS {
            let err = call(&mut svc).unwrap_err();
            assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
        }
    });
    assert_eq!(handle.state(), State::HalfOpen);
    drop(probe);
    assert_eq!(
        allocations, 0,
        "{CALLS} half-open rejections allocated {allocations} times"
    );
}

/// The closed path once per window bucket: the first call in a new bucket
/// moves the window on, summing the shards' totals (on the stack).
#[test]
fn closed_calls_across_buckets_do_not_allocate() {
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = CircuitBreakerLayer::builder("alloc-buckets")
        .build()
        .unwrap();
    let mut svc = layer.layer(ok_service());
    for _ in 0..WARM_UP {
        call(&mut svc).unwrap();
    }
    let mut allocations = 0;
    for _ in 0..20 {
        rt.block_on(tokio::time::advance(Duration::from_secs(1)));
        allocations += allocations_in(|| {
            call(&mut svc).unwrap();
        });
    }
    assert_eq!(
        allocations, 0,
        "20 calls, each in a new bucket, allocated {allocations} times"
    );
}
