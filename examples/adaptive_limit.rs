//! An adaptive concurrency limit against a real HTTP server on 127.0.0.1
//! that slows down when it serves more than it can: the limit finds the
//! server's capacity, keeps latency near the unloaded one, and sheds the
//! excess as typed rejections, where a fixed bulkhead lets latency run away.
//!
//! ```text
//! cargo run --release --example adaptive_limit --features limit,bulkhead
//! ```
//!
//! **The server.** It serves up to 50 requests at once in 40 ms each (its
//! capacity); past that, requests contend for it, and each request past 50
//! slows every one by 15 % of that: a request arriving while the server
//! serves `n` (itself included) takes `40 ms × (1 + 0.15·(n − 50))`, at
//! most 10× (400 ms): 46 ms at 51, 70 ms at 55, 400 ms from 110 on.
//!
//! **The callers.** 200 tasks, each sending one request after another; a
//! task whose request is rejected waits 10 ms before its next. Runs:
//!
//! 1. *Unloaded*: 20 tasks, no limit: the unloaded p99.
//! 2. *Vegas*, then *Gradient2*: the 200 tasks through a `LimitLayer`
//!    (initial limit 20), with windows of 100 ms rather than Netflix's 1 s
//!    (a window lasts twice its lowest RTT, 80 ms here, kept within 100 ms
//!    and 1 s), so the limit can move within seconds: Gradient2 grows by
//!    0.8 a window. Vegas has Netflix's defaults. Gradient2 has them too,
//!    except an RTT tolerance of 1.2 for Netflix's 1.5: Gradient2 lets the
//!    RTT rise to about `tolerance / (1 − 4/limit)` times its long-term
//!    average before it cuts (1.6× with 1.5, 1.3× with 1.2), and that
//!    average follows the RTT up, so the limit creeps. On this server,
//!    Netflix's 1.5 reaches 55 at 6 s and creeps on to 56 to 57 (10 to 14 %
//!    over the capacity, p99 1.7× rising to 2.0× the unloaded one by 13 s);
//!    see `limit::Gradient2`.
//! 3. *Bulkhead of 200*: the 200 tasks through a fixed bulkhead of 200.
//!
//! Each second it prints the limit (mean over the second), the requests
//! the server held at most, the p99 of the requests that ended, and the
//! rejections.
//!
//! It exits with status 1 unless: Vegas and Gradient2 each settle (every
//! one-second mean of the limit from then on within 10 % of 50) in under
//! 10 s, hold the p99 of the last 5 s (the steady state) within 2× the
//! unloaded p99, and shed the excess as `LimitExceeded` (no other error);
//! and the bulkhead's p99 is past 5× the unloaded one. About 35 s.
//!
//! The p99 from settling on is printed but not judged: it counts Vegas's
//! first seconds, when its limit saws between 50 and 56 within the band,
//! and at 56 this server answers in 1.9× its unloaded time, so that p99
//! measured 1.5× to 1.8× over CI runs and would judge the server's curve,
//! not the limit.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::bulkhead::BulkheadLayer;
use rampart::limit::{Gradient2, LimitHandle, LimitLayer, Vegas};
use rampart::{BoxError, ErrorKind};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

const CAPACITY: usize = 50;
const BASE: Duration = Duration::from_millis(40);
/// How much each request past the capacity slows every request down.
const SLOWDOWN: f64 = 0.15;
const CALLERS: usize = 200;
const PAUSE: Duration = Duration::from_millis(10);
const WINDOW: Duration = Duration::from_millis(100);
/// How long each adaptive algorithm runs.
const RUN: Duration = Duration::from_secs(13);
/// The end of the run judged as the steady state.
const STEADY: Duration = Duration::from_secs(5);

type Svc = BoxCloneSyncService<Request<()>, Response<()>, BoxError>;

/// How long a request takes when it arrives at a server serving `n`
/// requests (itself included).
fn latency(n: usize) -> Duration {
    if n <= CAPACITY {
        return BASE;
    }
    BASE.mul_f64((1.0 + SLOWDOWN * (n - CAPACITY) as f64).min(10.0))
}

/// The requests being served now, and the most at once since last read.
#[derive(Default)]
struct Server {
    serving: AtomicUsize,
    peak: AtomicUsize,
}

async fn serve(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |_: Request<Incoming>| {
                let server = server.clone();
                async move {
                    let n = server.serving.fetch_add(1, Ordering::SeqCst) + 1;
                    server.peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(latency(n)).await;
                    server.serving.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}

/// A pooled hyper client reading each body to the end.
fn client(addr: SocketAddr) -> Svc {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    BoxCloneSyncService::new(tower::service_fn(move |_: Request<()>| {
        let client = client.clone();
        async move {
            let request = Request::get(format!("http://{addr}/")).body(Empty::new())?;
            let response = client.request(request).await?;
            let (head, body) = response.into_parts();
            body.collect().await?;
            Ok::<_, BoxError>(Response::from_parts(head, ()))
        }
    }))
}

/// What a run saw.
#[derive(Default)]
struct Seen {
    /// (when it ended, since the run began; how long it took)
    latencies: Vec<(Duration, Duration)>,
    rejected: usize,
    /// Errors other than a limit's rejection.
    other: usize,
}

/// One line per second.
struct Second {
    limit: f64,
    peak: usize,
    p99: Option<Duration>,
    rejected: usize,
}

/// `callers` tasks sending requests through `svc` for `length`; the limit
/// read every 100 ms, one line printed per second.
async fn run(
    name: &str,
    svc: Svc,
    callers: usize,
    length: Duration,
    limit: Option<LimitHandle>,
    server: &Server,
) -> (Seen, Vec<Second>) {
    println!("== {name}: {callers} callers for {} s", length.as_secs());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let began = Instant::now();
    let end = began + length;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let mut svc = svc.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    let started = Instant::now();
                    let result = match svc.ready().await {
                        Ok(svc) => svc.call(Request::new(())).await,
                        Err(e) => Err(e),
                    };
                    let ended = Instant::now();
                    let pause = {
                        let mut seen = seen.lock().unwrap();
                        match result {
                            Ok(_) => {
                                seen.latencies.push((ended - began, ended - started));
                                false
                            }
                            Err(e) if ErrorKind::of(&e) == ErrorKind::LimitExceeded => {
                                seen.rejected += 1;
                                true
                            }
                            Err(_) => {
                                seen.other += 1;
                                true
                            }
                        }
                    };
                    if pause {
                        tokio::time::sleep(PAUSE).await;
                    }
                }
            })
        })
        .collect();

    let mut seconds = Vec::new();
    let mut limits = Vec::new();
    let mut reported = 0;
    server
        .peak
        .store(server.serving.load(Ordering::SeqCst), Ordering::SeqCst);
    let mut tick = tokio::time::interval_at(
        began + Duration::from_millis(100),
        Duration::from_millis(100),
    );
    for i in 1..=length.as_millis() / 100 {
        tick.tick().await;
        limits.push(limit.as_ref().map_or(0, |l| l.limit()));
        if i % 10 != 0 {
            continue;
        }
        let second = Duration::from_secs((i / 10) as u64);
        let seen = seen.lock().unwrap();
        let mut last: Vec<Duration> = seen
            .latencies
            .iter()
            .filter(|(at, _)| *at + Duration::from_secs(1) > second)
            .map(|(_, l)| *l)
            .collect();
        last.sort();
        let line = Second {
            limit: limits.iter().sum::<usize>() as f64 / limits.len() as f64,
            peak: server
                .peak
                .swap(server.serving.load(Ordering::SeqCst), Ordering::SeqCst),
            p99: (!last.is_empty()).then(|| at(&last, 99.0)),
            rejected: seen.rejected - reported,
        };
        reported = seen.rejected;
        drop(seen);
        limits.clear();
        println!(
            "  {:>2} s  limit {:>6}  server held ≤ {:>3}  p99 {:>9}  rejected {:>5}",
            second.as_secs(),
            if limit.is_some() {
                format!("{:.1}", line.limit)
            } else {
                "-".into()
            },
            line.peak,
            line.p99.map_or("-".into(), ms),
            line.rejected
        );
        seconds.push(line);
    }
    for task in tasks {
        task.await.expect("a caller task");
    }
    // Let the server drain before the next run.
    while server.serving.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = Arc::try_unwrap(seen)
        .ok()
        .expect("callers done")
        .into_inner()
        .unwrap();
    (seen, seconds)
}

fn at(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The p99 of the requests that ended from `from` on.
fn p99_from(seen: &Seen, from: Duration) -> Duration {
    let mut l: Vec<Duration> = seen
        .latencies
        .iter()
        .filter(|(at, _)| *at >= from)
        .map(|(_, l)| *l)
        .collect();
    l.sort();
    at(&l, 99.0)
}

/// Runs one algorithm and checks it; true if it met every criterion.
async fn adaptive(
    name: &str,
    layer: LimitLayer,
    addr: SocketAddr,
    server: &Server,
    unloaded: Duration,
) -> bool {
    let handle = layer.handle();
    let svc = BoxCloneSyncService::new(layer.layer(client(addr)));
    let (seen, seconds) = run(name, svc, CALLERS, RUN, Some(handle.clone()), server).await;
    // Settled from the first second after which every one-second mean is
    // within 10 % of the capacity.
    let band = 0.9 * CAPACITY as f64..=1.1 * CAPACITY as f64;
    let settled = (0..seconds.len())
        .find(|&i| seconds[i..].iter().all(|s| band.contains(&s.limit)))
        .map(|i| i as u64);
    let mut ok = true;
    match settled {
        Some(s) if s < 10 => {
            let p99 = p99_from(&seen, Duration::from_secs(s));
            let steady = p99_from(&seen, RUN - STEADY);
            let limits: Vec<f64> = seconds[s as usize..].iter().map(|s| s.limit).collect();
            let (lo, hi) = limits
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
            println!(
                "{name}: settled at {s} s (limit {lo:.1} to {hi:.1} from then on, capacity {CAPACITY}); p99 from then on {} = {:.2}× unloaded, over the last {} s {} = {:.2}×; {} rejected (LimitExceeded), {} other errors, {} drops; {} requests served",
                ms(p99),
                p99.as_secs_f64() / unloaded.as_secs_f64(),
                STEADY.as_secs(),
                ms(steady),
                steady.as_secs_f64() / unloaded.as_secs_f64(),
                seen.rejected,
                seen.other,
                handle.dropped(),
                seen.latencies.len()
            );
            if steady > unloaded * 2 {
                println!("FAIL: {name}'s steady-state p99 past 2× the unloaded p99");
                ok = false;
            }
        }
        _ => {
            println!("FAIL: {name} did not settle within 10 % of {CAPACITY} in under 10 s");
            ok = false;
        }
    }
    if seen.rejected == 0 {
        println!("FAIL: {name} shed nothing");
        ok = false;
    }
    if seen.other > 0 {
        println!(
            "FAIL: {name}: {} errors other than LimitExceeded",
            seen.other
        );
        ok = false;
    }
    ok
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Arc::new(Server::default());
    tokio::spawn(serve(listener, server.clone()));
    let mut ok = true;

    // 1. Unloaded.
    let (seen, _) = run(
        "unloaded",
        client(addr),
        20,
        Duration::from_secs(3),
        None,
        &server,
    )
    .await;
    let unloaded = p99_from(&seen, Duration::from_millis(500));
    println!(
        "unloaded: p99 {} over {} requests",
        ms(unloaded),
        seen.latencies.len()
    );

    // 2. Vegas and Gradient2, Netflix's defaults, 100 ms windows.
    let vegas = LimitLayer::builder("vegas")
        .algorithm(Vegas::new())
        .min_window(WINDOW)
        .build()?;
    ok &= adaptive("Vegas", vegas, addr, &server, unloaded).await;
    let gradient2 = LimitLayer::builder("gradient2")
        .algorithm(Gradient2::new().rtt_tolerance(1.2))
        .min_window(WINDOW)
        .build()?;
    ok &= adaptive("Gradient2", gradient2, addr, &server, unloaded).await;

    // 3. A fixed bulkhead of 200.
    let bulkhead = BulkheadLayer::builder("bulkhead")
        .max_concurrent(CALLERS)
        .build()?;
    let svc = BoxCloneSyncService::new(bulkhead.layer(client(addr)));
    let (seen, _) = run(
        "bulkhead of 200",
        svc,
        CALLERS,
        Duration::from_secs(5),
        None,
        &server,
    )
    .await;
    let p99 = p99_from(&seen, Duration::from_secs(1));
    println!(
        "bulkhead of 200: p99 {} = {:.1}× unloaded; {} requests served",
        ms(p99),
        p99.as_secs_f64() / unloaded.as_secs_f64(),
        seen.latencies.len()
    );
    if p99 <= unloaded * 5 {
        println!("FAIL: the bulkhead's p99 did not pass 5× the unloaded p99");
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
