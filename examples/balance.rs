//! Ribbon's recipe on a live fleet: one client spreads its calls over five
//! instances of a dependency, and not one call fails while instances die,
//! come back and slow down.
//!
//! ```text
//! cargo run --example balance
//! ```
//!
//! Five hyper servers on `127.0.0.1` (random ports) are the instances
//! `i1`..`i5` of a "catalog" service; each answers in 2–8 ms. A client sends
//! 100 `GET /catalog` calls a second for 17 s, each on its own task, over
//! one pooled HTTP/1 client, through one [`Balance`]:
//!
//! - the default rule, power of two choices on peak-EWMA latency: each call
//!   goes to the less loaded of two instances drawn at random (load =
//!   latency estimate × (calls in flight + 1));
//! - retries on another instance (`retries_next(1)`, Ribbon's default) for
//!   what [`HttpPolicy`] retries (connection errors, 502, 503, 504, for
//!   idempotent requests: every call here is a `GET`), and also for a `GET`
//!   cut off mid-answer (`RetryIdempotent` below says why);
//! - outlier ejection: 5 failures in a row eject an instance for 2 s, then
//!   4 s, 8 s (doubling) as long as the probe after each ejection fails
//!   (Ribbon's default is 10 s up to 30 s; shortened to fit the run);
//! - a latency estimate that forgets with a 1 s time constant (10 s by
//!   default), so that an instance that was slow is tried again soon.
//!
//! What goes wrong, and when (`--` lines announce each incident):
//!
//! | time     | incident                                                            |
//! |----------|---------------------------------------------------------------------|
//! | 3 s      | `i2` is killed mid-answer: listener closed, open connections cut    |
//! | 6–10 s   | `i4` turns slow: answers take 300–400 ms                            |
//! | 8 s      | `i2` is restarted on the same port                                  |
//!
//! What to watch for:
//!
//! 1. **`i2` dies**: the call it was answering is cut off, and the next few
//!    attempts sent to it are refused (`err`); each of those calls is
//!    retried on another instance (`retried`), so `fail` stays 0. After 5
//!    failures in a row the `>>` line says it is ejected, and it gets no more
//!    traffic (`EJ`). 2 s later it is let back on probation, its probe is
//!    refused, and it is ejected again, for 4 s. It is restarted meanwhile,
//!    so when that ejection ends its probe succeeds and its share returns.
//!    (Its latency estimate fades toward 0 while it is out, so for its first
//!    answer's worth of time the rule favours it.)
//! 2. **`i4` turns slow**: slow is not failing, so it is never ejected;
//!    instead its latency estimate jumps to ~300 ms and the rule stops
//!    choosing it, bar a probe now and then as the estimate fades. Once it is
//!    fast again, a probe brings the estimate down and its share returns.
//! 3. **every call succeeds**: the summary counts calls made, succeeded and
//!    failed (0), and the retries: attempts = calls + retries; the requests
//!    the servers saw = attempts − connections refused by the dead instance,
//!    so server-side requests − calls = the retries of attempts that reached
//!    a server (here, the call cut off when `i2` died).
//!
//! One line is printed per second: calls completed that second (`ok`,
//! `fail`, and how many needed another instance), then per instance the
//! attempts it answered (`ok`) and those that failed on it (`err`), as the
//! client saw them, the balancer's latency estimate for it, and `EJ` while
//! the balancer has it ejected. `>>` lines show ejections and readmissions as
//! they happen, read from
//! [`BalanceHandle::endpoints`](rampart::balance::BalanceHandle::endpoints).

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::balance::{Balance, BalanceHandle, Endpoint, Endpoints, HttpPolicy, Policy};
use rampart::circuit_breaker::Outcome;
use rampart::BoxError;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// Instances of the dependency.
const INSTANCES: usize = 5;
/// Calls the client makes per second.
const CALLS_PER_SECOND: u32 = 100;
/// How long the client makes calls.
const RUN_FOR: Duration = secs(17);

/// `i2` is killed, then restarted on the same port.
const KILLED: usize = 1;
const KILL_AT: Duration = secs(3);
const RESTART_AT: Duration = secs(8);
/// `i4` answers slowly.
const SLOW: usize = 3;
const SLOW_DURING: Range<Duration> = secs(6)..secs(10);

/// How long an instance takes to answer, normally and when slow (ms).
const NORMAL_MS: Range<u64> = 2..8;
const SLOW_MS: Range<u64> = 300..400;

/// Outlier ejection: failures in a row, first ejection, longest ejection.
const EJECT_AFTER: u32 = 5;
const EJECT_FOR: Duration = secs(2);
const EJECT_FOR_MAX: Duration = secs(8);

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ===== the instances: HTTP servers that can be killed and slowed =====

/// What one instance's server knows about itself.
struct Upstream {
    name: String,
    slow: AtomicBool,
    rng: Mutex<SmallRng>,
    /// Requests that reached the server.
    received: AtomicU64,
}

impl Upstream {
    async fn respond(&self) -> Response<Full<Bytes>> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let delay = if self.slow.load(Ordering::Relaxed) {
            SLOW_MS
        } else {
            NORMAL_MS
        };
        let delay_ms = self.rng.lock().unwrap().random_range(delay);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        Response::new(Full::new(Bytes::from(format!(
            "catalog from {}",
            self.name
        ))))
    }
}

/// A listener on `addr` that can be bound again as soon as it is closed.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves until the task is aborted. The connections live in a `JoinSet`
/// owned by this future, so aborting the task closes the listener and cuts
/// every open connection too, as a crashed process would.
async fn serve(listener: TcpListener, upstream: Arc<Upstream>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                        let upstream = upstream.clone();
                        async move { Ok::<_, Infallible>(upstream.respond().await) }
                    });
                    // A client hanging up mid-request is not the example's concern.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// An instance the example can kill and restart on the same port.
struct Server {
    addr: SocketAddr,
    upstream: Arc<Upstream>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    fn start(n: usize) -> Result<Server, BoxError> {
        let upstream = Arc::new(Upstream {
            name: format!("i{}", n + 1),
            slow: AtomicBool::new(false),
            rng: Mutex::new(SmallRng::seed_from_u64(n as u64)),
            received: AtomicU64::new(0),
        });
        let listener = listen("127.0.0.1:0".parse()?)?;
        let addr = listener.local_addr()?;
        let task = Some(tokio::spawn(serve(listener, upstream.clone())));
        Ok(Server {
            addr,
            upstream,
            task,
        })
    }

    async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Wait until the listener and the connections are really gone.
            let _ = task.await;
        }
    }

    fn restart(&mut self) -> std::io::Result<()> {
        let listener = listen(self.addr)?;
        self.task = Some(tokio::spawn(serve(listener, self.upstream.clone())));
        Ok(())
    }
}

// ===== the client =====

type HttpClient = Client<HttpConnector, Empty<Bytes>>;
type Req = Request<Empty<Bytes>>;
type Res = Response<Bytes>;

/// Rides in each call's request extensions, which the balancer clones with
/// the request for a retry: every attempt of one call counts on it.
#[derive(Clone, Default)]
struct Attempts(Arc<AtomicU32>);

/// What the client saw of one instance: attempts answered and failed.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    err: AtomicU64,
}

/// The client of one instance: counts the attempt and sends it.
///
/// An endpoint's service must be `Clone + Send + Sync`. It is returned as
/// an `impl Service` rather than boxed as a `BoxCloneSyncService<Req, Res,
/// BoxError>`: a future whose type names `BoxError` inside a boxed `dyn
/// Future` cannot be awaited in a spawned task (rustc reports "implementation
/// of `From` is not general enough"; tower's own layers hit it too).
fn instance_client(
    client: HttpClient,
    addr: SocketAddr,
    seen: Arc<Seen>,
) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + Sync {
    tower::service_fn(move |request: Req| {
        if let Some(attempts) = request.extensions().get::<Attempts>() {
            attempts.0.fetch_add(1, Ordering::Relaxed);
        }
        send(client.clone(), addr, request, seen.clone())
    })
}

/// Sends `request` to `addr`, reads the whole answer (so the balancer's
/// latency estimate covers it), and notes how the attempt went.
async fn send(
    client: HttpClient,
    addr: SocketAddr,
    request: Req,
    seen: Arc<Seen>,
) -> Result<Res, BoxError> {
    let result = async {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(addr.to_string())
            .path_and_query(path)
            .build()?;
        let response = client.request(Request::from_parts(parts, body)).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, BoxError>(Response::from_parts(parts, body))
    }
    .await;
    let ok = matches!(&result, Ok(r) if r.status() == StatusCode::OK);
    if ok { &seen.ok } else { &seen.err }.fetch_add(1, Ordering::Relaxed);
    result
}

/// The client's own tally of calls.
#[derive(Default)]
struct Calls {
    made: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Calls that took more than one attempt, and the extra attempts.
    retried: AtomicU64,
    retries: AtomicU64,
}

/// [`HttpPolicy`], and one more retry: an idempotent request whose attempt
/// got no answer at all may go to another instance, whatever the error.
///
/// `HttpPolicy` alone retries after connection errors it recognises by an
/// `io::Error` in the error's chain (refused, reset, ...). An instance that
/// dies while answering makes hyper report "connection closed before
/// message completed", whose chain holds no `io::Error`: `HttpPolicy` would
/// hand that failure to the caller, although a `GET` is safe to resend.
#[derive(Debug, Clone, Copy)]
struct RetryIdempotent;

impl<B, RB> Policy<Request<B>, Response<RB>> for RetryIdempotent {
    fn outcome(&self, result: &Result<Response<RB>, BoxError>) -> Outcome {
        Policy::<Request<B>, _>::outcome(&HttpPolicy, result)
    }

    fn is_retryable(&self, request: &Request<B>, result: &Result<Response<RB>, BoxError>) -> bool {
        HttpPolicy.is_retryable(request, result)
            || (request.method().is_idempotent() && result.is_err())
    }
}

// ===== watching the balancer =====

/// The per-second lines.
struct Reporter {
    started: Instant,
    handle: BalanceHandle,
    keys: Vec<String>,
    seen: Vec<Arc<Seen>>,
    calls: Arc<Calls>,
    last_calls: [u64; 3],
    last_seen: Vec<(u64, u64)>,
}

impl Reporter {
    fn header(&self) {
        let mut top = " ".repeat(30);
        let mut columns = format!(
            "{:>4}  {:>5} {:>5} {:>4} {:>7}",
            "t", "calls", "ok", "fail", "retried"
        );
        for (n, key) in self.keys.iter().enumerate() {
            let port = key.rsplit(':').next().unwrap_or(key);
            top += &format!(" │ {:<18}", format!("i{} :{port}", n + 1));
            columns += &format!(" │ {:>3} {:>3} {:>7}   ", "ok", "err", "latency");
        }
        println!("{}", top.trim_end());
        println!("{}", columns.trim_end());
    }

    fn line(&mut self, label: &str) {
        let calls = [
            self.calls.succeeded.load(Ordering::Relaxed),
            self.calls.failed.load(Ordering::Relaxed),
            self.calls.retried.load(Ordering::Relaxed),
        ];
        let [ok, fail, retried] = [0, 1, 2].map(|i| calls[i] - self.last_calls[i]);
        self.last_calls = calls;
        let mut line = format!(
            "{label:>4}  {:>5} {ok:>5} {fail:>4} {retried:>7}",
            ok + fail
        );
        let stats = self.handle.endpoints();
        for (n, key) in self.keys.iter().enumerate() {
            let now = (
                self.seen[n].ok.load(Ordering::Relaxed),
                self.seen[n].err.load(Ordering::Relaxed),
            );
            let (ok0, err0) = std::mem::replace(&mut self.last_seen[n], now);
            let (latency, ejected) = stats
                .iter()
                .find(|s| &s.key == key)
                .map_or((String::from("?"), false), |s| (ms(s.latency), s.ejected));
            line += &format!(
                " │ {:>3} {:>3} {latency:>7} {}",
                now.0 - ok0,
                now.1 - err0,
                if ejected { "EJ" } else { "  " }
            );
        }
        println!("{}", line.trim_end());
    }

    fn say(&self, what: &str) {
        println!(
            "   -- {:5.2}s  {what}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// An error and its sources: "client error (SendRequest): connection closed ...".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text += &format!(": {e}");
        next = e.source();
    }
    text
}

/// "4.2ms", "312ms".
fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// What the event watcher remembers of one instance.
#[derive(Default, Clone)]
struct Watched {
    ejected: bool,
    ejections: u64,
    /// Ejections since it last answered well: the next one lasts twice as long.
    in_a_row: u32,
    since: Option<Instant>,
    /// Back from an ejection, and the answers it had given by then.
    probation: Option<u64>,
}

/// Prints a `>>` line whenever the balancer ejects or readmits an instance,
/// by polling its handle: `ejections` going up is an ejection (even one
/// that began and ended between two polls), `ejected` going false is the
/// end of one.
async fn watch_ejections(
    started: Instant,
    handle: BalanceHandle,
    keys: Vec<String>,
    seen: Vec<Arc<Seen>>,
) {
    let mut watched = vec![Watched::default(); keys.len()];
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticks.tick().await;
        let stats = handle.endpoints();
        let at = started.elapsed().as_secs_f64();
        for (n, (key, w)) in keys.iter().zip(&mut watched).enumerate() {
            let Some(s) = stats.iter().find(|s| &s.key == key) else {
                continue;
            };
            let name = format!("i{}", n + 1);
            if s.ejections > w.ejections {
                let for_ = EJECT_FOR * 2u32.pow(w.in_a_row.min(10));
                let for_ = for_.min(EJECT_FOR_MAX);
                let why = if w.in_a_row > 0 {
                    "its probe failed".to_string()
                } else {
                    format!("{EJECT_AFTER} failed attempts in a row")
                };
                println!(
                    "   >> {at:5.2}s  {name} ejected: {why}; left out for {}s (ejection {})",
                    for_.as_secs(),
                    s.ejections
                );
                w.in_a_row += 1;
                w.since = Some(Instant::now());
                w.probation = None;
            } else if w.ejected && !s.ejected {
                let out = w.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                println!(
                    "   >> {at:5.2}s  {name} back on probation after {out:.1}s out: its next answer decides"
                );
                w.probation = Some(seen[n].ok.load(Ordering::Relaxed));
            }
            if let Some(ok_before) = w.probation {
                if !s.ejected && seen[n].ok.load(Ordering::Relaxed) > ok_before {
                    println!(
                        "   >> {at:5.2}s  {name} answered on probation: healthy again, its share of the calls returns"
                    );
                    w.probation = None;
                    w.in_a_row = 0;
                }
            }
            w.ejected = s.ejected;
            w.ejections = s.ejections;
        }
    }
}

// ===== the run =====

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let mut servers = (0..INSTANCES)
        .map(Server::start)
        .collect::<Result<Vec<_>, _>>()?;

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let seen: Vec<Arc<Seen>> = (0..INSTANCES).map(|_| Arc::default()).collect();
    let endpoints = servers.iter().zip(&seen).map(|(server, seen)| {
        Endpoint::new(
            server.addr,
            instance_client(client.clone(), server.addr, seen.clone()),
        )
    });
    let balance = Balance::builder("catalog")
        .retries_next(1)
        .eject_after(EJECT_AFTER)
        .eject_for(EJECT_FOR, EJECT_FOR_MAX)
        .latency_estimate(Duration::from_millis(5), secs(1))
        .policy(RetryIdempotent)
        .build(Endpoints::fixed(endpoints))?;
    let handle = balance.handle();
    // The handle names endpoints by their key's `Debug` form.
    let keys: Vec<String> = servers.iter().map(|s| format!("{:?}", s.addr)).collect();

    println!(
        "client: {CALLS_PER_SECOND} GET /catalog calls/s for {}s through Balance {:?} over {INSTANCES} instances:",
        RUN_FOR.as_secs(),
        handle.name()
    );
    for (n, server) in servers.iter().enumerate() {
        println!("  i{}  http://{}", n + 1, server.addr);
    }
    println!(
        "rule: power of two choices on peak-EWMA latency; HttpPolicy (+ GETs cut off mid-answer), 1 retry on another instance;"
    );
    println!(
        "ejection after {EJECT_AFTER} failures in a row, for {}s doubling up to {}s",
        EJECT_FOR.as_secs(),
        EJECT_FOR_MAX.as_secs()
    );
    println!(
        "columns: calls completed that second (ok, fail, retried = needed another instance); per instance:"
    );
    println!(
        "         attempts it answered (ok) and that failed on it (err), the balancer's latency estimate, EJ = ejected\n"
    );

    let calls = Arc::new(Calls::default());
    let mut reporter = Reporter {
        started,
        handle: handle.clone(),
        keys: keys.clone(),
        seen: seen.clone(),
        calls: calls.clone(),
        last_calls: [0; 3],
        last_seen: vec![(0, 0); INSTANCES],
    };
    reporter.header();
    let watcher = tokio::spawn(watch_ejections(
        started,
        handle.clone(),
        keys.clone(),
        seen.clone(),
    ));

    // The client: a call every 10 ms, each on its own task.
    let load = {
        let calls = calls.clone();
        tokio::spawn(async move {
            let mut in_flight = JoinSet::new();
            let mut ticks = tokio::time::interval(secs(1) / CALLS_PER_SECOND);
            for _ in 0..u64::from(CALLS_PER_SECOND) * RUN_FOR.as_secs() {
                ticks.tick().await;
                let (balance, calls) = (balance.clone(), calls.clone());
                in_flight.spawn(async move {
                    calls.made.fetch_add(1, Ordering::Relaxed);
                    let attempts = Attempts::default();
                    let mut request = Request::get("/catalog").body(Empty::new()).unwrap();
                    request.extensions_mut().insert(attempts.clone());
                    let result = balance.oneshot(request).await;
                    let extra = u64::from(attempts.0.load(Ordering::Relaxed).saturating_sub(1));
                    if extra > 0 {
                        calls.retried.fetch_add(1, Ordering::Relaxed);
                        calls.retries.fetch_add(extra, Ordering::Relaxed);
                    }
                    match result {
                        Ok(response) if response.status() == StatusCode::OK => {
                            calls.succeeded.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(response) => {
                            calls.failed.fetch_add(1, Ordering::Relaxed);
                            println!("   !! call answered {}", response.status());
                        }
                        Err(e) => {
                            calls.failed.fetch_add(1, Ordering::Relaxed);
                            println!("   !! call failed: {}", chain(&*e));
                        }
                    }
                });
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
        })
    };

    // A line a second, and the incidents at their times.
    for second in 1..=RUN_FOR.as_secs() {
        tokio::time::sleep_until(started + secs(second)).await;
        reporter.line(&format!("{second}s"));
        let at = secs(second);
        if at == KILL_AT {
            // Kill it mid-answer: wait (a little) for a call in flight to it.
            let in_flight = || {
                handle
                    .endpoints()
                    .iter()
                    .find(|s| s.key == keys[KILLED])
                    .map_or(0, |s| s.in_flight)
            };
            let deadline = Instant::now() + Duration::from_millis(300);
            while in_flight() == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let cut = in_flight();
            servers[KILLED].kill().await;
            reporter.say(&format!(
                "i{} is killed with {cut} call(s) in flight to it: listener on {} closed, connections cut",
                KILLED + 1,
                servers[KILLED].addr
            ));
        }
        if at == RESTART_AT {
            servers[KILLED].restart()?;
            reporter.say(&format!(
                "i{} is restarted on {}",
                KILLED + 1,
                servers[KILLED].addr
            ));
        }
        if at == SLOW_DURING.start {
            servers[SLOW].upstream.slow.store(true, Ordering::Relaxed);
            reporter.say(&format!(
                "i{} turns slow: answers take {}-{} ms",
                SLOW + 1,
                SLOW_MS.start,
                SLOW_MS.end
            ));
        }
        if at == SLOW_DURING.end {
            servers[SLOW].upstream.slow.store(false, Ordering::Relaxed);
            reporter.say(&format!("i{} is fast again", SLOW + 1));
        }
    }
    load.await?;
    // The calls still in flight when the last full second ended.
    if calls.succeeded.load(Ordering::Relaxed) + calls.failed.load(Ordering::Relaxed)
        > reporter.last_calls[0] + reporter.last_calls[1]
    {
        reporter.line("end");
    }
    watcher.abort();
    for server in &mut servers {
        server.kill().await;
    }

    // ===== the summary =====
    let made = calls.made.load(Ordering::Relaxed);
    let succeeded = calls.succeeded.load(Ordering::Relaxed);
    let failed = calls.failed.load(Ordering::Relaxed);
    let retried = calls.retried.load(Ordering::Relaxed);
    let retries = calls.retries.load(Ordering::Relaxed);
    println!(
        "\n== after {:.1}s: {made} calls made, {succeeded} succeeded, {failed} failed ==\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<8} {:<16} {:>9} {:>7} {:>7} {:>10} {:>9} {:>10}",
        "instance", "address", "attempts", "ok", "failed", "server saw", "ejections", "latency"
    );
    let stats = handle.endpoints();
    let (mut attempts, mut received) = (0, 0);
    for (n, server) in servers.iter().enumerate() {
        let s = stats.iter().find(|s| s.key == keys[n]);
        let selected = s.map_or(0, |s| s.selected);
        let saw = server.upstream.received.load(Ordering::Relaxed);
        attempts += selected;
        received += saw;
        println!(
            "{:<8} {:<16} {selected:>9} {:>7} {:>7} {saw:>10} {:>9} {:>10}",
            format!("i{}", n + 1),
            server.addr.to_string(),
            seen[n].ok.load(Ordering::Relaxed),
            seen[n].err.load(Ordering::Relaxed),
            s.map_or(0, |s| s.ejections),
            s.map_or("?".into(), |s| ms(s.latency)),
        );
    }
    println!(
        "\nattempts: {attempts} = {made} calls + {} retries (the balancer's count, EndpointStats::selected; the calls' own: {retries} retries, in {retried} calls)",
        attempts.saturating_sub(made)
    );
    println!(
        "the servers saw {received} requests = {attempts} attempts - {} refused connections (a dead instance sees nothing),",
        attempts.saturating_sub(received)
    );
    println!(
        "  so server-side requests - calls = {}: retries of attempts that reached a server (cut off mid-answer)",
        received as i64 - made as i64
    );
    println!(
        "retry budget left: {:.0} retries",
        handle.retry_budget().balance()
    );
    println!(
        "\n{}",
        if failed == 0 && succeeded == made {
            "every call succeeded: the balancer moved each failed attempt to a live instance"
        } else {
            "SOME CALLS FAILED (see the !! lines)"
        }
    );
    Ok(())
}
