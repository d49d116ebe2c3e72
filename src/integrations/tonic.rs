//! gRPC status codes for the breaker, the balancer and the retry layer, and
//! rampart's errors as gRPC statuses, for tonic clients (feature `tonic`).
//!
//! A gRPC call answers with a status code, and whose fault a code is
//! decides what the breaker and the balancer make of it. An `UNAVAILABLE`
//! or a `DEADLINE_EXCEEDED` says the server is unwell: it counts against
//! the breaker, is evidence against the instance, and (`UNAVAILABLE`) may
//! be sent to another instance. An `INVALID_ARGUMENT` says the caller sent
//! a bad request: the server is doing its job, so it must neither trip a
//! breaker nor eject an instance, and sending it again elsewhere cannot
//! help. HTTP has the same split (5xx against 4xx); gRPC answers both with
//! HTTP 200, so an HTTP classifier sees neither.
//!
//! - [`GrpcClassifier`] is a breaker classifier over tonic's results
//!   (`Result<tonic::Response<T>, tonic::Status>` right above a client,
//!   `Result<tonic::Response<T>, BoxError>` inside a
//!   [`Command`](crate::Command) or above a balancer) and over
//!   `http::Response`s carrying `grpc-status` (a breaker beneath a tonic
//!   client, on its channel).
//! - [`GrpcPolicy`] is the balancer's and the retry layer's
//!   [`Policy`]: outcomes by the same table, retries on `UNAVAILABLE` (and
//!   the codes you add), after the wait a server asks for in
//!   `grpc-retry-pushback-ms`.
//! - [`into_status`] turns a call's [`BoxError`] back into the
//!   [`Status`] a gRPC caller expects: the server's own status when there
//!   is one, `UNAVAILABLE` for an open breaker, `DEADLINE_EXCEEDED` for a
//!   timeout. [`status_of`] finds the server's status in an error.
//!
//! rampart enables no tonic feature: this module uses tonic's status and
//! response types only. Your crate enables tonic's `channel` (and
//! `server`) as it would anyway. tonic 0.14 needs Rust 1.88.
//!
//! # The table
//!
//! [`GrpcClassifier::new`] sorts the codes as an HTTP client sorts the
//! statuses gRPC maps them to (Envoy's and grpc-gateway's gRPC → HTTP
//! mapping): a code whose HTTP status is a 5xx is the server's failure, a
//! 4xx is the caller's business, as [`Outcome::Ignored`] (counted apart,
//! never toward a rate; Hystrix's bad request).
//!
//! | code | HTTP | outcome | [`GrpcPolicy`] retries it |
//! |---|---|---|---|
//! | `OK` | 200 | [`Success`](Outcome::Success) | |
//! | `CANCELLED` | 499 | [`Ignored`](Outcome::Ignored) (the caller gave up); a tonic *client* timeout: as `DEADLINE_EXCEEDED` | |
//! | `UNKNOWN` | 500 | [`Failure`](Outcome::Failure) | |
//! | `INVALID_ARGUMENT` | 400 | [`Ignored`](Outcome::Ignored) | |
//! | `DEADLINE_EXCEEDED` | 504 | [`Failure`](Outcome::Failure) | with [`retry_on`](GrpcPolicy::retry_on) |
//! | `NOT_FOUND` | 404 | [`Ignored`](Outcome::Ignored) | |
//! | `ALREADY_EXISTS` | 409 | [`Ignored`](Outcome::Ignored) | |
//! | `PERMISSION_DENIED` | 403 | [`Ignored`](Outcome::Ignored) | |
//! | `RESOURCE_EXHAUSTED` | 429 | [`Ignored`](Outcome::Ignored) | |
//! | `FAILED_PRECONDITION` | 400 | [`Ignored`](Outcome::Ignored) | |
//! | `ABORTED` | 409 | [`Ignored`](Outcome::Ignored) | |
//! | `OUT_OF_RANGE` | 400 | [`Ignored`](Outcome::Ignored) | |
//! | `UNIMPLEMENTED` | 501 | [`Failure`](Outcome::Failure) | |
//! | `INTERNAL` | 500 | [`Failure`](Outcome::Failure) | |
//! | `UNAVAILABLE` | 503 | [`Failure`](Outcome::Failure) | yes |
//! | `DATA_LOSS` | 500 | [`Failure`](Outcome::Failure) | |
//! | `UNAUTHENTICATED` | 401 | [`Ignored`](Outcome::Ignored) | |
//! | an error with no status in it (a rampart timeout or rejection, ...) | | [`Failure`](Outcome::Failure), as with any classifier | only if it proves the request was never sent ([`DefaultPolicy`](crate::retry::DefaultPolicy)'s rule) |
//!
//! Change a row with [`GrpcClassifier::with`]: a server that sheds load
//! with `RESOURCE_EXHAUSTED` (tonic's own `load_shed` does) is unwell, not
//! the caller: `.with(Code::ResourceExhausted, Outcome::Failure)`.
//!
//! Only `UNAVAILABLE` is retried by default: gRPC's retry design (A6)
//! leaves the retryable codes to each service, and `UNAVAILABLE` is the one
//! its status-code guide calls safe to retry; a server that answered
//! `DEADLINE_EXCEEDED` or `INTERNAL` may have acted on the call. Add codes
//! for idempotent calls with [`GrpcPolicy::retry_on`].
//!
//! # tonic's own timeouts
//!
//! A tonic channel's timeout (`Endpoint::timeout`, or the request's
//! `grpc-timeout`, which the channel enforces too) ends the call with
//! `CANCELLED` ("Timeout expired") rather than `DEADLINE_EXCEEDED`, with a
//! [`tonic::TimeoutExpired`] in its source chain. The classifier and the
//! policy read such a status as `DEADLINE_EXCEEDED`, and
//! [`ErrorKind::of`] says [`Timeout`](ErrorKind::Timeout) (so the balancer
//! counts it as a timeout for its instance). A tonic *server* whose own
//! `grpc-timeout` expires answers `CANCELLED` on the wire, where the
//! client cannot tell it from a cancellation: it counts as ignored.
//!
//! # Where the status is seen
//!
//! Above a tonic client (the usual place, and the only one where a
//! [`Balance`](crate::balance::Balance) fits: its request, a prost
//! message, is `Clone`), the status is tonic's own, whatever the server
//! sent. Beneath a tonic client, on its channel, a layer sees
//! `http::Response`s: a call that fails before its first message is
//! answered *trailers-only*, `grpc-status` in the response headers (how
//! tonic and grpc-go answer an error from a unary handler), and is seen;
//! a status sent in trailers, after a streamed body, is not (the breaker
//! records a call when its response head arrives), and such a response
//! counts as a success. tower-http's `GrpcErrorsAsFailures` (feature
//! `tower-http`) sees the same trailers-only statuses.
//!
//! A rampart layer on the channel fails a call with its own error, which
//! tonic hands its caller as an `UNKNOWN` status with that error as its
//! source: `ErrorKind::of(&status)` still tells an open breaker, and
//! `into_status(status.into())` gives the `UNAVAILABLE` a caller expects.
//!
//! # With a fallback
//!
//! A [`Command`](crate::Command)'s fallback serves every error, the
//! caller's mistakes too: the breaker ignores an `INVALID_ARGUMENT`, but a
//! fallback would still answer it in the server's place, and the caller
//! would never learn its request was bad. (Hystrix lets a bad request skip
//! the fallback; rampart has no such switch yet.) Until it does, decline
//! in the fallback: fail it for the codes the classifier ignores. The call
//! then ends in a [`FallbackFailed`](crate::fallback::FallbackFailed)
//! whose source is the server's status, which [`into_status`] gives back
//! (the fallback's stats count a failed fallback):
//!
//! ```
//! use rampart::circuit_breaker::Outcome;
//! use rampart::fallback::Cause;
//! use rampart::tonic::GrpcClassifier;
//! use rampart::{BoxError, Command};
//! use tonic::{Code, Status};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! fn placeholder(cause: &Cause) -> Result<tonic::Response<String>, BoxError> {
//!     if GrpcClassifier::new().outcome_of_error(cause.error()) == Outcome::Ignored {
//!         return Err("not for the caller's mistakes".into()); // the caller gets the status
//!     }
//!     Ok(tonic::Response::new("a title".to_string()))
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let command = Command::builder("catalog")
//!     .breaker(|b| b.classify(GrpcClassifier::new()))
//!     .fallback_sync(placeholder)
//!     .build()?;
//! let mut catalog = ServiceBuilder::new().layer(command).service(service_fn(|id: u64| async move {
//!     match id {
//!         0 => Err(Status::invalid_argument("id must be positive")),
//!         _ => Err(Status::unavailable("down")),
//!     }
//! }));
//! // The server's failure: the fallback answers.
//! assert_eq!(catalog.ready().await?.call(7).await?.into_inner(), "a title");
//! // The caller's mistake: its status comes back.
//! let error = catalog.ready().await?.call(0).await.unwrap_err();
//! assert_eq!(rampart::tonic::into_status(error).code(), Code::InvalidArgument);
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! A command and a balancer over tonic clients, each call a prost message
//! in and a `tonic::Response` out; `examples/tonic_client.rs` runs it
//! against two tonic servers, one of them failing.
//!
//! ```
//! use rampart::balance::{Balance, Endpoint, Endpoints};
//! use rampart::tonic::{GrpcClassifier, GrpcPolicy};
//! use rampart::{BoxError, Command};
//! use tonic::{Code, Status};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! // Stand-ins for two tonic clients (`client.get_title(request).await`):
//! // instance 1 is down, instance 2 answers and rejects bad ids.
//! let instance = |n: u32| service_fn(move |id: u64| async move {
//!     match (n, id) {
//!         (1, _) => Err(Status::unavailable("shutting down")),
//!         (_, 0) => Err(Status::invalid_argument("id must be positive")),
//!         _ => Ok(tonic::Response::new(format!("title {id}"))),
//!     }
//! });
//! let balancer = Balance::builder("catalog")
//!     .policy(GrpcPolicy::new()) // UNAVAILABLE: try the other instance
//!     .build(Endpoints::fixed([1, 2].map(|n| Endpoint::new(n, instance(n)))))?;
//! let command = Command::builder("catalog")
//!     .breaker(|b| b.classify(GrpcClassifier::new()).consecutive_failures(3))
//!     .build()?;
//! let breaker = command.breaker();
//! let mut catalog = ServiceBuilder::new().layer(command).service(balancer);
//!
//! // Every good call is answered, by instance 2.
//! for id in 1..=5 {
//!     let title = catalog.ready().await?.call(id).await?;
//!     assert_eq!(title.into_inner(), format!("title {id}"));
//! }
//! // A bad id comes back as the server's INVALID_ARGUMENT, not a failure.
//! let error = catalog.ready().await?.call(0).await.unwrap_err();
//! assert_eq!(rampart::tonic::into_status(error).code(), Code::InvalidArgument);
//! assert_eq!((breaker.counts().failed(), breaker.counts().ignored), (0, 1));
//! # Ok(())
//! # }
//! ```

use crate::circuit_breaker::{Classify, Outcome};
use crate::error::AsDynError;
use crate::retry::Policy;
use crate::{BoxError, ErrorKind};
use ::tonic::{Code, Response, Status, TimeoutExpired};
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// The number of gRPC status codes: `OK` (0) to `UNAUTHENTICATED` (16).
const CODES: usize = 17;

/// A breaker classifier for gRPC: each status code to an [`Outcome`], by
/// the table in the [module docs](self).
///
/// It classifies a tonic client's results, with the client's own error
/// ([`Status`]) or a boxed one (inside a [`Command`](crate::Command) or
/// above a balancer: the status is found in the error's source chain), and
/// `http::Response`s by their `grpc-status` header (or, without one, their
/// HTTP status as gRPC maps it; an HTTP 200 without one has its status in
/// trailers, unseen, and counts as a success). An error that carries no
/// status is a failure.
///
/// Copy, 17 bytes; classifying reads one array entry and never allocates.
///
/// ```
/// use rampart::circuit_breaker::{CircuitBreakerLayer, Outcome};
/// use rampart::tonic::GrpcClassifier;
/// use tonic::Code;
///
/// let classifier = GrpcClassifier::new().with(Code::ResourceExhausted, Outcome::Failure);
/// let breaker = CircuitBreakerLayer::builder("catalog").classify(classifier).build()?;
/// # let _ = breaker;
/// # Ok::<(), rampart::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcClassifier {
    outcomes: [Outcome; CODES],
}

impl GrpcClassifier {
    /// The table in the [module docs](self): the codes gRPC maps to an
    /// HTTP 5xx fail, `OK` succeeds, the rest are ignored.
    pub const fn new() -> Self {
        use Outcome::{Failure, Ignored, Success};
        GrpcClassifier {
            // In code order, OK (0) to UNAUTHENTICATED (16).
            outcomes: [
                Success, // OK
                Ignored, // CANCELLED
                Failure, // UNKNOWN
                Ignored, // INVALID_ARGUMENT
                Failure, // DEADLINE_EXCEEDED
                Ignored, // NOT_FOUND
                Ignored, // ALREADY_EXISTS
                Ignored, // PERMISSION_DENIED
                Ignored, // RESOURCE_EXHAUSTED
                Ignored, // FAILED_PRECONDITION
                Ignored, // ABORTED
                Ignored, // OUT_OF_RANGE
                Failure, // UNIMPLEMENTED
                Failure, // INTERNAL
                Failure, // UNAVAILABLE
                Failure, // DATA_LOSS
                Ignored, // UNAUTHENTICATED
            ],
        }
    }

    /// The same table with `code` counted as `outcome`.
    pub const fn with(mut self, code: Code, outcome: Outcome) -> Self {
        self.outcomes[index(code)] = outcome;
        self
    }

    /// How `code` counts.
    pub const fn outcome(&self, code: Code) -> Outcome {
        self.outcomes[index(code)]
    }

    /// How a call's error counts: by the status in it (read as the
    /// [module docs](self) say for tonic's timeouts), a failure without one.
    pub fn outcome_of_error<E: AsDynError + ?Sized>(&self, error: &E) -> Outcome {
        match effective_code(error.as_dyn_error()) {
            Some(code) => self.outcome(code),
            None => Outcome::Failure,
        }
    }

    /// How an `http::Response` counts, by its `grpc-status` header.
    fn outcome_of_response<B>(&self, response: &http::Response<B>) -> Outcome {
        match response_code(response) {
            Some(code) => self.outcome(code),
            // The status, if any, comes in trailers: unseen.
            None => Outcome::Success,
        }
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        GrpcClassifier::new()
    }
}

impl fmt::Debug for GrpcClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the rows that differ from the table are worth a line.
        let mut changed = f.debug_map();
        let table = GrpcClassifier::new();
        for i in 0..CODES {
            if self.outcomes[i] != table.outcomes[i] {
                changed.entry(&Code::from_i32(i as i32), &self.outcomes[i]);
            }
        }
        changed.finish()
    }
}

/// Right above a tonic client: its own `Result`.
impl<T> Classify<Response<T>, Status> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: &Result<Response<T>, Status>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(status) => self.outcome_of_error(status as &(dyn StdError + 'static)),
        }
    }
}

/// Inside a [`Command`](crate::Command), above a balancer or any layer
/// that boxes the error: the status is looked for in the error's source
/// chain.
impl<T> Classify<Response<T>, BoxError> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: &Result<Response<T>, BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(error) => self.outcome_of_error(error),
        }
    }
}

/// Beneath a tonic client, on its channel: `grpc-status` in the response
/// headers (a trailers-only answer); an error is a failure.
impl<B, E> Classify<http::Response<B>, E> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(response) => self.outcome_of_response(response),
            Err(_) => Outcome::Failure,
        }
    }
}

/// The balancer's and the retry layer's [`Policy`] for tonic clients:
/// outcomes by a [`GrpcClassifier`], retries on `UNAVAILABLE` and the codes
/// added with [`retry_on`](GrpcPolicy::retry_on), waits from
/// `grpc-retry-pushback-ms`.
///
/// For any request type (a prost message, say) answered by a
/// `tonic::Response`, the error being a [`Status`] or an error with one in
/// its source chain. An error without a status (a rampart rejection, a
/// refused connection the service did not turn into a status) is retried
/// only if it proves the request was never sent, as with
/// [`DefaultPolicy`](crate::retry::DefaultPolicy).
///
/// A server may push back (gRPC's retry design, A6): `grpc-retry-pushback-ms`
/// in a status's metadata asks for that many milliseconds before a retry
/// ([`retry_after`](Policy::retry_after): the [retry layer](crate::retry)
/// waits for it; the balancer, trying another instance, does not), and a
/// negative or unreadable value asks for no retry at all.
///
/// A call whose retry the retry budget refused ends in
/// [`RetryBudgetExhausted`](crate::retry::RetryBudgetExhausted), the last
/// attempt's status in its source chain ([`status_of`] and [`into_status`]
/// find it). A response is never retried (gRPC answers its failures as
/// errors), so no response is marked.
///
/// ```
/// use rampart::balance::Balance;
/// use rampart::tonic::GrpcPolicy;
/// use tonic::Code;
///
/// // The catalog's calls are reads: a timed-out one may go to another instance.
/// let policy = GrpcPolicy::new().retry_on(Code::DeadlineExceeded).idempotent();
/// let builder = Balance::builder("catalog").policy(policy);
/// # let _ = builder;
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcPolicy {
    classifier: GrpcClassifier,
    /// Bit `n` set: code `n` may be retried.
    retry_on: u32,
    idempotent: bool,
}

/// The header a server pushes back with (gRPC A6), in milliseconds.
const PUSHBACK: &str = "grpc-retry-pushback-ms";

impl GrpcPolicy {
    /// Outcomes by [`GrpcClassifier::new`], retries on `UNAVAILABLE` only,
    /// no hedges.
    pub const fn new() -> Self {
        GrpcPolicy {
            classifier: GrpcClassifier::new(),
            retry_on: 1 << index(Code::Unavailable),
            idempotent: false,
        }
    }

    /// Retries calls that end in `code` too (`UNAVAILABLE` always is).
    /// For calls that may safely run twice: a server that answered
    /// `DEADLINE_EXCEEDED`, `INTERNAL` or `ABORTED` may have acted on the
    /// call.
    pub const fn retry_on(mut self, code: Code) -> Self {
        self.retry_on |= 1 << index(code);
        self
    }

    /// Counts outcomes (for the balancer's ejection and load estimates)
    /// with `classifier`. Default: [`GrpcClassifier::new`].
    pub const fn classifier(mut self, classifier: GrpcClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Says every call through this policy is idempotent, so a
    /// [hedged request](crate::hedge) may send it twice at once (gRPC's
    /// hedging policy asks the same of its methods). Default: no hedges.
    pub const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Whether a call ending in `code` may be retried.
    pub const fn retries(&self, code: Code) -> bool {
        self.retry_on & (1 << index(code)) != 0
    }
}

impl Default for GrpcPolicy {
    fn default() -> Self {
        GrpcPolicy::new()
    }
}

impl fmt::Debug for GrpcPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retry_on: Vec<Code> = (0..CODES)
            .filter(|&i| self.retry_on & (1 << i) != 0)
            .map(|i| Code::from_i32(i as i32))
            .collect();
        f.debug_struct("GrpcPolicy")
            .field("classifier", &self.classifier)
            .field("retry_on", &retry_on)
            .field("idempotent", &self.idempotent)
            .finish()
    }
}

impl<Req, T> Policy<Req, Response<T>> for GrpcPolicy {
    fn outcome(&self, result: &Result<Response<T>, BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(error) => self.classifier.outcome_of_error(error),
        }
    }

    fn is_retryable(&self, _: &Req, result: &Result<Response<T>, BoxError>) -> bool {
        let Err(error) = result else {
            return false;
        };
        let Some(status) = status_of(error) else {
            return crate::retry::is_retryable_error(error);
        };
        match pushback(status) {
            Some(None) => false, // the server asked for no retry
            _ => effective_code(&**error).is_some_and(|code| self.retries(code)),
        }
    }

    fn retry_after(&self, result: &Result<Response<T>, BoxError>) -> Option<Duration> {
        let status = status_of(result.as_ref().err()?)?;
        pushback(status).flatten()
    }

    fn may_send_twice(&self, _: &Req) -> bool {
        self.idempotent
    }
}

/// The gRPC status in `error`: the error itself or the first one in its
/// source chain. `None` for an error that carries none (a rampart
/// rejection or timeout, a connection error a service did not turn into a
/// status).
///
/// ```
/// use rampart::BoxError;
/// use tonic::{Code, Status};
///
/// let error: BoxError = Status::invalid_argument("id must be positive").into();
/// assert_eq!(rampart::tonic::status_of(&error).map(Status::code), Some(Code::InvalidArgument));
/// ```
pub fn status_of<E: AsDynError + ?Sized>(error: &E) -> Option<&Status> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error.as_dyn_error());
    while let Some(e) = next {
        if let Some(status) = e.downcast_ref::<Status>() {
            return Some(status);
        }
        next = e.source();
    }
    None
}

/// The [`Status`] a gRPC caller should get for a call that failed with
/// `error`: what a service wrapping a tonic client in rampart layers
/// returns, so its callers see gRPC statuses as before.
///
/// | error | status |
/// |---|---|
/// | a [`Status`], or an error with one in its source chain (a retry budget that kept the last attempt's failure from a retry, say) | that status: code, message, details and metadata; the whole error as its source |
/// | [`CircuitOpen`](ErrorKind::CircuitOpen), [`BulkheadFull`](ErrorKind::BulkheadFull), [`LimitExceeded`](ErrorKind::LimitExceeded), [`NoHealthyEndpoint`](ErrorKind::NoHealthyEndpoint), [`RetryBudgetExhausted`](ErrorKind::RetryBudgetExhausted) | `UNAVAILABLE`: try again later (the code gRPC reserves for transient conditions) |
/// | a [partition](crate::limit#partitions) over its share of a limit | `RESOURCE_EXHAUSTED`: that caller's share is spent (the 429 of [`rampart::axum`](crate::axum)) |
/// | [`Timeout`](ErrorKind::Timeout) (rampart's, tower's, tokio's, or tonic's own), [`DeadlineExceeded`](ErrorKind::DeadlineExceeded) | `DEADLINE_EXCEEDED` |
/// | [`Panicked`](ErrorKind::Panicked) | `INTERNAL` |
/// | [`RateLimited`](ErrorKind::RateLimited) (feature `rate-limit`) | `RESOURCE_EXHAUSTED` (a quota spent, as Google's APIs and Envoy's `rate_limited_as_resource_exhausted` answer), with `grpc-retry-pushback-ms` from the rejection's time to come back, rounded up |
/// | anything else | tonic's own reading ([`Status::from_error`]): `UNAVAILABLE` for a connection tonic could not make (its `ConnectError`), `UNKNOWN` otherwise |
///
/// A [`FallbackRejected`](crate::fallback::FallbackRejected) (too many
/// fallbacks running) answers as the call's own error, which is what
/// failed the request, as a [`FallbackFailed`](crate::fallback::FallbackFailed)
/// does. rampart's rejections and timeouts are read first: a timeout is
/// `DEADLINE_EXCEEDED` even when tonic reported it as `CANCELLED`. The
/// message of a status made here is the [`ErrorKind`]'s (`"circuit
/// open"`, `"timed out"`); the error's own text is its source's, which
/// tonic does not send over the wire.
///
/// ```
/// use rampart::circuit_breaker::CircuitOpen;
/// use rampart::BoxError;
/// use tonic::{Code, Status};
///
/// let open: BoxError = CircuitOpen::new().into();
/// assert_eq!(rampart::tonic::into_status(open).code(), Code::Unavailable);
///
/// let server: BoxError = Status::invalid_argument("id must be positive").into();
/// let status = rampart::tonic::into_status(server);
/// assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "id must be positive"));
/// ```
pub fn into_status(error: BoxError) -> Status {
    let kind = super::kind_of(&*error);
    let code = match kind {
        ErrorKind::LimitExceeded if super::is_over_share(&*error) => Some(Code::ResourceExhausted),
        ErrorKind::CircuitOpen
        | ErrorKind::BulkheadFull
        | ErrorKind::LimitExceeded
        | ErrorKind::NoHealthyEndpoint => Some(Code::Unavailable),
        ErrorKind::Timeout | ErrorKind::DeadlineExceeded => Some(Code::DeadlineExceeded),
        ErrorKind::Panicked => Some(Code::Internal),
        // The last attempt's own status, if it had one.
        ErrorKind::RetryBudgetExhausted if status_of(&error).is_none() => Some(Code::Unavailable),
        _ => None,
    };
    #[cfg(feature = "rate-limit")]
    if let Some(after) = crate::rate_limit::retry_after_in(&*error) {
        // gRPC's pushback is whole milliseconds: rounded up, a caller that
        // obeys it finds its permit there.
        let millis = after.as_millis() + u128::from(after.subsec_nanos() % 1_000_000 > 0);
        let mut status = Status::new(Code::ResourceExhausted, kind.to_string());
        if let Ok(value) = millis.to_string().parse() {
            status.metadata_mut().insert(PUSHBACK, value);
        }
        status.set_source(error.into());
        return status;
    }
    match code {
        Some(code) => {
            let mut status = Status::new(code, kind.to_string());
            status.set_source(error.into());
            status
        }
        // Takes a status out of the box as it is, or copies one found in
        // the chain; else reads connection errors, else UNKNOWN.
        None => Status::from_error(error),
    }
}

/// The code of the status in `error`, with a tonic client timeout
/// (`CANCELLED` caused by [`TimeoutExpired`]) read as `DEADLINE_EXCEEDED`.
fn effective_code(error: &(dyn StdError + 'static)) -> Option<Code> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(status) = e.downcast_ref::<Status>() {
            if status.code() == Code::Cancelled && caused_by_timeout(status) {
                return Some(Code::DeadlineExceeded);
            }
            return Some(status.code());
        }
        next = e.source();
    }
    None
}

/// Whether tonic's own timeout is in `status`'s source chain.
fn caused_by_timeout(status: &Status) -> bool {
    let mut next = status.source();
    while let Some(e) = next {
        if e.is::<TimeoutExpired>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The code a response answers with: `grpc-status` in its headers, or,
/// without it, its HTTP status as gRPC maps it (gRPC's
/// http-grpc-status-mapping); `None` for an HTTP 200 without one (the
/// status comes in trailers).
fn response_code<B>(response: &http::Response<B>) -> Option<Code> {
    if let Some(value) = response.headers().get("grpc-status") {
        return Some(Code::from_bytes(value.as_bytes()));
    }
    Some(match response.status().as_u16() {
        200 => return None,
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    })
}

/// `grpc-retry-pushback-ms` in `status`'s metadata: `None` without one,
/// `Some(None)` for a value asking for no retry (negative, unreadable),
/// `Some(Some(wait))` otherwise.
fn pushback(status: &Status) -> Option<Option<Duration>> {
    let value = status.metadata().get(PUSHBACK)?;
    let millis = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    Some(millis.map(Duration::from_millis))
}

/// The table's index of `code`; `Code` is 0 to 16 by definition.
const fn index(code: Code) -> usize {
    code as i32 as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "rate-limit")]
    #[test]
    fn a_rate_limit_is_resource_exhausted_with_its_pushback() {
        let error: BoxError =
            crate::rate_limit::RateLimited::new(Duration::from_micros(1_500)).into();
        let status = into_status(error);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "rate limited");
        // 1.5 ms, rounded up: a caller that obeys is never early.
        assert_eq!(pushback(&status), Some(Some(Duration::from_millis(2))));
    }

    #[test]
    fn every_code_has_its_row_and_changed_rows_show_in_debug() {
        for i in 0..CODES {
            assert_eq!(index(Code::from_i32(i as i32)), i);
        }
        assert_eq!(
            GrpcClassifier::new().outcome(Code::Unavailable),
            Outcome::Failure
        );
        assert_eq!(
            GrpcClassifier::new().outcome(Code::InvalidArgument),
            Outcome::Ignored
        );
        let changed = GrpcClassifier::new().with(Code::ResourceExhausted, Outcome::Failure);
        assert_eq!(format!("{changed:?}"), "{ResourceExhausted: Failure}");
        assert_eq!(format!("{:?}", GrpcClassifier::new()), "{}");
    }

    #[test]
    fn pushback_reads_millis_and_refusals() {
        let with = |value: &str| {
            let mut status = Status::unavailable("busy");
            status
                .metadata_mut()
                .insert(PUSHBACK, value.parse().unwrap());
            pushback(&status)
        };
        assert_eq!(with("250"), Some(Some(Duration::from_millis(250))));
        assert_eq!(with("-1"), Some(None));
        assert_eq!(with("soon"), Some(None));
        assert_eq!(pushback(&Status::unavailable("busy")), None);
    }

    #[test]
    fn responses_without_grpc_status_map_as_grpc_says() {
        let with = |status: u16| {
            let response = http::Response::builder().status(status).body(()).unwrap();
            response_code(&response)
        };
        assert_eq!(with(200), None);
        assert_eq!(with(503), Some(Code::Unavailable));
        assert_eq!(with(404), Some(Code::Unimplemented));
        assert_eq!(with(500), Some(Code::Unknown));
        let trailers_only = http::Response::builder()
            .header("grpc-status", "3")
            .body(())
            .unwrap();
        assert_eq!(response_code(&trailers_only), Some(Code::InvalidArgument));
    }
}
