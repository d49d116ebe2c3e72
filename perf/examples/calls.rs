//! Makes `N` calls of one case, for counting instructions per call under
//! callgrind (repeatable whatever else the machine is doing, unlike time):
//!
//! ```text
//! cargo build --release --manifest-path perf/Cargo.toml --example calls
//! valgrind --tool=callgrind target/release/examples/calls closed 100000
//! ```
//!
//! Take the difference of two runs (`N` and `2N` calls) to cancel the
//! set-up, including `quanta`'s calibration, which runs for a time, not a
//! number of instructions. Instructions are not time: on the 2-core AMD VM
//! rampart is measured on, removing 37 of a closed call's 525 instructions
//! (locked adds and a division) changed its time by less than criterion's
//! noise. Use this to see where instructions go, criterion to see what a
//! change buys. Cases: `bare`, `closed`, `open`, `forced_open`, `command`,
//! `p2c` (over 100 endpoints), `fallback` (a fallback over a dependency
//! that answers), and `bare_err` and `fallback_err` (a failing dependency,
//! bare and behind a fallback).

use futures::task::noop_waker_ref;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::{BoxError, Command};
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{service_fn, Layer, Service};

type Res = Result<(), BoxError>;

fn noop() -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone {
    service_fn(|_: ()| ready(Ok::<_, BoxError>(())))
}

/// A dependency's own error, zero-sized: boxing it does not allocate.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

fn failing() -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone {
    service_fn(|_: ()| ready(Err::<(), BoxError>(Box::new(Refused))))
}

/// A fallback that answers `()` whatever went wrong.
fn fallback() -> rampart::fallback::FallbackLayer<impl rampart::fallback::FallbackFn<()> + Clone> {
    rampart::fallback::FallbackLayer::builder("fallback")
        .fallback_sync(|_cause| Ok(()))
        .build()
        .unwrap()
}

#[inline(never)]
fn calls<S: Service<()>>(mut svc: S, n: u64) -> u64 {
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut ok = 0;
    for _ in 0..n {
        let Poll::Ready(Ok(())) = svc.poll_ready(&mut cx) else {
            panic!("not ready")
        };
        let response = pin!(svc.call(()));
        if let Poll::Ready(Ok(_)) = response.poll(&mut cx) {
            ok += 1;
        }
    }
    ok
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "closed".into());
    let n: u64 = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    // Built in a multi-thread runtime's context, as a service's are: the
    // components read the time-stamp counter.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let ok = match case.as_str() {
        "bare" => calls(noop(), n),
        "bare_err" => calls(failing(), n),
        "fallback" => calls(fallback().layer(noop()), n),
        "fallback_err" => calls(fallback().layer(failing()), n),
        "closed" => calls(
            CircuitBreakerLayer::builder("closed")
                .build()
                .unwrap()
                .layer(noop()),
            n,
        ),
        "open" | "forced_open" => {
            let layer = CircuitBreakerLayer::builder("open")
                .min_calls(1)
                .open_for(Duration::from_secs(3600))
                .build()
                .unwrap();
            let svc = layer.layer(noop());
            if case == "open" {
                let mut failing = layer.layer(service_fn(|_: ()| {
                    ready(Err::<(), BoxError>("down".into()))
                }));
                calls(&mut failing, 1);
            } else {
                layer.handle().force_open();
            }
            calls(svc, n)
        }
        "command" => calls(
            Command::builder("command")
                .timeout(Duration::from_secs(1))
                .bulkhead(100)
                .breaker(|b| b.failure_rate(0.5).min_calls(20))
                .fallback_sync(|_cause| Ok(()))
                .build()
                .unwrap()
                .layer(noop()),
            n,
        ),
        "p2c" => {
            let endpoints = Endpoints::fixed((0..100).map(|i| Endpoint::new(i, noop())));
            calls(Balance::builder("p2c").build(endpoints).unwrap(), n)
        }
        other => panic!("unknown case {other}"),
    };
    println!("{case}: {ok} of {n} calls answered");
}
