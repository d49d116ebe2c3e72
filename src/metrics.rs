//! Metric names and labels, defined once; handles resolved when a layer is
//! built, so a call does no registry lookup and no allocation.
//!
//! rampart reports through the [`metrics`](https://docs.rs/metrics) facade:
//! install a recorder (e.g. `metrics-exporter-prometheus`) **before** building
//! layers, since handles are taken from the recorder present at build time.
//!
//! | name | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `rampart_events_total` | counter | `layer`, `name`, `event` | events | one per call outcome or rejection |
//! | `rampart_call_duration_seconds` | histogram | `layer`, `name` | seconds | latency of calls that reached the dependency, as the breaker timed them (`layer="circuit_breaker"`): every call at low traffic, about 100 a rolling-window bucket under load (see the breaker's "Which calls are timed") |
//! | `rampart_circuit_breaker_state` | gauge | `name` | state code | 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed, 5 disabled, 6 metrics only |
//! | `rampart_circuit_breaker_failure_rate` | gauge | `name` | ratio (0–1) | failure rate over the rolling window at the last evaluation |
//! | `rampart_circuit_breaker_slow_call_rate` | gauge | `name` | ratio (0–1) | slow-call rate over the rolling window at the last evaluation |
//! | `rampart_circuit_breaker_transitions_total` | counter | `name`, `from`, `to` | transitions | state changes |
//! | `rampart_bulkhead_in_flight` | gauge | `name` | calls | calls holding a bulkhead slot |
//! | `rampart_pool_active` | gauge | `name` | calls | calls running on a pool's threads |
//! | `rampart_pool_queued` | gauge | `name` | calls | calls queued for a pool's threads |
//! | `rampart_rate_limit_keys` | gauge | `name` | keys | keys a rate limit per key holds state for (bounded by its `max_keys`) |
//! | `rampart_endpoint_selected_total` | counter | `name`, `endpoint` | attempts | attempts a balancer sent to an endpoint (retries included) |
//! | `rampart_endpoint_ejections_total` | counter | `name`, `endpoint` | ejections | times an endpoint was ejected |
//! | `rampart_endpoint_duration_seconds` | histogram | `name`, `endpoint`, `outcome` | seconds | how long an endpoint's attempts took, by how they ended |
//! | `rampart_limit` | gauge | `name` | calls | an adaptive limit's concurrency limit now |
//! | `rampart_limit_in_flight` | gauge | `name` | calls | calls holding a permit of the limit |
//! | `rampart_limit_rtt_seconds` | gauge | `name` | seconds | the mean round-trip time of the limit's last window |
//! | `rampart_limit_partition` | gauge | `name`, `partition` | calls | a partition's guaranteed share of the limit, in permits |
//! | `rampart_limit_partition_in_flight` | gauge | `name`, `partition` | calls | a partition's calls holding a permit |
//! | `rampart_discovery_registered` | gauge | `name` (the service) | instances | instances in etcd at the last read, any status (a [`Discovery`](crate::discovery::Discovery)'s, feature `etcd`) |
//! | `rampart_discovery_offered` | gauge | `name` | instances | instances offered to the balancer: `UP` ones and those kept |
//! | `rampart_discovery_kept` | gauge | `name` | instances | instances gone from etcd but kept by self-preservation |
//! | `rampart_discovery_reachable` | gauge | `name` | 0 or 1 | 1 while the last read or watch of etcd succeeded; 0 while the last known set is kept for an etcd out of reach (or before the first read) |
//!
//! `examples/prometheus.rs` serves them to Prometheus; the README's
//! "Metrics" section says how to run it.
//!
//! `event` values for `layer="circuit_breaker"` follow Hystrix's event types:
//! `success`, `failure`, `timeout`, `rejected` (by a bulkhead beneath the
//! breaker), `ignored`, `short_circuited`, and `slow_call` (counted in
//! addition to the call's outcome). For `layer="bulkhead"`: `admitted`,
//! `rejected`; `layer="pool"`: `rejected`; `layer="timeout"`: `timeout`;
//! `layer="fallback"`: `fallback_success`, `fallback_failure`,
//! `fallback_rejected`; `layer="balance"`: `retry`,
//! `retry_budget_exhausted`, `no_endpoint`, `marked_dead` (an endpoint
//! marked dead by failure accrual; ejections have their own counter);
//! `layer="rate_limit"`: `admitted` (let through, at once or after a
//! wait), `waited` (let through after waiting; also counted as admitted),
//! `rejected`;
//! `layer="chaos"`: `delay_injected`, `abort_injected` (faults injected on
//! purpose, never real ones; these also carry the label `injected="true"`);
//! `layer="collapse"`: `batch` (batches sent), `batched` (requests in
//! them), `batch_failed`, `missing_item` (requests), `abandoned` (requests
//! whose callers left before their batch was sent); `layer="coalesce"`:
//! `call` (calls made), `joined` (callers who shared one), `rejected`;
//! `layer="cache"`: `hit`, `miss`;
//! `layer="limit"`: `success`, `dropped` (an overload signal: see
//! `limit::Outcome`), `ignored`, `rejected` (a partitioned limiter's also
//! carry the label `partition`, `unknown` for calls of no declared one).
//!
//! `outcome` values of `rampart_endpoint_duration_seconds`: `success`,
//! `failure` (as the balancer's policy says; a panic in the endpoint counts
//! too), `timeout` (a timeout beneath the balancer, or one above it cutting
//! the attempt off), `ignored` (neither, by the policy), `cancelled` (the
//! caller dropped the call; the time until then).
//!
//! # Tracing events
//!
//! rampart also logs through [`tracing`](https://docs.rs/tracing): state
//! changes and ejections at `info`/`warn`, per-call events (rejections,
//! timeouts, fallbacks, retries) at `debug`, since they are on the call
//! path. A disabled event costs a load and a branch, and its fields are
//! neither computed nor formatted unless a subscriber takes the event.
//!
//! Every event has the same three fields, whose values match the
//! `rampart_events_total` labels where both exist: `layer` (the `layer`
//! label), `name` (the component's name, as given to its builder) and
//! `event` (the `event` label, or a value of its own for events that have
//! no counter). The target is the module the layer lives in, one of the
//! `TARGET_*` constants below, so a filter such as
//! `RUST_LOG=rampart::balance=debug` picks one layer.
//!
//! | target | `event` | level | other fields |
//! |---|---|---|---|
//! | `rampart::circuit_breaker` | `state_change` | `warn` to `open`/`forced_open`, else `info` | `from`, `to` (state names: `closed`, `open`, `half_open`, `forced_open`, `forced_closed`, `disabled`, `metrics_only`), `reason`, `open_for_ms` (to `open` only) |
//! | `rampart::circuit_breaker` | `would_open` | `info` | `reason`: a metrics-only breaker's rules say open (once per run) |
//! | `rampart::circuit_breaker` | `short_circuited` | `debug` | |
//! | `rampart::circuit_breaker` | `keys_evicted` | `info` | `evicted`, `max_keys`: a keyed layer at its key bound forgot its least recently used keys (`name` is the layer's) |
//! | `rampart::bulkhead` | `rejected` | `debug` | |
//! | `rampart::circuit_breaker`, `rampart::timeout`, `rampart::bulkhead`, `rampart::bulkhead::pool`, `rampart::fallback`, `rampart::balance` | `property_changed` | `info` | `property`, `from`, `to` (values as [`config`](crate::config) writes them), `source` (`file`, `etcd`, `handle`): a live option changed |
//! | `rampart::config` | `property_rejected` | `warn` | `source`, `error`: a source's property refused (it keeps its last good value); `name` is the component's |
//! | `rampart::config` | `file_rejected` | `warn` | `error`: a config file unreadable or not TOML, nothing applied; `name` is the file |
//! | `rampart::config` | `source_unreachable` | `warn` | `source` (`etcd`), `error`: live properties keep their values until it answers again |
//! | `rampart::config` | `duplicate_name` | `warn` | a second circuit breaker (a command's included) built under a name the registry already lists: two states under one name; `name` is the name |
//! | `rampart::bulkhead::pool` | `rejected` | `debug` | |
//! | `rampart::rate_limit` | `rejected` | `debug` | `retry_after_ms` |
//! | `rampart::rate_limit` | `keys_evicted` | `warn` | `evicted`, `max_keys`: a limit per key reached its bound and forgot the keys nearest to a full allowance |
//! | `rampart::timeout` | `timeout` | `debug` | logged for calls begun while it was enabled: such a call takes the name along |
//! | `rampart::fallback` | `fallback_success`, `fallback_failure`, `fallback_rejected` | `debug` | |
//! | `rampart::balance` | `retry` | `debug` | `endpoint`, `attempt`, `error` |
//! | `rampart::balance` | `retry_budget_exhausted` | `debug` | `endpoint`, `attempt`, `error` |
//! | `rampart::balance` | `no_endpoint` | `debug` | |
//! | `rampart::balance` | `ejected` | `warn` | `endpoint`, `ejected_for_ms` |
//! | `rampart::balance` | `marked_dead` | `warn` | `endpoint`, `marked_dead_for_ms` |
//! | `rampart::balance` | `unejected` | `info` | `endpoint`: its ejection or dead mark ran out and it is back, on probation (logged when next looked at: a selection or a statistics read) |
//! | `rampart::balance` | `endpoints_changed` | `debug` | `endpoints`: how many there are now |
//! | `rampart::balance` | `discovery_failed` | `warn` | `error` |
//! | `rampart::chaos` | `delay_injected` | `debug` | `injected = true`, `delay_ms` |
//! | `rampart::chaos` | `abort_injected` | `debug` | `injected = true`, `abort` (`error`, `response`, `hang`) |
//! | `rampart::chaos` | `enabled`, `disabled` | `warn` | `injected = true`: fault injection switched on or off |
//! | `rampart::collapse` | `batch_failed`, `missing_item` | `debug` | `requests`: how many requests it failed |
//! | `rampart::coalesce` | `rejected` | `debug` | |
//! | `rampart::limit` | `rejected` | `debug` | `partition` (a partitioned limiter's) |
//! | `rampart::limit` | `window` | `debug` | `limit`, `previous_limit`, `rtt_ms`, `in_flight`, `dropped`: a window fed to the algorithm |
//! | `rampart::discovery` | `registered` | `info` | `lease`, `status`: an instance written to etcd (`name` is its key) |
//! | `rampart::discovery` | `renewed` | `trace` | `lease` |
//! | `rampart::discovery` | `lease_lost` | `warn` | `lease`: a keep-alive answered TTL 0; registering again |
//! | `rampart::discovery` | `instance_missing` | `warn` | `lease`: a renewal found the instance's key gone (deleted by hand) though its lease lives; writing it again |
//! | `rampart::discovery` | `deregistered`, `deregister_failed` | `info`, `warn` | `lease` or `error` |
//! | `rampart::discovery` | `etcd_unreachable` | `warn` (first failure), then `debug` | `error`, `offered` (discovery), `retries` |
//! | `rampart::discovery` | `reconnected`, `resynced` | `info` | `registered` (discovery), `properties` (properties): etcd answers again |
//! | `rampart::discovery` | `instances_changed` | `debug` | `offered`, `registered` |
//! | `rampart::discovery` | `self_preservation` | `warn` | `vanished`, `offered`, `share`: vanished instances kept |
//! | `rampart::discovery` | `self_preservation_ended`, `self_preservation_expired` | `info`, `warn` | `dropped` (expired) |
//! | `rampart::discovery` | `invalid_instance`, `invalid_property` | `warn` | `key`, `error`: not applied |
//!
//! `reason` is a `circuit_breaker::TransitionReason` name: `failure_rate`,
//! `slow_call_rate`, `consecutive_failures`, `open_elapsed`,
//! `probes_succeeded`, `probe_failed`, `probe_abandoned`,
//! `probe_timed_out`, `manual` (a handle's `force_*`, `disable`,
//! `metrics_only` or `reset`), `property` (a switch property set or
//! cleared through live configuration). `endpoint` is the endpoint's key in its
//! `Debug` form (the `endpoint` label). `attempt` counts the call's
//! attempts, 1 for the first: the one that failed and is retried, or
//! whose retry the budget refused. `error` is the failed attempt's error
//! (`Display`), absent when the attempt answered with a response the
//! policy retries. Durations are whole milliseconds.

use metrics::{Counter, Gauge, Histogram};

/// Counter of events, labelled `layer`, `name`, `event`.
pub const EVENTS_TOTAL: &str = "rampart_events_total";
/// Histogram of call latency in seconds, labelled `layer`, `name`.
pub const CALL_DURATION_SECONDS: &str = "rampart_call_duration_seconds";
/// Gauge of a breaker's state, labelled `name`.
pub const CIRCUIT_BREAKER_STATE: &str = "rampart_circuit_breaker_state";
/// Gauge of a breaker's failure rate, labelled `name`.
pub const CIRCUIT_BREAKER_FAILURE_RATE: &str = "rampart_circuit_breaker_failure_rate";
/// Gauge of a breaker's slow-call rate, labelled `name`.
pub const CIRCUIT_BREAKER_SLOW_CALL_RATE: &str = "rampart_circuit_breaker_slow_call_rate";
/// Counter of a breaker's state changes, labelled `name`, `from`, `to`.
pub const CIRCUIT_BREAKER_TRANSITIONS_TOTAL: &str = "rampart_circuit_breaker_transitions_total";

/// Gauge of the instances in etcd at a discovery's last read, any status,
/// labelled `name` (the service).
pub const DISCOVERY_REGISTERED: &str = "rampart_discovery_registered";
/// Gauge of the instances a discovery offers (`UP`, and those kept),
/// labelled `name`.
pub const DISCOVERY_OFFERED: &str = "rampart_discovery_offered";
/// Gauge of the instances a discovery keeps by self-preservation, labelled
/// `name`.
pub const DISCOVERY_KEPT: &str = "rampart_discovery_kept";
/// Gauge, 1 while a discovery reaches etcd, 0 while not (or before its
/// first read), labelled `name`.
pub const DISCOVERY_REACHABLE: &str = "rampart_discovery_reachable";

/// Gauge of calls holding a bulkhead slot, labelled `name`.
pub const BULKHEAD_IN_FLIGHT: &str = "rampart_bulkhead_in_flight";

/// Gauge of the keys a rate limit per key holds state for, labelled `name`.
pub const RATE_LIMIT_KEYS: &str = "rampart_rate_limit_keys";

/// Gauge of calls running on a pool's threads, labelled `name`.
pub const POOL_ACTIVE: &str = "rampart_pool_active";
/// Gauge of calls queued for a pool's threads, labelled `name`.
pub const POOL_QUEUED: &str = "rampart_pool_queued";

/// Counter of calls sent to one endpoint, labelled `name`, `endpoint`.
pub const ENDPOINT_SELECTED_TOTAL: &str = "rampart_endpoint_selected_total";
/// Counter of an endpoint's ejections, labelled `name`, `endpoint`.
pub const ENDPOINT_EJECTIONS_TOTAL: &str = "rampart_endpoint_ejections_total";
/// Histogram of how long an endpoint's attempts took, in seconds, labelled
/// `name`, `endpoint`, `outcome`.
pub const ENDPOINT_DURATION_SECONDS: &str = "rampart_endpoint_duration_seconds";
/// Label: an endpoint's key (its `Debug` form).
pub const LABEL_ENDPOINT: &str = "endpoint";
/// Label: how an attempt ended (`success`, `failure`, `timeout`, `ignored`,
/// `cancelled`).
pub const LABEL_OUTCOME: &str = "outcome";

/// Gauge of an adaptive limit's concurrency limit, labelled `name`.
pub const LIMIT: &str = "rampart_limit";
/// Gauge of calls holding a permit of an adaptive limit, labelled `name`.
pub const LIMIT_IN_FLIGHT: &str = "rampart_limit_in_flight";
/// Gauge of the mean RTT of an adaptive limit's last window, in seconds,
/// labelled `name`.
pub const LIMIT_RTT_SECONDS: &str = "rampart_limit_rtt_seconds";
/// Gauge of a partition's share of an adaptive limit, in permits, labelled
/// `name`, `partition`.
pub const LIMIT_PARTITION: &str = "rampart_limit_partition";
/// Gauge of a partition's calls holding a permit, labelled `name`,
/// `partition`.
pub const LIMIT_PARTITION_IN_FLIGHT: &str = "rampart_limit_partition_in_flight";
/// Label: a limiter's partition.
pub const LABEL_PARTITION: &str = "partition";

/// Label: which kind of layer (`circuit_breaker`, ...).
pub const LABEL_LAYER: &str = "layer";
/// Label: the layer's name, as given to its builder.
pub const LABEL_NAME: &str = "name";
/// Label: what happened.
pub const LABEL_EVENT: &str = "event";

/// `tracing` target of the circuit breaker's events.
pub const TARGET_CIRCUIT_BREAKER: &str = "rampart::circuit_breaker";
/// `tracing` target of the bulkhead's events.
pub const TARGET_BULKHEAD: &str = "rampart::bulkhead";
/// `tracing` target of live configuration's own events (a source's property refused).
pub const TARGET_CONFIG: &str = "rampart::config";
/// `tracing` target of the pool's events.
pub const TARGET_POOL: &str = "rampart::bulkhead::pool";
/// `tracing` target of the timeout's events.
pub const TARGET_TIMEOUT: &str = "rampart::timeout";
/// `tracing` target of the fallback's events.
pub const TARGET_FALLBACK: &str = "rampart::fallback";
/// `tracing` target of the load balancer's events.
pub const TARGET_BALANCE: &str = "rampart::balance";
/// `tracing` target of the chaos layer's events.
pub const TARGET_CHAOS: &str = "rampart::chaos";
/// `tracing` target of the rate limiter's events.
pub const TARGET_RATE_LIMIT: &str = "rampart::rate_limit";
/// `tracing` target of the retry layer's events.
pub const TARGET_RETRY: &str = "rampart::retry";
/// `tracing` target of the collapser's events.
pub const TARGET_COLLAPSE: &str = "rampart::collapse";
/// `tracing` target of the coalescer's events.
pub const TARGET_COALESCE: &str = "rampart::coalesce";
/// `tracing` target of the adaptive limit's events.
pub const TARGET_LIMIT: &str = "rampart::limit";
/// `tracing` target of etcd registration, discovery and property events.
pub const TARGET_DISCOVERY: &str = "rampart::discovery";

/// Whether `debug` events can be on at all: one load and a compare, the
/// test tracing's own macros begin with. Per-call events ask this inline
/// and build the event in a `#[cold]` function: the macro's body inlined
/// into a call path makes the compiler spill registers on that path even
/// when nothing listens (two instructions a call on the closed breaker's
/// path, counted with callgrind).
#[inline(always)]
pub(crate) fn debug_enabled() -> bool {
    tracing::Level::DEBUG <= tracing::level_filters::STATIC_MAX_LEVEL
        && tracing::Level::DEBUG <= tracing::level_filters::LevelFilter::current()
}

/// An event counter for one layer instance.
pub(crate) fn event_counter(layer: &'static str, name: &str, event: &'static str) -> Counter {
    metrics::counter!(EVENTS_TOTAL, LABEL_LAYER => layer, LABEL_NAME => name.to_owned(), LABEL_EVENT => event)
}

/// The latency histogram for one layer instance.
pub(crate) fn duration_histogram(layer: &'static str, name: &str) -> Histogram {
    metrics::histogram!(CALL_DURATION_SECONDS, LABEL_LAYER => layer, LABEL_NAME => name.to_owned())
}

/// A per-endpoint counter of a balancer.
#[cfg(feature = "balance")]
pub(crate) fn endpoint_counter(metric: &'static str, name: &str, endpoint: &str) -> Counter {
    metrics::counter!(metric, LABEL_NAME => name.to_owned(), LABEL_ENDPOINT => endpoint.to_owned())
}

/// A per-endpoint latency histogram of a balancer.
#[cfg(feature = "balance")]
pub(crate) fn endpoint_histogram(name: &str, endpoint: &str, outcome: &'static str) -> Histogram {
    metrics::histogram!(ENDPOINT_DURATION_SECONDS, LABEL_NAME => name.to_owned(), LABEL_ENDPOINT => endpoint.to_owned(), LABEL_OUTCOME => outcome)
}

/// An event counter for one partition of a limiter.
#[cfg(feature = "limit")]
pub(crate) fn partition_event_counter(
    layer: &'static str,
    name: &str,
    event: &'static str,
    partition: &str,
) -> Counter {
    metrics::counter!(EVENTS_TOTAL, LABEL_LAYER => layer, LABEL_NAME => name.to_owned(), LABEL_EVENT => event, LABEL_PARTITION => partition.to_owned())
}

/// A gauge of one partition of a limiter.
#[cfg(feature = "limit")]
pub(crate) fn partition_gauge(metric: &'static str, name: &str, partition: &str) -> Gauge {
    metrics::gauge!(metric, LABEL_NAME => name.to_owned(), LABEL_PARTITION => partition.to_owned())
}

/// A gauge labelled with a layer instance's name.
pub(crate) fn named_gauge(metric: &'static str, name: &str) -> Gauge {
    metrics::gauge!(metric, LABEL_NAME => name.to_owned())
}
