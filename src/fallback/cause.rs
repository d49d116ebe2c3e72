//! Why a fallback runs.

use crate::{BoxError, ErrorKind};

/// Why the fallback is asked for a response: the kind of failure, and the
/// error itself.
///
/// The fallback gets it by reference; the layer keeps it, so that if the
/// fallback fails too, the error returned ([`FallbackFailed`]) carries both.
///
/// [`FallbackFailed`]: super::FallbackFailed
#[derive(Debug)]
pub struct Cause {
    kind: ErrorKind,
    error: BoxError,
}

impl Cause {
    pub(crate) fn new(error: BoxError) -> Self {
        Cause {
            kind: ErrorKind::of(&error),
            error,
        }
    }

    /// What went wrong: [`ErrorKind::CircuitOpen`] (short-circuited),
    /// [`ErrorKind::BulkheadFull`] (rejected), [`ErrorKind::Timeout`] (timed
    /// out) or [`ErrorKind::Inner`] (the dependency failed).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error the call failed with.
    pub fn error(&self) -> &BoxError {
        &self.error
    }

    pub(crate) fn into_error(self) -> BoxError {
        self.error
    }
}
