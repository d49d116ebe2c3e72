//! rampart's own failures, and [`ErrorKind`] to tell them apart.
//!
//! Every rampart layer follows tower's convention: its `Error` is
//! [`tower::BoxError`](BoxError), so any layer drops into any stack. The
//! failures rampart adds itself are small, opaque, zero-sized types: boxing a
//! zero-sized value does not allocate, so a rejected call costs no allocation.
//! Which breaker rejected a call, and until when, is read from its
//! [`CircuitBreakerHandle`](crate::circuit_breaker::CircuitBreakerHandle).
//!
//! Rather than writing a chain of `downcast_ref` calls, ask
//! [`ErrorKind::of`]:
//!
//! ```
//! use rampart::{BoxError, ErrorKind};
//! use rampart::circuit_breaker::CircuitOpen;
//!
//! let e: BoxError = CircuitOpen::new().into();
//! assert_eq!(ErrorKind::of(&e), ErrorKind::CircuitOpen);
//! assert!(ErrorKind::of(&e).is_rejection());
//!
//! let e: BoxError = "connection reset".into();
//! assert_eq!(ErrorKind::of(&e), ErrorKind::Inner);
//!
//! // tower's own errors are recognised too.
//! let e: BoxError = tower::load_shed::error::Overloaded::new().into();
//! assert_eq!(ErrorKind::of(&e), ErrorKind::BulkheadFull);
//! ```

use std::error::Error as StdError;
use std::fmt;

/// An error of any type, boxed: the error type of every rampart layer.
///
/// Re-exported from tower, so the two are one type.
pub type BoxError = tower::BoxError;

/// What kind of failure a call ended in: answered without a downcast chain.
///
/// `ErrorKind::of` looks at the error and at its [`source`](StdError::source)
/// chain, so a rampart error wrapped by another layer is still recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A circuit breaker was open (or its half-open probes were taken) and
    /// short-circuited the call: the dependency was not called.
    CircuitOpen,
    /// A bulkhead or a pool was full and rejected the call (or tower's load
    /// shedding did, or a [coalescer](crate::coalesce) had as many callers
    /// waiting for one call as it allows): the dependency was not called.
    BulkheadFull,
    /// A rate limit refused the call: too many calls (with its key) in
    /// its period. The dependency was not called;
    /// [`RateLimited::retry_after`](crate::rate_limit::RateLimited::retry_after)
    /// says when a call would be let through.
    RateLimited,
    /// A retry was warranted but the retry budget was spent; the last
    /// attempt's error is the source.
    RetryBudgetExhausted,
    /// A load balancer had no endpoint to send the call to.
    NoHealthyEndpoint,
    /// A timeout elapsed before the inner service answered: rampart's,
    /// tokio's or tower's, or a reqwest client's own (feature `reqwest`),
    /// or a tonic channel's (feature `tonic`).
    Timeout,
    /// The call's [deadline](crate::deadline) passed: before the call
    /// (rejected at once, the dependency not called) or while it ran (cut
    /// off). Not retried, not a rejection.
    DeadlineExceeded,
    /// The dependency (or a fallback) panicked and the panic was contained
    /// by [`CatchPanic`](crate::catch_panic::CatchPanic).
    Panicked,
    /// A fallback would have run, but as many as its cap allows were
    /// already running; the call's own error is the source.
    FallbackRejected,
    /// An adaptive concurrency limit was reached (or the call's partition
    /// was over its share of it) and rejected the call: the dependency was
    /// not called.
    LimitExceeded,
    /// Any other error: the inner service's own failure.
    Inner,
}

impl ErrorKind {
    /// Classifies `error` (a [`BoxError`] or a `dyn Error`), looking through
    /// its `source()` chain (and, feature `reqwest-middleware`, into a
    /// `reqwest_middleware::Error`, whose `source()` skips what it wraps).
    pub fn of<E: AsDynError + ?Sized>(error: &E) -> ErrorKind {
        for e in chain(error.as_dyn_error()) {
            #[cfg(feature = "circuit-breaker")]
            if e.is::<crate::circuit_breaker::CircuitOpen>() {
                return ErrorKind::CircuitOpen;
            }
            #[cfg(feature = "rate-limit")]
            if e.is::<crate::rate_limit::RateLimited>() {
                return ErrorKind::RateLimited;
            }
            #[cfg(feature = "retry")]
            if e.is::<crate::retry::RetryBudgetExhausted>() {
                return ErrorKind::RetryBudgetExhausted;
            }
            #[cfg(feature = "balance")]
            if e.is::<crate::balance::NoHealthyEndpoint>() {
                return ErrorKind::NoHealthyEndpoint;
            }
            #[cfg(feature = "bulkhead")]
            if e.is::<crate::bulkhead::BulkheadFull>() || e.is::<crate::bulkhead::pool::PoolFull>()
            {
                return ErrorKind::BulkheadFull;
            }
            #[cfg(feature = "limit")]
            if e.is::<crate::limit::LimitExceeded>()
                || e.is::<crate::limit::PartitionLimitExceeded>()
            {
                return ErrorKind::LimitExceeded;
            }
            #[cfg(feature = "coalesce")]
            if e.is::<crate::coalesce::WaitersFull>() {
                return ErrorKind::BulkheadFull;
            }
            // tower's load shedding rejects for the same reason.
            if e.is::<tower::load_shed::error::Overloaded>() {
                return ErrorKind::BulkheadFull;
            }
            if e.is::<crate::catch_panic::Panicked>() {
                return ErrorKind::Panicked;
            }
            #[cfg(feature = "fallback")]
            if e.is::<crate::fallback::FallbackRejected>() {
                return ErrorKind::FallbackRejected;
            }
            if e.is::<crate::deadline::DeadlineExceeded>() {
                return ErrorKind::DeadlineExceeded;
            }
            if is_timeout(e) {
                return ErrorKind::Timeout;
            }
        }
        ErrorKind::Inner
    }

    /// Whether a resilience layer refused the call without calling the
    /// dependency (the dependency's health is unknown, not bad).
    pub fn is_rejection(self) -> bool {
        matches!(
            self,
            ErrorKind::CircuitOpen
                | ErrorKind::BulkheadFull
                | ErrorKind::RateLimited
                | ErrorKind::LimitExceeded
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::BulkheadFull => "bulkhead full",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::RetryBudgetExhausted => "retry budget exhausted",
            ErrorKind::NoHealthyEndpoint => "no healthy endpoint",
            ErrorKind::Timeout => "timed out",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::Panicked => "panicked",
            ErrorKind::FallbackRejected => "fallback rejected",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Inner => "inner service failed",
        })
    }
}

/// The error types [`ErrorKind::of`] accepts: [`BoxError`] and `dyn Error`;
/// with the `reqwest` and `reqwest-middleware` features, `reqwest::Error`
/// and `reqwest_middleware::Error` too; with `tonic`, `tonic::Status`.
///
/// Sealed: it exists only so that `ErrorKind::of(&boxed)` works as written.
pub trait AsDynError: sealed::Sealed {
    /// The error as a plain trait object.
    fn as_dyn_error(&self) -> &(dyn StdError + 'static);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::BoxError {}
    impl Sealed for dyn std::error::Error + 'static {}
    impl Sealed for dyn std::error::Error + Send + Sync + 'static {}
    #[cfg(feature = "reqwest")]
    impl Sealed for ::reqwest::Error {}
    #[cfg(feature = "reqwest-middleware")]
    impl Sealed for reqwest_middleware::Error {}
    #[cfg(feature = "tonic")]
    impl Sealed for ::tonic::Status {}
}

/// `ErrorKind::of(&error)` on what a reqwest client or a
/// [`ReqwestEndpoint`](crate::reqwest::ReqwestEndpoint) returns.
#[cfg(feature = "reqwest")]
impl AsDynError for ::reqwest::Error {
    fn as_dyn_error(&self) -> &(dyn StdError + 'static) {
        self
    }
}

/// `ErrorKind::of(&error)` on what a `reqwest_middleware` client returns,
/// e.g. a rejection by
/// [`CircuitBreakerMiddleware`](crate::reqwest::CircuitBreakerMiddleware).
#[cfg(feature = "reqwest-middleware")]
impl AsDynError for reqwest_middleware::Error {
    fn as_dyn_error(&self) -> &(dyn StdError + 'static) {
        self
    }
}

/// `ErrorKind::of(&status)` on what a tonic client returns: a client-side
/// timeout (a `CANCELLED` status caused by `tonic::TimeoutExpired`) is
/// [`ErrorKind::Timeout`], any other status [`ErrorKind::Inner`].
#[cfg(feature = "tonic")]
impl AsDynError for ::tonic::Status {
    fn as_dyn_error(&self) -> &(dyn StdError + 'static) {
        self
    }
}

impl AsDynError for BoxError {
    fn as_dyn_error(&self) -> &(dyn StdError + 'static) {
        &**self
    }
}

impl AsDynError for dyn StdError + 'static {
    fn as_dyn_error(&self) -> &(dyn StdError + 'static) {
        self
    }
}

impl AsDynError for dyn StdError + Send + Sync + 'static {
    fn as_dyn_error(&self) -> &(dyn StdError + 'static) {
        self
    }
}

/// Timeouts raised by tokio's and tower's own timeout utilities count too, so
/// a breaker above `tower::timeout::TimeoutLayer` sees them as timeouts; and
/// with the `reqwest` feature, a reqwest client's own timeouts; with the
/// `tonic` feature, a tonic channel's (found in its status's source).
fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    #[cfg(feature = "timeout")]
    if e.is::<crate::timeout::Elapsed>() {
        return true;
    }
    #[cfg(feature = "reqwest")]
    if e.downcast_ref::<::reqwest::Error>()
        .is_some_and(::reqwest::Error::is_timeout)
    {
        return true;
    }
    #[cfg(feature = "tonic")]
    if e.is::<::tonic::TimeoutExpired>() {
        return true;
    }
    e.is::<tokio::time::error::Elapsed>() || e.is::<tower::timeout::error::Elapsed>()
}

/// `error` and what it wraps, outermost first, as [`ErrorKind::of`] walks
/// it: for whatever looks for one error type in a chain.
pub(crate) fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e| next_in_chain(*e))
}

/// The error [`ErrorKind::of`] looks at after `e`: its source, except past
/// a wrapper whose `source()` skips what it wraps (thiserror's
/// `#[error(transparent)]` forwards to the wrapped error's own source).
fn next_in_chain<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    #[cfg(feature = "reqwest-middleware")]
    if let Some(e) = e.downcast_ref::<reqwest_middleware::Error>() {
        return Some(match e {
            reqwest_middleware::Error::Middleware(e) => {
                let inner: &(dyn StdError + 'static) = e.as_ref();
                inner
            }
            reqwest_middleware::Error::Reqwest(e) => e,
        });
    }
    #[cfg(feature = "reqwest-middleware")]
    if let Some(carried) = e.downcast_ref::<crate::reqwest::Carried>() {
        return Some(&*carried.0);
    }
    // Transparent for Display and `source()`, so that a chain prints the
    // original once; ErrorKind looks at the original itself.
    if let Some(shared) = e.downcast_ref::<SharedError>() {
        return Some(shared.original());
    }
    e.source()
}

/// One error handed to several callers: the call a
/// [coalescer](crate::coalesce) shared failed, or a [cache](crate::cache)
/// told to keep errors answers with one it kept.
///
/// A [`BoxError`] is not `Clone`; this is the original error in an `Arc`,
/// cloned for each caller (an `Arc` count, no copy of the error). It is
/// transparent: its `Display` and [`source`](StdError::source) are the
/// original's, [`ErrorKind::of`] classifies the original (a shared
/// timeout is [`ErrorKind::Timeout`]), and [`original`](Self::original)
/// gives it back to downcast.
///
/// ```
/// use rampart::error::SharedError;
/// use rampart::{BoxError, ErrorKind};
///
/// let original: BoxError = Box::new(std::io::Error::other("connection reset"));
/// let shared = SharedError::new(original);
/// let (a, b): (BoxError, BoxError) = (shared.clone().into(), shared.into());
/// assert_eq!(a.to_string(), "connection reset");
/// assert_eq!(ErrorKind::of(&b), ErrorKind::Inner);
/// let a = a.downcast::<SharedError>().unwrap();
/// assert!(a.original().is::<std::io::Error>());
///
/// // A shared rejection is still a rejection.
/// let shed: BoxError = SharedError::new(tower::load_shed::error::Overloaded::new().into()).into();
/// assert_eq!(ErrorKind::of(&shed), ErrorKind::BulkheadFull);
/// ```
#[derive(Clone)]
pub struct SharedError(std::sync::Arc<dyn StdError + Send + Sync>);

impl SharedError {
    /// Shares `error`.
    pub fn new(error: BoxError) -> Self {
        SharedError(std::sync::Arc::from(error))
    }

    /// The original error, to downcast: `shared.original().downcast_ref::<E>()`.
    pub fn original(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl StdError for SharedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// A configuration value broke a rule: returned by every `build()`.
///
/// It lists every violation at once (not only the first), each naming the
/// field, the rule and the rejected value, so one fix-and-retry is enough.
///
/// ```
/// use rampart::circuit_breaker::CircuitBreakerLayer;
///
/// let err = CircuitBreakerLayer::builder("recommendations")
///     .failure_rate(1.5)
///     .probes(0)
///     .build()
///     .unwrap_err();
/// assert!(err.names("failure_rate"));
/// assert!(err.names("probes"));
/// assert!(err.to_string().contains("failure_rate: must be in (0, 1], got 1.5"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration for {component}: {}", list(violations))]
pub struct ConfigError {
    component: String,
    violations: Vec<Violation>,
}

/// One broken rule inside a [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The builder option at fault, e.g. `"failure_rate"`.
    pub field: &'static str,
    /// The rule and the rejected value, e.g. `"must be in (0, 1], got 1.5"`.
    pub message: String,
}

impl ConfigError {
    /// What was being built, e.g. `circuit breaker "recommendations"`.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Every violated rule.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Whether `field` is among the violations.
    pub fn names(&self, field: &str) -> bool {
        self.violations.iter().any(|v| v.field == field)
    }
}

fn list(violations: &[Violation]) -> String {
    let each: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect();
    each.join("; ")
}

/// Collects violations while a builder checks its options.
#[derive(Debug)]
pub(crate) struct Validator {
    component: String,
    violations: Vec<Violation>,
}

impl Validator {
    pub(crate) fn new(component: String) -> Self {
        Validator {
            component,
            violations: Vec::new(),
        }
    }

    /// Records a violation of `field` unless `ok`.
    pub(crate) fn check(
        &mut self,
        ok: bool,
        field: &'static str,
        message: impl FnOnce() -> String,
    ) {
        if !ok {
            self.violations.push(Violation {
                field,
                message: message(),
            });
        }
    }

    /// Takes in the violations of a part's own `build()`, naming the part.
    pub(crate) fn absorb<T>(&mut self, part: Result<T, ConfigError>) -> Option<T> {
        self.absorb_into(part, None)
    }

    /// As [`absorb`](Self::absorb), each violation under `option`, the
    /// option of this builder that set the part (a command's `bulkhead`
    /// for its bulkhead's `max_concurrent`), the part's own field kept in
    /// the message.
    pub(crate) fn absorb_as<T>(
        &mut self,
        part: Result<T, ConfigError>,
        option: &'static str,
    ) -> Option<T> {
        self.absorb_into(part, Some(option))
    }

    fn absorb_into<T>(
        &mut self,
        part: Result<T, ConfigError>,
        option: Option<&'static str>,
    ) -> Option<T> {
        match part {
            Ok(value) => Some(value),
            Err(e) => {
                let component = e.component;
                self.violations
                    .extend(e.violations.into_iter().map(|v| match option {
                        // A part's name is the builder's own.
                        Some(option) if v.field != "name" => Violation {
                            field: option,
                            message: format!("{} {} (in the {component})", v.field, v.message),
                        },
                        _ => Violation {
                            field: v.field,
                            message: format!("{} (in the {component})", v.message),
                        },
                    }));
                None
            }
        }
    }

    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                component: self.component,
                violations: self.violations,
            })
        }
    }
}
