//! The chaos layer.

use super::config::Builder;
use super::handle::ChaosHandle;
use super::service::Chaos;
use super::state::Shared;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`Chaos`]: injects delays and aborts into their calls
/// while enabled (Netflix's Latency Monkey, Envoy's fault filter).
///
/// `Req` and `Res` are the request and response types of the service it
/// wraps (its predicate reads requests; an injected response is a `Res`).
pub struct ChaosLayer<Req, Res> {
    pub(crate) shared: Arc<Shared<Req, Res>>,
}

impl<Req, Res> ChaosLayer<Req, Res> {
    /// Starts a chaos layer named `name`: no faults, switched off.
    pub fn builder(name: impl Into<String>) -> Builder<Req, Res> {
        Builder::new(name.into())
    }

    /// A handle to switch and re-tune the layer at run time.
    pub fn handle(&self) -> ChaosHandle<Req, Res> {
        ChaosHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<Req, Res> Clone for ChaosLayer<Req, Res> {
    fn clone(&self) -> Self {
        ChaosLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, Req, Res> Layer<S> for ChaosLayer<Req, Res> {
    type Service = Chaos<S, Req, Res>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos::new(inner, self.shared.clone())
    }
}

impl<Req, Res> fmt::Debug for ChaosLayer<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle().fmt(f)
    }
}
