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
//! - rampart reads `tokio::time::Instant`; the bench build enables tokio's
//!   `test-util` (a dev-dependency feature), which adds one relaxed atomic
//!   load to each clock read. Production builds do not pay it.
//!
//! After criterion, `main` counts allocations per call for every contender
//! and case (10 000 calls after a warm-up, outside any timing) with a
//! counting global allocator, then prints a markdown table built from
//! criterion's `estimates.json` files. Every case pays that allocator's
//! bookkeeping (a thread-local read) per allocation, so the contenders that
//! allocate run a little slower here than they would otherwise.

// The counting allocator needs `unsafe impl GlobalAlloc`; unsafe code stays
// forbidden in the library itself (src/lib.rs).
#![allow(unsafe_code)]

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, SamplingMode};
use futures::task::noop_waker_ref;
use rampart::circuit_breaker::{CircuitBreakerLayer, State};
use rampart::BoxError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::any::Any;
use std::cell::Cell;
use std::future::{pending, poll_fn, ready, Future, Pending, Ready};
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tower::{service_fn, Layer, Service};
use tower_resilience::circuitbreaker as tr;

// ===== counting allocator =====

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised, no destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

impl CountingAllocator {
    #[inline]
    fn note(&self) {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the bookkeeping only reads
// a const-initialised thread-local and bumps an atomic, and never allocates.
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

/// Runs `f` with this thread's allocations counted.
fn counting<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

// ===== services and the call driver =====

type Res = Result<(), BoxError>;

/// The no-op inner service every contender wraps.
fn noop(
) -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone + Send + Sync + 'static
{
    service_fn(|_: ()| ready(Ok::<_, BoxError>(())))
}

/// Fails every call: drives a breaker open.
fn failing(
) -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone + Send + Sync + 'static
{
    service_fn(|_: ()| ready(Err::<(), BoxError>("connection refused".into())))
}

/// Never answers: holds a half-open probe place.
fn never() -> impl Service<(), Response = (), Error = BoxError, Future = Pending<Res>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|_: ()| pending::<Res>())
}

/// One call: `poll_ready`, `call`, and the response polled to completion.
#[inline]
fn drive<S: Service<()>>(svc: &mut S) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(noop_waker_ref());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => wait(pin!(poll_fn(|cx| svc.poll_ready(cx))), &mut cx)?,
    }
    let mut response = pin!(svc.call(()));
    match response.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => wait(response, &mut cx),
    }
}

/// Re-polls to completion a future that was pending: spinning first, then
/// parked in `block_on`. Out of line: only a contended lock gets here.
#[cold]
#[inline(never)]
fn wait<F: Future>(mut future: Pin<&mut F>, cx: &mut Context<'_>) -> F::Output {
    for _ in 0..10_000 {
        std::hint::spin_loop();
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return output;
        }
    }
    futures::executor::block_on(future)
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

fn time_calls<S: Service<()>>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut svc: S) {
    g.bench_function(name, |b| b.iter(|| drive(&mut svc)));
}

/// Both services called `iters` times at once on their own threads; returns
/// half the wall time, so that criterion's per-iteration figure is the wall
/// time per call.
fn two_threads_wall<S: Service<()> + Send>(services: [S; 2], iters: u64) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let threads: Vec<_> = services
            .into_iter()
            .map(|mut svc| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(drive(&mut svc).is_ok());
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    (end - start) / 2
}

fn time_two_threads<S: Service<()> + Send>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    make: impl Fn() -> S,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| two_threads_wall([make(), make()], iters))
    });
}

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

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = closed, open, half_open, two_threads
}

// ===== allocations =====

const ALLOC_CALLS: usize = 10_000;
const WARM_UP_CALLS: usize = 100;

/// Allocations per call on this thread, after a warm-up.
fn allocs_per_call<S: Service<()>>(mut svc: S) -> f64 {
    for _ in 0..WARM_UP_CALLS {
        black_box(drive(&mut svc).is_ok());
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    counting(|| {
        for _ in 0..ALLOC_CALLS {
            black_box(drive(&mut svc).is_ok());
        }
    });
    (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / ALLOC_CALLS as f64
}

/// Allocations per call over two threads sharing a breaker, half the calls each.
fn allocs_per_call_two_threads<S: Service<()> + Send>(make: impl Fn() -> S) -> f64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        for mut svc in [make(), make()] {
            let barrier = &barrier;
            scope.spawn(move || {
                for _ in 0..WARM_UP_CALLS {
                    black_box(drive(&mut svc).is_ok());
                }
                barrier.wait();
                counting(|| {
                    for _ in 0..ALLOC_CALLS / 2 {
                        black_box(drive(&mut svc).is_ok());
                    }
                });
            });
        }
    });
    (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / ALLOC_CALLS as f64
}

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

/// Where criterion writes its results, found the way criterion finds it.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let json = String::from_utf8(out.stdout).ok()?;
        json_string_after(&json, "\"target_directory\":").map(PathBuf::from)
    });
    from_metadata
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion")
}

/// The JSON string value following `key`, unescaped (enough for a path).
fn json_string_after(json: &str, key: &str) -> Option<String> {
    let rest = json[json.find(key)? + key.len()..]
        .trim_start()
        .strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

/// The mean (ns) criterion estimated for `group/function` in this run.
fn mean_ns(dir: &std::path::Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = dir
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json = std::fs::read_to_string(&path).ok()?;
    let mean = &json[json.find("\"mean\"")?..];
    let value = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn print_table(since: SystemTime, allocations: &[(&str, &str, f64)]) {
    let dir = criterion_dir();
    let fmt = |v: Option<f64>, digits: usize, suffix: &str| match v {
        Some(v) => format!("{v:.digits$}{suffix}"),
        None => "n/a".to_string(),
    };
    println!();
    println!("Mean time per call (criterion mean), overhead over the bare no-op service, and ratios to rampart.");
    println!("two_threads: wall time per call, two threads sharing one closed breaker.");
    println!("Allocations per call: {ALLOC_CALLS} calls after {WARM_UP_CALLS} warm-up calls, outside timing.");
    println!();
    println!("| group | contender | ns/call | over bare (ns) | × rampart (time) | × rampart (overhead) | allocs/call |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (group, contenders) in GROUPS {
        let mean = |name| mean_ns(&dir, group, name, since);
        let bare = mean(BARE);
        let rampart = mean(RAMPART);
        let rampart_over = rampart.zip(bare).map(|(r, b)| r - b);
        for &name in contenders {
            let ns = mean(name);
            let over = ns.zip(bare).map(|(n, b)| n - b);
            let ratio = ns.zip(rampart).map(|(n, r)| n / r);
            let over_ratio = if name == BARE {
                None
            } else {
                over.zip(rampart_over)
                    .filter(|(_, r)| *r > 0.0)
                    .map(|(o, r)| o / r)
            };
            let allocs = allocations
                .iter()
                .find(|(g, n, _)| *g == group && *n == name)
                .map(|r| r.2);
            println!(
                "| {group} | {name} | {} | {} | {} | {} | {} |",
                fmt(ns, 1, ""),
                fmt(over, 1, ""),
                fmt(ratio, 2, "×"),
                fmt(over_ratio, 2, "×"),
                fmt(allocs, 2, ""),
            );
        }
    }
    println!();
    println!("failsafe has no half_open row: a half-open failsafe breaker admits every call, so there are no surplus calls to reject.");
}

fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();

    // As criterion decides: without `--bench` (cargo test --benches), or
    // with `--test` or `--list`, nothing was timed.
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let timing = has("--bench") && !has("--test") && !has("--list");
    if timing {
        let allocations = count_allocations();
        print_table(started, &allocations);
    }
}
