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
//! to be created in: `main` builds a runtime with time enabled
//! (`support::runtime`) and stays inside its context (`Runtime::enter`) for the whole
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
//! - `command`, `rampart_streamed`: the same rampart command while a
//!   `HystrixStream` over the global registry serves two subscribers every
//!   100 ms (five times Hystrix's rate) on a runtime of its own: what
//!   watching a command live costs its calls;
//! - `chaos`: the chaos layer switched off (what a production stack pays
//!   for keeping it) and switched on with its faults at 0 %, over the bare
//!   service;
//! - `retry`: rampart's `RetryLayer` (defaults: 3 attempts, its own retry
//!   budget, which every call deposits into) on the success path, next to
//!   tower's `Retry` with a policy allowing 2 retries (`tower`) and with
//!   one that also deposits into tower's `TpsBudget` on every call, as
//!   tower's budget docs show (`tower_budget`);
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
//! (10 000 calls after a warm-up, outside any timing; every counted call
//! succeeds except `bare_err`'s) with a counting global allocator, then
//! prints a markdown table built from criterion's `estimates.json` files.
//! Every case pays that allocator's bookkeeping (a thread-local read) per
//! allocation, so the contenders that allocate run a little slower here
//! than they would otherwise.

mod support;

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, SamplingMode};
use rampart::circuit_breaker::State;
use rampart::{BoxError, Command};
use std::future::ready;
use std::time::Duration;
use support::{
    allocs, allocs_per_call, allocs_per_call_two_threads, drive, failing, figures, noop,
    print_head, print_row, time_calls, time_two_threads, Estimates, Res,
};
use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service, ServiceBuilder};
use tower_resilience::bulkhead as trb;
use tower_resilience::circuitbreaker as trc;
use tower_resilience::timelimiter as trt;

// ===== the contenders =====

const BARE: &str = "bare";
const BARE_ERR: &str = "bare_err";
const RAMPART: &str = "rampart";
const RAMPART_ERR: &str = "rampart_err";
const RAMPART_STREAMED: &str = "rampart_streamed";
const CHAOS_OFF: &str = "chaos_off";
const CHAOS_ON: &str = "chaos_on_0pct";
const TOWER: &str = "tower";
const TOWER_BUDGET: &str = "tower_budget";
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

/// The hystrix stream running with two subscribers reading it, on a
/// runtime of its own (one worker thread), every 100 ms: five times
/// Hystrix's default rate, so its cost shows if it has one.
struct Streamed {
    runtime: tokio::runtime::Runtime,
}

impl Streamed {
    fn start() -> Self {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let stream = rampart::stream::HystrixStream::builder()
            .delay(Duration::from_millis(100))
            .build()
            .unwrap();
        let (started, mut frames) = tokio::sync::mpsc::channel(2);
        for _ in 0..2 {
            let mut stream = stream.clone();
            let started = started.clone();
            runtime.spawn(async move {
                let request = http::Request::get("/hystrix.stream").body(()).unwrap();
                let response = stream.call(request).await.unwrap();
                let mut body = response.into_body();
                let mut first = true;
                while let Some(Ok(frame)) = body.frame().await {
                    assert!(frame.is_data());
                    if std::mem::take(&mut first) {
                        started.send(()).await.unwrap();
                    }
                }
            });
        }
        for _ in 0..2 {
            frames.blocking_recv().expect("both subscribers get frames");
        }
        Streamed { runtime }
    }
}

fn command_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = rampart_command();
    c.one(RAMPART, layer.layer(noop()));
    assert_clean(&layer);
    let streamed = Streamed::start();
    c.one(RAMPART_STREAMED, layer.layer(noop()));
    assert_clean(&layer);
    streamed.runtime.shutdown_background();
    c.one(TOWER_RESILIENCE, tower_resilience_command().service(noop()));
    c.one(
        TOWER,
        ServiceBuilder::new()
            .concurrency_limit(SLOTS)
            .timeout(TIMEOUT)
            .service(noop()),
    );
}

/// The chaos layer as it sits in production stacks: switched off (what
/// a call pays for it being there), and switched on with faults at 0 %
/// (the draw, never an injection).
fn chaos_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    // Built only with the `chaos` feature: `cargo bench --all-features`.
    #[cfg(feature = "chaos")]
    {
        use rampart::chaos::{Abort, ChaosLayer};
        let off = ChaosLayer::<(), ()>::builder("bench-chaos-off")
            .abort(Abort::error(|| "injected"), 100.0)
            .build()
            .unwrap();
        c.one(CHAOS_OFF, off.layer(noop()));
        assert_eq!(off.handle().injected_aborts(), 0);
        let on = ChaosLayer::<(), ()>::builder("bench-chaos-on")
            .abort(Abort::error(|| "injected"), 0.0)
            .enabled(true)
            .build()
            .unwrap();
        c.one(CHAOS_ON, on.layer(noop()));
        assert_eq!(on.handle().injected_aborts(), 0);
    }
}

/// tower's retry policy at its simplest: up to `retries` retries of any
/// error, with an optional budget deposited into on every call.
#[derive(Clone)]
struct TowerRetries {
    retries: usize,
    budget: Option<std::sync::Arc<tower::retry::budget::TpsBudget>>,
}

impl<E> tower::retry::Policy<(), (), E> for TowerRetries {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _: &mut (), result: &mut Result<(), E>) -> Option<Self::Future> {
        use tower::retry::budget::Budget;
        match result {
            Ok(()) => {
                if let Some(budget) = &self.budget {
                    budget.deposit();
                }
                None
            }
            Err(_) if self.retries > 0 => {
                let withdrawn = self.budget.as_ref().is_none_or(|b| b.withdraw());
                self.retries -= 1;
                withdrawn.then(|| ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, &(): &()) -> Option<()> {
        Some(())
    }
}

fn retry_contenders(c: &mut impl Contenders) {
    c.one(BARE, noop());
    let layer = rampart::retry::RetryLayer::builder("bench-retry")
        .build()
        .unwrap();
    c.one(RAMPART, layer.layer(noop()));
    assert_eq!(layer.handle().retries(), 0);
    let plain = TowerRetries {
        retries: 2,
        budget: None,
    };
    c.one(TOWER, tower::retry::RetryLayer::new(plain).layer(noop()));
    let budgeted = TowerRetries {
        retries: 2,
        budget: Some(std::sync::Arc::new(tower::retry::budget::TpsBudget::new(
            Duration::from_secs(10),
            10,
            0.2,
        ))),
    };
    c.one(
        TOWER_BUDGET,
        tower::retry::RetryLayer::new(budgeted).layer(noop()),
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

impl Contenders for BenchmarkGroup<'_, WallTime> {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check(name, &mut svc);
        time_calls(self, name, svc);
    }

    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S) {
        check(name, &mut make());
        time_two_threads(self, name, make);
    }
}

/// Times a group's contenders.
fn timed(
    c: &mut Criterion,
    group: &str,
    contenders: impl FnOnce(&mut BenchmarkGroup<'_, WallTime>),
) {
    let mut g = c.benchmark_group(group);
    if group.ends_with("two_threads") {
        // Every sample runs the same number of calls: fewer, longer samples
        // amortise the thread start-up that each sample pays.
        g.sampling_mode(SamplingMode::Flat);
    }
    contenders(&mut g);
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

fn chaos(c: &mut Criterion) {
    timed(c, "chaos", |t| chaos_contenders(t));
}

fn retry(c: &mut Criterion) {
    timed(c, "retry", |t| retry_contenders(t));
}

fn command_two_threads(c: &mut Criterion) {
    timed(c, "command_two_threads", |t| {
        command_two_threads_contenders(t)
    });
}

criterion_group! {
    name = benches;
    config = support::config(Duration::from_secs(1), Duration::from_secs(2));
    targets = bulkhead, timeout, fallback, command, command_two_threads, chaos, retry
}

// ===== allocations =====

/// Allocations per call for every (group, contender).
struct Counting {
    group: &'static str,
    rows: Vec<(&'static str, &'static str, f64)>,
}

impl Contenders for Counting {
    fn one<S: Service<()>>(&mut self, name: &'static str, mut svc: S) {
        check(name, &mut svc);
        self.rows.push((self.group, name, allocs_per_call(svc)));
    }

    fn two<S: Service<()> + Send>(&mut self, name: &'static str, make: impl Fn() -> S) {
        check(name, &mut make());
        let allocs = allocs_per_call_two_threads(make);
        self.rows.push((self.group, name, allocs));
    }
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
    c.group = "chaos";
    chaos_contenders(&mut c);
    c.group = "retry";
    retry_contenders(&mut c);
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
const fn chaos_row(name: &'static str) -> Row {
    Row {
        name,
        baseline: BARE,
        rampart: CHAOS_OFF,
    }
}

const TABLE: [(&str, &[Row]); 7] = [
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
        &[
            row(BARE),
            row(RAMPART),
            row(RAMPART_STREAMED),
            row(TOWER_RESILIENCE),
            row(TOWER),
        ],
    ),
    (
        "command_two_threads",
        &[row(BARE), row(RAMPART), row(TOWER_RESILIENCE)],
    ),
    (
        "chaos",
        &[chaos_row(BARE), chaos_row(CHAOS_OFF), chaos_row(CHAOS_ON)],
    ),
    (
        "retry",
        &[row(BARE), row(RAMPART), row(TOWER), row(TOWER_BUDGET)],
    ),
];

fn print_table(estimates: &Estimates, allocations: &[(&str, &str, f64)]) {
    print_head(
        &[
            "Mean time per call (criterion mean), overhead over the bare service, and ratios to rampart.",
            "`_err` rows: the inner service fails (a boxed zero-sized error) and the fallback serves a value; measured from `bare_err`, compared with `rampart_err`.",
            "command_two_threads: wall time per call, two threads sharing one command.",
        ],
        "group",
        "---",
        RAMPART,
    );
    for (group, rows) in TABLE {
        let mean = |name| estimates.mean(group, name);
        for r in rows {
            let f = if r.name == r.baseline {
                figures(mean(r.name), None, None)
            } else {
                figures(mean(r.name), mean(r.baseline), mean(r.rampart))
            };
            print_row(group, r.name, &f, allocs(allocations, group, r.name));
        }
    }
    println!();
    println!("bulkhead: tower's ConcurrencyLimit waits when full; rampart and tower-resilience (reject_when_full) reject.");
    println!("fallback: tower has no fallback layer; its rows are ServiceBuilder::then mapping every error to a value. tower-resilience's fallback feature is not enabled here.");
    println!("command: tower is concurrency_limit + timeout only (no breaker, no fallback), for reference.");
    println!("chaos: the layer over the bare service, switched off (chaos_off, the reference) and on with every fault at 0 % (chaos_on_0pct).");
    println!("retry: the success path; tower is tower::retry::Retry allowing 2 retries, tower_budget the same depositing into tower's TpsBudget on every call, as rampart does into its RetryBudget.");
    println!("command: rampart_streamed is the same command while the hystrix stream takes a snapshot every 100 ms for two subscribers, on another thread.");
}

fn main() {
    // Timeouts make tokio `Sleep`s, which need a runtime with a timer: stay
    // in one's context for the whole run (nothing is ever spawned on it).
    let runtime = support::runtime();
    let _runtime = runtime.enter();

    support::run(benches, |estimates| {
        print_table(estimates, &count_allocations())
    });
}
