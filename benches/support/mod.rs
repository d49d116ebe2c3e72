//! What the benches share: the counting global allocator, the no-op and
//! failing services, the hand-driven call, timing on one thread or two,
//! allocations per call, and the markdown table read from criterion's
//! `estimates.json` files. Each bench keeps its own contenders, groups and
//! notes.
//!
//! Each bench includes this module with `mod support;` (cargo does not take
//! `benches/support/mod.rs` for a bench of its own), so each gets its own
//! copy, and the counting allocator (`alloc.rs`, shared with
//! `tests/allocations.rs`) as its global allocator.
// Not every bench uses every helper (balance has no failing service and no
// two-thread case).
#![allow(dead_code)]

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use futures::task::noop_waker_ref;
use rampart::BoxError;
use std::fmt;
use std::future::{poll_fn, ready, Future, Ready};
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::Barrier;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;
use tower::{service_fn, Service};

// ===== counting allocator =====

mod alloc;
use alloc::{counting, total};
// For the benches that measure memory per key (keyed.rs).
#[allow(unused_imports)]
pub use alloc::live_bytes;

// ===== services and the call driver =====

pub type Res = Result<(), BoxError>;

/// The no-op inner service every contender wraps, and the baseline.
pub fn noop(
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
pub fn failing(
) -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone + Send + Sync + 'static
{
    service_fn(|_: ()| ready(Err::<(), BoxError>(Box::new(Refused))))
}

/// One call: `poll_ready`, `call`, and the response polled to completion.
#[inline]
pub fn drive<S: Service<()>>(svc: &mut S) -> Result<S::Response, S::Error> {
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
/// parked in `block_on`. Out of line: only a contended lock (the
/// tower-resilience contenders' `tokio::sync::Mutex`) gets here.
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

// ===== timing =====

/// Times calls to `svc`, one after another on this thread.
pub fn time_calls<S: Service<()>>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut svc: S) {
    g.bench_function(name, |b| b.iter(|| drive(&mut svc)));
}

/// Times two services from `make` called at once on two threads, as wall
/// time per call.
pub fn time_two_threads<S: Service<()> + Send>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    make: impl Fn() -> S,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| two_threads_wall([make(), make()], iters))
    });
}

/// Both services called `iters` times at once on their own threads (inside
/// the caller's tokio runtime context, if it is in one); returns half the
/// wall time, so that criterion's per-iteration figure is the wall time per
/// call.
fn two_threads_wall<S: Service<()> + Send>(services: [S; 2], iters: u64) -> Duration {
    let runtime = Handle::try_current().ok();
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let threads: Vec<_> = services
            .into_iter()
            .map(|mut svc| {
                let (barrier, runtime) = (&barrier, &runtime);
                scope.spawn(move || {
                    let _runtime = runtime.as_ref().map(Handle::enter);
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

// ===== allocations =====

const ALLOC_CALLS: usize = 10_000;
const WARM_UP_CALLS: usize = 100;

/// Allocations per call on this thread, after a warm-up.
pub fn allocs_per_call<S: Service<()>>(mut svc: S) -> f64 {
    for _ in 0..WARM_UP_CALLS {
        black_box(drive(&mut svc).is_ok());
    }
    let before = total();
    counting(|| {
        for _ in 0..ALLOC_CALLS {
            black_box(drive(&mut svc).is_ok());
        }
    });
    (total() - before) as f64 / ALLOC_CALLS as f64
}

/// Allocations per call over two services from `make` called at once on two
/// threads (inside the caller's tokio runtime context, if it is in one),
/// half the calls each.
pub fn allocs_per_call_two_threads<S: Service<()> + Send>(make: impl Fn() -> S) -> f64 {
    let runtime = Handle::try_current().ok();
    let before = total();
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        for mut svc in [make(), make()] {
            let (barrier, runtime) = (&barrier, &runtime);
            scope.spawn(move || {
                let _runtime = runtime.as_ref().map(Handle::enter);
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
    (total() - before) as f64 / ALLOC_CALLS as f64
}

/// The allocations per call counted for `name` in the group keyed `key`.
pub fn allocs<K: PartialEq>(rows: &[(K, &str, f64)], key: K, name: &str) -> Option<f64> {
    rows.iter()
        .find(|(k, n, _)| *k == key && *n == name)
        .map(|r| r.2)
}

// ===== the run =====

/// Criterion as every bench here sets it up: `warm_up` and `measurement`
/// time per case, no plots.
pub fn config(warm_up: Duration, measurement: Duration) -> Criterion {
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(measurement)
        .without_plots()
}

/// The runtime a bench stays in the context of (`Runtime::enter`) for its
/// whole run, with time enabled; nothing is ever spawned on it. The
/// two-thread cases enter it on their threads too.
///
/// A multi-thread one (one worker), as a service runs on: rampart's
/// components built in its context read the CPU's time-stamp counter rather
/// than tokio's clock (see the crate docs, "Time"). With `RAMPART_BENCH_CLOCK=tokio`
/// it is a current-thread runtime instead, whose clock tests may pause, and
/// the components read tokio's clock: the cost on such a runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    if std::env::var_os("RAMPART_BENCH_CLOCK").is_some_and(|v| v == "tokio") {
        println!(
            "RAMPART_BENCH_CLOCK=tokio: a current-thread runtime; rampart reads tokio's clock"
        );
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("a multi-thread runtime")
    }
}

/// Runs `benches` (the `criterion_group!`) and criterion's summary; then, if
/// criterion timed anything, `report` with this run's estimates: the
/// allocation count and the tables, which come after all timing.
pub fn run(benches: fn(), report: impl FnOnce(&Estimates)) {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();

    // As criterion decides: without `--bench` (cargo test --benches), or
    // with `--test` or `--list`, nothing was timed; with `--profile-time`
    // (under a profiler) nothing was analysed, and the profile should hold
    // the chosen case alone.
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let timing = has("--bench") && !has("--test") && !has("--list") && !has("--profile-time");
    if timing {
        report(&Estimates {
            dir: criterion_dir(),
            since: started,
        });
    }
}

// ===== the table =====

/// Criterion's estimates from this run.
pub struct Estimates {
    dir: PathBuf,
    since: SystemTime,
}

impl Estimates {
    /// The mean (ns) criterion estimated for `group/function` in this run.
    pub fn mean(&self, group: &str, function: &str) -> Option<f64> {
        let path = self
            .dir
            .join(group)
            .join(function)
            .join("new")
            .join("estimates.json");
        let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= self.since;
        if !fresh {
            return None;
        }
        let json = std::fs::read_to_string(&path).ok()?;
        let mean = &json[json.find("\"mean\"")?..];
        let value = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
        let end = value.find([',', '}'])?;
        value[..end].trim().parse().ok()
    }
}

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

/// A table cell: `v` with `digits` decimals and `suffix`, or "n/a".
pub fn cell(v: Option<f64>, digits: usize, suffix: &str) -> String {
    match v {
        Some(v) => format!("{v:.digits$}{suffix}"),
        None => "n/a".to_string(),
    }
}

/// Prints what comes before a table's rows: `notes`, the allocation
/// count's note, and the header. The first column is `key`, aligned as
/// `key_align` says (`---` or `---:`); the ratios are to `reference`.
pub fn print_head(notes: &[&str], key: &str, key_align: &str, reference: &str) {
    println!();
    for note in notes {
        println!("{note}");
    }
    println!("Allocations per call: {ALLOC_CALLS} calls after {WARM_UP_CALLS} warm-up calls, outside timing.");
    println!();
    println!("| {key} | contender | ns/call | over bare (ns) | × {reference} (time) | × {reference} (overhead) | allocs/call |");
    println!("|{key_align}|---|---:|---:|---:|---:|---:|");
}

/// A row's timings, each `None` where it does not apply or is missing.
pub struct Figures {
    pub ns: Option<f64>,
    pub over: Option<f64>,
    pub ratio: Option<f64>,
    pub over_ratio: Option<f64>,
}

/// A contender's mean time `ns`, its overhead over the `baseline`'s mean,
/// and both as ratios to the `reference` contender's (the overhead's only
/// where the reference's overhead is positive). A `None` baseline or
/// reference leaves out what is measured from it.
pub fn figures(ns: Option<f64>, baseline: Option<f64>, reference: Option<f64>) -> Figures {
    let over = ns.zip(baseline).map(|(n, b)| n - b);
    let reference_over = reference.zip(baseline).map(|(r, b)| r - b);
    Figures {
        ns,
        over,
        ratio: ns.zip(reference).map(|(n, r)| n / r),
        over_ratio: over
            .zip(reference_over)
            .filter(|(_, r)| *r > 0.0)
            .map(|(o, r)| o / r),
    }
}

/// Prints a table row: `key`, the contender's `name`, its figures and its
/// allocations per call.
pub fn print_row(key: impl fmt::Display, name: &str, f: &Figures, allocs: Option<f64>) {
    println!(
        "| {key} | {name} | {} | {} | {} | {} | {} |",
        cell(f.ns, 1, ""),
        cell(f.over, 1, ""),
        cell(f.ratio, 2, "×"),
        cell(f.over_ratio, 2, "×"),
        cell(allocs, 2, ""),
    );
}
