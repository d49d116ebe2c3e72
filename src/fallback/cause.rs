//! Why a fallback runs.

use crate::{BoxError, ErrorKind};
use std::sync::OnceLock;

/// Why the fallback is asked for a response: the kind of failure, and the
/// error itself.
///
/// The fallback gets it by reference; the layer keeps it, so that if the
/// fallback fails too, the error returned ([`FallbackFailed`]) carries both.
///
/// [`FallbackFailed`]: super::FallbackFailed
pub struct Cause {
    /// Found on the first [`kind`](Cause::kind): walking the error's chain
    /// asks it its type a score of times, and most fallbacks never ask.
    kind: OnceLock<ErrorKind>,
    error: BoxError,
}

impl Cause {
    pub(crate) fn new(error: BoxError) -> Self {
        Cause {
            kind: OnceLock::new(),
            error,
        }
    }

    /// What went wrong: [`ErrorKind::CircuitOpen`] (short-circuited),
    /// [`ErrorKind::BulkheadFull`] (rejected), [`ErrorKind::Timeout`] (timed
    /// out) or [`ErrorKind::Inner`] (the dependency failed).
    pub fn kind(&self) -> ErrorKind {
        *self.kind.get_or_init(|| ErrorKind::of(&self.error))
    }

    /// The error the call failed with.
    pub fn error(&self) -> &BoxError {
        &self.error
    }

    pub(crate) fn into_error(self) -> BoxError {
        self.error
    }
}

// By hand: the kind is found when asked for, and shown as found.
impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cause")
            .field("kind", &self.kind())
            .field("error", &self.error)
            .finish()
    }
}
