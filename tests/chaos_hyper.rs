//! The chaos layer cutting real HTTP responses mid-body: a hyper server on
//! 127.0.0.1, a pooled hyper client beneath the layer. The head arrives,
//! the body stops part-way with a `ConnectionCut`, and the client's
//! connection goes with it, as after a real cut.
//!
//! On the real clock (a paused one auto-advances while the runtime waits
//! on a socket); every step awaits the event it depends on, under a bound.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::chaos::{Abort, ChaosLayer, ConnectionCut};
use rampart::BoxError;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::{service_fn, Layer, Service, ServiceExt};

const BODY: usize = 256 * 1024;
const LIMIT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, BoxError>;

/// Counts of what the server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A server answering every request with `BODY` bytes.
async fn server() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counts.connections.fetch_add(1, Ordering::SeqCst);
            let counts = counts.clone();
            tokio::spawn(async move {
                let serve = hyper::service::service_fn(move |_: Request<Incoming>| {
                    counts.requests.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(vec![b'x'; BODY]))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), serve)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A pooled hyper client whose responses carry a boxed body, so that a
/// chaos layer above it can cut them.
fn client(
    addr: SocketAddr,
) -> impl Service<(), Response = Response<Body>, Error = BoxError, Future: Send> + Clone {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    service_fn(move |()| {
        let client = client.clone();
        async move {
            let request = Request::get(format!("http://{addr}/catalog"))
                .body(Empty::new())
                .unwrap();
            let response = client.request(request).await?;
            Ok::<_, BoxError>(response.map(|body| body.map_err(Into::into).boxed()))
        }
    })
}

/// Reads the body frame by frame: the bytes that arrived, and the error
/// it ended with, if any.
async fn read(body: Body) -> (usize, Option<BoxError>) {
    let mut body = std::pin::pin!(body);
    let mut got = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => got += frame.into_data().map_or(0, |data| data.len()),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

#[tokio::test]
async fn a_cut_response_arrives_with_its_head_and_part_of_its_body() {
    tokio::time::timeout(LIMIT, async {
        let (addr, seen) = server().await;
        let chaos = ChaosLayer::builder("catalog")
            .abort(Abort::cut_mid_response(10_000), 100.0)
            .build()
            .unwrap();
        let monkey = chaos.handle();
        let mut svc = chaos.layer(client(addr));

        // Off: the whole body, twice over one kept-alive connection.
        for _ in 0..2 {
            let response = svc.ready().await.unwrap().call(()).await.unwrap();
            assert_eq!(read(response.into_body()).await.0, BODY);
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);

        // On: the call reaches the server, the head arrives, the body stops.
        monkey.enable();
        let response = svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        let (got, err) = read(response.into_body()).await;
        assert_eq!(got, 10_000, "exactly the bytes before the cut");
        let err = err.expect("the body must fail");
        let cut = err
            .downcast_ref::<ConnectionCut>()
            .expect("a ConnectionCut");
        assert_eq!(cut.after_bytes(), 10_000);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
        assert_eq!(monkey.injected_aborts(), 1);

        // Off again: the cut connection is not reused; a new one serves.
        monkey.disable();
        let response = svc.ready().await.unwrap().call(()).await.unwrap();
        let (got, err) = read(response.into_body()).await;
        assert_eq!(got, BODY);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    })
    .await
    .expect("the test must finish in time");
}
