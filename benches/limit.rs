//! What an adaptive limit costs per call: acquire and release of a permit,
//! next to rampart's bulkhead and tower's `ConcurrencyLimit`, around the
//! same no-op inner service.
//!
//! One call is `poll_ready`, `call`, and the response future polled to
//! completion, driven by hand on a no-op waker, as in the other benches.
//!
//! Groups, each with the bare no-op service as its baseline:
//! - `limit`: an admitted call. rampart's `Limit` with its defaults (Vegas,
//!   1 s windows); rampart's `Bulkhead` of 1000 (a fixed limit, no
//!   sampling); tower's `ConcurrencyLimit` of 1000 (a tokio semaphore; it
//!   waits when full instead of rejecting). The limiter times one call in
//!   up to 64: every call until its first window ends (1 s after it is
//!   built, within criterion's 2 s warm-up), then one in 64 at this rate.
//!   The no-op's RTTs are under the 100 µs floor, so no window is ever fed
//!   to Vegas: this is the call path alone, which is what every call pays
//!   (the update runs once a window, off it);
//! - `limit_rejected`: the limit reached (a fixed limit of 1, held by a call
//!   that never ends), every call rejected; next to a full bulkhead;
//! - `limit_partitioned`: an admitted call of a partitioned limiter (two
//!   partitions, the key from a closure, looked up by name);
//! - `limit_two_threads`: two threads calling one shared limit, each
//!   through its own service; wall time per call (both threads' calls over
//!   the elapsed time), as in `benches/command.rs`.
//!
//! The limiters are built inside a multi-thread runtime's context
//! (`support::runtime`), as a service's are, so the timed calls read the
//! CPU's time-stamp counter (the crate docs' "Time" says why and when);
//! `RAMPART_BENCH_CLOCK=tokio` builds them in a current-thread runtime,
//! reading tokio's clock. `cargo bench --manifest-path perf/Cargo.toml
//! --bench limit` runs this bench without tokio's `test-util`.
//!
//! After criterion, `main` counts allocations per call for every contender
//! and prints a markdown table, as the other benches do.
//!
//! ```text
//! cargo bench --bench limit --features limit
//! ```

mod support;

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, SamplingMode};
use futures::task::noop_waker_ref;
use rampart::limit::{Fixed, LimitLayer};
use rampart::BoxError;
use std::any::Any;
use std::future::{pending, Pending};
use std::task::Context;
use std::time::Duration;
use support::{
    allocs, allocs_per_call, allocs_per_call_two_threads, drive, figures, noop, print_head,
    print_row, time_calls, time_two_threads, Estimates, Res,
};
use tower::{service_fn, Layer, Service};

const BARE: &str = "bare";
const RAMPART: &str = "rampart";
const BULKHEAD: &str = "rampart_bulkhead";
const TOWER: &str = "tower";

const SLOTS: usize = 1000;

trait Contenders {
    fn one<S: Service<()>>(&mut self, name: &'static str, svc: S);
    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S);
}

/// Never answers: holds the only permit.
fn never() -> impl Service<(), Response = (), Error = BoxError, Future = Pending<Res>> + Clone {
    service_fn(|_: ()| pending::<Res>())
}

fn limit_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = LimitLayer::builder("bench-limit").build().unwrap();
    c.one(RAMPART, layer.layer(noop()));
    assert_eq!(layer.handle().in_flight(), 0);
    let bulkhead = rampart::bulkhead::BulkheadLayer::builder("bench-limit-bulkhead")
        .max_concurrent(SLOTS)
        .build()
        .unwrap();
    c.one(BULKHEAD, bulkhead.layer(noop()));
    c.one(
        TOWER,
        tower::limit::ConcurrencyLimitLayer::new(SLOTS).layer(noop()),
    );
}

/// A call that never ends, holding its permit (or slot) while kept.
fn hold<S: Service<()>>(svc: &mut S) -> S::Future {
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(svc.poll_ready(&mut cx).is_ready());
    svc.call(())
}

/// A layer whose only permit is held by a call that never ends.
fn full_limit() -> (LimitLayer, Box<dyn Any>) {
    let layer = LimitLayer::builder("bench-limit-full")
        .algorithm(Fixed::new(1))
        .build()
        .unwrap();
    let mut holder = layer.layer(never());
    let held = hold(&mut holder);
    (layer, Box::new((holder, held)))
}

fn rejected_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let (layer, _held) = full_limit();
    c.one(RAMPART, layer.layer(noop()));
    assert!(layer.handle().rejected() > 0);
    let bulkhead = rampart::bulkhead::BulkheadLayer::builder("bench-limit-bulkhead-full")
        .max_concurrent(1)
        .build()
        .unwrap();
    let mut holder = bulkhead.layer(never());
    let _held = hold(&mut holder);
    c.one(BULKHEAD, bulkhead.layer(noop()));
}

fn partitioned_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = LimitLayer::builder("bench-limit-partitioned")
        .algorithm(Fixed::new(SLOTS))
        .partition("interactive", 0.8)
        .partition("batch", 0.2)
        .partition_by(|_: &()| Some("interactive"))
        .build()
        .unwrap();
    c.one(RAMPART, layer.layer(noop()));
    assert_eq!(layer.handle().partitions()[0].rejected, 0);
}

fn two_threads_contenders(c: &mut impl Contenders) {
    c.two(BARE, noop);
    let layer = LimitLayer::builder("bench-limit-two").build().unwrap();
    c.two(RAMPART, || layer.layer(noop()));
    let bulkhead = rampart::bulkhead::BulkheadLayer::builder("bench-limit-two-bulkhead")
        .max_concurrent(SLOTS)
        .build()
        .unwrap();
    c.two(BULKHEAD, || bulkhead.layer(noop()));
}

// ===== timing =====

struct Timing<'a, 'b> {
    group: &'static str,
    g: &'a mut BenchmarkGroup<'b, WallTime>,
}

impl Contenders for Timing<'_, '_> {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check_any(self.group, name, &mut svc);
        time_calls(self.g, name, svc);
    }

    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S) {
        check_any(self.group, name, &mut make());
        time_two_threads(self.g, name, make);
    }
}

/// `check` for any error type: only whether the call was served is looked at
/// where the error type is not known to box.
fn check_any<S: Service<()>>(group: &str, name: &str, svc: &mut S) {
    let served = drive(svc).is_ok();
    let rejecting = group == "limit_rejected" && name != BARE;
    assert_eq!(served, !rejecting, "{group}/{name}: unexpected outcome");
}

fn timed(c: &mut Criterion, group: &'static str, contenders: impl FnOnce(&mut Timing<'_, '_>)) {
    let mut g = c.benchmark_group(group);
    if group.ends_with("two_threads") {
        g.sampling_mode(SamplingMode::Flat);
    }
    contenders(&mut Timing { group, g: &mut g });
    g.finish();
}

fn limit(c: &mut Criterion) {
    timed(c, "limit", |t| limit_contenders(t));
}

fn limit_rejected(c: &mut Criterion) {
    timed(c, "limit_rejected", |t| rejected_contenders(t));
}

fn limit_partitioned(c: &mut Criterion) {
    timed(c, "limit_partitioned", |t| partitioned_contenders(t));
}

fn limit_two_threads(c: &mut Criterion) {
    timed(c, "limit_two_threads", |t| two_threads_contenders(t));
}

criterion_group! {
    name = benches;
    config = support::config(Duration::from_secs(2), Duration::from_secs(3));
    targets = limit, limit_rejected, limit_partitioned, limit_two_threads
}

// ===== allocations =====

struct Counting {
    group: &'static str,
    rows: Vec<(&'static str, &'static str, f64)>,
}

impl Contenders for Counting {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check_any(self.group, name, &mut svc);
        self.rows.push((self.group, name, allocs_per_call(svc)));
    }

    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S) {
        check_any(self.group, name, &mut make());
        let allocs = allocs_per_call_two_threads(make);
        self.rows.push((self.group, name, allocs));
    }
}

fn count_allocations() -> Vec<(&'static str, &'static str, f64)> {
    let mut c = Counting {
        group: "limit",
        rows: Vec::new(),
    };
    limit_contenders(&mut c);
    c.group = "limit_rejected";
    rejected_contenders(&mut c);
    c.group = "limit_partitioned";
    partitioned_contenders(&mut c);
    c.group = "limit_two_threads";
    two_threads_contenders(&mut c);
    c.rows
}

// ===== the table =====

const TABLE: [(&str, &[&str]); 4] = [
    ("limit", &[BARE, RAMPART, BULKHEAD, TOWER]),
    ("limit_rejected", &[BARE, RAMPART, BULKHEAD]),
    ("limit_partitioned", &[BARE, RAMPART]),
    ("limit_two_threads", &[BARE, RAMPART, BULKHEAD]),
];

fn print_table(estimates: &Estimates, allocations: &[(&str, &str, f64)]) {
    print_head(
        &[
            "Mean time per call (criterion mean), overhead over the bare service, and ratios to rampart's limit.",
            "limit_two_threads: wall time per call, two threads sharing one limit.",
        ],
        "group",
        "---",
        RAMPART,
    );
    for (group, names) in TABLE {
        let mean = |name| estimates.mean(group, name);
        for &name in names {
            let f = if name == BARE {
                figures(mean(name), None, None)
            } else {
                figures(mean(name), mean(BARE), mean(RAMPART))
            };
            print_row(group, name, &f, allocs(allocations, group, name));
        }
    }
    println!();
    println!("limit: rampart's limit with its defaults (Vegas), its bulkhead (a fixed limit) and tower's ConcurrencyLimit (which waits when full), 1000 permits each.");
    println!("limit_rejected: every call rejected by a reached limit (rampart_bulkhead: a full bulkhead).");
}

fn main() {
    // Built and called in a runtime's context, as a service's layers are.
    let runtime = support::runtime();
    let _runtime = runtime.enter();
    support::run(benches, |estimates| {
        print_table(estimates, &count_allocations())
    });
}
