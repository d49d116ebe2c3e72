//! What rampart's bulkhead, timeout, fallback and whole `Command` cost per
//! call, next to tower's own layers and tower-resilience 0.13, around the
//! same no-op inner service.
//!
//! One call is `poll_ready`, `call`, and the response future polled to
//! completion, driven by hand on a no-op waker, as in
//! `benches/circuit_breaker.rs`: no executor in the loop. Only
//! tower-resilience's `tokio::sync::Mutex`, contended in
//! `command_two_threads`, is ever pending; the driver then re-polls, spinning,
//! for a while before it parks the thread in `futures::executor::block_on`.
//!
//! Timeouts make tokio `Sleep`s, and a `Sleep` needs a runtime with a timer
//! to be created in: `main` builds a current-thread runtime with time
//! enabled and stays inside its context (`Runtime::enter`) for the whole
//! run; the threads of the two-thread cases enter it too. No timer ever
//! fires or is even registered here: every inner future is ready at once.
//! rampart's timeout makes its `Sleep` only when the inner future is
//! pending, so it never makes one; tower's makes one per call (not
//! registered unless polled), and tower-resilience's time limiter and
//! rejecting bulkhead each wrap the call in `tokio::time::timeout`.
//!
//! Groups, each with the bare no-op service as its baseline:
//! - `bulkhead`: 10 slots. rampart's `Bulkhead`; tower's `ConcurrencyLimit`
//!   (which waits in `poll_ready` when full instead of rejecting);
//!   tower-resilience's bulkhead, built to reject when full as rampart does
//!   (`reject_when_full`, i.e. a zero `max_wait_duration`);
//! - `timeout`: 1 s. rampart's `Timeout`; tower's `Timeout`;
//!   tower-resilience's time limiter;
//! - `fallback`: rampart's `Fallback` with a sync fallback, on the success
//!   path (`rampart`: the inner service answers) and on the failure path
//!   (`rampart_err`: the inner service fails and the fallback serves a
//!   value). The failing inner service (`bare_err`) fails with a boxed
//!   zero-sized error, which allocates nothing, and is the failure path's
//!   baseline. tower has no fallback layer; `tower`/`tower_err` are the
//!   hand-written minimum, `ServiceBuilder::then` mapping any error to a
//!   value. tower-resilience's fallback is left out: its `fallback` feature
//!   is not enabled in this crate's dev-dependencies;
//! - `command`: the whole rampart `Command` (fallback → breaker → bulkhead →
//!   timeout, Hystrix's defaults: 1 s, 10 slots, 50 % of at least 20 calls
//!   in 10 s; the metrics facade with no recorder installed) next to the
//!   tower-resilience stack built from its builders and stacked in the same
//!   order (circuit breaker outside bulkhead outside time limiter), and to
//!   tower's `ServiceBuilder::new().concurrency_limit(10).timeout(1 s)`,
//!   which has no breaker and no fallback, for reference;
//! - `command_two_threads`: two threads calling one shared command, each
//!   through its own service from the same layer; the time reported is wall
//!   time per call (both threads' calls over the elapsed time, so perfect
//!   scaling halves the single-thread figure). tower is left out: its
//!   concurrency limit is per service unless made global.
//!
//! Notes on the contenders:
//! - tower-resilience's breaker and bulkhead are built with
//!   `build_with_handle()`: a layer from `build()` gives every service its
//!   own circuit and its own semaphore, and the two-thread case would share
//!   nothing. Its breaker uses a count window of 100 calls (its default),
//!   with rampart's failure rate (50 %), minimum calls (20) and open time
//!   (5 s): its time window keeps a record per call, which would grow to
//!   millions of records here.
//! - rampart reads `tokio::time::Instant`; the bench build enables tokio's
//!   `test-util` (a dev-dependency feature), which adds one relaxed atomic
//!   load to each clock read. Production builds do not pay it.
//!
//! After criterion, `main` counts allocations per call for every contender
//! (10 000 calls after a warm-up, outside any timing; every counted call
//! succeeds except `bare_err`'s) with a counting global allocator, then
//! prints a markdown table built from criterion's `estimates.json` files.
//! Every case pays that allocator's bookkeeping (a thread-local read) per
//! allocation, so the contenders that allocate run a little slower here
//! than they would otherwise.

// The counting allocator needs `unsafe impl GlobalAlloc`; unsafe code stays
// forbidden in the library itself (src/lib.rs).
#![allow(unsafe_code)]

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, SamplingMode};
use futures::task::noop_waker_ref;
use rampart::circuit_breaker::State;
use rampart::{BoxError, Command};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;
use std::future::{poll_fn, ready, Future, Ready};
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;
use tower::layer::util::{Identity, Stack};
use tower::{service_fn, Layer, Service, ServiceBuilder};
use tower_resilience::bulkhead as trb;
use tower_resilience::circuitbreaker as trc;
use tower_resilience::timelimiter as trt;

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

/// A zero-sized error: boxing it allocates nothing, so a failing call costs
/// no allocation of its own.
#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection refused")
    }
}

impl std::error::Error for Refused {}

/// Fails every call, without allocating.
fn failing(
) -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone + Send + Sync + 'static
{
    service_fn(|_: ()| ready(Err::<(), BoxError>(Box::new(Refused))))
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

// ===== the contenders =====

const BARE: &str = "bare";
const BARE_ERR: &str = "bare_err";
const RAMPART: &str = "rampart";
const RAMPART_ERR: &str = "rampart_err";
const TOWER: &str = "tower";
const TOWER_ERR: &str = "tower_err";
const TOWER_RESILIENCE: &str = "tower-resilience";

const SLOTS: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(1);

/// What a group does with each of its contenders: time it, or count its
/// allocations. Each group lists its contenders once, for both.
trait Contenders {
    /// A service called on this thread.
    fn one<S: Service<()>>(&mut self, name: &'static str, svc: S);
    /// Two services from `make`, called at once on two threads.
    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S);
}

fn bulkhead_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = rampart::bulkhead::BulkheadLayer::builder("bench-bulkhead")
        .max_concurrent(SLOTS)
        .build()
        .unwrap();
    c.one(RAMPART, layer.layer(noop()));
    assert_eq!(layer.handle().in_flight(), 0);
    c.one(
        TOWER,
        tower::limit::ConcurrencyLimitLayer::new(SLOTS).layer(noop()),
    );
    let (layer, _) = trb::BulkheadLayer::builder()
        .max_concurrent_calls(SLOTS)
        .reject_when_full()
        .build_with_handle()
        .unwrap();
    c.one(TOWER_RESILIENCE, layer.layer(noop()));
}

fn timeout_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = rampart::timeout::TimeoutLayer::builder("bench-timeout")
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    c.one(RAMPART, layer.layer(noop()));
    c.one(
        TOWER,
        tower::timeout::TimeoutLayer::new(TIMEOUT).layer(noop()),
    );
    let layer = trt::TimeLimiterLayer::builder()
        .timeout_duration(TIMEOUT)
        .build();
    c.one(TOWER_RESILIENCE, layer.layer(noop()));
}

/// The hand-written minimum of a fallback in tower: any error becomes `()`.
fn tower_fallback<S>(inner: S) -> impl Service<(), Response = (), Error = BoxError>
where
    S: Service<(), Response = (), Error = BoxError>,
{
    ServiceBuilder::new()
        .then(|result: Res| ready(result.or_else(|_| Ok::<_, BoxError>(()))))
        .service(inner)
}

fn fallback_contenders(c: &mut impl Contenders) {
    let layer = rampart::fallback::FallbackLayer::builder("bench-fallback")
        .fallback_sync(|_cause| Ok(()))
        .build()
        .unwrap();
    let handle = layer.handle();

    c.one(BARE, noop());
    c.one(RAMPART, layer.layer(noop()));
    assert_eq!(handle.successes(), 0, "a successful call ran the fallback");
    c.one(TOWER, tower_fallback(noop()));

    c.one(BARE_ERR, failing());
    c.one(RAMPART_ERR, layer.layer(failing()));
    assert!(handle.successes() > 0, "the fallback never served");
    assert_eq!(handle.failures() + handle.rejections(), 0);
    c.one(TOWER_ERR, tower_fallback(failing()));
}

/// The whole rampart command, Hystrix's defaults spelled out.
fn rampart_command() -> rampart::CommandLayer<
    rampart::fallback::SyncFallback<impl Fn(&rampart::fallback::Cause) -> Res + Clone>,
    rampart::bulkhead::BulkheadLayer,
    rampart::circuit_breaker::DefaultClassifier,
> {
    Command::builder("bench-command")
        .timeout(TIMEOUT)
        .bulkhead(SLOTS)
        .breaker(|b| {
            b.failure_rate(0.5)
                .min_calls(20)
                .open_for(Duration::from_secs(5))
        })
        .fallback_sync(|_cause| Ok(()))
        .build()
        .unwrap()
}

/// tower-resilience's stack (the outermost layer is innermost in the type).
type TowerResilienceStack = ServiceBuilder<
    Stack<
        trt::TimeLimiterLayer,
        Stack<trb::BulkheadLayer, Stack<trc::CircuitBreakerLayer, Identity>>,
    >,
>;

/// The tower-resilience equivalent: breaker outside bulkhead outside time
/// limiter; breaker and bulkhead shared by every service built from it.
fn tower_resilience_command() -> TowerResilienceStack {
    let (breaker, _) = trc::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .minimum_number_of_calls(20)
        .wait_duration_in_open(Duration::from_secs(5))
        .build_with_handle()
        .unwrap();
    let (bulkhead, _) = trb::BulkheadLayer::builder()
        .max_concurrent_calls(SLOTS)
        .reject_when_full()
        .build_with_handle()
        .unwrap();
    let limiter = trt::TimeLimiterLayer::builder()
        .timeout_duration(TIMEOUT)
        .build();
    ServiceBuilder::new()
        .layer(breaker)
        .layer(bulkhead)
        .layer(limiter)
}

/// Checks that every call went through: the breaker closed, no fallback
/// served, no slot left taken.
fn assert_clean<FB, C>(layer: &rampart::CommandLayer<FB, rampart::bulkhead::BulkheadLayer, C>) {
    assert_eq!(layer.breaker().state(), State::Closed);
    assert_eq!(layer.fallback().successes(), 0, "a call failed over");
    assert_eq!(layer.bulkhead().in_flight(), 0);
}

fn command_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = rampart_command();
    c.one(RAMPART, layer.layer(noop()));
    assert_clean(&layer);
    c.one(TOWER_RESILIENCE, tower_resilience_command().service(noop()));
    c.one(
        TOWER,
        ServiceBuilder::new()
            .concurrency_limit(SLOTS)
            .timeout(TIMEOUT)
            .service(noop()),
    );
}

fn command_two_threads_contenders(c: &mut impl Contenders) {
    c.two(BARE, noop);
    let layer = rampart_command();
    c.two(RAMPART, || layer.layer(noop()));
    assert_clean(&layer);
    let stack = tower_resilience_command();
    c.two(TOWER_RESILIENCE, || stack.service(noop()));
}

/// Every call is expected to succeed but the failing baseline's.
fn check<S: Service<()>>(name: &str, svc: &mut S) {
    assert_eq!(
        drive(svc).is_ok(),
        name != BARE_ERR,
        "{name}: unexpected outcome"
    );
}

// ===== timing =====

struct Timing<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
}

impl Contenders for Timing<'_, '_> {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check(name, &mut svc);
        self.group
            .bench_function(name, |b| b.iter(|| drive(&mut svc)));
    }

    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S) {
        check(name, &mut make());
        let runtime = Handle::current();
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| two_threads_wall(&runtime, [make(), make()], iters))
        });
    }
}

/// Both services called `iters` times at once on their own threads (inside
/// `runtime`'s context); returns half the wall time, so that criterion's
/// per-iteration figure is the wall time per call.
fn two_threads_wall<S: Service<()> + Send>(
    runtime: &Handle,
    services: [S; 2],
    iters: u64,
) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let threads: Vec<_> = services
            .into_iter()
            .map(|mut svc| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let _runtime = runtime.enter();
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

/// Times a group's contenders.
fn timed(c: &mut Criterion, group: &str, contenders: impl FnOnce(&mut Timing<'_, '_>)) {
    let mut g = c.benchmark_group(group);
    if group.ends_with("two_threads") {
        // Every sample runs the same number of calls: fewer, longer samples
        // amortise the thread start-up that each sample pays.
        g.sampling_mode(SamplingMode::Flat);
    }
    contenders(&mut Timing { group: &mut g });
    g.finish();
}

fn bulkhead(c: &mut Criterion) {
    timed(c, "bulkhead", |t| bulkhead_contenders(t));
}

fn timeout(c: &mut Criterion) {
    timed(c, "timeout", |t| timeout_contenders(t));
}

fn fallback(c: &mut Criterion) {
    timed(c, "fallback", |t| fallback_contenders(t));
}

fn command(c: &mut Criterion) {
    timed(c, "command", |t| command_contenders(t));
}

fn command_two_threads(c: &mut Criterion) {
    timed(c, "command_two_threads", |t| {
        command_two_threads_contenders(t)
    });
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
    targets = bulkhead, timeout, fallback, command, command_two_threads
}

// ===== allocations =====

const ALLOC_CALLS: usize = 10_000;
const WARM_UP_CALLS: usize = 100;

/// Allocations per call for every (group, contender).
struct Counting {
    group: &'static str,
    rows: Vec<(&'static str, &'static str, f64)>,
}

impl Contenders for Counting {
    fn one<S: Service<()>>(&mut self, name: &'static str, svc: S) {
        self.rows
            .push((self.group, name, allocs_per_call(name, svc)));
    }

    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S) {
        let allocs = allocs_per_call_two_threads(name, make);
        self.rows.push((self.group, name, allocs));
    }
}

/// Allocations per call on this thread, after a warm-up.
fn allocs_per_call<S: Service<()>>(name: &str, mut svc: S) -> f64 {
    check(name, &mut svc);
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

/// Allocations per call over two threads sharing a command, half the calls each.
fn allocs_per_call_two_threads<S: Service<()> + Send>(name: &str, make: impl Fn() -> S) -> f64 {
    check(name, &mut make());
    let runtime = Handle::current();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        for mut svc in [make(), make()] {
            let (barrier, runtime) = (&barrier, &runtime);
            scope.spawn(move || {
                let _runtime = runtime.enter();
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

fn count_allocations() -> Vec<(&'static str, &'static str, f64)> {
    let mut c = Counting {
        group: "bulkhead",
        rows: Vec::new(),
    };
    bulkhead_contenders(&mut c);
    c.group = "timeout";
    timeout_contenders(&mut c);
    c.group = "fallback";
    fallback_contenders(&mut c);
    c.group = "command";
    command_contenders(&mut c);
    c.group = "command_two_threads";
    command_two_threads_contenders(&mut c);
    c.rows
}

// ===== the table =====

/// A table row: a contender, the row its overhead is measured from, and the
/// rampart row its ratios are to.
struct Row {
    name: &'static str,
    baseline: &'static str,
    rampart: &'static str,
}

const fn row(name: &'static str) -> Row {
    Row {
        name,
        baseline: BARE,
        rampart: RAMPART,
    }
}

const fn err_row(name: &'static str) -> Row {
    Row {
        name,
        baseline: BARE_ERR,
        rampart: RAMPART_ERR,
    }
}

/// Table rows, in order: (group, rows).
const TABLE: [(&str, &[Row]); 5] = [
    (
        "bulkhead",
        &[row(BARE), row(RAMPART), row(TOWER), row(TOWER_RESILIENCE)],
    ),
    (
        "timeout",
        &[row(BARE), row(RAMPART), row(TOWER), row(TOWER_RESILIENCE)],
    ),
    (
        "fallback",
        &[
            row(BARE),
            row(RAMPART),
            row(TOWER),
            err_row(BARE_ERR),
            err_row(RAMPART_ERR),
            err_row(TOWER_ERR),
        ],
    ),
    (
        "command",
        &[row(BARE), row(RAMPART), row(TOWER_RESILIENCE), row(TOWER)],
    ),
    (
        "command_two_threads",
        &[row(BARE), row(RAMPART), row(TOWER_RESILIENCE)],
    ),
];

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
    println!("Mean time per call (criterion mean), overhead over the bare service, and ratios to rampart.");
    println!("`_err` rows: the inner service fails (a boxed zero-sized error) and the fallback serves a value; measured from `bare_err`, compared with `rampart_err`.");
    println!("command_two_threads: wall time per call, two threads sharing one command.");
    println!("Allocations per call: {ALLOC_CALLS} calls after {WARM_UP_CALLS} warm-up calls, outside timing.");
    println!();
    println!("| group | contender | ns/call | over bare (ns) | × rampart (time) | × rampart (overhead) | allocs/call |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (group, rows) in TABLE {
        let mean = |name| mean_ns(&dir, group, name, since);
        for r in rows {
            let ns = mean(r.name);
            let bare = mean(r.baseline);
            let over = ns.zip(bare).map(|(n, b)| n - b);
            let is_baseline = r.name == r.baseline;
            let (ratio, over_ratio) = if is_baseline {
                (None, None)
            } else {
                let rampart = mean(r.rampart);
                let rampart_over = rampart.zip(bare).map(|(r, b)| r - b);
                (
                    ns.zip(rampart).map(|(n, r)| n / r),
                    over.zip(rampart_over)
                        .filter(|(_, r)| *r > 0.0)
                        .map(|(o, r)| o / r),
                )
            };
            let allocs = allocations
                .iter()
                .find(|(g, n, _)| *g == group && *n == r.name)
                .map(|a| a.2);
            println!(
                "| {group} | {} | {} | {} | {} | {} | {} |",
                r.name,
                fmt(ns, 1, ""),
                fmt(if is_baseline { None } else { over }, 1, ""),
                fmt(ratio, 2, "×"),
                fmt(over_ratio, 2, "×"),
                fmt(allocs, 2, ""),
            );
        }
    }
    println!();
    println!("bulkhead: tower's ConcurrencyLimit waits when full; rampart and tower-resilience (reject_when_full) reject.");
    println!("fallback: tower has no fallback layer; its rows are ServiceBuilder::then mapping every error to a value. tower-resilience's fallback feature is not enabled here.");
    println!("command: tower is concurrency_limit + timeout only (no breaker, no fallback), for reference.");
}

fn main() {
    // Timeouts make tokio `Sleep`s, which need a runtime with a timer: stay
    // in one's context for the whole run (nothing is ever spawned on it).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let _runtime = runtime.enter();

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
