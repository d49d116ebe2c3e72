//! The fallback layer.

use super::config::{Builder, Unset};
use super::handle::FallbackHandle;
use super::service::Fallback;
use super::stats::{Shared, Stats};
use crate::internal::shard::Lanes;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in a [`Fallback`].
pub struct FallbackLayer<FB> {
    shared: Arc<Lanes<Shared<FB>>>,
}

impl FallbackLayer<Unset> {
    /// Starts a fallback named `name`, capped at 10 running at once.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }
}

impl<FB> FallbackLayer<FB> {
    pub(crate) fn from_parts(fallback: FB, stats: Arc<Stats>, contain_panics: bool) -> Self {
        FallbackLayer {
            shared: Arc::new(Lanes::new(Arc::new(Shared {
                fallback,
                stats,
                contain_panics,
            }))),
        }
    }

    /// A handle to read how often fallbacks ran, failed or were rejected.
    pub fn handle(&self) -> FallbackHandle {
        FallbackHandle::new(self.shared.shared().stats.clone())
    }
}

// By hand: the fallback sits behind an `Arc`, so it need not be `Clone`.
impl<FB> Clone for FallbackLayer<FB> {
    fn clone(&self) -> Self {
        FallbackLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, FB> Layer<S> for FallbackLayer<FB> {
    type Service = Fallback<S, FB>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::new(inner, self.shared.clone())
    }
}

impl<FB> fmt::Debug for FallbackLayer<FB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("name", &self.shared.shared().stats.name)
            .finish_non_exhaustive()
    }
}
