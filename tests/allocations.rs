//! rampart's per-call paths do not allocate.
//!
//! A counting global allocator (`benches/support/alloc.rs`, shared with the
//! benches) counts the allocations made by the current thread only, so the
//! test harness's other threads are never counted. Tests that count are
//! serialized by `SERIAL` because the counter itself is shared.
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

// The counting allocator, shared with the benches.
#[path = "../benches/support/alloc.rs"]
mod alloc;

use futures::task::noop_waker_ref;
use rampart::circuit_breaker::{CircuitBreakerLayer, State};
use rampart::{BoxError, ErrorKind};
use std::future::{ready, Future};
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{service_fn, Layer, Service};

/// Serializes the tests that count: the allocation counter is shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A failed test must not fail the others through poisoning.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

use alloc::allocations_in;

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

// ===== the balancer =====

/// An endpoint that answers at once (`Some(true)`), fails at once with a
/// zero-sized error (`Some(false)`; boxing it does not allocate), or never
/// answers (`None`). One function, so every endpoint has one type.
fn instance(
    mode: Option<bool>,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send + Sync {
    #[derive(Debug)]
    struct Refused;
    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused")
        }
    }
    impl std::error::Error for Refused {}
    service_fn(move |_: ()| match mode {
        Some(true) => futures::future::Either::Left(ready(Ok(()))),
        Some(false) => futures::future::Either::Left(ready(Err(Box::new(Refused) as BoxError))),
        None => futures::future::Either::Right(futures::future::pending()),
    })
}

#[test]
fn balanced_calls_do_not_allocate_whether_they_succeed_fail_or_are_cut_off() {
    use rampart::balance::{Balance, Endpoint, Endpoints};
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();
    let balancer = |name: &str, mode: Option<bool>| {
        Balance::builder(name)
            .build(Endpoints::fixed(
                (0..3).map(|id| Endpoint::new(id, instance(mode))),
            ))
            .unwrap()
    };

    // Successes, and failures (which raise the estimate, eject one
    // endpoint and mark the others dead).
    for (name, mode) in [("alloc-ok", Some(true)), ("alloc-failing", Some(false))] {
        let mut lb = balancer(name, mode);
        for _ in 0..WARM_UP {
            let _ = call(&mut lb);
        }
        let allocations = allocations_in(|| {
            for _ in 0..CALLS {
                assert_eq!(call(&mut lb).is_ok(), mode == Some(true));
            }
        });
        assert_eq!(
            allocations, 0,
            "{name}: {CALLS} calls allocated {allocations} times"
        );
    }

    // Attempts in flight dropped (the drop path: a cancellation here; a
    // timeout, under rampart's Timeout, differs only in how it is counted).
    // The futures are boxed before counting, to be dropped while counting.
    let mut lb = balancer("alloc-dropped", None);
    let mut dropped = || {
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(lb.poll_ready(&mut cx).is_ready());
        let mut response = Box::pin(lb.call(()));
        assert!(response.as_mut().poll(&mut cx).is_pending());
        response
    };
    let held: Vec<_> = (0..CALLS).map(|_| dropped()).collect();
    let allocations = allocations_in(|| drop(held));
    assert_eq!(
        allocations, 0,
        "{CALLS} dropped calls allocated {allocations} times"
    );
}

#[test]
fn retried_layer_calls_that_succeed_do_not_allocate() {
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = rampart::retry::RetryLayer::builder("alloc-retry")
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
    assert_eq!(handle.retries(), 0);
    assert_eq!(
        allocations, 0,
        "{CALLS} calls through the retry layer allocated {allocations} times"
    );
}

// ===== keyed breakers and rate limits =====

/// [`call`] with a request of any type.
fn call_with<S: Service<R>, R>(svc: &mut S, request: R) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(noop_waker_ref());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => panic!("poll_ready pending"),
    }
    let mut response = pin!(svc.call(request));
    match response.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("response pending"),
    }
}

fn keyed_ok_service() -> impl Service<u32, Response = (), Error = BoxError> + Clone {
    service_fn(|n: u32| {
        ready(if n == u32::MAX {
            Err("down".into())
        } else {
            Ok::<_, BoxError>(())
        })
    })
}

#[test]
fn keyed_breaker_calls_for_a_held_key_do_not_allocate() {
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = CircuitBreakerLayer::builder("alloc-keyed")
        .consecutive_failures(1)
        .keyed(|n: &u32| *n % 100)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(keyed_ok_service());
    // Every key made (and its breaker allocated) before counting.
    for n in 0..WARM_UP as u32 {
        call_with(&mut svc, n).unwrap();
    }
    // One key (u32::MAX % 100, that is 95) opens.
    call_with(&mut svc, u32::MAX).unwrap_err();
    let open_key = u32::MAX % 100;
    assert_eq!(handle.get(&open_key).unwrap().state(), State::Open);

    let allocations = allocations_in(|| {
        for n in 0..CALLS as u32 {
            let key = n % 100;
            if key == open_key {
                let err = call_with(&mut svc, key).unwrap_err();
                assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
            } else {
                call_with(&mut svc, key).unwrap();
            }
        }
    });
    assert_eq!(handle.len(), 100);
    assert_eq!(
        allocations, 0,
        "{CALLS} calls over 100 held keys allocated {allocations} times"
    );
}

#[cfg(feature = "rate-limit")]
#[test]
fn rate_limited_calls_let_through_do_not_allocate() {
    use rampart::rate_limit::RateLimitLayer;
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    // Time stands still: a burst large enough for every call.
    let layer = RateLimitLayer::builder("alloc-rate")
        .rate(1_000_000, Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc = layer.layer(ok_service());
    for _ in 0..WARM_UP {
        call(&mut svc).unwrap();
    }
    let allocations = allocations_in(|| {
        for _ in 0..CALLS {
            call(&mut svc).unwrap();
        }
    });
    assert_eq!(
        allocations, 0,
        "{CALLS} admitted calls allocated {allocations} times"
    );
}

#[cfg(feature = "rate-limit")]
#[test]
fn keyed_rate_limit_calls_for_a_held_key_do_not_allocate() {
    use rampart::rate_limit::RateLimitLayer;
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = RateLimitLayer::builder("alloc-rate-keyed")
        .rate(1_000_000, Duration::from_secs(1))
        .key(|n: &u32| *n % 100)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(keyed_ok_service());
    for n in 0..WARM_UP as u32 {
        call_with(&mut svc, n).unwrap();
    }
    let allocations = allocations_in(|| {
        for n in 0..CALLS as u32 {
            call_with(&mut svc, n % 100).unwrap();
        }
    });
    assert_eq!(handle.keys(), Some(100));
    assert_eq!(
        allocations, 0,
        "{CALLS} calls over 100 held keys allocated {allocations} times"
    );
}

/// A rejection carries its time to come back, so boxing it allocates:
/// once per rejected call, and nothing else does.
#[cfg(feature = "rate-limit")]
#[test]
fn a_rate_limit_rejection_allocates_only_its_error() {
    use rampart::rate_limit::RateLimitLayer;
    let _serial = serial();
    let rt = paused_runtime();
    let _time = rt.enter();

    let layer = RateLimitLayer::builder("alloc-rate-rejected")
        .rate(1, Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut svc = layer.layer(ok_service());
    call(&mut svc).unwrap();
    for _ in 0..WARM_UP {
        call(&mut svc).unwrap_err();
    }
    let allocations = allocations_in(|| {
        for _ in 0..CALLS {
            let err = call(&mut svc).unwrap_err();
            assert_eq!(ErrorKind::of(&err), ErrorKind::RateLimited);
        }
    });
    assert_eq!(
        allocations, CALLS,
        "{CALLS} rejections allocated {allocations} times"
    );
}

// ===== the adaptive limit =====

#[cfg(feature = "limit")]
mod limit {
    use super::*;
    use rampart::limit::{Algorithm, Fixed, LimitLayer, Sample, Vegas};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Vegas, counting the windows it is fed.
    #[derive(Debug)]
    struct Counted(Vegas, Arc<AtomicUsize>);

    impl Algorithm for Counted {
        fn initial_limit(&self) -> usize {
            Algorithm::initial_limit(&self.0)
        }
        fn update(&mut self, sample: Sample) -> usize {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.update(sample)
        }
    }

    #[test]
    fn limited_calls_do_not_allocate_admitted_or_rejected() {
        let _serial = serial();
        let rt = paused_runtime();
        let _time = rt.enter();

        let layer = LimitLayer::builder("alloc-limit").build().unwrap();
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
        assert_eq!((handle.in_flight(), handle.rejected()), (0, 0));
        assert_eq!(
            allocations, 0,
            "{CALLS} admitted calls allocated {allocations} times"
        );

        // The only permit held by a call that never ends: every call is
        // rejected.
        let full = LimitLayer::builder("alloc-limit-full")
            .algorithm(Fixed::new(1))
            .build()
            .unwrap();
        let mut holder = full.layer(never_service());
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(holder.poll_ready(&mut cx).is_ready());
        let held = holder.call(());
        let mut svc = full.layer(ok_service());
        for _ in 0..WARM_UP {
            call(&mut svc).unwrap_err();
        }
        let allocations = allocations_in(|| {
            for _ in 0..CALLS {
                let err = call(&mut svc).unwrap_err();
                assert_eq!(ErrorKind::of(&err), ErrorKind::LimitExceeded);
            }
        });
        drop(held);
        assert_eq!(full.handle().rejected(), (WARM_UP + CALLS) as u64);
        assert_eq!(
            allocations, 0,
            "{CALLS} rejections allocated {allocations} times"
        );
    }

    #[test]
    fn partitioned_calls_do_not_allocate() {
        let _serial = serial();
        let rt = paused_runtime();
        let _time = rt.enter();

        let layer = LimitLayer::builder("alloc-limit-partitioned")
            .algorithm(Fixed::new(1))
            .partition("a", 0.5)
            .partition("b", 0.5)
            .partition_by(|_: &()| Some("a"))
            .build()
            .unwrap();
        let mut svc = layer.layer(ok_service());
        for _ in 0..WARM_UP {
            call(&mut svc).unwrap();
        }
        let allocations = allocations_in(|| {
            for _ in 0..CALLS {
                call(&mut svc).unwrap();
            }
        });
        assert_eq!(
            allocations, 0,
            "{CALLS} partitioned calls allocated {allocations} times"
        );
        // Over its share (1 of 1, held), a's calls are rejected.
        let mut holder = layer.layer(never_service());
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(holder.poll_ready(&mut cx).is_ready());
        let held = holder.call(());
        let allocations = allocations_in(|| {
            for _ in 0..CALLS {
                let err = call(&mut svc).unwrap_err();
                assert_eq!(ErrorKind::of(&err), ErrorKind::LimitExceeded);
            }
        });
        drop(held);
        assert_eq!(
            allocations, 0,
            "{CALLS} partition rejections allocated {allocations} times"
        );
    }

    /// Calls that take 1 ms each on the paused clock, through windows of
    /// 100 ms: about every 100th call ends a window and feeds Vegas.
    #[test]
    fn ending_windows_and_feeding_the_algorithm_does_not_allocate() {
        let _serial = serial();
        let rt = paused_runtime();
        let _time = rt.enter();

        let fed = Arc::new(AtomicUsize::new(0));
        let layer = LimitLayer::builder("alloc-limit-windows")
            .algorithm(Counted(Vegas::new(), fed.clone()))
            .min_window(Duration::from_millis(100))
            .build()
            .unwrap();
        let handle = layer.handle();
        let mut svc = layer.layer(ok_service());
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut timed_call = |count: bool| {
            let mut allocations = 0;
            let mut counted = |f: &mut dyn FnMut()| {
                if count {
                    allocations += allocations_in(f);
                } else {
                    f();
                }
            };
            let mut response = None;
            counted(&mut || {
                assert!(svc.poll_ready(&mut cx).is_ready());
                response = Some(svc.call(()));
            });
            // Time passes while the call is out, outside the count.
            rt.block_on(tokio::time::advance(Duration::from_millis(1)));
            let mut response = std::pin::pin!(response.unwrap());
            counted(&mut || {
                let polled = response.as_mut().poll(&mut cx);
                assert!(matches!(polled, Poll::Ready(Ok(()))));
            });
            allocations
        };
        for _ in 0..WARM_UP * 3 {
            timed_call(false);
        }
        assert!(handle.last_sample().is_some(), "a window was fed");
        let before = fed.load(Ordering::Relaxed);
        let allocations: usize = (0..CALLS).map(|_| timed_call(true)).sum();
        let windows = fed.load(Ordering::Relaxed) - before;
        assert!(windows >= 9, "{windows} windows fed");
        assert_eq!(
            allocations, 0,
            "{CALLS} calls ending {windows} windows allocated {allocations} times"
        );
    }
}
