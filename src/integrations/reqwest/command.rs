//! A rampart `Command` as a `reqwest_middleware::Middleware`.

use super::middleware::{into_middleware_error, Chain};
use crate::bulkhead::BulkheadLayer;
use crate::circuit_breaker::Classify;
use crate::fallback::FallbackFn;
use crate::{BoxError, CommandLayer};
use ::reqwest::{Request, Response};
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use std::fmt;
use tower_layer::Layer;
use tower_service::Service;

/// Runs every request of a [`reqwest_middleware::ClientWithMiddleware`]
/// through a rampart [`Command`](crate::Command): its timeout, bulkhead,
/// circuit breaker and fallback, in Hystrix's order.
///
/// ```
/// use rampart::reqwest::{CommandMiddleware, ServerErrorsAsFailures};
/// use rampart::Command;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rampart::BoxError> {
/// let catalog = Command::builder("catalog")
///     .timeout(Duration::from_millis(500))
///     .bulkhead(20)
///     .breaker(|b| b.classify(ServerErrorsAsFailures))
///     .fallback_sync(|_cause| Ok(reqwest::Response::from(http::Response::new("[]"))))
///     .build()?;
/// let breaker = catalog.breaker();
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(CommandMiddleware::new(catalog))
///     .build();
///
/// // Open (here by hand): the fallback answers, and nothing is sent.
/// breaker.force_open();
/// let response = client.get("http://10.0.0.7/catalog").send().await?;
/// assert_eq!(response.text().await?, "[]");
/// # Ok(())
/// # }
/// ```
///
/// # What it covers
///
/// The command wraps the rest of the middleware chain and the request up
/// to the response's head (a `reqwest_middleware` middleware returns
/// before the body is read): the timeout bounds that, the bulkhead counts
/// calls until then. Read bodies under a deadline of their own (reqwest's
/// `ClientBuilder::timeout` covers the body too).
///
/// # What counts as a failure
///
/// The command's breaker judges each call with its own classifier, which
/// by default counts only errors: give it
/// [`ServerErrorsAsFailures`](super::ServerErrorsAsFailures) (as
/// above) to count 5xx responses too. A response is returned as it is,
/// whatever its outcome: the fallback runs on errors (a timeout, a
/// rejection, the chain's own error), not on a 5xx.
///
/// # Errors
///
/// With no fallback, or a fallback that declines or fails, the call fails
/// with the chain's own error as it was, or with
/// [`reqwest_middleware::Error::Middleware`] carrying rampart's error,
/// which [`ErrorKind::of`](crate::ErrorKind::of) recognises
/// (`CircuitOpen`, `BulkheadFull`, `Timeout`, `Panicked`, ...).
///
/// # Semaphore isolation only, and no `fail_on`, `retry` or `cache`
///
/// A [`Next`] borrows the client: the call can run only within
/// `handle`, not on a thread of a pool. So it takes a command built with
/// a [`bulkhead`](crate::command::CommandBuilder::bulkhead), not with
/// [`pool`](crate::command::CommandBuilder::pool) isolation. It takes a
/// command without [`fail_on`](crate::command::CommandBuilder::fail_on),
/// [`retry`](crate::command::CommandBuilder::retry) or
/// [`cache`](crate::command::CommandBuilder::cache) too (such a command
/// does not compile here): retry with `reqwest-retry` or the retry
/// layer's policies on the chain, and to serve the fallback on a 5xx,
/// add a middleware after this one (inside the command, in the chain's
/// order) that turns the 5xx into an error.
pub struct CommandMiddleware<FB, C> {
    command: CommandLayer<FB, BulkheadLayer, C>,
}

impl<FB, C> CommandMiddleware<FB, C> {
    /// A middleware running calls through `command`.
    pub fn new(command: CommandLayer<FB, BulkheadLayer, C>) -> Self {
        CommandMiddleware { command }
    }

    /// The command, for its name and its handles (breaker, bulkhead,
    /// fallback).
    pub fn command(&self) -> &CommandLayer<FB, BulkheadLayer, C> {
        &self.command
    }
}

impl<FB, C> fmt::Debug for CommandMiddleware<FB, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandMiddleware")
            .field("command", &self.command)
            .finish()
    }
}

#[async_trait::async_trait]
impl<FB, C> Middleware for CommandMiddleware<FB, C>
where
    FB: FallbackFn<Response> + Send + Sync + 'static,
    FB::Future: Send,
    C: Classify<Response, BoxError> + Clone + Send + Sync + 'static,
{
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut command = self.command.layer(Chain(next));
        // Waits for a bulkhead slot (or is rejected at once, as built).
        std::future::poll_fn(|cx| {
            Service::<(Request, &mut Extensions)>::poll_ready(&mut command, cx)
        })
        .await
        .map_err(into_middleware_error)?;
        command
            .call((request, extensions))
            .await
            .map_err(into_middleware_error)
    }
}
