//! The objects of the Hystrix stream, and the snapshot that fills them from
//! a [`Registry`].
//!
//! Field names and types are Hystrix's (`HystrixCommand`,
//! `HystrixThreadPool`), so the Hystrix dashboard and Turbine read them
//! unchanged; every number is a whole, finite JSON number, as Hystrix
//! sends (latencies in whole milliseconds). The mapping of rampart's
//! outcomes onto Hystrix's events is documented on the
//! [module](super#what-the-stream-says).

use crate::circuit_breaker::{CircuitBreakerHandle, State};
use crate::registry::{CommandInfo, Isolation, Registry};
use crate::window::{Counts, LatencySnapshot};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How long the pools' and balancers' rolling counts look back: the
/// pools' rolling max active already covers 10 s, and Hystrix's default
/// statistical window is 10 s.
const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Latencies at the percentiles the dashboard reads, in whole milliseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    #[serde(rename = "0")]
    p0: u64,
    #[serde(rename = "25")]
    p25: u64,
    #[serde(rename = "50")]
    p50: u64,
    #[serde(rename = "75")]
    p75: u64,
    #[serde(rename = "90")]
    p90: u64,
    #[serde(rename = "95")]
    p95: u64,
    #[serde(rename = "99")]
    p99: u64,
    #[serde(rename = "99.5")]
    p99_5: u64,
    #[serde(rename = "100")]
    p100: u64,
}

fn millis(d: Duration) -> u64 {
    // Rounded, not truncated: a 0.6 ms call reads 1, as Hystrix's own
    // rounding of its microsecond histograms would give.
    (d.as_micros() as u64 + 500) / 1000
}

impl Percentiles {
    fn of(latencies: &LatencySnapshot) -> Self {
        let at = |p: f64| millis(latencies.percentile(p));
        Percentiles {
            p0: at(0.0),
            p25: at(25.0),
            p50: at(50.0),
            p75: at(75.0),
            p90: at(90.0),
            p95: at(95.0),
            p99: at(99.0),
            p99_5: at(99.5),
            p100: at(100.0),
        }
    }
}

/// Hystrix's `HystrixCommand` object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommandEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    group: &'a str,
    current_time: u64,
    is_circuit_breaker_open: bool,
    error_percentage: u64,
    error_count: u64,
    request_count: u64,
    rolling_count_bad_requests: u64,
    rolling_count_collapsed_requests: u64,
    rolling_count_emit: u64,
    rolling_count_exceptions_thrown: u64,
    rolling_count_failure: u64,
    rolling_count_fallback_emit: u64,
    rolling_count_fallback_failure: u64,
    rolling_count_fallback_missing: u64,
    rolling_count_fallback_rejection: u64,
    rolling_count_fallback_success: u64,
    rolling_count_responses_from_cache: u64,
    rolling_count_semaphore_rejected: u64,
    rolling_count_short_circuited: u64,
    rolling_count_success: u64,
    rolling_count_thread_pool_rejected: u64,
    rolling_count_timeout: u64,
    current_concurrent_execution_count: u64,
    rolling_max_concurrent_execution_count: u64,
    #[serde(rename = "latencyExecute_mean")]
    latency_execute_mean: u64,
    latency_execute: Percentiles,
    #[serde(rename = "latencyTotal_mean")]
    latency_total_mean: u64,
    latency_total: Percentiles,
    #[serde(rename = "propertyValue_circuitBreakerRequestVolumeThreshold")]
    request_volume_threshold: u64,
    #[serde(rename = "propertyValue_circuitBreakerSleepWindowInMilliseconds")]
    sleep_window_ms: u64,
    #[serde(rename = "propertyValue_circuitBreakerErrorThresholdPercentage")]
    error_threshold_percentage: u64,
    #[serde(rename = "propertyValue_circuitBreakerForceOpen")]
    force_open: bool,
    #[serde(rename = "propertyValue_circuitBreakerForceClosed")]
    force_closed: bool,
    #[serde(rename = "propertyValue_circuitBreakerEnabled")]
    enabled: bool,
    #[serde(rename = "propertyValue_executionIsolationStrategy")]
    isolation_strategy: &'static str,
    #[serde(rename = "propertyValue_executionIsolationThreadTimeoutInMilliseconds")]
    thread_timeout_ms: u64,
    #[serde(rename = "propertyValue_executionTimeoutInMilliseconds")]
    timeout_ms: u64,
    #[serde(rename = "propertyValue_executionIsolationThreadInterruptOnTimeout")]
    interrupt_on_timeout: bool,
    #[serde(rename = "propertyValue_executionIsolationThreadPoolKeyOverride")]
    thread_pool_key_override: Option<&'a str>,
    #[serde(rename = "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests")]
    semaphore_max: u64,
    #[serde(rename = "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests")]
    fallback_semaphore_max: u64,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    window_ms: u64,
    #[serde(rename = "propertyValue_requestCacheEnabled")]
    request_cache_enabled: bool,
    #[serde(rename = "propertyValue_requestLogEnabled")]
    request_log_enabled: bool,
    reporting_hosts: u64,
    thread_pool: &'a str,
    /// rampart's own: the breaker's state by name (`closed`, `open`,
    /// `half_open`, `forced_open`, `forced_closed`, `disabled`,
    /// `metrics_only`), which `isCircuitBreakerOpen` cannot tell apart.
    rampart_circuit_state: &'static str,
}

/// Hystrix's `HystrixThreadPool` object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PoolEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    current_time: u64,
    current_active_count: u64,
    current_completed_task_count: u64,
    current_core_pool_size: u64,
    current_largest_pool_size: u64,
    current_maximum_pool_size: u64,
    current_pool_size: u64,
    current_queue_size: u64,
    current_task_count: u64,
    rolling_count_threads_executed: u64,
    rolling_max_active_threads: u64,
    rolling_count_command_rejections: u64,
    #[serde(rename = "propertyValue_queueSizeRejectionThreshold")]
    queue_size_rejection_threshold: u64,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    window_ms: u64,
    reporting_hosts: u64,
}

/// Batch sizes at the percentiles Hystrix sends for a collapser (no "0").
#[cfg(feature = "collapse")]
#[derive(Debug, Serialize)]
pub(crate) struct BatchSizes {
    #[serde(rename = "25")]
    p25: u64,
    #[serde(rename = "50")]
    p50: u64,
    #[serde(rename = "75")]
    p75: u64,
    #[serde(rename = "90")]
    p90: u64,
    #[serde(rename = "95")]
    p95: u64,
    #[serde(rename = "99")]
    p99: u64,
    #[serde(rename = "99.5")]
    p99_5: u64,
    #[serde(rename = "100")]
    p100: u64,
}

/// Hystrix's `HystrixCollapser` object (the Hystrix dashboard ignores it;
/// Turbine merges it).
#[cfg(feature = "collapse")]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CollapserEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    current_time: u64,
    rolling_count_requests_batched: u64,
    rolling_count_batches: u64,
    rolling_count_responses_from_cache: u64,
    #[serde(rename = "batchSize_mean")]
    batch_size_mean: u64,
    batch_size: BatchSizes,
    #[serde(rename = "propertyValue_requestCacheEnabled")]
    request_cache_enabled: bool,
    #[serde(rename = "propertyValue_maxRequestsInBatch")]
    max_requests_in_batch: u64,
    #[serde(rename = "propertyValue_timerDelayInMilliseconds")]
    timer_delay_ms: u64,
    reporting_hosts: u64,
}

/// rampart's own `RampartEndpoint` object: one endpoint of one balancer.
/// The Hystrix dashboard ignores types it does not know; Turbine merges it
/// like any other object (numbers summed, strings and booleans counted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// `balancer/endpoint`, unique across balancers.
    name: &'a str,
    balancer: &'a str,
    endpoint: &'a str,
    zone: &'a str,
    current_time: u64,
    rolling_count_selected: u64,
    rolling_count_success: u64,
    rolling_count_failure: u64,
    rolling_count_timeout: u64,
    rolling_count_ignored: u64,
    rolling_count_cancelled: u64,
    rolling_count_ejections: u64,
    rolling_count_marked_dead: u64,
    current_in_flight: u64,
    latency_estimate_ms: u64,
    consecutive_failures: u64,
    ejected: bool,
    marked_dead: bool,
    /// While ejected or marked dead: how long until it is back in.
    out_for_ms: u64,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    window_ms: u64,
    reporting_hosts: u64,
}

/// rampart's own `RampartDiscovery` object: what one
/// [`Discovery`](crate::discovery::Discovery) knows of its service's
/// instances in etcd (Eureka's registry view, and its self-preservation).
#[cfg(feature = "etcd")]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The service.
    name: &'a str,
    current_time: u64,
    /// etcd has been read at least once.
    synced: bool,
    /// The last read or watch of etcd succeeded.
    reachable: bool,
    /// Instances in etcd, any status.
    registered: u64,
    /// Instances offered: `UP` ones and those kept.
    offered: u64,
    /// Instances gone from etcd, kept by self-preservation.
    kept: u64,
    /// Keys under the service's prefix that are no instance.
    invalid: u64,
    reporting_hosts: u64,
}

/// Announces that a component is gone, so dashboards drop its tile.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(rename = "deleteData")]
    delete_data: &'static str,
}

const COMMAND: &str = "HystrixCommand";
const POOL: &str = "HystrixThreadPool";
const ENDPOINT: &str = "RampartEndpoint";
#[cfg(feature = "collapse")]
const COLLAPSER: &str = "HystrixCollapser";
#[cfg(feature = "etcd")]
const DISCOVERY: &str = "RampartDiscovery";

/// Rolling totals of counters a component keeps as running totals:
/// sampled at each snapshot, the difference between now and the newest
/// sample at least one window old (or the first sample, for a component
/// watched for less than a window).
#[derive(Debug, Default)]
struct Rolling<const N: usize> {
    samples: VecDeque<(Instant, [u64; N])>,
}

impl<const N: usize> Rolling<N> {
    fn update(&mut self, now: Instant, totals: [u64; N], window: Duration) -> [u64; N] {
        self.samples.push_back((now, totals));
        while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= window {
            self.samples.pop_front();
        }
        let base = self.samples[0].1;
        std::array::from_fn(|i| totals[i].saturating_sub(base[i]))
    }
}

/// The largest of the peaks taken at each snapshot over the window.
#[derive(Debug, Default)]
struct RollingPeak {
    samples: VecDeque<(Instant, u64)>,
}

impl RollingPeak {
    fn update(&mut self, now: Instant, peak: u64, window: Duration) -> u64 {
        self.samples.push_back((now, peak));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= window)
        {
            self.samples.pop_front();
        }
        self.samples.iter().map(|&(_, p)| p).max().unwrap_or(peak)
    }
}

/// What one component needs remembered between snapshots.
#[derive(Debug, Default)]
struct Memory {
    /// Pool completed, rejected.
    pool: Rolling<2>,
    /// Endpoint selected, success, failure, timeout, ignored, cancelled,
    /// ejections, marked dead.
    endpoint: Rolling<8>,
    peak: RollingPeak,
    /// A command's requests collapsed into its calls, and its cache hits.
    command: Rolling<2>,
    /// Seen in the snapshot being taken.
    seen: bool,
}

/// Takes snapshots of one registry: remembers what it needs to turn
/// running totals into rolling counts, and which components it announced,
/// to announce their removal once.
#[derive(Debug)]
pub(crate) struct Snapshots {
    registry: Registry,
    memory: HashMap<(&'static str, String), Memory>,
}

impl Snapshots {
    pub(crate) fn new(registry: Registry) -> Self {
        Snapshots {
            registry,
            memory: HashMap::new(),
        }
    }

    /// Every object of the stream now, each as one `data: {json}` event,
    /// all in one buffer; empty when there is nothing to report.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut out = Vec::new();
        let commands = self.registry.commands();
        #[cfg(feature = "collapse")]
        let collapsers = self.registry.collapsers();
        for command in &commands {
            #[cfg(feature = "collapse")]
            let collapsed = collapsers
                .iter()
                .filter(|c| c.command() == Some(command.name()))
                .map(|c| c.requests_batched())
                .sum();
            #[cfg(not(feature = "collapse"))]
            let collapsed = 0;
            let memory = self.remember(COMMAND, command.name());
            let event = command_event(command, memory, collapsed, now, wall);
            push_event(&mut out, &event);
        }
        #[cfg(feature = "collapse")]
        for collapser in &collapsers {
            self.remember(COLLAPSER, collapser.name());
            push_event(&mut out, &collapser_event(collapser, wall));
        }
        for breaker in self.registry.breakers() {
            if commands.iter().any(|c| c.breaker().same_breaker(&breaker)) {
                continue;
            }
            self.remember(COMMAND, breaker.name());
            push_event(&mut out, &lone_breaker_event(&breaker, wall));
        }
        for pool in self.registry.pools() {
            let memory = self.remember(POOL, pool.name());
            let [executed, rejected] =
                memory
                    .pool
                    .update(now, [pool.completed(), pool.rejected()], DEFAULT_WINDOW);
            let size = pool.size() as u64;
            let (active, queued) = (pool.active() as u64, pool.queued() as u64);
            push_event(
                &mut out,
                &PoolEvent {
                    kind: POOL,
                    name: pool.name(),
                    current_time: wall,
                    current_active_count: active,
                    current_completed_task_count: pool.completed(),
                    current_core_pool_size: size,
                    current_largest_pool_size: size,
                    current_maximum_pool_size: size,
                    current_pool_size: size,
                    current_queue_size: queued,
                    current_task_count: pool.completed() + active + queued,
                    rolling_count_threads_executed: executed,
                    rolling_max_active_threads: u64::from(pool.rolling_max_active()),
                    rolling_count_command_rejections: rejected,
                    queue_size_rejection_threshold: pool.queue_capacity() as u64,
                    window_ms: millis(DEFAULT_WINDOW),
                    reporting_hosts: 1,
                },
            );
        }
        for balancer in self.registry.balancers() {
            for e in balancer.endpoints() {
                let name = format!("{}/{}", balancer.name(), e.key);
                let memory = self.remember(ENDPOINT, &name);
                let [selected, success, failure, timeout, ignored, cancelled, ejections, dead] =
                    memory.endpoint.update(
                        now,
                        [
                            e.selected,
                            e.successes,
                            e.failures,
                            e.timeouts,
                            e.ignored,
                            e.cancelled,
                            e.ejections,
                            e.times_marked_dead,
                        ],
                        DEFAULT_WINDOW,
                    );
                push_event(
                    &mut out,
                    &EndpointEvent {
                        kind: ENDPOINT,
                        name: &name,
                        balancer: balancer.name(),
                        endpoint: &e.key,
                        zone: e.zone.as_deref().unwrap_or(""),
                        current_time: wall,
                        rolling_count_selected: selected,
                        rolling_count_success: success,
                        rolling_count_failure: failure,
                        rolling_count_timeout: timeout,
                        rolling_count_ignored: ignored,
                        rolling_count_cancelled: cancelled,
                        rolling_count_ejections: ejections,
                        rolling_count_marked_dead: dead,
                        current_in_flight: e.in_flight as u64,
                        latency_estimate_ms: millis(e.latency),
                        consecutive_failures: u64::from(e.consecutive_failures),
                        ejected: e.ejected,
                        marked_dead: e.marked_dead,
                        out_for_ms: millis(e.out_for),
                        window_ms: millis(DEFAULT_WINDOW),
                        reporting_hosts: 1,
                    },
                );
            }
        }
        #[cfg(feature = "etcd")]
        for discovery in self.registry.discoveries() {
            let state = discovery.state();
            self.remember(DISCOVERY, discovery.service());
            push_event(
                &mut out,
                &DiscoveryEvent {
                    kind: DISCOVERY,
                    name: discovery.service(),
                    current_time: wall,
                    synced: state.synced,
                    reachable: state.reachable,
                    registered: state.registered as u64,
                    offered: state.offered as u64,
                    kept: state.kept.len() as u64,
                    invalid: state.invalid as u64,
                    reporting_hosts: 1,
                },
            );
        }
        // Whatever was not seen this time is gone: say so once.
        self.memory.retain(|(kind, name), memory| {
            if !std::mem::take(&mut memory.seen) {
                push_event(
                    &mut out,
                    &Deleted {
                        kind,
                        name,
                        delete_data: "true",
                    },
                );
                return false;
            }
            true
        });
        out
    }

    fn remember(&mut self, kind: &'static str, name: &str) -> &mut Memory {
        let memory = self.memory.entry((kind, name.to_owned())).or_default();
        memory.seen = true;
        memory
    }
}

/// Appends one unnamed server-sent event holding `object` as JSON.
pub(crate) fn push_event(out: &mut Vec<u8>, object: &impl Serialize) {
    out.extend_from_slice(b"data: ");
    // Writing plain structs of numbers, booleans and strings into a Vec
    // cannot fail.
    serde_json::to_writer(&mut *out, object).expect("stream objects serialise");
    out.extend_from_slice(b"\n\n");
}

fn percent(part: u64, whole: u64) -> u64 {
    // Whole percent, as Hystrix's `errorPercentage` is an int.
    (part * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

fn is_open(state: State) -> bool {
    // Hystrix's `isOpen()`: true from the trip until a probe closes it,
    // half-open included, and while forced open.
    matches!(state, State::Open | State::HalfOpen | State::ForcedOpen)
}

/// What the breaker itself says, for a command or a lone breaker.
struct BreakerView {
    state: State,
    counts: Counts,
    latencies: LatencySnapshot,
    window_ms: u64,
    min_calls: u64,
    open_for_ms: u64,
    error_threshold: u64,
}

impl BreakerView {
    fn of(handle: &CircuitBreakerHandle) -> Self {
        let breaker = handle.breaker();
        // Read afresh each time: the options may change live.
        let options = breaker.options();
        BreakerView {
            state: handle.state(),
            counts: handle.rolling_counts(),
            latencies: breaker.rolling_latencies(),
            window_ms: millis(breaker.rolling_window()).max(1),
            min_calls: u64::from(options.min_calls),
            open_for_ms: millis(options.open_for),
            // No failure-rate rule: no rate trips it, as with a threshold
            // above 100 %; 100 is the nearest Hystrix can say.
            error_threshold: options
                .failure_rate
                .map_or(100, |rate| (rate * 100.0).round() as u64),
        }
    }
}

/// `collapsed`: the running total of requests batched into the
/// command's calls by the collapsers naming it.
fn command_event<'a>(
    command: &'a CommandInfo,
    memory: &mut Memory,
    collapsed: u64,
    now: Instant,
    wall: u64,
) -> CommandEvent<'a> {
    let view = BreakerView::of(command.breaker());
    let window = Duration::from_millis(view.window_ms);
    // Running totals, turned into counts over the command's window.
    let [collapsed, from_cache] =
        memory
            .command
            .update(now, [collapsed, command.cache_hits()], window);
    let fallback = command.fallback();
    // A command's fallback keeps windows lined up with its breaker's.
    let rolling = fallback.rolling().unwrap_or_default();
    let fallbacks = rolling.counts;
    let (fallback_success, fallback_failure, fallback_rejection, fallback_missing) = (
        fallbacks.successes,
        fallbacks.failures,
        fallbacks.rejections,
        fallbacks.ignored,
    );
    // The calls a fallback served count with their total time; the
    // others with the dependency's.
    let total = view.latencies.replacing(&rolling.executed, &rolling.total);
    let (strategy, thread_pool, in_flight, max_concurrent, pool_key) = match command.isolation() {
        Isolation::Semaphore(bulkhead) => {
            let peak = memory.peak.update(now, bulkhead.take_peak() as u64, window);
            (
                "SEMAPHORE",
                command.group(),
                bulkhead.in_flight() as u64,
                peak,
                bulkhead.max_concurrent() as u64,
            )
        }
        Isolation::Pool(pool) => (
            "THREAD",
            pool.name(),
            pool.active() as u64,
            u64::from(pool.rolling_max_active()),
            pool.size() as u64,
        ),
    };
    let counts = view.counts;
    let (semaphore_rejected, thread_pool_rejected) = match command.isolation() {
        Isolation::Semaphore(_) => (counts.rejections, 0),
        Isolation::Pool(_) => (0, counts.rejections),
    };
    let timeout_ms = millis(command.timeout());
    CommandEvent {
        name: command.name(),
        group: command.group(),
        // What reached the caller as an error: the fallback failed, was
        // refused, or there was none.
        rolling_count_exceptions_thrown: fallback_failure + fallback_rejection + fallback_missing,
        rolling_count_fallback_failure: fallback_failure,
        rolling_count_fallback_missing: fallback_missing,
        rolling_count_fallback_rejection: fallback_rejection,
        rolling_count_fallback_success: fallback_success,
        rolling_count_semaphore_rejected: semaphore_rejected,
        rolling_count_thread_pool_rejected: thread_pool_rejected,
        current_concurrent_execution_count: in_flight,
        rolling_max_concurrent_execution_count: max_concurrent,
        latency_total_mean: millis(total.mean()),
        latency_total: Percentiles::of(&total),
        isolation_strategy: strategy,
        thread_timeout_ms: timeout_ms,
        timeout_ms,
        interrupt_on_timeout: true,
        thread_pool_key_override: match command.isolation() {
            Isolation::Pool(pool) => Some(pool.name()),
            Isolation::Semaphore(_) => None,
        },
        semaphore_max: pool_key,
        fallback_semaphore_max: fallback.max_concurrent().map_or(0, |m| m as u64),
        thread_pool,
        rolling_count_collapsed_requests: collapsed,
        rolling_count_responses_from_cache: from_cache,
        request_cache_enabled: command.has_cache(),
        ..breaker_event(command.breaker(), view, wall)
    }
}

/// A collapser's batches over the last 10 s, and its settings.
#[cfg(feature = "collapse")]
fn collapser_event(collapser: &crate::collapse::CollapseHandle, wall: u64) -> CollapserEvent<'_> {
    let stats = collapser.stats();
    let rolling = stats.rolling();
    // Sizes stand where latencies stand in the window: read them back as
    // whole microseconds.
    let at = |p: f64| rolling.sizes.percentile(p).as_micros() as u64;
    CollapserEvent {
        kind: COLLAPSER,
        name: collapser.name(),
        current_time: wall,
        rolling_count_requests_batched: rolling.batched,
        rolling_count_batches: rolling.batches,
        // rampart's collapser keeps no request cache of its own (a
        // command's cache counts on the command).
        rolling_count_responses_from_cache: 0,
        batch_size_mean: (rolling.batched + rolling.batches / 2)
            .checked_div(rolling.batches)
            .unwrap_or(0),
        batch_size: BatchSizes {
            p25: at(25.0),
            p50: at(50.0),
            p75: at(75.0),
            p90: at(90.0),
            p95: at(95.0),
            p99: at(99.0),
            p99_5: at(99.5),
            p100: at(100.0),
        },
        request_cache_enabled: false,
        max_requests_in_batch: collapser.max_batch() as u64,
        timer_delay_ms: millis(collapser.window()),
        reporting_hosts: 1,
    }
}

/// A breaker used on its own: a command without isolation, timeout or
/// fallback. What reached its caller is not its to see, so the fallback
/// and exception counts are zero.
fn lone_breaker_event(breaker: &CircuitBreakerHandle, wall: u64) -> CommandEvent<'_> {
    breaker_event(breaker, BreakerView::of(breaker), wall)
}

/// The fields the breaker alone fills; the rest as for a breaker used on
/// its own, which a command's event then overrides.
fn breaker_event(breaker: &CircuitBreakerHandle, view: BreakerView, wall: u64) -> CommandEvent<'_> {
    let counts = view.counts;
    CommandEvent {
        kind: COMMAND,
        name: breaker.name(),
        group: breaker.name(),
        current_time: wall,
        is_circuit_breaker_open: is_open(view.state),
        error_percentage: percent(counts.failed(), counts.calls()),
        error_count: counts.failed(),
        request_count: counts.calls(),
        rolling_count_bad_requests: counts.ignored,
        rolling_count_collapsed_requests: 0,
        rolling_count_emit: 0,
        rolling_count_exceptions_thrown: 0,
        rolling_count_failure: counts.failures,
        rolling_count_fallback_emit: 0,
        rolling_count_fallback_failure: 0,
        rolling_count_fallback_missing: 0,
        rolling_count_fallback_rejection: 0,
        rolling_count_fallback_success: 0,
        rolling_count_responses_from_cache: 0,
        rolling_count_semaphore_rejected: counts.rejections,
        rolling_count_short_circuited: counts.short_circuited,
        rolling_count_success: counts.successes,
        rolling_count_thread_pool_rejected: 0,
        rolling_count_timeout: counts.timeouts,
        current_concurrent_execution_count: 0,
        rolling_max_concurrent_execution_count: 0,
        latency_execute_mean: millis(view.latencies.mean()),
        latency_execute: Percentiles::of(&view.latencies),
        latency_total_mean: millis(view.latencies.mean()),
        latency_total: Percentiles::of(&view.latencies),
        request_volume_threshold: view.min_calls,
        sleep_window_ms: view.open_for_ms,
        error_threshold_percentage: view.error_threshold,
        force_open: view.state == State::ForcedOpen,
        force_closed: view.state == State::ForcedClosed,
        enabled: view.state != State::Disabled,
        isolation_strategy: "SEMAPHORE",
        thread_timeout_ms: 0,
        timeout_ms: 0,
        interrupt_on_timeout: false,
        thread_pool_key_override: None,
        semaphore_max: 0,
        fallback_semaphore_max: 0,
        window_ms: view.window_ms,
        request_cache_enabled: false,
        request_log_enabled: false,
        reporting_hosts: 1,
        thread_pool: breaker.name(),
        rampart_circuit_state: view.state.as_str(),
    }
}
