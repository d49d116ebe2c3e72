//! The timeout layer.

use super::config::Builder;
use super::service::Timeout;
use crate::internal::clock::Clock;
use crate::metrics::event_counter;
use metrics::Counter;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// The `layer` label and field of the timeout's metrics and events.
pub(super) const LAYER: &str = "timeout";

/// Wraps services in a [`Timeout`].
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Duration,
    // Read at each call for its deadline: the time-stamp counter on a
    // multi-thread runtime (see `internal::clock`).
    clock: Clock,
    timed_out: Counter,
    name: Arc<str>,
}

impl TimeoutLayer {
    /// Starts a timeout named `name` with Hystrix's default of 1 s.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }

    pub(crate) fn new(name: &str, timeout: Duration) -> Self {
        TimeoutLayer {
            timeout,
            clock: Clock::new(),
            timed_out: event_counter(LAYER, name, "timeout"),
            name: name.into(),
        }
    }

    /// The deadline each call gets.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(
            inner,
            self.timeout,
            self.clock,
            self.timed_out.clone(),
            self.name.clone(),
        )
    }
}
