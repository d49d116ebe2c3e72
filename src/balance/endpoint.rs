//! Endpoints: what the caller describes, and what the balancer tracks.

use super::ejection::Health;
use super::ewma::PeakEwma;
use crate::circuit_breaker::CircuitBreakerHandle;
use crate::internal::clock::Micros;
use crate::metrics::{
    endpoint_counter, endpoint_histogram, ENDPOINT_EJECTIONS_TOTAL, ENDPOINT_SELECTED_TOTAL,
};
use metrics::{Counter, Histogram};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// One instance of a dependency: a key (e.g. its address), the service
/// that calls it, and optionally its zone and circuit breaker.
///
/// ```
/// use rampart::balance::Endpoint;
/// # let client = tower::service_fn(|_: ()| async { Ok::<_, rampart::BoxError>(()) });
/// let endpoint = Endpoint::new("10.0.0.7:8080", client).zone("us-east-1a");
/// ```
pub struct Endpoint<K, S> {
    pub(crate) key: K,
    pub(crate) service: S,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) breaker: Option<CircuitBreakerHandle>,
}

impl<K, S> Endpoint<K, S> {
    /// An endpoint named `key`, called through `service`.
    pub fn new(key: K, service: S) -> Self {
        Endpoint {
            key,
            service,
            zone: None,
            breaker: None,
        }
    }

    /// The zone the endpoint runs in, for [`ZoneAffinity`](super::rule::ZoneAffinity).
    pub fn zone(mut self, zone: impl Into<Arc<str>>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// The circuit breaker wrapping `service` (when you built it with one),
    /// so [`AvailabilityFilter`](super::rule::AvailabilityFilter) can skip
    /// the endpoint while its breaker rejects calls.
    pub fn breaker(mut self, breaker: CircuitBreakerHandle) -> Self {
        self.breaker = Some(breaker);
        self
    }
}

impl<K: fmt::Debug, S> fmt::Debug for Endpoint<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("key", &self.key)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// An endpoint in the set, with its live statistics.
pub(crate) struct EndpointState<K, S> {
    pub(crate) id: u64,
    pub(crate) key: K,
    pub(crate) label: String,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) breaker: Option<CircuitBreakerHandle>,
    pub(crate) service: S,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) latency: PeakEwma,
    pub(crate) health: Health,
    pub(crate) selected: AtomicU64,
    selected_counter: Counter,
    pub(crate) ejections_counter: Counter,
    duration: Histogram,
}

impl<K: fmt::Debug, S> EndpointState<K, S> {
    pub(crate) fn new(
        id: u64,
        endpoint: Endpoint<K, S>,
        balancer: &str,
        initial_latency: f64,
        decay: Micros,
        now: Micros,
    ) -> Self {
        let label = format!("{:?}", endpoint.key);
        EndpointState {
            id,
            selected_counter: endpoint_counter(ENDPOINT_SELECTED_TOTAL, balancer, &label),
            ejections_counter: endpoint_counter(ENDPOINT_EJECTIONS_TOTAL, balancer, &label),
            duration: endpoint_histogram(balancer, &label),
            label,
            key: endpoint.key,
            zone: endpoint.zone,
            breaker: endpoint.breaker,
            service: endpoint.service,
            in_flight: AtomicUsize::new(0),
            latency: PeakEwma::new(initial_latency, decay, now),
            health: Health::default(),
            selected: AtomicU64::new(0),
        }
    }
}

impl<K, S> EndpointState<K, S> {
    /// Counts a new attempt on this endpoint; the guard ends it. Takes the
    /// caller's pointer rather than cloning it: the count behind an `Arc`
    /// is shared by every thread calling this endpoint.
    #[inline]
    pub(crate) fn start(self: Arc<Self>) -> InFlight<K, S> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.selected.fetch_add(1, Ordering::Relaxed);
        self.selected_counter.increment(1);
        InFlight {
            endpoint: Some(self),
        }
    }

    pub(crate) fn record_latency(&self, now: Micros, rtt: u64) {
        self.latency.record(now, rtt);
        self.duration.record(rtt as f64 / 1e6);
    }
}

/// An attempt in progress on an endpoint: counted in its in-flight load
/// until dropped.
pub(crate) struct InFlight<K, S> {
    endpoint: Option<Arc<EndpointState<K, S>>>,
}

impl<K, S> InFlight<K, S> {
    /// Ends the attempt, handing back the pointer to the endpoint.
    pub(crate) fn finish(&mut self) -> Arc<EndpointState<K, S>> {
        let endpoint = self.endpoint.take().expect("finished once");
        endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        endpoint
    }
}

impl<K, S> Drop for InFlight<K, S> {
    fn drop(&mut self) {
        if let Some(endpoint) = &self.endpoint {
            endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
