//! The error a contained panic becomes.

use std::any::Any;

/// The dependency (or a fallback) panicked; the panic was caught and
/// turned into this error. Carries the panic's message when it had one
/// (a `&str` or a `String`, as `panic!` makes), and says whose it was:
/// "the dependency panicked: …" or "the fallback panicked: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {} panicked{}",
    if *.in_fallback { "fallback" } else { "dependency" },
    .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
)]
pub struct Panicked {
    message: Option<String>,
    in_fallback: bool,
}

impl Panicked {
    /// Wraps a caught panic's payload: the dependency's.
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        Panicked {
            message,
            in_fallback: false,
        }
    }

    /// Wraps a caught panic's payload: a fallback's.
    pub(crate) fn from_fallback(payload: &(dyn Any + Send)) -> Self {
        Panicked {
            in_fallback: true,
            ..Panicked::from_payload(payload)
        }
    }

    /// The panic's message, if it had one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Whether a fallback panicked (it then comes as a
    /// [`FallbackFailed`](crate::fallback::FallbackFailed)'s
    /// [`fallback_error`](crate::fallback::FallbackFailed::fallback_error)),
    /// rather than the dependency.
    pub fn in_fallback(&self) -> bool {
        self.in_fallback
    }
}
