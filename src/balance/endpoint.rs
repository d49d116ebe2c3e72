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
    ///
    /// One [keyed layer](crate::circuit_breaker::KeyedCircuitBreakerLayer)
    /// can hold every endpoint's breaker, keyed by endpoint:
    /// [`for_key`](crate::circuit_breaker::KeyedCircuitBreakerLayer::for_key)
    /// gives the layer to wrap `service` with, and its handle for here (see
    /// [Breakers for a balancer's endpoints](crate::circuit_breaker#breakers-for-a-balancers-endpoints)).
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

/// How an attempt on an endpoint ended, for its health, its load
/// estimate, its counts and the `outcome` label of its latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The policy called it a success.
    Success,
    /// The policy called it a failure (an error or, say, a 503); also a
    /// panic in the endpoint's service or future.
    Failure,
    /// A failure that was a timeout: the endpoint's own, beneath the
    /// balancer, or a timeout above the balancer cutting the attempt off.
    Timeout,
    /// The policy ignored it (not the endpoint's fault).
    Ignored,
    /// The caller dropped the call before the endpoint answered.
    Cancelled,
}

impl Ended {
    const ALL: [Ended; 5] = [
        Ended::Success,
        Ended::Failure,
        Ended::Timeout,
        Ended::Ignored,
        Ended::Cancelled,
    ];

    /// The value of the `outcome` label.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Ended::Success => "success",
            Ended::Failure => "failure",
            Ended::Timeout => "timeout",
            Ended::Ignored => "ignored",
            Ended::Cancelled => "cancelled",
        }
    }

    /// Whether it counts against the endpoint's health.
    pub(crate) const fn is_failure(self) -> bool {
        matches!(self, Ended::Failure | Ended::Timeout)
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
    /// Attempts ended, by [`Ended`] (in the order of `Ended::ALL`).
    ended: [AtomicU64; 5],
    selected_counter: Counter,
    pub(crate) ejections_counter: Counter,
    /// Latency histograms, by [`Ended`].
    duration: [Histogram; 5],
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
            duration: Ended::ALL.map(|e| endpoint_histogram(balancer, &label, e.label())),
            label,
            key: endpoint.key,
            zone: endpoint.zone,
            breaker: endpoint.breaker,
            service: endpoint.service,
            in_flight: AtomicUsize::new(0),
            latency: PeakEwma::new(initial_latency, decay, now),
            health: Health::default(),
            selected: AtomicU64::new(0),
            ended: Default::default(),
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

    /// Records how an attempt ended, and after how long (µs) if it was
    /// sent: a failure raises the load estimate, a success or an ignored
    /// result feeds it, and a cancellation counts only as a lower bound.
    pub(crate) fn record(&self, ended: Ended, now: Micros, rtt: Option<u64>) {
        self.ended[ended as usize].fetch_add(1, Ordering::Relaxed);
        match ended {
            Ended::Success | Ended::Ignored => {
                if let Some(rtt) = rtt {
                    self.latency.record(now, rtt);
                }
            }
            Ended::Failure | Ended::Timeout => self.latency.penalize(now, rtt.unwrap_or(0)),
            Ended::Cancelled => {
                if let Some(rtt) = rtt {
                    self.latency.at_least(now, rtt);
                }
            }
        }
        if let Some(rtt) = rtt {
            self.duration[ended as usize].record(rtt as f64 / 1e6);
        }
    }

    /// Attempts that ended so.
    pub(crate) fn count(&self, ended: Ended) -> u64 {
        self.ended[ended as usize].load(Ordering::Relaxed)
    }
}

/// An attempt in progress on an endpoint: counted in its in-flight load
/// until dropped.
pub(crate) struct InFlight<K, S> {
    endpoint: Option<Arc<EndpointState<K, S>>>,
}

impl<K, S> InFlight<K, S> {
    /// The endpoint's id, while the attempt runs.
    pub(crate) fn endpoint_id(&self) -> Option<u64> {
        self.endpoint.as_ref().map(|e| e.id)
    }

    /// Ends the attempt, handing back the pointer to the endpoint (`None`
    /// if it has ended already).
    pub(crate) fn finish(&mut self) -> Option<Arc<EndpointState<K, S>>> {
        let endpoint = self.endpoint.take()?;
        endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        Some(endpoint)
    }
}

impl<K, S> Drop for InFlight<K, S> {
    fn drop(&mut self) {
        if let Some(endpoint) = &self.endpoint {
            endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
