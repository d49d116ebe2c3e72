//! The catch-panic layer.

use super::service::CatchPanic;
use tower_layer::Layer;

/// Wraps services in a [`CatchPanic`]. Has no options.
#[derive(Debug, Clone, Copy)]
pub struct CatchPanicLayer {
    contain: bool,
}

impl CatchPanicLayer {
    /// A new layer.
    pub const fn new() -> Self {
        CatchPanicLayer { contain: true }
    }

    /// A layer that lets panics unwind: [`Command`](crate::Command)'s,
    /// until [`contain_panics`](crate::command::CommandBuilder::contain_panics).
    pub(crate) const fn contain(contain: bool) -> Self {
        CatchPanicLayer { contain }
    }
}

impl Default for CatchPanicLayer {
    fn default() -> Self {
        CatchPanicLayer::new()
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic::new(inner, self.contain)
    }
}
