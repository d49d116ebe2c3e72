//! A fallback for a hyper client, whose `Response<Incoming>` a fallback
//! cannot build (only hyper makes an `Incoming`): box the body beneath the
//! command, and the fallback answers with a body of its own. Against a
//! real hyper server on 127.0.0.1; real clock, bounded.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::{BoxError, Command};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

/// The body type both the client and the fallback answer with.
type Body = BoxBody<Bytes, BoxError>;

/// A server answering `/ok` with "personal picks" and anything else 500.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let serve = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let (status, body) = match request.uri().path() {
                        "/ok" => (StatusCode::OK, "personal picks"),
                        _ => (StatusCode::INTERNAL_SERVER_ERROR, "oops"),
                    };
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), serve)
                    .await;
            });
        }
    });
    addr
}

/// `text` as the shared body type.
fn body(text: &'static str) -> Body {
    Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

#[tokio::test]
async fn a_fallback_serves_its_own_body_in_place_of_a_hyper_response() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let addr = server().await;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        // The hyper client, its body boxed: the one step a fallback needs.
        let recommendations = tower::service_fn(move |path: &'static str| {
            let client = client.clone();
            async move {
                let request = Request::get(format!("http://{addr}{path}")).body(Empty::new())?;
                let response = client.request(request).await?;
                Ok::<_, BoxError>(response.map(|incoming| incoming.map_err(Into::into).boxed()))
            }
        });
        let command = Command::builder("recommendations-hyper")
            .fail_on(|response: &Response<Body>| response.status().is_server_error())
            .fallback_sync(|_cause| Ok(Response::new(body("popular titles"))))
            .build()
            .unwrap();
        let mut svc = command.layer(recommendations);

        let read = |response: Response<Body>| async move {
            String::from_utf8(
                response
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap()
        };
        let ok = svc.ready().await.unwrap().call("/ok").await.unwrap();
        assert_eq!(
            read(ok).await,
            "personal picks",
            "the server's own body, streamed"
        );
        let failed = svc.ready().await.unwrap().call("/broken").await.unwrap();
        assert_eq!(failed.status(), StatusCode::OK);
        assert_eq!(read(failed).await, "popular titles", "the fallback's body");
        assert_eq!(command.fallback().successes(), 1);
    })
    .await
    .expect("bounded");
}
