//! The error a contained panic becomes.

use std::any::Any;

/// The dependency (or a fallback) panicked; the panic was caught and
/// turned into this error. Carries the panic's message when it had one
/// (a `&str` or a `String`, as `panic!` makes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the dependency panicked{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct Panicked {
    message: Option<String>,
}

impl Panicked {
    /// Wraps a caught panic's payload.
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        Panicked { message }
    }

    /// The panic's message, if it had one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}
