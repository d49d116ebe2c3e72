//! The timeout's own failure.

/// The inner service did not answer before the deadline; the call was
/// cancelled (its future dropped) at that moment.
///
/// Zero-sized, so timing out never allocates. Recognise it in a boxed error
/// with [`ErrorKind::of`](crate::ErrorKind::of), which also recognises
/// tokio's and tower's own timeout errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("request timed out")]
#[non_exhaustive]
pub struct Elapsed;

impl Elapsed {
    /// A new `Elapsed` error.
    pub const fn new() -> Self {
        Elapsed
    }
}
