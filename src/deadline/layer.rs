//! The deadline layer.

use super::config::Builder;
use super::service::DeadlineService;
use metrics::Counter;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// The `layer` label and field of the deadline layer's metrics.
pub(super) const LAYER: &str = "deadline";

/// Gives each call a deadline and holds it to it; see the
/// [module docs](super).
///
/// On a client, put it above everything else (retries, hedges, the
/// balancer, commands) so that all of them work within one deadline; on a
/// server, in front of the handlers, where it reads the caller's deadline
/// from the request's headers. Counts
/// `rampart_events_total{layer="deadline",event="deadline_rejected"|"deadline_cut"}`.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    pub(super) budget: Option<Duration>,
    pub(super) rejected: Counter,
    pub(super) cut: Counter,
    pub(super) name: Arc<str>,
}

impl DeadlineLayer {
    /// Starts a deadline layer named `name` (for metrics), with no budget
    /// of its own.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The layer's own budget per call, if any.
    pub fn budget(&self) -> Option<Duration> {
        self.budget
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService::new(inner, self.clone())
    }
}
