//! Hedged requests against a real HTTP server on 127.0.0.1, with the
//! numbers: how much of the tail they cut, what they cost, and that in an
//! outage hedges and retries together stay within one retry budget.
//!
//! ```text
//! cargo run --example hedging --features hedge
//! ```
//!
//! 1. **The tail.** One server whose every 50th request waits 200 ms (a GC
//!    pause, a busy disk) and the rest 2 ms: a p50 of about 2 ms and a p99
//!    of about 200 ms. 1000 requests from 8 tasks, first plain, then
//!    through a `HedgeLayer` hedging at p95 of recent latency with a 10 %
//!    cap on extra load. The hedge of a slow request is sent about 2 ms in
//!    and answered 2 ms later.
//! 2. **A slow outage.** The server answers every request with a 503 after
//!    100 ms. The client retries (3 attempts) and hedges (after 20 ms), both
//!    drawing on one `RetryBudget` (20 % of requests plus a reserve of 5 a
//!    second over its 10 s window): the
//!    server sees a bounded number of extra requests, not the ×3 of the
//!    retries plus the ×2 of the hedges.
//!
//! It exits with status 1 if the hedged p99 is not at least 5× lower, if
//! hedges passed their cap, or if the outage's extra requests passed the
//! budget. About 15 s.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::hedge::{HedgeDelay, HedgeLayer};
use rampart::retry::{Backoff, HttpPolicy, RetryBudget, RetryLayer};
use rampart::BoxError;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

const REQUESTS: usize = 1000;
const TASKS: usize = 8;

type Client2 = BoxCloneSyncService<Request<()>, Response<()>, BoxError>;

/// The server: counts requests; in the tail, every 50th waits 200 ms; in
/// the outage, everything is a 503 after 100 ms.
struct Server {
    received: AtomicU64,
    outage: AtomicBool,
}

async fn serve(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |_: Request<Incoming>| {
                let n = server.received.fetch_add(1, Ordering::SeqCst);
                let outage = server.outage.load(Ordering::SeqCst);
                async move {
                    let (wait, status) = match (outage, n % 50 == 49) {
                        (true, _) => (100, 503),
                        (false, true) => (200, 200),
                        (false, false) => (2, 200),
                    };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let response = Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(b"ok")));
                    Ok::<_, Infallible>(response.expect("a valid response"))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}

/// A pooled hyper client reading each body to the end.
fn client(addr: SocketAddr) -> Client2 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    BoxCloneSyncService::new(tower::service_fn(move |request: Request<()>| {
        let client = client.clone();
        async move {
            let uri = format!("http://{addr}{}", request.uri().path());
            let request = Request::builder()
                .method(request.method())
                .uri(uri)
                .body(Empty::new())?;
            let response = client.request(request).await?;
            let (head, body) = response.into_parts();
            body.collect().await?;
            Ok::<_, BoxError>(Response::from_parts(head, ()))
        }
    }))
}

/// `n` GETs from `TASKS` tasks; each request's latency, sorted, and the
/// failures.
async fn drive(svc: &Client2, n: usize) -> (Vec<Duration>, usize) {
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            for _ in (t..n).step_by(TASKS) {
                let started = Instant::now();
                let request = Request::get("/titles").body(()).expect("a valid request");
                match svc.ready().await.expect("always ready").call(request).await {
                    Ok(response) if response.status().is_success() => {}
                    _ => failed += 1,
                }
                latencies.push(started.elapsed());
            }
            (latencies, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (latencies, f) = task.await.expect("a driver task");
        all.extend(latencies);
        failed += f;
    }
    all.sort();
    (all, failed)
}

fn at(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Arc::new(Server {
        received: AtomicU64::new(0),
        outage: AtomicBool::new(false),
    });
    tokio::spawn(serve(listener, server.clone()));
    let mut ok = true;

    // 1. The tail.
    let plain = client(addr);
    let (latencies, _) = drive(&plain, REQUESTS).await;
    let (plain_p50, plain_p99) = (at(&latencies, 50.0), at(&latencies, 99.0));
    println!(
        "plain:  p50 {}  p99 {}  max {}",
        ms(plain_p50),
        ms(plain_p99),
        ms(latencies[latencies.len() - 1])
    );

    let hedge = HedgeLayer::builder("titles", HttpPolicy)
        .delay(HedgeDelay::percentile(95.0))
        .max_extra_load(0.10)
        .build()?;
    let hedges = hedge.handle();
    let hedged = BoxCloneSyncService::new(hedge.layer(client(addr)));
    // Warm up: 100 samples, then the delay is computed at the next second.
    drive(&hedged, 300).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (sent_before, received_before) = (hedges.sent(), server.received.load(Ordering::SeqCst));
    let (latencies, _) = drive(&hedged, REQUESTS).await;
    let (p50, p99) = (at(&latencies, 50.0), at(&latencies, 99.0));
    let sent = hedges.sent() - sent_before;
    let received = server.received.load(Ordering::SeqCst) - received_before;
    println!(
        "hedged: p50 {}  p99 {}  max {}",
        ms(p50),
        ms(p99),
        ms(latencies[latencies.len() - 1])
    );
    let cut = plain_p99.as_secs_f64() / p99.as_secs_f64();
    println!(
        "p99 {cut:.1}× lower; {sent} hedges for {REQUESTS} requests, the server saw {received}; \
         {:.1} % of the {} calls the cap counts (the warm-up's 300 too), cap 10 %",
        sent as f64 * 100.0 / (REQUESTS + 300) as f64,
        REQUESTS + 300
    );
    if cut < 5.0 {
        println!("FAIL: hedging cut the p99 by less than 5×");
        ok = false;
    }
    // The cap counts the window's calls: the warm-up's 300 count too.
    if sent as f64 > 0.10 * (REQUESTS + 300) as f64 {
        println!("FAIL: more hedges than the cap allows");
        ok = false;
    }

    // 2. A slow outage: hedges and retries on one budget.
    server.outage.store(true, Ordering::SeqCst);
    let floor = 5;
    let budget = RetryBudget::new(Duration::from_secs(10), floor, 0.2)?;
    let retry = RetryLayer::builder("titles")
        .policy(HttpPolicy)
        .max_attempts(3)
        .backoff(Backoff::none())
        .budget(budget.clone())
        .build()?;
    let hedge = HedgeLayer::builder("titles-outage", HttpPolicy)
        .delay(HedgeDelay::fixed(Duration::from_millis(20)))
        .budget(budget)
        .build()?;
    let both = BoxCloneSyncService::new(retry.layer(hedge.layer(client(addr))));
    let requests = 400;
    let received_before = server.received.load(Ordering::SeqCst);
    let started = Instant::now();
    let (_, failed) = drive(&both, requests).await;
    let elapsed = started.elapsed();
    let received = server.received.load(Ordering::SeqCst) - received_before;
    let extra = received - requests as u64;
    // The budget: 20 % of the requests, plus its reserve (the floor over a
    // 10 s window, renewed as the window slides on), plus one per racing
    // task (threads withdrawing at once may each take the last retry).
    let window = 10.0;
    let reserve = f64::from(floor) * (window + (elapsed.as_secs_f64() - window).max(0.0));
    let allowed = 0.2 * requests as f64 + reserve + TASKS as f64;
    println!(
        "outage: {requests} requests ({failed} failed, as they must) took {:.1} s; the server saw {received}: {extra} extra ({} retries, {} hedges), budget allows {allowed:.0}; without it, up to {}",
        elapsed.as_secs_f64(),
        retry.handle().retries(),
        hedge.handle().sent(),
        requests * 3 * 2 - requests
    );
    if extra as f64 > allowed {
        println!("FAIL: hedges and retries together passed the budget");
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
