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
//!   estimates and tower's `PeakEwma` read the time, so `main` stays in a
//!   runtime's context (`Runtime::enter`) for the whole run; nothing is
//!   spawned on it and no timer is registered.
//! - rampart's components are built inside a multi-thread runtime's context
//!   (`support::runtime`), as a service's are, so they read the CPU's
//!   time-stamp counter (the crate docs' "Time" says why and when);
//!   `RAMPART_BENCH_CLOCK=tokio` builds them in a current-thread runtime,
//!   where they read tokio's clock. This package's dev-dependencies turn on
//!   tokio's `test-util`, which adds an atomic load to each read of
//!   tokio's clock; `cargo bench --manifest-path perf/Cargo.toml` runs the
//!   same benches without it, as a service is built.
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

mod support;

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion};
use rampart::balance::rule::{
    AvailabilityFilter, LeastConcurrent, PowerOfTwoChoices, Random, RoundRobin,
    WeightedResponseTime, ZoneAffinity,
};
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::BoxError;
use std::sync::Arc;
use std::time::Duration;
use support::{
    allocs, allocs_per_call, cell, drive, figures, noop, print_head, print_row, time_calls,
    Estimates,
};
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};
use tower::Service;

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

impl Contenders for BenchmarkGroup<'_, WallTime> {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check(name, &mut svc);
        time_calls(self, name, svc);
    }
}

fn balance(c: &mut Criterion) {
    for n in ENDPOINTS {
        let mut g = c.benchmark_group(group_name(n));
        contenders(n, &mut g);
        g.finish();
    }
}

criterion_group! {
    name = benches;
    // 40 cases: short runs keep the whole bench to about two minutes.
    config = support::config(Duration::from_millis(700), Duration::from_millis(1500));
    targets = balance
}

// ===== allocations =====

/// Allocations per call for every (endpoint count, contender).
struct Counting {
    n: usize,
    rows: Vec<(usize, &'static str, f64)>,
}

impl Contenders for Counting {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check(name, &mut svc);
        self.rows.push((self.n, name, allocs_per_call(svc)));
    }
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

fn print_table(estimates: &Estimates, allocations: &[(usize, &str, f64)]) {
    let mean = |n: usize, name: &str| estimates.mean(&group_name(n), name);
    let over = |n: usize, name: &str| mean(n, name).zip(mean(n, BARE)).map(|(t, b)| t - b);

    print_head(
        &["Mean time per call (criterion mean; poll_ready + call + response polled to completion), overhead over the bare no-op service, and ratios to rampart's P2C (the default rule)."],
        "endpoints",
        "---:",
        P2C,
    );
    for n in ENDPOINTS {
        let (bare, p2c) = (mean(n, BARE), mean(n, P2C));
        for name in CONTENDERS {
            let f = match name {
                BARE => figures(mean(n, name), None, None),
                P2C => figures(mean(n, name), bare, None),
                _ => figures(mean(n, name), bare, p2c),
            };
            print_row(n, name, &f, allocs(allocations, n, name));
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
            .map(|&n| cell(over(n, name), 1, ""))
            .collect();
        let growth = over(1000, name)
            .zip(over(3, name))
            .filter(|(_, small)| *small > 0.0)
            .map(|(big, small)| big / small);
        println!(
            "| {name} | {} | {} |",
            cells.join(" | "),
            cell(growth, 2, "×")
        );
    }
    println!();
    println!("Targets (the issue): P2C O(1) in the endpoint count, ≤ 90 ns per call and 0 allocations; tower's p2c ≈ 180 ns and 1 allocation per call.");
}

fn main() {
    // rampart's latency estimates and tower's PeakEwma read the tokio
    // clock: stay in a runtime's context for the whole run (nothing is
    // ever spawned on it).
    let runtime = support::runtime();
    let _runtime = runtime.enter();

    support::run(benches, |estimates| {
        print_table(estimates, &count_allocations())
    });
}
