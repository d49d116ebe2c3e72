//! reqwest integration: a balancer endpoint over one shared
//! `reqwest::Client` (feature `reqwest`), and a circuit breaker as a
//! `reqwest_middleware::Middleware` (feature `reqwest-middleware`).
//!
//! - [`ReqwestEndpoint`] sends `http::Request`s to one instance (scheme,
//!   host and port of its own; path and query of the request), and answers
//!   with `http::Response<Bytes>`, so a [`Balance`](crate::balance::Balance)
//!   with [`HttpPolicy`](crate::balance::HttpPolicy) over reqwest is built
//!   from a list of addresses with [`endpoints`], with no service to write.
//! - [`CircuitBreakerMiddleware`] puts a rampart breaker into a
//!   `reqwest_middleware::ClientWithMiddleware`, and
//!   [`CommandMiddleware`] a whole [`Command`](crate::Command) (timeout,
//!   bulkhead, breaker, fallback): one line in a client's builder.
//!   Their rejections are `reqwest_middleware::Error`s that
//!   [`ErrorKind::of`](crate::ErrorKind::of) recognises.
//!
//! rampart enables no reqwest feature: no TLS stack, no HTTP/2, no proxy
//! detection is compiled in on its account. Enable what you need on
//! reqwest in your own crate (e.g. `features = ["rustls-tls"]` for
//! `https://` instances).
//!
//! # Example
//!
//! Two instances of a ratings service on this machine; the first refuses
//! connections, and every call is answered by the second.
//!
//! ```
//! use bytes::Bytes;
//! use rampart::balance::{Balance, HttpPolicy};
//! use tower::{Service, ServiceExt};
//!
//! # async fn serve() -> std::io::Result<String> {
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! #     let base = format!("http://{}", listener.local_addr()?);
//! #     tokio::spawn(async move {
//! #         while let Ok((stream, _)) = listener.accept().await {
//! #             let answer = hyper::service::service_fn(|_| async {
//! #                 let body = http_body_util::Full::new(Bytes::from("4.5 stars"));
//! #                 Ok::<_, std::convert::Infallible>(http::Response::new(body))
//! #             });
//! #             let connection = hyper::server::conn::http1::Builder::new()
//! #                 .serve_connection(hyper_util::rt::TokioIo::new(stream), answer);
//! #             tokio::spawn(connection);
//! #         }
//! #     });
//! #     Ok(base)
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! # let refusing = tokio::net::TcpSocket::new_v4()?;
//! # refusing.bind("127.0.0.1:0".parse()?)?;
//! # let down = format!("http://{}", refusing.local_addr()?);
//! # let up = serve().await?;
//! // `down` and `up` are "http://127.0.0.1:PORT".
//! let client = reqwest::Client::new();
//! let mut ratings = Balance::builder("ratings")
//!     .policy(HttpPolicy)
//!     .build(rampart::reqwest::endpoints(&client, [down, up])?)?;
//!
//! for _ in 0..4 {
//!     // A call sent to `down` is retried on `up`.
//!     let request = http::Request::get("/ratings/42").body(Bytes::new())?;
//!     let response = ratings.ready().await?.call(request).await?;
//!     assert_eq!(response.body(), "4.5 stars");
//! }
//! # Ok(())
//! # }
//! ```

#[cfg(all(feature = "reqwest-middleware", feature = "command"))]
mod command;
mod endpoint;
mod future;
#[cfg(feature = "reqwest-middleware")]
mod middleware;

#[cfg(all(feature = "reqwest-middleware", feature = "command"))]
pub use command::CommandMiddleware;
#[cfg(feature = "balance")]
pub use endpoint::endpoints;
pub use endpoint::ReqwestEndpoint;
pub use future::ResponseFuture;
#[cfg(feature = "reqwest-middleware")]
pub(crate) use middleware::Carried;
#[cfg(feature = "reqwest-middleware")]
pub use middleware::{CircuitBreakerMiddleware, ServerErrorsAsFailures};
