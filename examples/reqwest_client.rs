//! A `reqwest` client behind rampart: a circuit breaker that knows HTTP, a
//! `Command`, a balancer over two instances, and a `reqwest-middleware`
//! client with a breaker in its chain.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest-middleware
//! ```
//!
//! The example starts two small HTTP/1 servers on `127.0.0.1` (random
//! ports), instances `i1` and `i2` of a catalog service. Each answers
//! `GET /ok` with `200`, `GET /missing` with `404` and `GET /unavailable`
//! with `503` (or everything with `503` while it is made to fail), and
//! counts every request it receives. It never talks to anything else.
//!
//! A [`reqwest::Client`] is a tower `Service<reqwest::Request>`, so a
//! [`CircuitBreakerLayer`] wraps it like any other service. The breaker's
//! classifier says what each answer means for the dependency's health:
//!
//! - `5xx`, or no answer at all (a transport error): [`Outcome::Failure`];
//! - `4xx`: [`Outcome::Ignored`], the caller's mistake, not the server's;
//! - anything else: [`Outcome::Success`].
//!
//! What you will see:
//!
//! 1. twenty `404`s leave the breaker closed: they are tallied as ignored and
//!    never reach the failure rate (its `calls` stay at 0);
//! 2. a few `200`s and then `503`s trip it: the state change is printed by an
//!    `on_state_change` listener as it happens;
//! 3. while it is open, calls fail at once with
//!    [`ErrorKind::CircuitOpen`] and the server's request counter stands still;
//! 4. once the open time is up, one probe gets through and closes it;
//! 5. the same client as a rampart [`Command`]: a timeout, a bulkhead, a
//!    breaker and a fallback, so that callers get a stand-in answer instead
//!    of an error once the breaker has opened;
//! 6. a [`Balance`] over both instances, built from their addresses with
//!    [`rampart::reqwest::endpoints`] (no per-instance service to write):
//!    `i1` fails every request with `503`, and [`HttpPolicy`] retries each
//!    call it gets on `i2`, so every call succeeds;
//! 7. a `reqwest_middleware` client with a [`CircuitBreakerMiddleware`]:
//!    `503`s trip it, and then calls fail at once with a
//!    `reqwest_middleware::Error` that [`ErrorKind::of`] reads as
//!    [`ErrorKind::CircuitOpen`], without reaching the server.
//!
//! It ends by itself after about a second.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rampart::balance::{Balance, HttpPolicy};
use rampart::circuit_breaker::{CircuitBreakerLayer, Outcome, StateChange};
use rampart::reqwest::CircuitBreakerMiddleware;
use rampart::retry::Backoff;
use rampart::{BoxError, Command, ErrorKind};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

/// How long the breakers stay open before letting a probe through.
const OPEN_FOR: Duration = Duration::from_secs(1);

// ===== the dependency: two tiny HTTP servers on 127.0.0.1 =====

/// One instance of the catalog service.
struct Instance {
    name: &'static str,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Requests that reached it.
    received: AtomicU64,
    /// While set, it answers every request with `503`.
    failing: AtomicBool,
}

impl Instance {
    async fn start(name: &'static str) -> Result<Arc<Instance>, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let instance = Arc::new(Instance {
            name,
            base: format!("http://{}", listener.local_addr()?),
            received: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        });
        tokio::spawn(serve(listener, instance.clone()));
        Ok(instance)
    }

    fn hits(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Answers by path, counting every request that reaches it.
async fn serve(listener: TcpListener, instance: Arc<Instance>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let instance = instance.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                instance.received.fetch_add(1, Ordering::Relaxed);
                let status = match request.uri().path() {
                    _ if instance.failing.load(Ordering::Relaxed) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    "/ok" => StatusCode::OK,
                    "/unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::NOT_FOUND,
                };
                let body = format!("{status} from {}", instance.name);
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                async move { Ok::<_, Infallible>(response) }
            });
            // A client hanging up is not this example's concern.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

// ===== the client =====

/// What an HTTP answer says about the dependency's health.
///
/// Generic over the error type because it depends on where the breaker sits:
/// right above the client it sees `reqwest::Error`; inside a `Command`,
/// beneath its timeout and bulkhead, it sees `BoxError`.
fn classify<E>(result: &Result<reqwest::Response, E>) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(response) if response.status().is_client_error() => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        // Connection refused, reset, ...: the dependency did not answer.
        Err(_) => Outcome::Failure,
    }
}

/// Prints every state change as it happens.
fn print_change(change: &StateChange) {
    println!(
        "   >> breaker {:?}: {} -> {} ({})",
        &*change.name,
        change.from,
        change.to,
        change.reason.as_str()
    );
}

/// One `GET {base}{path}` through `service`.
async fn get<S>(
    service: &mut S,
    client: &reqwest::Client,
    base: &str,
    path: &str,
) -> Result<reqwest::Response, BoxError>
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = BoxError>,
{
    let request = client.get(format!("{base}{path}")).build()?;
    service.ready().await?.call(request).await
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let i1 = Instance::start("i1").await?;
    let i2 = Instance::start("i2").await?;
    println!(
        "instances listening: i1 on {}, i2 on {}\n",
        i1.base, i2.base
    );
    // Steps 1 to 5 call `i1`.
    let base = i1.base.clone();
    let hits = || i1.hits();

    // `no_proxy()`: never send these requests through a proxy set in the
    // environment, only to the local server.
    let client = reqwest::Client::builder().no_proxy().build()?;

    // Trips at a 50% failure rate once the window (Hystrix's default, the
    // last 10 s) holds at least 5 counted calls.
    let breaker = CircuitBreakerLayer::builder("catalog")
        .min_calls(5)
        .failure_rate(0.5)
        .open_for(OPEN_FOR)
        .classify(classify::<reqwest::Error>)
        .on_state_change(print_change)
        .build()?;
    let handle = breaker.handle();
    // `reqwest::Client` implements `tower::Service<reqwest::Request>` itself.
    // (`tower::service_fn(move |req| client.execute(req))` works just as well,
    // e.g. to add headers to every request.)
    let mut catalog = ServiceBuilder::new().layer(breaker).service(client.clone());

    // 1. 404s are the caller's mistake: ignored, they cannot trip the breaker.
    println!("1. twenty GET /missing");
    for _ in 0..20 {
        let response = get(&mut catalog, &client, &base, "/missing").await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let counts = handle.counts();
    println!(
        "   all 404: ignored {}, calls counted toward the failure rate {}, state {}",
        counts.ignored,
        counts.calls(),
        handle.state()
    );

    // 2. 503s are the dependency's failure: they trip the breaker.
    println!("2. three GET /ok, then GET /unavailable until the breaker opens");
    for _ in 0..3 {
        get(&mut catalog, &client, &base, "/ok").await?;
    }
    while !handle.state().rejects() {
        let response = get(&mut catalog, &client, &base, "/unavailable").await?;
        let counts = handle.counts();
        println!(
            "   {}: failures {} of {} calls ({:.0}%)",
            response.status(),
            counts.failed(),
            counts.calls(),
            counts.failure_rate() * 100.0
        );
    }

    // 3. Open: calls fail fast, without a request reaching the server.
    println!("3. five GET /ok while the breaker is open");
    let before = hits();
    for _ in 0..5 {
        let error = get(&mut catalog, &client, &base, "/ok")
            .await
            .expect_err("an open breaker rejects the call");
        assert_eq!(ErrorKind::of(&error), ErrorKind::CircuitOpen);
        println!("   error: {error} ({:?})", ErrorKind::of(&error));
    }
    println!(
        "   server requests: {before} before, {} after; short-circuited {}",
        hits(),
        handle.counts().short_circuited
    );

    // 4. After the open time, one probe goes through; it succeeds and the
    // breaker closes with a fresh window.
    let wait = handle.retry_after().unwrap_or_default();
    println!("4. waiting {wait:.1?} for the breaker to let a probe through");
    tokio::time::sleep(wait).await;
    let response = get(&mut catalog, &client, &base, "/ok").await?;
    println!(
        "   probe: {}; state {}; server requests {}",
        response.status(),
        handle.state(),
        hits()
    );

    // 5. The Hystrix-style facade: timeout, bulkhead, breaker and fallback
    // around the same client. A 503 is still an answer, so the caller gets
    // it; once the breaker opens, the fallback answers instead.
    println!("5. a Command with a fallback: eight GET /unavailable");
    let command = Command::builder("catalog-command")
        .timeout(Duration::from_millis(500))
        .bulkhead(10)
        .breaker(|b| {
            b.min_calls(5)
                .open_for(OPEN_FOR)
                .classify(classify::<BoxError>)
                .on_state_change(print_change)
        })
        .fallback_sync(|cause| {
            // The fallback must produce the service's response type.
            let body = format!("popular titles (fallback: {})", cause.kind());
            Ok(reqwest::Response::from(Response::new(body)))
        })
        .build()?;
    let fallbacks = command.fallback();
    let mut catalog = ServiceBuilder::new().layer(command).service(client.clone());
    let before = hits();
    for i in 1..=8 {
        let response = get(&mut catalog, &client, &base, "/unavailable").await?;
        println!(
            "   call {i}: {} {:?}",
            response.status(),
            response.text().await?
        );
    }
    println!(
        "   server requests: {} of 8; fallbacks served {}",
        hits() - before,
        fallbacks.successes()
    );

    // 6. A balancer over both instances, built from their addresses: one
    // `ReqwestEndpoint` per instance, all sharing `client`. `i1` now fails
    // everything; `HttpPolicy` retries a GET that got a 503 on the other
    // instance.
    println!("6. a balancer over i1 and i2; i1 answers 503 to everything: ten GET /ok");
    i1.failing.store(true, Ordering::Relaxed);
    let mut catalog = Balance::builder("catalog-balanced")
        .policy(HttpPolicy)
        .backoff(Backoff::none())
        .build(rampart::reqwest::endpoints(&client, [&i1.base, &i2.base])?)?;
    let (i1_before, i2_before) = (i1.hits(), i2.hits());
    for _ in 0..10 {
        // An `http::Request<Bytes>`: cheap to clone for a retry.
        let request = Request::get("/ok").body(Bytes::new())?;
        let response = catalog.ready().await?.call(request).await?;
        assert_eq!(response.body(), "200 OK from i2");
    }
    println!(
        "   10 calls, 10 answered 200 by i2; requests seen by i1: {}, by i2: {}",
        i1.hits() - i1_before,
        i2.hits() - i2_before
    );
    println!("   (each 503 was retried on i2, and raised i1's load estimate: calls avoid it)");

    // 7. reqwest-middleware: the breaker as one more middleware in the chain.
    println!("7. a reqwest-middleware client with a CircuitBreakerMiddleware, calling i1");
    let breaker = CircuitBreakerLayer::builder("catalog-middleware")
        .min_calls(5)
        .open_for(OPEN_FOR)
        .on_state_change(print_change)
        .build()?;
    let handle = breaker.handle();
    let catalog = reqwest_middleware::ClientBuilder::new(client.clone())
        .with(CircuitBreakerMiddleware::new(breaker.handle()))
        .build();
    while !handle.state().rejects() {
        // 5xx responses count as failures (the middleware's default).
        let response = catalog.get(format!("{}/ok", i1.base)).send().await?;
        println!("   {}", response.status());
    }
    let before = i1.hits();
    for _ in 0..3 {
        let error = catalog
            .get(format!("{}/ok", i1.base))
            .send()
            .await
            .expect_err("an open breaker rejects the call");
        assert_eq!(ErrorKind::of(&error), ErrorKind::CircuitOpen);
        println!("   error: {error} ({:?})", ErrorKind::of(&error));
    }
    println!("   server requests: {before} before, {} after", i1.hits());

    Ok(())
}
