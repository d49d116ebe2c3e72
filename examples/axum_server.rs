//! An axum server with a rampart bulkhead and timeout in front of its
//! handlers, their errors answered as HTTP responses.
//!
//! ```text
//! cargo run --example axum_server --features axum
//! ```
//!
//! ```text
//!  client → HandleErrorLayer → Bulkhead (2 at once) → Timeout (500 ms) → handlers
//! ```
//!
//! axum serves only services that cannot fail (their error type is
//! `Infallible`: every request ends in a response), while rampart's layers
//! fail a call with a `BoxError`, tower's convention. Without the
//! `HandleErrorLayer`, `Router::layer` does not compile:
//! `the trait bound Infallible: From<Box<dyn Error + Send + Sync>> is not
//! satisfied`. `rampart::axum::error_response` answers each error: a full
//! bulkhead with 503, a timeout with 504, and says which in an
//! `x-rampart-error` header.
//!
//! It serves on 127.0.0.1 (a free port), sends itself a few requests with
//! reqwest, prints what came back, and stops, in about a second. It exits
//! with 1 if an answer is not the one expected.

use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use axum::Router;
use rampart::bulkhead::BulkheadLayer;
use rampart::timeout::TimeoutLayer;
use rampart::BoxError;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // ===== the server =====

    let bulkhead = BulkheadLayer::builder("api").max_concurrent(2).build()?;
    let in_flight = bulkhead.handle();
    let timeout = TimeoutLayer::builder("api")
        .timeout(Duration::from_millis(500))
        .build()?;

    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        // A handler stuck on a dependency: the timeout cancels it.
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "finally"
            }),
        )
        .layer(
            ServiceBuilder::new()
                // Outermost: turns the layers' errors into responses.
                .layer(HandleErrorLayer::new(rampart::axum::error_response))
                .layer(bulkhead)
                .layer(timeout),
        );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });
    println!("serving on {base}");

    // ===== a client =====

    let client = reqwest::Client::new();
    let mut wrong = 0;

    wrong += check(fetch(&client, &base, "/").await?, 200, None);

    // Two slow requests take both bulkhead slots...
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { fetch(&client, &base, "/slow").await })
        })
        .collect();
    let both_in = async {
        while in_flight.in_flight() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), both_in)
        .await
        .map_err(|_| "the two slow requests never reached the server")?;
    // ...so a third is turned away at once...
    wrong += check(
        fetch(&client, &base, "/slow").await?,
        503,
        Some("bulkhead_full"),
    );
    // ...and the two are cut off at their deadline.
    for request in slow {
        wrong += check(request.await??, 504, Some("timeout"));
    }
    // The slots are free again.
    wrong += check(fetch(&client, &base, "/").await?, 200, None);

    stop.send(()).ok();
    server.await??;
    if wrong > 0 {
        eprintln!("{wrong} answers were not the ones expected");
        std::process::exit(1);
    }
    Ok(())
}

/// What the server answered: status, `x-rampart-error`, body.
struct Answer {
    path: &'static str,
    status: u16,
    error: Option<String>,
    body: String,
}

async fn fetch(
    client: &reqwest::Client,
    base: &str,
    path: &'static str,
) -> Result<Answer, BoxError> {
    let response = client.get(format!("{base}{path}")).send().await?;
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-rampart-error")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await?;
    Ok(Answer {
        path,
        status,
        error,
        body,
    })
}

/// Prints the answer; 1 if it is not the one expected, else 0.
fn check(answer: Answer, status: u16, error: Option<&str>) -> u32 {
    let header = match &answer.error {
        Some(error) => format!(" (x-rampart-error: {error})"),
        None => String::new(),
    };
    println!(
        "GET {:<5} → {}{header}: {}",
        answer.path, answer.status, answer.body
    );
    let expected = answer.status == status && answer.error.as_deref() == error;
    if !expected {
        println!("  expected {status} with x-rampart-error {error:?}");
    }
    u32::from(!expected)
}
