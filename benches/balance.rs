//! What choosing an endpoint costs per call: rampart's balancer under each
//! of its rules next to tower's `p2c::Balance`, over the same no-op
//! endpoint services, for 3, 10, 100 and 1000 endpoints.
//!
//! One call is `poll_ready`, `call`, and the response future polled to
//! completion, driven by hand on a no-op waker, as in
//! `benches/circuit_breaker.rs`: no executor in the loop. Nothing here is
//! ever pending (every endpoint is ready and answers at once), but the
//! driver keeps the same fallback: re-poll, spinning, then park in
//! `futures::executor::block_on`.
//!
//! Groups, one per endpoint count (`endpoints_3` … `endpoints_1000`), each
//! with the bare no-op service as its baseline, so that "over bare" is what
//! choosing the endpoint and the balancer's bookkeeping cost:
//! - `rampart_p2c`: the default rule, `PowerOfTwoChoices` on peak-EWMA load;
//! - `rampart_round_robin`, `rampart_random`, `rampart_least_concurrent`,
//!   `rampart_weighted_response_time`: the other plain rules;
//! - `rampart_availability_filter`: `AvailabilityFilter::new(RoundRobin)`
//!   (no endpoint has a breaker, so nothing is filtered out);
//! - `rampart_zone_affinity`: `ZoneAffinity::new("a", PowerOfTwoChoices)`;
//!   endpoints are in zones "a" and "b" alternately (every rampart
//!   contender gets the same zoned endpoints, which only this rule reads);
//! - `tower_p2c_pending`: tower's `p2c::Balance` over a `ServiceList` of
//!   the no-op services, each wrapped in `load::PendingRequests`;
//! - `tower_p2c_ewma`: the same, each wrapped in `load::PeakEwma` with
//!   rampart's defaults (30 ms initial estimate, 10 s decay): the like of
//!   rampart's default rule.
//!
//! Notes on the contenders:
//! - rampart's balancer is built with its defaults otherwise (one retry on
//!   another endpoint, outlier ejection, a retry budget); no call fails, so
//!   none of that does more than its per-call bookkeeping. Its latency
//!   estimates and tower's `PeakEwma` read `tokio::time::Instant`, so
//!   `main` builds a current-thread runtime with time enabled and stays in
//!   its context (`Runtime::enter`) for the whole run; nothing is spawned
//!   on it and no timer is registered.
//! - The bench build enables tokio's `test-util` (a dev-dependency
//!   feature), which adds one relaxed atomic load to each clock read.
//!   Production builds do not pay it.
//! - The metrics facade has no recorder installed: rampart's per-endpoint
//!   counters and histograms are no-ops here.
//! - tower's p2c moves the endpoint it calls out of its ready set and into
//!   a `FuturesUnordered` of services pending readiness, from which the
//!   next `poll_ready` promotes it back: that push is its allocation per
//!   call.
//!
//! After criterion, `main` counts allocations per call for every contender
//! and endpoint count (10 000 calls after a warm-up, outside any timing)
//! with a counting global allocator, then prints markdown tables built from
//! criterion's `estimates.json` files. Every case pays that allocator's
//! bookkeeping (a thread-local read) per allocation, so the contenders that
//! allocate run a little slower here than they would otherwise.

// The counting allocator needs `unsafe impl GlobalAlloc`; unsafe code stays
// forbidden in the library itself (src/lib.rs).
#![allow(unsafe_code)]

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion};
use futures::task::noop_waker_ref;
use rampart::balance::rule::{
    AvailabilityFilter, LeastConcurrent, PowerOfTwoChoices, Random, RoundRobin,
    WeightedResponseTime, ZoneAffinity,
};
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::BoxError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{poll_fn, ready, Future, Ready};
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};
use tower::{service_fn, Service};

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

/// The no-op service behind every endpoint, and the baseline.
fn noop(
) -> impl Service<(), Response = (), Error = BoxError, Future = Ready<Res>> + Clone + Send + Sync + 'static
{
    service_fn(|_: ()| ready(Ok::<_, BoxError>(())))
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
/// parked in `block_on`. Out of line: nothing here is expected to get here.
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
const P2C: &str = "rampart_p2c";
const ROUND_ROBIN: &str = "rampart_round_robin";
const RANDOM: &str = "rampart_random";
const LEAST_CONCURRENT: &str = "rampart_least_concurrent";
const WEIGHTED_RESPONSE_TIME: &str = "rampart_weighted_response_time";
const AVAILABILITY_FILTER: &str = "rampart_availability_filter";
const ZONE_AFFINITY: &str = "rampart_zone_affinity";
const TOWER_PENDING: &str = "tower_p2c_pending";
const TOWER_EWMA: &str = "tower_p2c_ewma";

/// rampart's rules, in table order.
const RULES: [&str; 7] = [
    P2C,
    ROUND_ROBIN,
    RANDOM,
    LEAST_CONCURRENT,
    WEIGHTED_RESPONSE_TIME,
    AVAILABILITY_FILTER,
    ZONE_AFFINITY,
];

/// Every contender, in table order.
const CONTENDERS: [&str; 10] = [
    BARE,
    P2C,
    ROUND_ROBIN,
    RANDOM,
    LEAST_CONCURRENT,
    WEIGHTED_RESPONSE_TIME,
    AVAILABILITY_FILTER,
    ZONE_AFFINITY,
    TOWER_PENDING,
    TOWER_EWMA,
];

/// The endpoint counts, one group each.
const ENDPOINTS: [usize; 4] = [3, 10, 100, 1000];

/// tower's `PeakEwma` settings: rampart's defaults.
const INITIAL_RTT: Duration = rampart::balance::DEFAULT_INITIAL_LATENCY;
const DECAY: Duration = rampart::balance::DEFAULT_LATENCY_DECAY;

/// rampart's balancer under `rule` over `n` no-op endpoints, in zones "a"
/// and "b" alternately.
fn rampart(rule: &str, n: usize) -> impl Service<(), Response = (), Error = BoxError> {
    let builder = Balance::builder(format!("bench-{rule}-{n}"));
    let builder = match rule {
        P2C => builder.rule(PowerOfTwoChoices),
        ROUND_ROBIN => builder.rule(RoundRobin::new()),
        RANDOM => builder.rule(Random),
        LEAST_CONCURRENT => builder.rule(LeastConcurrent),
        WEIGHTED_RESPONSE_TIME => builder.rule(WeightedResponseTime),
        AVAILABILITY_FILTER => builder.rule(AvailabilityFilter::new(RoundRobin::new())),
        ZONE_AFFINITY => builder.rule(ZoneAffinity::new("a", PowerOfTwoChoices)),
        other => unreachable!("no rule named {other}"),
    };
    let zones: [Arc<str>; 2] = [Arc::from("a"), Arc::from("b")];
    let endpoints = (0..n).map(|i| Endpoint::new(i, noop()).zone(zones[i % 2].clone()));
    builder.build(Endpoints::fixed(endpoints)).unwrap()
}

/// tower's p2c over `n` no-op services, each behind `load`.
fn tower_p2c<L>(n: usize, load: impl Fn() -> L) -> impl Service<(), Response = (), Error = BoxError>
where
    L: Service<(), Response = (), Error = BoxError> + tower::load::Load,
    L::Metric: std::fmt::Debug,
{
    let services: Vec<L> = (0..n).map(|_| load()).collect();
    tower::balance::p2c::Balance::new(ServiceList::new::<()>(services))
}

/// What a group does with each of its contenders: time it, or count its
/// allocations. The contenders are listed once, for both.
trait Contenders {
    fn one<S: Service<()>>(&mut self, name: &'static str, svc: S);
}

fn contenders(n: usize, c: &mut impl Contenders) {
    c.one(BARE, noop());
    for rule in RULES {
        c.one(rule, rampart(rule, n));
    }
    c.one(
        TOWER_PENDING,
        tower_p2c(n, || {
            PendingRequests::new(noop(), CompleteOnResponse::default())
        }),
    );
    let decay_ns = DECAY.as_nanos() as f64;
    c.one(
        TOWER_EWMA,
        tower_p2c(n, || {
            PeakEwma::new(noop(), INITIAL_RTT, decay_ns, CompleteOnResponse::default())
        }),
    );
}

/// Every call is expected to succeed.
fn check<S: Service<()>>(name: &str, svc: &mut S) {
    assert!(drive(svc).is_ok(), "{name}: a call failed");
}

fn group_name(n: usize) -> String {
    format!("endpoints_{n}")
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
}

fn balance(c: &mut Criterion) {
    for n in ENDPOINTS {
        let mut g = c.benchmark_group(group_name(n));
        contenders(n, &mut Timing { group: &mut g });
        g.finish();
    }
}

fn config() -> Criterion {
    // 40 cases: short runs keep the whole bench to about two minutes.
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_millis(1500))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = balance
}

// ===== allocations =====

const ALLOC_CALLS: usize = 10_000;
const WARM_UP_CALLS: usize = 100;

/// Allocations per call for every (endpoint count, contender).
struct Counting {
    n: usize,
    rows: Vec<(usize, &'static str, f64)>,
}

impl Contenders for Counting {
    fn one<S: Service<()>>(&mut self, name: &'static str, svc: S) {
        self.rows.push((self.n, name, allocs_per_call(name, svc)));
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

fn count_allocations() -> Vec<(usize, &'static str, f64)> {
    let mut c = Counting {
        n: 0,
        rows: Vec::new(),
    };
    for n in ENDPOINTS {
        c.n = n;
        contenders(n, &mut c);
    }
    c.rows
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

fn print_table(since: SystemTime, allocations: &[(usize, &str, f64)]) {
    let dir = criterion_dir();
    let fmt = |v: Option<f64>, digits: usize, suffix: &str| match v {
        Some(v) => format!("{v:.digits$}{suffix}"),
        None => "n/a".to_string(),
    };
    let mean = |n: usize, name: &str| mean_ns(&dir, &group_name(n), name, since);
    let over = |n: usize, name: &str| mean(n, name).zip(mean(n, BARE)).map(|(t, b)| t - b);

    println!();
    println!("Mean time per call (criterion mean; poll_ready + call + response polled to completion), overhead over the bare no-op service, and ratios to rampart's P2C (the default rule).");
    println!("Allocations per call: {ALLOC_CALLS} calls after {WARM_UP_CALLS} warm-up calls, outside timing.");
    println!();
    println!("| endpoints | contender | ns/call | over bare (ns) | × rampart_p2c (time) | × rampart_p2c (overhead) | allocs/call |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for n in ENDPOINTS {
        let p2c = mean(n, P2C);
        let p2c_over = over(n, P2C);
        for name in CONTENDERS {
            let ns = mean(n, name);
            let is_baseline = name == BARE;
            let (ratio, over_ratio) = if is_baseline || name == P2C {
                (None, None)
            } else {
                (
                    ns.zip(p2c).map(|(t, p)| t / p),
                    over(n, name)
                        .zip(p2c_over)
                        .filter(|(_, p)| *p > 0.0)
                        .map(|(o, p)| o / p),
                )
            };
            let allocs = allocations
                .iter()
                .find(|(m, c, _)| *m == n && *c == name)
                .map(|a| a.2);
            println!(
                "| {n} | {name} | {} | {} | {} | {} | {} |",
                fmt(ns, 1, ""),
                fmt(if is_baseline { None } else { over(n, name) }, 1, ""),
                fmt(ratio, 2, "×"),
                fmt(over_ratio, 2, "×"),
                fmt(allocs, 2, ""),
            );
        }
    }

    println!();
    println!("Overhead over bare (ns) by endpoint count: O(1) rules stay flat.");
    println!();
    let header: Vec<String> = ENDPOINTS.iter().map(|n| n.to_string()).collect();
    println!("| contender | {} | 1000 ÷ 3 |", header.join(" | "));
    println!("|---|{}---:|", "---:|".repeat(ENDPOINTS.len()));
    for name in CONTENDERS.into_iter().filter(|&c| c != BARE) {
        let cells: Vec<String> = ENDPOINTS
            .iter()
            .map(|&n| fmt(over(n, name), 1, ""))
            .collect();
        let growth = over(1000, name)
            .zip(over(3, name))
            .filter(|(_, small)| *small > 0.0)
            .map(|(big, small)| big / small);
        println!(
            "| {name} | {} | {} |",
            cells.join(" | "),
            fmt(growth, 2, "×")
        );
    }
    println!();
    println!("Targets (the issue): P2C O(1) in the endpoint count, ≤ 90 ns per call and 0 allocations; tower's p2c ≈ 180 ns and 1 allocation per call.");
}

fn main() {
    // rampart's latency estimates and tower's PeakEwma read the tokio
    // clock: stay in a runtime's context for the whole run (nothing is
    // ever spawned on it).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let _runtime = runtime.enter();

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
        let allocations = count_allocations();
        print_table(started, &allocations);
    }
}
