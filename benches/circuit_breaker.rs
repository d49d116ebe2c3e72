//! What a circuit breaker costs per call: rampart next to tower-resilience
//! 0.13 and failsafe 1.3, around the same no-op inner service.
//!
//! One call is `poll_ready`, `call`, and the response future polled to
//! completion, driven by hand on a no-op waker: no runtime and no executor in
//! the loop. Only tower-resilience's `tokio::sync::Mutex`, contended in
//! `two_threads`, is ever pending; the driver then re-polls, spinning, for a
//! while (as a busy runtime would run other tasks meanwhile) before it parks
//! the thread in `futures::executor::block_on`. Parking at once instead costs
//! tower-resilience about 24 µs per call there (measured on 2 cores): every
//! contended lock then waits for a futex wake-up.
//!
//! Groups, each with the bare no-op service as its baseline:
//! - `closed`: a closed breaker with its library's default settings;
//! - `open`: a breaker really opened by one failed call (minimum calls 1,
//!   open for an hour), rejecting every call;
//! - `half_open`: a half-open breaker whose only probe place is taken by a
//!   call that never ends, rejecting the surplus calls. That is what a
//!   half-open breaker does with nearly all of its traffic (a
//!   close→open→half-open→close cycle per iteration cannot be timed here: it
//!   needs the open time, at least 1 ms, to pass on the real clock). failsafe
//!   is left out: a half-open failsafe breaker admits every call;
//! - `two_threads`: two threads calling one shared closed breaker, each
//!   through its own service clone; the time reported is wall time per call
//!   (both threads' calls over the elapsed time, so perfect scaling halves
//!   the single-thread figure).
//!
//! Notes on the contenders:
//! - tower-resilience needs no tokio runtime here: `tokio::sync::Mutex` and
//!   `Semaphore` are runtime-agnostic, and its one runtime-bound path
//!   (`tokio::time::sleep` in `poll_ready` when the circuit's mutex is
//!   contended while not closed, or in backpressure mode) is never reached;
//!   the cases that leave the closed state run on one thread. Its layer is
//!   built with `build_with_handle()`, because a layer from `build()` gives
//!   every service its own circuit and `two_threads` would share nothing.
//! - failsafe is not a tower middleware: a small adapter below wraps the
//!   inner service's future with `failsafe::futures::CircuitBreaker::call`,
//!   as its docs do; rejection happens when that future is first polled.
//! - rampart's components are built inside a multi-thread runtime's context
//!   (`support::runtime`), as a service's are, so they read the CPU's
//!   time-stamp counter (the crate docs' "Time" says why and when);
//!   `RAMPART_BENCH_CLOCK=tokio` builds them in a current-thread runtime,
//!   where they read tokio's clock. This package's dev-dependencies turn on
//!   tokio's `test-util`, which adds an atomic load to each read of
//!   tokio's clock; `cargo bench --manifest-path perf/Cargo.toml` runs the
//!   same benches without it, as a service is built.
//!
//! After criterion, `main` counts allocations per call for every contender
//! and case (10 000 calls after a warm-up, outside any timing) with a
//! counting global allocator, then prints a markdown table built from
//! criterion's `estimates.json` files. Every case pays that allocator's
//! bookkeeping (a thread-local read) per allocation, so the contenders that
//! allocate run a little slower here than they would otherwise.

mod support;

use criterion::{criterion_group, Criterion, SamplingMode};
use futures::task::noop_waker_ref;
use rampart::circuit_breaker::{CircuitBreakerLayer, State};
use rampart::BoxError;
use std::any::Any;
use std::future::{pending, Pending};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use support::{
    allocs, allocs_per_call, allocs_per_call_two_threads, drive, failing, figures, noop,
    print_head, print_row, time_calls, time_two_threads, Estimates, Res,
};
use tower::{service_fn, Layer, Service};
use tower_resilience::circuitbreaker as tr;

// ===== services =====

/// Never answers: holds a half-open probe place.
fn never() -> impl Service<(), Response = (), Error = BoxError, Future = Pending<Res>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|_: ()| pending::<Res>())
}

/// failsafe as a tower service: the inner future wrapped by
/// `CircuitBreaker::call`, which checks the breaker when first polled.
struct Failsafe<S, P> {
    inner: S,
    breaker: failsafe::StateMachine<P, ()>,
}

impl<S, P> Service<()> for Failsafe<S, P>
where
    S: Service<()>,
    P: failsafe::FailurePolicy + Send + Sync,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<S::Future, P, (), failsafe::Any>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, request: ()) -> Self::Future {
        failsafe::futures::CircuitBreaker::call(&self.breaker, self.inner.call(request))
    }
}

/// Keeps whatever a case needs alive (a held probe) while it runs.
type Guard = Option<Box<dyn Any>>;

// ===== the cases =====

const RAMPART: &str = "rampart";
const TOWER_RESILIENCE: &str = "tower-resilience";
const FAILSAFE: &str = "failsafe";
const BARE: &str = "bare";

/// Table rows, in order: (group, contenders).
const GROUPS: [(&str, &[&str]); 4] = [
    ("closed", &[BARE, RAMPART, TOWER_RESILIENCE, FAILSAFE]),
    ("open", &[BARE, RAMPART, TOWER_RESILIENCE, FAILSAFE]),
    ("half_open", &[BARE, RAMPART, TOWER_RESILIENCE]),
    ("two_threads", &[BARE, RAMPART, TOWER_RESILIENCE, FAILSAFE]),
];

/// Open for an hour: nothing turns half-open while a case runs.
const HOUR: Duration = Duration::from_secs(3600);

fn rampart_closed() -> impl Service<(), Error = BoxError> + Send {
    let layer = CircuitBreakerLayer::builder("bench").build().unwrap();
    layer.layer(noop())
}

fn rampart_open() -> impl Service<(), Error = BoxError> + Send {
    let layer = CircuitBreakerLayer::builder("bench-open")
        .min_calls(1)
        .open_for(HOUR)
        .build()
        .unwrap();
    drive(&mut layer.layer(failing())).unwrap_err();
    assert_eq!(layer.handle().state(), State::Open);
    layer.layer(noop())
}

fn rampart_half_open() -> (impl Service<(), Error = BoxError> + Send, Guard) {
    let layer = CircuitBreakerLayer::builder("bench-half-open")
        .min_calls(1)
        .open_for(Duration::from_millis(1))
        .probes(1)
        .probe_timeout(HOUR)
        .build()
        .unwrap();
    drive(&mut layer.layer(failing())).unwrap_err();
    std::thread::sleep(Duration::from_millis(5));
    // rampart takes the probe place in `call`: the un-polled future holds it.
    let mut prober = layer.layer(never());
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(prober.poll_ready(&mut cx).is_ready());
    let probe = prober.call(());
    assert_eq!(layer.handle().state(), State::HalfOpen);
    (layer.layer(noop()), Some(Box::new(probe)))
}

fn tr_closed_layer() -> tr::CircuitBreakerLayer {
    tr::CircuitBreakerLayer::builder()
        .build_with_handle()
        .unwrap()
        .0
}

fn tr_open() -> impl Service<(), Error = tr::CircuitBreakerError<BoxError>> + Send {
    let (layer, handle) = tr::CircuitBreakerLayer::builder()
        // A count window trips only once full: one call fills this one.
        .sliding_window_size(1)
        .minimum_number_of_calls(1)
        .wait_duration_in_open(HOUR)
        .build_with_handle()
        .unwrap();
    drive(&mut layer.layer(failing())).unwrap_err();
    assert_eq!(handle.state(), tr::CircuitState::Open);
    layer.layer(noop())
}

fn tr_half_open() -> (
    impl Service<(), Error = tr::CircuitBreakerError<BoxError>> + Send,
    Guard,
) {
    let (layer, handle) = tr::CircuitBreakerLayer::builder()
        // A count window trips only once full: one call fills this one.
        .sliding_window_size(1)
        .minimum_number_of_calls(1)
        .wait_duration_in_open(Duration::from_millis(1))
        .permitted_calls_in_half_open(1)
        .build_with_handle()
        .unwrap();
    drive(&mut layer.layer(failing())).unwrap_err();
    std::thread::sleep(Duration::from_millis(5));
    // tower-resilience takes the probe place when its future first runs:
    // poll it once, up to the inner service's never-ending future.
    let mut prober = layer.layer(never());
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(prober.poll_ready(&mut cx).is_ready());
    let mut probe: Pin<Box<_>> = prober.call(());
    assert!(probe.as_mut().poll(&mut cx).is_pending());
    assert_eq!(handle.state(), tr::CircuitState::HalfOpen);
    (layer.layer(noop()), Some(Box::new(probe)))
}

fn failsafe_closed_breaker(
) -> failsafe::StateMachine<impl failsafe::FailurePolicy + Send + Sync, ()> {
    failsafe::Config::new().build()
}

fn failsafe_open() -> impl Service<(), Error = failsafe::Error<BoxError>> + Send {
    let policy =
        failsafe::failure_policy::consecutive_failures(1, failsafe::backoff::constant(HOUR));
    let breaker = failsafe::Config::new().failure_policy(policy).build();
    drive(&mut Failsafe {
        inner: failing(),
        breaker: breaker.clone(),
    })
    .unwrap_err();
    assert!(!breaker.is_call_permitted());
    Failsafe {
        inner: noop(),
        breaker,
    }
}

// ===== timing =====

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed");
    time_calls(&mut g, BARE, noop());
    time_calls(&mut g, RAMPART, rampart_closed());
    time_calls(&mut g, TOWER_RESILIENCE, tr_closed_layer().layer(noop()));
    time_calls(
        &mut g,
        FAILSAFE,
        Failsafe {
            inner: noop(),
            breaker: failsafe_closed_breaker(),
        },
    );
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    time_calls(&mut g, BARE, noop());
    time_calls(&mut g, RAMPART, rampart_open());
    time_calls(&mut g, TOWER_RESILIENCE, tr_open());
    time_calls(&mut g, FAILSAFE, failsafe_open());
    g.finish();
}

fn half_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("half_open");
    time_calls(&mut g, BARE, noop());
    let (svc, _probe) = rampart_half_open();
    time_calls(&mut g, RAMPART, svc);
    let (svc, _probe) = tr_half_open();
    time_calls(&mut g, TOWER_RESILIENCE, svc);
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    // Every sample runs the same number of calls: fewer, longer samples
    // amortise the thread start-up that each sample pays.
    g.sampling_mode(SamplingMode::Flat);
    time_two_threads(&mut g, BARE, noop);
    let layer = CircuitBreakerLayer::builder("bench-two-threads")
        .build()
        .unwrap();
    time_two_threads(&mut g, RAMPART, || layer.layer(noop()));
    let tr_layer = tr_closed_layer();
    time_two_threads(&mut g, TOWER_RESILIENCE, || tr_layer.layer(noop()));
    let breaker = failsafe_closed_breaker();
    time_two_threads(&mut g, FAILSAFE, || Failsafe {
        inner: noop(),
        breaker: breaker.clone(),
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::config(Duration::from_secs(1), Duration::from_secs(2));
    targets = closed, open, half_open, two_threads
}

// ===== allocations =====

/// Allocations per call for every (group, contender).
fn count_allocations() -> Vec<(&'static str, &'static str, f64)> {
    let mut rows = vec![
        ("closed", BARE, allocs_per_call(noop())),
        ("closed", RAMPART, allocs_per_call(rampart_closed())),
        (
            "closed",
            TOWER_RESILIENCE,
            allocs_per_call(tr_closed_layer().layer(noop())),
        ),
        (
            "closed",
            FAILSAFE,
            allocs_per_call(Failsafe {
                inner: noop(),
                breaker: failsafe_closed_breaker(),
            }),
        ),
        ("open", BARE, allocs_per_call(noop())),
        ("open", RAMPART, allocs_per_call(rampart_open())),
        ("open", TOWER_RESILIENCE, allocs_per_call(tr_open())),
        ("open", FAILSAFE, allocs_per_call(failsafe_open())),
        ("half_open", BARE, allocs_per_call(noop())),
    ];
    let (svc, probe) = rampart_half_open();
    rows.push(("half_open", RAMPART, allocs_per_call(svc)));
    drop(probe);
    let (svc, probe) = tr_half_open();
    rows.push(("half_open", TOWER_RESILIENCE, allocs_per_call(svc)));
    drop(probe);

    rows.push(("two_threads", BARE, allocs_per_call_two_threads(noop)));
    let layer = CircuitBreakerLayer::builder("alloc-two-threads")
        .build()
        .unwrap();
    rows.push((
        "two_threads",
        RAMPART,
        allocs_per_call_two_threads(|| layer.layer(noop())),
    ));
    let tr_layer = tr_closed_layer();
    rows.push((
        "two_threads",
        TOWER_RESILIENCE,
        allocs_per_call_two_threads(|| tr_layer.layer(noop())),
    ));
    let breaker = failsafe_closed_breaker();
    rows.push((
        "two_threads",
        FAILSAFE,
        allocs_per_call_two_threads(|| Failsafe {
            inner: noop(),
            breaker: breaker.clone(),
        }),
    ));
    rows
}

// ===== the table =====

fn print_table(estimates: &Estimates, allocations: &[(&str, &str, f64)]) {
    print_head(
        &[
            "Mean time per call (criterion mean), overhead over the bare no-op service, and ratios to rampart.",
            "two_threads: wall time per call, two threads sharing one closed breaker.",
        ],
        "group",
        "---",
        RAMPART,
    );
    for (group, contenders) in GROUPS {
        let mean = |name| estimates.mean(group, name);
        let (bare, rampart) = (mean(BARE), mean(RAMPART));
        for &name in contenders {
            let mut f = figures(mean(name), bare, rampart);
            if name == BARE {
                f.over_ratio = None;
            }
            print_row(group, name, &f, allocs(allocations, group, name));
        }
    }
    println!();
    println!("failsafe has no half_open row: a half-open failsafe breaker admits every call, so there are no surplus calls to reject.");
}

fn main() {
    // rampart's breakers read the clock of the runtime they are built in
    // (see `support::runtime`): stay in one's context for the whole run.
    let runtime = support::runtime();
    let _runtime = runtime.enter();

    support::run(benches, |estimates| {
        print_table(estimates, &count_allocations())
    });
}
