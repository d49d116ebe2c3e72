//! A small standalone HTTP/1 server for the stream (and the aggregator).

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower_service::Service;

/// Serves a [`HystrixStream`](super::HystrixStream) (or any service
/// answering HTTP requests, such as the Turbine-style aggregator) on its
/// own port, for a process that has no HTTP server of its own.
///
/// It binds `127.0.0.1` unless told otherwise: the stream names every
/// component and shows its traffic, so put it on a public address only
/// behind whatever guards your other admin endpoints.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use rampart::stream::{HystrixStream, Server};
///
/// let serving = Server::new(HystrixStream::new()).start().await?; // a free port
/// println!("stream at {}", serving.url("/hystrix.stream"));
/// // ... serving stops when dropped
/// # Ok(()) }
/// ```
pub struct Server<S> {
    service: S,
    address: SocketAddr,
}

impl<S> Server<S> {
    /// A server for `service` on `127.0.0.1`, on a port the system picks.
    pub fn new(service: S) -> Self {
        Server {
            service,
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }

    /// Listen on this port of `127.0.0.1` (0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.address.set_port(port);
        self
    }

    /// Listen on this address instead (e.g. `0.0.0.0:9000` to be reached
    /// from other hosts; see the warning above).
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }
}

impl<S, B> Server<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The address cannot be bound (in use, not permitted).
    pub async fn start(self) -> io::Result<Serving> {
        let listener = TcpListener::bind(self.address).await?;
        let address = listener.local_addr()?;
        let service = self.service;
        let task = tokio::spawn(async move {
            // Connections live in the set: stopping the server stops them.
            let mut connections = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    Some(_) = connections.join_next() => continue,
                };
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait for
                        // a connection to end rather than spin.
                        tracing::warn!(error = %e, "stream server: accept failed");
                        connections.join_next().await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(service.clone());
                connections.spawn(async move {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    // A subscriber going away is how a stream ends.
                    let _ = connection.await;
                });
            }
        });
        Ok(Serving { address, task })
    }
}

impl<S> fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// A running [`Server`]; dropping it stops the server and closes its
/// connections.
#[derive(Debug)]
#[must_use = "the server stops when `Serving` is dropped: keep it for as long as it should serve"]
pub struct Serving {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Serving {
    /// The address the server listens on (with the port it was given).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// `http://address` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}
