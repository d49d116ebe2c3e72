//! Every public builder fed random values: zero, huge, `NaN`, infinities,
//! `Duration::MAX`, empty names, names with a NUL, contradictory
//! combinations, and values on both sides of every documented bound.
//!
//! For each builder (and `RetryBudget::new`, `Backoff::exponential` and a
//! chaos handle's `set_faults`), every case must satisfy:
//!
//! 1. nothing panics: not `build()`, not the error's `Display`, not one
//!    call through the layer built (on a paused clock, cut off after two
//!    hours of it, so a hang or a long delay costs nothing);
//! 2. an error is a [`ConfigError`] with at least one violation, and each
//!    violation names one of that builder's own options, in its message;
//! 3. `build()` succeeds exactly when every option is in the range its
//!    documentation states. The `*_ok` oracles below are written from the
//!    doc comments, not from the validation code, so a bound the docs and
//!    the code disagree on fails here.
//!
//! Each builder's options are set or left at their default at random.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::bulkhead::pool::PoolLayer;
use rampart::bulkhead::BulkheadLayer;
use rampart::circuit_breaker::{Builder as BreakerBuilder, CircuitBreakerLayer, Window};
use rampart::fallback::FallbackLayer;
use rampart::registry::Registry;
use rampart::retry::{Backoff, RetryBudget, RetryLayer};
use rampart::stream::{HystrixStream, Turbine};
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, Command, ConfigError};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

// ===== values at and past every edge =====

fn duration() -> BoxedStrategy<Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_nanos(999)),
        Just(Duration::from_micros(1)),
        Just(MS - Duration::from_nanos(1)),
        Just(MS),
        Just(Duration::from_millis(100)),
        Just(SECOND),
        Just(Duration::from_secs(10)),
        Just(Duration::from_secs(60)),
        Just(Duration::from_secs(600)),
        Just(Duration::from_secs(601)),
        Just(HOUR),
        Just(HOUR + Duration::from_nanos(1)),
        Just(YEAR),
        Just(YEAR + Duration::from_nanos(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        any::<u64>().prop_map(Duration::from_nanos),
        (0u64..5_000_000).prop_map(Duration::from_micros),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
    .boxed()
}

fn real() -> BoxedStrategy<f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(0.5),
        Just(1.0),
        Just(1.0 + f64::EPSILON),
        Just(-1.0),
        Just(10.0),
        Just(10.000_001),
        Just(100.0),
        Just(100.000_001),
        Just(f64::MAX),
        0.0..=1.0f64,
        -2.0..110.0f64,
        any::<f64>(),
    ]
    .boxed()
}

fn small_u32() -> BoxedStrategy<u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(10),
        Just(11),
        Just(100),
        Just(101),
        Just(1000),
        Just(1001),
        Just(10_000),
        Just(10_001),
        Just(1 << 20),
        Just((1 << 20) + 1),
        Just(1_000_000),
        Just(1_000_001),
        Just(u32::MAX),
        0u32..30,
        any::<u32>(),
    ]
    .boxed()
}

fn small_usize() -> BoxedStrategy<usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(2),
        Just(1024),
        Just(1025),
        Just(10_000),
        Just(10_001),
        Just(1 << 20),
        Just((1 << 20) + 1),
        Just(1 << 24),
        Just((1 << 24) + 1),
        Just(u32::MAX as usize),
        Just(usize::MAX),
        0usize..30,
        any::<usize>(),
    ]
    .boxed()
}

/// Pool sizes start that many threads: the edges, and small ones.
fn pool_size() -> BoxedStrategy<usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(1024),
        Just(1025),
        Just(usize::MAX),
        1usize..4,
        any::<usize>(),
    ]
    .boxed()
}

fn command_pool_size() -> BoxedStrategy<usize> {
    prop_oneof![Just(0usize), Just(1025), Just(usize::MAX), 1usize..4].boxed()
}

fn name() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("a\0b".to_owned()),
        Just("recommendations ✓ \u{202e}".to_owned()),
        Just("n".repeat(10_000)),
        "[\\x00-\\x1f]{1,3}",
        "\\PC{1,12}",
    ]
    .boxed()
}

/// An option left at its default (`None`) or set to a random value.
fn opt<T: Debug + Clone + 'static>(value: BoxedStrategy<T>) -> BoxedStrategy<Option<T>> {
    // Mostly left alone: a case with one option out of range then often
    // has every other one in range, so each bound is tested on its own.
    proptest::option::weighted(0.4, value).boxed()
}

// ===== the checks =====

/// Runs `f`, turning a panic into a failed case that says where.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {message}"))
    })
}

/// Checks properties 2 and 3 on a build's result; the value when `Ok`.
fn verdict<T>(
    what: &str,
    built: Result<T, ConfigError>,
    fields: &[&str],
    documented_ok: bool,
) -> Result<Option<T>, TestCaseError> {
    match built {
        Ok(value) => {
            prop_assert!(
                documented_ok,
                "{what}: built, but an option is out of its documented range"
            );
            Ok(Some(value))
        }
        Err(e) => {
            let message = no_panic("ConfigError's Display", || e.to_string())?;
            prop_assert!(
                !documented_ok,
                "{what}: every option in range, yet: {message}"
            );
            prop_assert!(
                !e.violations().is_empty(),
                "{what}: an error without a violation"
            );
            for v in e.violations() {
                prop_assert!(
                    fields.contains(&v.field),
                    "{what}: violation names {:?}, not an option of this builder: {message}",
                    v.field
                );
                prop_assert!(
                    message.contains(v.field),
                    "{what}: {message:?} does not name {:?}",
                    v.field
                );
            }
            Ok(None)
        }
    }
}

fn inner(
) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send + 'static {
    tower::service_fn(|_: ()| async { Ok::<_, BoxError>(()) })
}

/// One call through `layer` over a dependency that answers at once, on a
/// paused clock (a pool's threads run on real time: then `paused` is
/// false). Rejections, injected errors and timeouts are fine; a panic is
/// not.
fn call_once<L>(what: &str, layer: &L, paused: bool) -> Result<(), TestCaseError>
where
    L: Layer<tower::util::ServiceFn<fn(()) -> std::future::Ready<Result<(), BoxError>>>>,
    L::Service: Service<()>,
    <L::Service as Service<()>>::Error: Into<BoxError>,
{
    fn answer(_: ()) -> std::future::Ready<Result<(), BoxError>> {
        std::future::ready(Ok(()))
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(paused)
        .build()
        .unwrap();
    no_panic(&format!("a call through the {what}"), || {
        rt.block_on(async {
            let mut svc = layer.layer(tower::service_fn(answer as fn(()) -> _));
            let call = async {
                let svc = svc.ready().await.map_err(Into::into)?;
                svc.call(()).await.map_err(Into::into)
            };
            let _ = tokio::time::timeout(2 * HOUR, call).await;
        })
    })
}

fn in_range(d: Duration, low: Duration, high: Duration) -> bool {
    low <= d && d <= high
}

fn unit(x: f64) -> bool {
    x > 0.0 && x <= 1.0
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ===== circuit breaker =====

#[derive(Debug, Clone)]
enum WindowOpt {
    Time(Duration, u32),
    Count(u32),
}

#[derive(Debug, Clone)]
struct BreakerOpts {
    window: Option<WindowOpt>,
    min_calls: Option<u32>,
    failure_rate: Option<Option<f64>>,
    slow_call: Option<(Duration, f64)>,
    consecutive_failures: Option<Option<u32>>,
    open_for: Option<Duration>,
    open_for_max: Option<Duration>,
    open_for_jitter: Option<f64>,
    probes: Option<u32>,
    probe_timeout: Option<Duration>,
}

const BREAKER_FIELDS: &[&str] = &[
    "name",
    "window",
    "min_calls",
    "failure_rate",
    "slow_call",
    "consecutive_failures",
    "open_for",
    "open_for_max",
    "open_for_jitter",
    "probes",
    "probe_timeout",
];

fn breaker_opts() -> impl Strategy<Value = BreakerOpts> {
    let window = prop_oneof![
        (duration(), small_u32()).prop_map(|(l, b)| WindowOpt::Time(l, b)),
        // Lengths that split evenly, so that the other options decide.
        (1u64..100, 1u32..20)
            .prop_map(|(ms, b)| WindowOpt::Time(MS * (ms * u64::from(b)) as u32, b)),
        small_u32().prop_map(WindowOpt::Count),
    ];
    (
        (
            opt(window.boxed()),
            opt(small_u32()),
            opt(proptest::option::of(real()).boxed()),
            opt((duration(), real()).boxed()),
            opt(proptest::option::of(small_u32()).boxed()),
        ),
        (
            opt(duration()),
            opt(duration()),
            opt(real()),
            opt(small_u32()),
            opt(duration()),
        ),
    )
        .prop_map(
            |(
                (window, min_calls, failure_rate, slow_call, consecutive_failures),
                (open_for, open_for_max, open_for_jitter, probes, probe_timeout),
            )| BreakerOpts {
                window,
                min_calls,
                failure_rate,
                slow_call,
                consecutive_failures,
                open_for,
                open_for_max,
                open_for_jitter,
                probes,
                probe_timeout,
            },
        )
}

impl BreakerOpts {
    fn apply<C>(&self, mut b: BreakerBuilder<C>) -> BreakerBuilder<C> {
        if let Some(w) = &self.window {
            b = b.window(match *w {
                WindowOpt::Time(length, buckets) => Window::time(length, buckets),
                WindowOpt::Count(calls) => Window::count(calls),
            });
        }
        if let Some(n) = self.min_calls {
            b = b.min_calls(n);
        }
        if let Some(rate) = self.failure_rate {
            b = b.failure_rate(rate);
        }
        if let Some((slower_than, rate)) = self.slow_call {
            b = b.slow_call(slower_than, rate);
        }
        if let Some(n) = self.consecutive_failures {
            b = b.consecutive_failures(n);
        }
        if let Some(d) = self.open_for {
            b = b.open_for(d);
        }
        if let Some(d) = self.open_for_max {
            b = b.open_for_max(d);
        }
        if let Some(j) = self.open_for_jitter {
            b = b.open_for_jitter(j);
        }
        if let Some(n) = self.probes {
            b = b.probes(n);
        }
        if let Some(d) = self.probe_timeout {
            b = b.probe_timeout(d);
        }
        b
    }

    /// The time window's length (the default's, 10 s, when unset).
    fn window_length(&self) -> Option<Duration> {
        match self.window {
            None => Some(Duration::from_secs(10)),
            Some(WindowOpt::Time(length, _)) => Some(length),
            Some(WindowOpt::Count(_)) => None,
        }
    }

    /// What the docs of `Builder` and `Window` allow.
    fn documented_ok(&self, name: &str) -> bool {
        let min_calls = self.min_calls.unwrap_or(20);
        let window = match self.window {
            None => true,
            // "length from 1 ms to a year, buckets from 1 to 1000, and
            // length divisible into buckets of at least 1 ms" (of whole
            // microseconds, says the error).
            Some(WindowOpt::Time(length, buckets)) => {
                let us = length.as_micros();
                in_range(length, MS, YEAR)
                    && (1..=1000).contains(&buckets)
                    && us % u128::from(buckets) == 0
                    && us / u128::from(buckets) >= 1000
            }
            // "1 to 2^20 calls"; min_calls "at most its size".
            Some(WindowOpt::Count(calls)) => (1..=1 << 20).contains(&calls) && min_calls <= calls,
        };
        let failure_rate = self.failure_rate.unwrap_or(Some(0.5));
        let consecutive = self.consecutive_failures.unwrap_or(None);
        let open_for = self.open_for.unwrap_or(Duration::from_secs(5));
        !name.is_empty()
            && window
            && min_calls >= 1
            && failure_rate.is_none_or(unit)
            && self
                .slow_call
                .is_none_or(|(d, rate)| in_range(d, Duration::from_micros(1), YEAR) && unit(rate))
            && consecutive.is_none_or(|n| n >= 1)
            // Some trip rule must be on.
            && (failure_rate.is_some() || self.slow_call.is_some() || consecutive.is_some())
            && in_range(open_for, MS, YEAR)
            && self.open_for_max.is_none_or(|max| in_range(max, open_for.max(MS), YEAR))
            && self.open_for_jitter.is_none_or(|j| (0.0..=1.0).contains(&j))
            && self.probes.is_none_or(|n| (1..=10_000).contains(&n))
            && self.probe_timeout.is_none_or(|d| in_range(d, MS, YEAR))
    }
}

// ===== bulkhead, pool, timeout, fallback =====

#[derive(Debug, Clone)]
struct BulkheadOpts {
    max_concurrent: Option<usize>,
    max_wait: Option<Duration>,
    max_waiting: Option<usize>,
}

fn bulkhead_opts() -> impl Strategy<Value = BulkheadOpts> {
    (opt(small_usize()), opt(duration()), opt(small_usize())).prop_map(
        |(max_concurrent, max_wait, max_waiting)| BulkheadOpts {
            max_concurrent,
            max_wait,
            max_waiting,
        },
    )
}

impl BulkheadOpts {
    fn documented_ok(&self, name: &str) -> bool {
        !name.is_empty()
            && self.max_concurrent.is_none_or(|n| (1..=1 << 24).contains(&n))
            // "valid from 1 µs to an hour"
            && self.max_wait.is_none_or(|d| in_range(d, Duration::from_micros(1), HOUR))
            // "valid from 1"; "needs max_wait"
            && self.max_waiting.is_none_or(|n| n >= 1 && self.max_wait.is_some())
    }
}

fn pool_ok(name: &str, size: Option<usize>, queue: Option<usize>) -> bool {
    // "must not be empty nor contain a NUL byte: it names the pool's threads"
    !name.is_empty()
        && !name.contains('\0')
        && size.is_none_or(|n| (1..=1024).contains(&n))
        && queue.is_none_or(|n| n <= 1 << 20)
}

fn timeout_ok(name: &str, timeout: Option<Duration>) -> bool {
    !name.is_empty() && timeout.is_none_or(|d| in_range(d, MS, YEAR))
}

fn fallback_ok(name: &str, max: Option<Option<usize>>) -> bool {
    !name.is_empty() && max.is_none_or(|max| max.is_none_or(|n| n >= 1))
}

// ===== chaos =====

#[derive(Debug, Clone, Copy)]
enum DelayOpt {
    Fixed(Duration),
    Uniform(Duration, Duration),
    LogNormal(Duration, Duration),
}

#[derive(Debug, Clone, Copy)]
enum AbortOpt {
    Error,
    Response,
    Hang,
}

#[derive(Debug, Clone)]
struct ChaosOpts {
    delay: Option<(DelayOpt, f64)>,
    abort: Option<(AbortOpt, f64)>,
    seed: Option<u64>,
    enabled: bool,
}

fn chaos_opts() -> impl Strategy<Value = ChaosOpts> {
    let delay = prop_oneof![
        duration().prop_map(DelayOpt::Fixed),
        (duration(), duration()).prop_map(|(a, b)| DelayOpt::Uniform(a, b)),
        (duration(), duration()).prop_map(|(a, b)| DelayOpt::LogNormal(a, b)),
    ];
    let abort = prop_oneof![
        Just(AbortOpt::Error),
        Just(AbortOpt::Response),
        Just(AbortOpt::Hang)
    ];
    (
        opt((delay, real()).boxed()),
        opt((abort, real()).boxed()),
        opt(any::<u64>().boxed()),
        any::<bool>(),
    )
        .prop_map(|(delay, abort, seed, enabled)| ChaosOpts {
            delay,
            abort,
            seed,
            enabled,
        })
}

impl ChaosOpts {
    fn delay(d: DelayOpt) -> rampart::chaos::Delay {
        use rampart::chaos::Delay;
        match d {
            DelayOpt::Fixed(d) => Delay::fixed(d),
            DelayOpt::Uniform(low, high) => Delay::uniform(low, high),
            DelayOpt::LogNormal(p50, p99) => Delay::log_normal(p50, p99),
        }
    }

    fn abort(a: AbortOpt) -> rampart::chaos::Abort<()> {
        use rampart::chaos::Abort;
        match a {
            AbortOpt::Error => Abort::error(|| "injected"),
            AbortOpt::Response => Abort::response(|| ()),
            AbortOpt::Hang => Abort::hang(),
        }
    }

    fn faults(&self) -> rampart::chaos::Faults<(), ()> {
        let mut faults = rampart::chaos::Faults::new();
        if let Some((d, percent)) = self.delay {
            faults = faults.delay(Self::delay(d), percent);
        }
        if let Some((a, percent)) = self.abort {
            faults = faults.abort(Self::abort(a), percent);
        }
        faults
    }

    /// `Delay`'s docs and the builder's: "a percentage outside 0 to 100, a
    /// delay longer than an hour or a distribution whose bounds are out of
    /// order" are errors (a log-normal's median must be positive).
    fn faults_ok(&self) -> bool {
        let percent = |p: f64| (0.0..=100.0).contains(&p);
        let delay = |d: DelayOpt| match d {
            DelayOpt::Fixed(d) => d <= HOUR,
            DelayOpt::Uniform(low, high) => low <= high && high <= HOUR,
            DelayOpt::LogNormal(p50, p99) => !p50.is_zero() && p50 <= p99 && p99 <= HOUR,
        };
        self.delay.is_none_or(|(d, p)| delay(d) && percent(p))
            && self.abort.is_none_or(|(_, p)| percent(p))
    }
}

const CHAOS_FIELDS: &[&str] = &["name", "delay", "delay_percent", "abort_percent"];

// ===== balancer, retry =====

#[derive(Debug, Clone)]
struct BalanceOpts {
    keys: Vec<u8>,
    retries_same: Option<u32>,
    retries_next: Option<u32>,
    eject_after: Option<u32>,
    eject_for: Option<(Duration, Duration)>,
    max_ejected: Option<f64>,
    panic_threshold: Option<f64>,
    failure_accrual: Option<bool>,
    latency_estimate: Option<(Duration, Duration)>,
}

const BALANCE_FIELDS: &[&str] = &[
    "name",
    "endpoints",
    "retries_same",
    "retries_next",
    "eject_after",
    "eject_for",
    "max_ejected",
    "panic_threshold",
    "latency_estimate",
];

fn balance_opts() -> impl Strategy<Value = BalanceOpts> {
    (
        proptest::collection::vec(0u8..4, 0..4),
        (opt(small_u32()), opt(small_u32()), opt(small_u32())),
        (
            opt((duration(), duration()).boxed()),
            opt(real()),
            opt(real()),
            opt(any::<bool>().boxed()),
            opt((duration(), duration()).boxed()),
        ),
    )
        .prop_map(
            |(
                keys,
                (retries_same, retries_next, eject_after),
                (eject_for, max_ejected, panic_threshold, failure_accrual, latency_estimate),
            )| BalanceOpts {
                keys,
                retries_same,
                retries_next,
                eject_after,
                eject_for,
                max_ejected,
                panic_threshold,
                failure_accrual,
                latency_estimate,
            },
        )
}

impl BalanceOpts {
    fn documented_ok(&self, name: &str) -> bool {
        let unique = self
            .keys
            .iter()
            .enumerate()
            .all(|(i, k)| !self.keys[i + 1..].contains(k));
        let share = |x: f64| (0.0..=1.0).contains(&x);
        let latency = |d: Duration| in_range(d, Duration::from_micros(1), HOUR);
        !name.is_empty()
            && !self.keys.is_empty()
            && unique
            && self.retries_same.is_none_or(|n| n <= 10)
            && self.retries_next.is_none_or(|n| n <= 100)
            && self.eject_after.is_none_or(|n| (1..=1000).contains(&n))
            && self
                .eject_for
                .is_none_or(|(first, max)| MS <= first && first <= max && max <= HOUR)
            && self.max_ejected.is_none_or(share)
            && self.panic_threshold.is_none_or(share)
            && self
                .latency_estimate
                .is_none_or(|(initial, decay)| latency(initial) && latency(decay))
    }
}

// ===== stream, turbine =====

#[derive(Debug, Clone)]
struct Limits {
    delay: Option<Duration>,
    max_subscribers: Option<usize>,
    slow_subscriber_timeout: Option<Duration>,
}

fn limits() -> impl Strategy<Value = Limits> {
    (opt(duration()), opt(small_usize()), opt(duration())).prop_map(
        |(delay, max_subscribers, slow_subscriber_timeout)| Limits {
            delay,
            max_subscribers,
            slow_subscriber_timeout,
        },
    )
}

impl Limits {
    fn documented_ok(&self) -> bool {
        self.delay
            .is_none_or(|d| in_range(d, Duration::from_millis(100), Duration::from_secs(600)))
            && self
                .max_subscribers
                .is_none_or(|n| (1..=10_000).contains(&n))
            && self
                .slow_subscriber_timeout
                .is_none_or(|d| in_range(d, SECOND, HOUR))
    }
}

/// Stream URLs, and whether each is a plain `http://` URL with a host.
const URLS: &[(&str, bool)] = &[
    ("http://127.0.0.1:9000/hystrix.stream", true),
    ("http://h/turbine.stream?cluster=a", true),
    ("http://[::1]:1/x", true),
    ("https://127.0.0.1:9000/hystrix.stream", false),
    ("127.0.0.1:9000/hystrix.stream", false),
    ("/hystrix.stream", false),
    ("not a url", false),
    ("", false),
];

#[derive(Debug, Clone)]
struct TurbineOpts {
    clusters: Vec<(String, Vec<usize>)>,
    feed: bool,
    limits: Limits,
    source_timeout: Option<Duration>,
    reconnect: Option<Option<(Duration, Duration)>>,
}

fn turbine_opts() -> impl Strategy<Value = TurbineOpts> {
    let cluster = (
        prop_oneof![
            Just(String::new()),
            Just("api".to_owned()),
            Just("db".to_owned()),
            name()
        ],
        proptest::collection::vec(0..URLS.len(), 0..3),
    );
    (
        proptest::collection::vec(cluster, 0..3),
        any::<bool>(),
        limits(),
        opt(duration()),
        // None inside: Backoff::none().
        opt(proptest::option::weighted(0.8, (duration(), duration())).boxed()),
    )
        .prop_map(
            |(clusters, feed, limits, source_timeout, reconnect)| TurbineOpts {
                clusters,
                feed,
                limits,
                source_timeout,
                reconnect,
            },
        )
}

impl TurbineOpts {
    /// The builder's docs: no source at all, a fixed cluster with an empty
    /// name, no URL, a URL twice (within one `cluster` call: several calls
    /// for one cluster add to it) or a URL that is not `http://host…`, an
    /// option out of its range, and `Backoff::none()` are refused.
    fn documented_ok(&self, reconnect: Option<&Backoff>) -> bool {
        let clusters = self.clusters.iter().all(|(name, urls)| {
            let unique = urls
                .iter()
                .enumerate()
                .all(|(i, u)| !urls[i + 1..].contains(u));
            !name.is_empty() && !urls.is_empty() && unique && urls.iter().all(|&u| URLS[u].1)
        });
        (!self.clusters.is_empty() || self.feed)
            && clusters
            && self.limits.documented_ok()
            && self
                .source_timeout
                .is_none_or(|d| in_range(d, SECOND, HOUR))
            && reconnect.is_none_or(|b| *b != Backoff::none())
    }
}

// ===== the properties =====

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn circuit_breaker(name in name(), o in breaker_opts()) {
        let registry = Registry::new();
        let built = no_panic("build", || {
            o.apply(CircuitBreakerLayer::builder(name.clone()).registry(&registry)).build()
        })?;
        if let Some(layer) = verdict("circuit breaker", built, BREAKER_FIELDS, o.documented_ok(&name))? {
            call_once("breaker", &layer, true)?;
        }
    }

    #[test]
    fn bulkhead(name in name(), o in bulkhead_opts()) {
        let registry = Registry::new();
        let built = no_panic("build", || {
            let mut b = BulkheadLayer::builder(name.clone()).registry(&registry);
            if let Some(n) = o.max_concurrent {
                b = b.max_concurrent(n);
            }
            if let Some(d) = o.max_wait {
                b = b.max_wait(d);
            }
            if let Some(n) = o.max_waiting {
                b = b.max_waiting(n);
            }
            b.build()
        })?;
        let fields = &["name", "max_concurrent", "max_wait", "max_waiting"];
        if let Some(layer) = verdict("bulkhead", built, fields, o.documented_ok(&name))? {
            call_once("bulkhead", &layer, true)?;
        }
    }

    #[test]
    fn timeout(name in name(), timeout in opt(duration())) {
        let built = no_panic("build", || {
            let b = TimeoutLayer::builder(name.clone());
            match timeout {
                Some(d) => b.timeout(d).build(),
                None => b.build(),
            }
        })?;
        if let Some(layer) = verdict("timeout", built, &["name", "timeout"], timeout_ok(&name, timeout))? {
            call_once("timeout", &layer, true)?;
        }
    }

    #[test]
    fn fallback(name in name(), max in opt(proptest::option::of(small_usize()).boxed()), contain in any::<bool>()) {
        let registry = Registry::new();
        let built = no_panic("build", || {
            let mut b = FallbackLayer::builder(name.clone())
                .registry(&registry)
                .fallback_sync(|_| Ok(()));
            if let Some(max) = max {
                b = b.max_concurrent(max);
            }
            if contain {
                b = b.contain_panics();
            }
            b.build()
        })?;
        if let Some(layer) = verdict("fallback", built, &["name", "max_concurrent"], fallback_ok(&name, max))? {
            call_once("fallback", &layer, true)?;
        }
    }

    #[test]
    fn chaos(name in name(), o in chaos_opts()) {
        let built = no_panic("build", || {
            let mut b = rampart::chaos::ChaosLayer::<(), ()>::builder(name.clone()).enabled(o.enabled);
            if let Some((d, percent)) = o.delay {
                b = b.delay(ChaosOpts::delay(d), percent);
            }
            if let Some((a, percent)) = o.abort {
                b = b.abort(ChaosOpts::abort(a), percent);
            }
            if let Some(seed) = o.seed {
                b = b.seed(seed);
            }
            b.build()
        })?;
        let ok = !name.is_empty() && o.faults_ok();
        if let Some(layer) = verdict("chaos", built, CHAOS_FIELDS, ok)? {
            layer.handle().enable();
            call_once("chaos layer", &layer, true)?;
        }
    }

    /// The handle takes new faults while the layer runs: the same rules.
    #[test]
    fn chaos_handle_set_faults(o in chaos_opts()) {
        let layer = rampart::chaos::ChaosLayer::<(), ()>::builder("chaos").build().unwrap();
        let set = no_panic("set_faults", || layer.handle().set_faults(o.faults()))?;
        if verdict("chaos set_faults", set, CHAOS_FIELDS, o.faults_ok())?.is_some() {
            layer.handle().enable();
            call_once("chaos layer", &layer, true)?;
        }
    }

    #[test]
    fn retry_budget(window in duration(), min_per_sec in small_u32(), ratio in real()) {
        let built = no_panic("RetryBudget::new", || RetryBudget::new(window, min_per_sec, ratio))?;
        // "window is 1 s to 60 s (in whole seconds), ratio 0 to 10 and
        // min_per_sec at most 1 000 000"
        let ok = in_range(window, SECOND, Duration::from_secs(60))
            && window.subsec_nanos() == 0
            && (0.0..=10.0).contains(&ratio)
            && min_per_sec <= 1_000_000;
        if let Some(budget) = verdict("retry budget", built, &["window", "ratio", "min_per_sec"], ok)? {
            no_panic("the budget", || {
                budget.deposit();
                let _ = budget.try_withdraw();
                budget.balance()
            })?;
        }
    }

    #[test]
    fn backoff(
        base in duration(),
        max in duration(),
        retry in any::<u32>(),
        previous in duration(),
        decorrelated in any::<bool>(),
    ) {
        let built = no_panic("Backoff", || if decorrelated {
            Backoff::decorrelated(base, max)
        } else {
            Backoff::exponential(base, max)
        })?;
        // "0 < base <= max <= 1 hour"
        let ok = !base.is_zero() && base <= max && max <= HOUR;
        if let Some(backoff) = verdict("backoff", built, &["base", "max"], ok)? {
            let delay = no_panic("delay", || backoff.delay(retry, previous))?;
            prop_assert!(delay <= max, "a delay of {delay:?} past the cap {max:?}");
            if decorrelated {
                prop_assert!(delay >= base, "a decorrelated delay of {delay:?} under the base {base:?}");
            }
        }
    }

    #[test]
    fn retry_layer(attempts in small_u32(), max_retry_after in duration(), budget in any::<bool>()) {
        let mut b = RetryLayer::builder("fuzz").max_attempts(attempts).max_retry_after(max_retry_after);
        if budget {
            b = b.budget(RetryBudget::default());
        }
        let built = no_panic("RetryLayer::build", || b.build())?;
        // "1 (no retries) to 100"; "0 to 1 hour"
        let ok = (1..=100).contains(&attempts) && max_retry_after <= HOUR;
        verdict("retry layer", built, &["max_attempts", "max_retry_after"], ok)?;
    }

    #[test]
    fn command(
        name in name(),
        group in opt(name()),
        timeout in opt(duration()),
        isolation in prop_oneof![
            opt(small_usize()).prop_map(|n| (n, None)),
            // Not 1024: the pool's own test covers it, and its threads
            // would make this test slow.
            (opt(command_pool_size()), opt(small_usize())).prop_map(|p| (None, Some(p))),
        ],
        breaker in breaker_opts(),
        fallback_max in opt(proptest::option::of(small_usize()).boxed()),
    ) {
        let registry = Registry::new();
        let mut b = Command::builder(name.clone())
            .registry(&registry)
            .breaker(|b| breaker.apply(b))
            .fallback_sync(|_| Ok(()));
        if let Some(g) = &group {
            b = b.group(g.clone());
        }
        if let Some(d) = timeout {
            b = b.timeout(d);
        }
        if let Some(max) = fallback_max {
            b = b.fallback_max_concurrent(max);
        }
        let timeout_value = timeout.unwrap_or(SECOND);
        // Across layers: the slow-call bound must be shorter than the
        // timeout, a time window at least as long.
        let across = breaker.slow_call.is_none_or(|(bound, _)| bound < timeout_value)
            && breaker.window_length().is_none_or(|w| w >= timeout_value);
        // A group, when given, must not be empty (the docs of `group`).
        let parts = breaker.documented_ok(&name)
            && timeout_ok(&name, timeout)
            && fallback_ok(&name, fallback_max)
            && group.as_deref() != Some("");
        let mut fields = BREAKER_FIELDS.to_vec();
        // The command's own options: its parts' violations come under them.
        fields.extend(["timeout", "bulkhead", "pool", "fallback_max_concurrent", "group"]);
        match isolation {
            (max_concurrent, None) => {
                let bulkhead = BulkheadOpts { max_concurrent, max_wait: None, max_waiting: None };
                let ok = across && parts && bulkhead.documented_ok(&name);
                let built = no_panic("build", || match max_concurrent {
                    Some(n) => b.bulkhead(n).build(),
                    None => b.build(),
                })?;
                if let Some(layer) = verdict("command", built, &fields, ok)? {
                    call_once("command", &layer, true)?;
                }
            }
            (_, Some((size, queue))) => {
                let pool_name = group.clone().unwrap_or_else(|| name.clone());
                let ok = across && parts && pool_ok(&pool_name, Some(size.unwrap_or(10)), queue);
                let built = no_panic("build", || {
                    b.pool(size.unwrap_or(10), queue.unwrap_or(0)).build()
                })?;
                if let Some(layer) = verdict("command", built, &fields, ok)? {
                    call_once("command", &layer, false)?;
                }
            }
        }
    }

    #[test]
    fn balance(name in name(), o in balance_opts()) {
        let registry = Registry::new();
        let built = no_panic("build", || {
            let mut b = Balance::builder(name.clone()).registry(&registry);
            if let Some(n) = o.retries_same {
                b = b.retries_same(n);
            }
            if let Some(n) = o.retries_next {
                b = b.retries_next(n);
            }
            if let Some(n) = o.eject_after {
                b = b.eject_after(n);
            }
            if let Some((first, max)) = o.eject_for {
                b = b.eject_for(first, max);
            }
            if let Some(x) = o.max_ejected {
                b = b.max_ejected(x);
            }
            if let Some(x) = o.panic_threshold {
                b = b.panic_threshold(x);
            }
            if let Some(on) = o.failure_accrual {
                b = b.failure_accrual(on);
            }
            if let Some((initial, decay)) = o.latency_estimate {
                b = b.latency_estimate(initial, decay);
            }
            let endpoints = o.keys.iter().map(|&k| Endpoint::new(k, inner()));
            b.build(Endpoints::fixed(endpoints))
        })?;
        if let Some(mut balance) = verdict("balancer", built, BALANCE_FIELDS, o.documented_ok(&name))? {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            no_panic("a call through the balancer", || {
                rt.block_on(async {
                    let call = async { balance.ready().await?.call(()).await };
                    let _ = tokio::time::timeout(2 * HOUR, call).await;
                })
            })?;
        }
    }

    #[test]
    fn hystrix_stream(l in limits()) {
        let built = no_panic("build", || {
            let mut b = HystrixStream::builder().registry(&Registry::new());
            if let Some(d) = l.delay {
                b = b.delay(d);
            }
            if let Some(n) = l.max_subscribers {
                b = b.max_subscribers(n);
            }
            if let Some(d) = l.slow_subscriber_timeout {
                b = b.slow_subscriber_timeout(d);
            }
            b.build()
        })?;
        verdict("hystrix stream", built, &["delay", "max_subscribers", "slow_subscriber_timeout"], l.documented_ok())?;
    }

    #[test]
    fn turbine(o in turbine_opts()) {
        let reconnect = match o.reconnect {
            None => None,
            Some(None) => Some(Backoff::none()),
            // A backoff that failed its own checks is left at the default.
            Some(Some((base, max))) => Backoff::exponential(base, max).ok(),
        };
        let (_feed, rx) = tokio::sync::watch::channel(Vec::new());
        let built = no_panic("build", || {
            let mut b = Turbine::builder();
            for (cluster, urls) in &o.clusters {
                b = b.cluster(cluster.clone(), urls.iter().map(|&u| URLS[u].0));
            }
            if o.feed {
                b = b.instances(rx);
            }
            if let Some(d) = o.limits.delay {
                b = b.delay(d);
            }
            if let Some(n) = o.limits.max_subscribers {
                b = b.max_subscribers(n);
            }
            if let Some(d) = o.limits.slow_subscriber_timeout {
                b = b.slow_subscriber_timeout(d);
            }
            if let Some(d) = o.source_timeout {
                b = b.source_timeout(d);
            }
            if let Some(r) = reconnect {
                b = b.reconnect(r);
            }
            b.build()
        })?;
        let fields = &[
            "sources",
            "cluster",
            "delay",
            "max_subscribers",
            "slow_subscriber_timeout",
            "source_timeout",
            "reconnect",
        ];
        if let Some(turbine) = verdict("turbine", built, fields, o.documented_ok(reconnect.as_ref()))? {
            no_panic("clusters", || turbine.clusters())?;
        }
    }
}

proptest! {
    // Fewer cases: a valid pool starts its threads (up to 1024).
    #![proptest_config(config(128))]

    #[test]
    fn pool(name in name(), size in opt(pool_size()), queue in opt(small_usize())) {
        let registry = Registry::new();
        let built = no_panic("build", || {
            let mut b = PoolLayer::builder(name.clone()).registry(&registry);
            if let Some(n) = size {
                b = b.size(n);
            }
            if let Some(n) = queue {
                b = b.queue(n);
            }
            b.build()
        })?;
        if let Some(layer) = verdict("pool", built, &["name", "size", "queue"], pool_ok(&name, size, queue))? {
            call_once("pool", &layer, false)?;
        }
    }
}

/// Every builder of a named component says an empty name is wrong, by
/// name, as its docs say (the retry, hedge and deadline builders once let
/// it through).
#[test]
fn every_named_builder_rejects_an_empty_name() {
    let names_name = |what: &str, result: Result<(), ConfigError>| match result {
        Err(err) => assert!(err.names("name"), "{what}: {err}"),
        Ok(()) => panic!("{what}: an empty name was accepted"),
    };
    let fallback = |_: &rampart::fallback::Cause| async { Ok::<(), BoxError>(()) };
    names_name(
        "breaker",
        CircuitBreakerLayer::builder("").build().map(drop),
    );
    names_name("bulkhead", BulkheadLayer::builder("").build().map(drop));
    names_name("pool", PoolLayer::builder("").build().map(drop));
    names_name("timeout", TimeoutLayer::builder("").build().map(drop));
    names_name(
        "fallback",
        FallbackLayer::builder("")
            .fallback(fallback)
            .build()
            .map(drop),
    );
    names_name("retry", RetryLayer::builder("").build().map(drop));
    names_name(
        "hedge",
        rampart::hedge::HedgeLayer::builder("", rampart::retry::HttpPolicy)
            .build()
            .map(drop),
    );
    names_name(
        "deadline",
        rampart::deadline::DeadlineLayer::builder("")
            .build()
            .map(drop),
    );
    names_name("command", Command::builder("").build().map(drop));
    names_name(
        "balancer",
        Balance::builder("")
            .build(Endpoints::fixed([Endpoint::new(1, inner())]))
            .map(drop),
    );
    let group = Command::builder("c")
        .group("")
        .build()
        .map(drop)
        .unwrap_err();
    assert!(group.names("group"), "{group}");
}
