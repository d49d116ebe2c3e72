//! Deadlines that travel with the request: once the caller has given up,
//! no layer beneath (and no service downstream) keeps working for it.
//!
//! A [`DeadlineLayer`] gives a call a [`Deadline`]: the earliest of the one
//! the request carries (in its `http::Extensions`, or in its headers:
//! gRPC's `grpc-timeout`, or rampart's own [`TIMEOUT_HEADER`]), the one
//! in force where the call is made (a server handler's), and the layer's
//! own [budget](Builder::budget). Then:
//!
//! - a call whose deadline has already passed is rejected at once, without
//!   calling the dependency: [`DeadlineExceeded`], of
//!   [`ErrorKind::DeadlineExceeded`](crate::ErrorKind::DeadlineExceeded);
//! - a call still running at its deadline is cut off (its future dropped),
//!   with the same error; layers beneath see the drop as a timeout's, so
//!   a balancer counts it against the endpoint and a breaker as a timeout,
//!   unlike a caller walking away;
//! - every rampart layer beneath honours it: a [timeout](crate::timeout)
//!   takes the earlier of its own and the deadline; no
//!   [retry](crate::retry::RetryLayer), [hedge](crate::hedge), backoff
//!   (the balancer's too) or [rate limit](crate::rate_limit)'s wait for a
//!   permit starts when the time left is shorter than its wait; a
//!   `DeadlineExceeded` is never retried;
//! - the request carries it on: an `http::Request` gets the time left in
//!   [`TIMEOUT_HEADER`] (milliseconds, rounded up, as grpc-go does), and
//!   in `grpc-timeout` if it is a
//!   gRPC request, so a server with a `DeadlineLayer` of its own stops when
//!   its caller does. A chain of rampart services shares one deadline.
//!
//! # Where the layers go
//!
//! - On a client: one on top, with the [budget](Builder::budget), so that
//!   retries, hedges and the balancer all work within it; and one with no
//!   budget right above the transport (beneath the retry layer, or on each
//!   balancer endpoint), so that each attempt goes out with the time left
//!   *when it is sent*. Without it, a retry carries the time left at the
//!   start of the call. (`rampart::reqwest`'s endpoint stamps each attempt
//!   itself.)
//! - On a server: one in front of the handlers, no budget needed.
//!
//! The inner service must be `Clone` (see [`DeadlineService`]), and the
//! request must implement [`WithDeadline`].
//!
//! Inside a call, the deadline in force is [`Deadline::current`]: a
//! thread-local set for the span of each poll (as tokio's task-locals
//! are). A task spawned from a handler does not inherit it; give it the
//! deadline.
//!
//! Requests other than `http::Request` carry deadlines by implementing
//! [`WithDeadline`].
//!
//! ```
//! use rampart::deadline::{Deadline, DeadlineLayer};
//! use rampart::ErrorKind;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let mut svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::builder("catalog").budget(Duration::from_millis(100)).build()?)
//!     .service(service_fn(|request: http::Request<()>| async move {
//!         // The deadline is in force here, and went out with the request.
//!         assert!(Deadline::current().is_some());
//!         assert!(request.headers().contains_key(rampart::deadline::TIMEOUT_HEADER));
//!         tokio::time::sleep(Duration::from_secs(1)).await; // too slow
//!         Ok::<_, rampart::BoxError>(http::Response::new(()))
//!     }));
//!
//! let started = tokio::time::Instant::now();
//! let err = svc.ready().await?.call(http::Request::new(())).await.unwrap_err();
//! assert_eq!(ErrorKind::of(&err), ErrorKind::DeadlineExceeded);
//! assert_eq!(started.elapsed(), Duration::from_millis(100));
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod future;
mod layer;
mod request;
mod service;

pub use config::Builder;
pub use error::DeadlineExceeded;
pub use future::ResponseFuture;
pub use layer::DeadlineLayer;
pub use request::{WithDeadline, TIMEOUT_HEADER};
pub use service::DeadlineService;

use std::time::Duration;
use tokio::time::Instant;

/// The longest deadline rampart makes: about 30 years (tokio's "far
/// future"), so that no time left, however large, overflows an instant.
pub(crate) const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The moment by which a call must be answered (a `tokio::time::Instant`,
/// so a paused clock drives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now; a timeout too long to represent (such as
    /// `Duration::MAX`) is about 30 years.
    pub fn after(timeout: Duration) -> Self {
        let now = Instant::now();
        Deadline(now.checked_add(timeout.min(FAR)).unwrap_or(now))
    }

    /// At `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline(instant)
    }

    /// The deadline in force on this thread: inside a call beneath a
    /// [`DeadlineLayer`] (or a server handler behind one), the earliest one
    /// set around it.
    pub fn current() -> Option<Deadline> {
        crate::internal::deadline::current().map(Deadline)
    }

    /// The moment itself.
    pub fn instant(&self) -> Instant {
        self.0
    }

    /// Time left from now; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn is_expired(&self) -> bool {
        self.0 <= Instant::now()
    }
}
