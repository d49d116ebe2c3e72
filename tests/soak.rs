//! The soak: rampart under fire for two minutes, with a ledger of every
//! request.
//!
//! ```text
//! MALLOC_ARENA_MAX=1 cargo test --release --all-features --test soak -- --ignored --nocapture
//! ```
//!
//! Five hyper HTTP/1 servers on 127.0.0.1 (random ports) serve a client
//! stack of two commands (one with a semaphore bulkhead, one with a pool)
//! over one balancer over the five instances, each instance's client under
//! two chaos layers:
//!
//! ```text
//!  128 driver tasks, ~1 800 requests/s, each request with a unique `x-soak-id`
//!    → Command "soak" (4 in 5) or "soak-pooled" (1 in 5): fallback → breaker
//!      → bulkhead (or pool) → 600 ms timeout → catch panic
//!    → 5xx responses turned into errors (so the fallback serves them)
//!    → Balance "soak": P2C, HttpPolicy, retries_same 1, retries_next 2,
//!      a retry budget (20 % + 10/s over 10 s), ejection for 1 s to 4 s
//!    → per instance: attempt counter → chaos "panics" → chaos "brownout"
//!      → a pooled hyper client (2 idle connections per instance) → server
//! ```
//!
//! While the drivers run, a script (4 s of warm-up, then 4 cycles of 32 s)
//! kills instance 0 and restarts it on the same port while instance 1 is
//! slow; makes instance 2 accept requests and never answer; sends bursts of
//! 503s from instances 3 and 4; makes 2 % of calls panic; kills all five
//! instances for 3 s (the full outage) and restarts them; and browns every
//! instance out (chaos answers a third of attempts with a 503, so more
//! retries are wanted than the budget allows). A calm phase ends each cycle.
//!
//! Each server counts how many times it saw each request id; the ledger
//! records each request's outcome exactly once (a row dropped without one
//! records it as lost), its latency, and its attempts. From them the test
//! asserts, after printing a summary:
//!
//! - every request ended exactly once, as a response, a fallback or a
//!   typed error: none lost, none hung, none past its deadline plus
//!   [`SLACK`]; every injected panic was served by the fallback;
//! - no request left the client more often than the retry settings allow,
//!   `(1 + retries_same) × (1 + retries_next)` attempts, nor reached one
//!   server more than `1 + retries_same` times, nor the servers more often
//!   than it left the client;
//! - retries stayed within the budget over the run and in every window the
//!   budget looks at ([`check_budget`], [`budget_over_the_run`]), and the
//!   budget did refuse some;
//! - each breaker opened during each outage and closed after it;
//!   instances were ejected, none is out at the end, and all serve again;
//! - every attempt a command's deadline cut off counts against its
//!   endpoint as a timeout, not as a caller's cancellation;
//! - rampart's own counts (attempts, their ends, fallbacks) agree with the
//!   ledger;
//! - every slot, place and in-flight count is back to zero at the end;
//! - with nothing in flight, after the warm-up (2 cycles) and at the end:
//!   heap in use grows by less than 256 KiB and, with one malloc arena,
//!   resident memory by less than 1 MiB ([`ARENAS`] says why one).
//!
//! It is `#[ignore]`d: `.ci/run` runs it in release mode (the README's
//! debug `cargo test --all-features` skips it).
//!
//! # Time
//!
//! The real clock throughout (real sockets: see `tests/hyper_server.rs`).
//! The only sleeps are the script's own pacing and the drivers' request
//! rate; every request is bounded by a watchdog well past its deadline, and
//! the few waits for what nothing signals (the requests in flight ending
//! before memory is measured, pool jobs aborted on their own threads) are
//! bounded loops.

// The benches' counting allocator: heap in use, beside resident memory.
#[path = "../benches/support/alloc.rs"]
mod alloc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use rampart::balance::{Balance, Endpoint, Endpoints, HttpPolicy};
use rampart::chaos::{Abort, ChaosHandle, ChaosLayer};
use rampart::circuit_breaker::{Builder as BreakerBuilder, CircuitBreakerHandle, State, Window};
use rampart::fallback::Cause;
use rampart::registry::Registry;
use rampart::retry::{RetryBudget, RetryBudgetExhaustedMarker};
use rampart::{BoxError, Command, ErrorKind};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

// ===== settings =====

const SERVERS: usize = 5;
/// Driver tasks, each with at most one request in flight.
const DRIVERS: usize = 128;
/// Requests per second over all drivers, when nothing holds them up.
const RATE: u64 = 1_800;
/// Ids (and ledger rows) allocated before the run; the run stays below.
const CAPACITY: usize = 400_000;
/// The assertion's floor on requests.
const MIN_REQUESTS: usize = 100_000;
/// Worker threads of the test's runtime.
const THREADS: usize = 2;
/// The pooled command's pool.
const POOL_SIZE: usize = 4;
const POOL_QUEUE: usize = 16;
/// The main command's bulkhead.
const BULKHEAD: usize = 64;
/// Idle connections the client keeps to each instance. Unbounded (hyper's
/// default), the pool keeps every connection a burst opened for 90 s,
/// and memory follows the last bursts rather than the run.
const IDLE_PER_INSTANCE: usize = 2;

/// The commands' timeout: every request's deadline.
const DEADLINE: Duration = Duration::from_millis(600);
/// How far past its deadline a request may end: the fallback, and the
/// scheduling of a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(100);
/// A request not answered by then is recorded as hung (and the test fails).
const WATCHDOG: Duration = Duration::from_secs(5);

const RETRIES_SAME: u32 = 1;
const RETRIES_NEXT: u32 = 2;
/// Attempts one request may make: `1 + retries_same` on each of
/// `1 + retries_next` endpoints.
const MAX_ATTEMPTS: u64 = (1 + RETRIES_SAME as u64) * (1 + RETRIES_NEXT as u64);

/// The retry budget: `RATIO` of the requests of the last `BUDGET_WINDOW`,
/// plus `FLOOR_PER_SEC` per second of it.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);
const FLOOR_PER_SEC: u32 = 10;
const RATIO: f64 = 0.2;
/// The budget's reserve: the floor over its window.
const RESERVE: f64 = FLOOR_PER_SEC as f64 * 10.0;
/// Threads withdrawing at the same moment may each take the last retry
/// (`RetryBudget::try_withdraw`): the runtime's and the pool's.
const OVERDRAW: f64 = (THREADS + POOL_SIZE - 1) as f64;

/// Cycles that warm up (connections, buffers, the allocator's arenas)
/// before memory is compared with the end of the run.
const WARM_UP_CYCLES: usize = 2;
/// Resident memory may grow by less than this after the warm-up, with one
/// malloc arena (see [`ARENAS`]).
const RESIDENT_GROWTH: u64 = 1024 * 1024;
/// Why resident memory is checked only with `MALLOC_ARENA_MAX=1`.
const ARENAS: &str = "with an arena per thread, glibc keeps freed memory resident \
    as the machine's load spreads the peaks; run with MALLOC_ARENA_MAX=1, as .ci/run does";
/// Heap in use, with no request in flight, may grow by less than this
/// after the warm-up: a leak of 3 bytes a request, over the ~115 000
/// requests of the last 2 cycles, would not.
const HEAP_GROWTH: u64 = 256 * 1024;

/// The share of calls that panic during the panic phase, in percent.
const PANIC_PERCENT: f64 = 2.0;
const PANIC_MESSAGE: &str = "soak: injected panic";

const ID_HEADER: &str = "x-soak-id";

/// Time series resolution, and their length (longer than the run).
const TICK: Duration = Duration::from_millis(10);
const TICKS: usize = 20_000;

// ===== the script =====

/// The warm-up, then the phases of each cycle, in order.
const PHASES: [&str; 9] = [
    "warm-up",
    "kill 0, slow 1",
    "hang 2",
    "503 bursts",
    "panics",
    "outage",
    "recovery",
    "brownout",
    "calm",
];
const CYCLES: usize = 4;

/// What the script saw happen, for the checks.
#[derive(Debug, Default)]
struct Marks {
    /// Each full outage: from the first kill to the last restart.
    outages: Vec<(Instant, Instant)>,
    /// Memory at the end of each cycle, with no request in flight.
    memory: Vec<Memory>,
    /// Requests each server had received when the last calm phase began.
    received_before_last_calm: Vec<u64>,
}

async fn script(
    fleet: &Fleet,
    ledger: &Ledger,
    drivers: &Drivers,
    panics: &ChaosHandle<Req, Response<Bytes>>,
    brownout: &ChaosHandle<Req, Response<Bytes>>,
) -> Marks {
    let mut marks = Marks::default();
    let pace = tokio::time::sleep;
    ledger.enter(0);
    pace(Duration::from_secs(4)).await;
    for cycle in 0..CYCLES {
        // An instance dies and comes back on its port; another turns slow.
        ledger.enter(1);
        fleet.servers[1].state.slow.store(true, Ordering::SeqCst);
        fleet.servers[0].kill().await;
        pace(Duration::from_secs(3)).await;
        fleet.servers[0].restart();
        pace(Duration::from_secs(2)).await;
        fleet.servers[1].state.slow.store(false, Ordering::SeqCst);

        // An instance accepts and never answers.
        ledger.enter(2);
        fleet.servers[2].state.hanging.send_replace(true);
        pace(Duration::from_secs(4)).await;
        fleet.servers[2].state.hanging.send_replace(false);

        // Bursts of 503s.
        ledger.enter(3);
        for _ in 0..3 {
            fleet.servers[3]
                .state
                .fail_next
                .store(150, Ordering::SeqCst);
            pace(Duration::from_millis(500)).await;
            fleet.servers[4]
                .state
                .fail_next
                .store(100, Ordering::SeqCst);
            pace(Duration::from_millis(500)).await;
        }

        // Calls that panic.
        ledger.enter(4);
        panics.enable();
        pace(Duration::from_secs(3)).await;
        panics.disable();

        // Every instance down at once.
        ledger.enter(5);
        let down = Instant::now();
        futures::future::join_all(fleet.servers.iter().map(|s| s.kill())).await;
        pace(Duration::from_secs(3)).await;
        for server in &fleet.servers {
            server.restart();
        }
        marks.outages.push((down, Instant::now()));

        ledger.enter(6);
        pace(Duration::from_secs(3)).await;

        // Every instance fails a third of its attempts.
        ledger.enter(7);
        brownout.enable();
        pace(Duration::from_secs(5)).await;
        brownout.disable();

        ledger.enter(8);
        if cycle == CYCLES - 1 {
            marks.received_before_last_calm = fleet.received();
        }
        // Long enough for the longest ejection (4 s) to run out.
        pace(Duration::from_secs(6)).await;
        marks
            .memory
            .push(drivers.quiet(|| Memory::now(fleet)).await);
    }
    marks
}

// ===== the servers =====

struct ServerState {
    /// How many times the server saw each request id.
    seen: Box<[AtomicU16]>,
    /// Requests without a valid id (there must be none).
    strangers: AtomicU64,
    received: AtomicU64,
    /// Connections open now.
    connections: AtomicU64,
    /// Answers after 50 to 300 ms.
    slow: AtomicBool,
    /// Requests still to answer with 503.
    fail_next: AtomicU64,
    /// While `true`, requests are read and never answered.
    hanging: watch::Sender<bool>,
}

/// A hyper server that can be killed (listener and connections gone, the
/// port held by a socket bound but not listening, so connections to it
/// are refused) and restarted on the same port.
struct Server {
    addr: SocketAddr,
    state: Arc<ServerState>,
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
    tombstone: Mutex<Option<TcpSocket>>,
}

fn reusable_socket() -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    // The connections a killed server closed may linger in TIME_WAIT.
    socket.set_reuseaddr(true).unwrap();
    socket
}

impl Server {
    fn start() -> Server {
        let socket = reusable_socket();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let state = Arc::new(ServerState {
            seen: touched(CAPACITY),
            strangers: AtomicU64::new(0),
            received: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            slow: AtomicBool::new(false),
            fail_next: AtomicU64::new(0),
            hanging: watch::Sender::new(false),
        });
        let server = Server {
            addr: listener.local_addr().unwrap(),
            state,
            running: Mutex::new(None),
            tombstone: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, self.state.clone(), stopped));
        *self.running.lock().unwrap() = Some((stop, task));
    }

    /// Kills the server: when this returns, no connection of it runs and
    /// new ones are refused.
    async fn kill(&self) {
        let (stop, task) = self.running.lock().unwrap().take().expect("running");
        stop.send(()).expect("the accept task runs");
        task.await.expect("the accept task ends cleanly");
        let socket = reusable_socket();
        socket
            .bind(self.addr)
            .expect("the killed server's port is free");
        *self.tombstone.lock().unwrap() = Some(socket);
    }

    /// Listens again on the port the server was killed on.
    fn restart(&self) {
        let socket = self.tombstone.lock().unwrap().take().expect("killed");
        self.serve(socket.listen(1024).expect("listen again on the same port"));
    }
}

async fn accept(listener: TcpListener, state: Arc<ServerState>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        state.connections.fetch_add(1, Ordering::SeqCst);
        connections.spawn(async move {
            let _open = Open(state.clone());
            let service =
                hyper::service::service_fn(move |request| respond(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Killed: refuse new connections, abort every open one, and wait until
    // none runs (see `tests/balance_hyper.rs`).
    drop(listener);
    connections.shutdown().await;
}

/// Counts a connection open while it lives (aborted ones too).
struct Open(Arc<ServerState>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn respond(
    state: Arc<ServerState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.received.fetch_add(1, Ordering::SeqCst);
    let id = request_id(request.headers());
    match id.and_then(|id| state.seen.get(id)) {
        Some(seen) => {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        None => {
            state.strangers.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut hanging = state.hanging.subscribe();
    if *hanging.borrow_and_update() {
        // Accepted and read, never answered while the hang lasts: only the
        // client's timeout ends the attempt.
        let _ = hanging.wait_for(|hanging| !*hanging).await;
    }
    if state.slow.load(Ordering::SeqCst) {
        // The server's own slowness, not synchronisation.
        let spread = id.map_or(0, |id| (id as u64).wrapping_mul(2_654_435_761) % 250);
        tokio::time::sleep(Duration::from_millis(50 + spread)).await;
    }
    let fail = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    if fail {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    Ok(response)
}

fn request_id(headers: &HeaderMap) -> Option<usize> {
    headers.get(ID_HEADER)?.to_str().ok()?.parse().ok()
}

struct Fleet {
    servers: Vec<Server>,
}

impl Fleet {
    fn start() -> Fleet {
        Fleet {
            servers: (0..SERVERS).map(|_| Server::start()).collect(),
        }
    }

    fn received(&self) -> Vec<u64> {
        self.servers
            .iter()
            .map(|s| s.state.received.load(Ordering::SeqCst))
            .collect()
    }
}

// ===== the ledger =====

/// How a request ended, as the ledger records it (once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Pending,
    Response,
    FallbackShortCircuited,
    FallbackRejected,
    FallbackTimeout,
    FallbackPanicked,
    FallbackBudgetError,
    FallbackBudget503,
    Fallback503,
    FallbackNoEndpoint,
    FallbackOther,
    ErrorFallbackRejected,
    ErrorOther,
    Lost,
    Hung,
}

const KINDS: usize = Kind::Hung as usize + 1;

impl Kind {
    const ALL: [Kind; KINDS] = [
        Kind::Pending,
        Kind::Response,
        Kind::FallbackShortCircuited,
        Kind::FallbackRejected,
        Kind::FallbackTimeout,
        Kind::FallbackPanicked,
        Kind::FallbackBudgetError,
        Kind::FallbackBudget503,
        Kind::Fallback503,
        Kind::FallbackNoEndpoint,
        Kind::FallbackOther,
        Kind::ErrorFallbackRejected,
        Kind::ErrorOther,
        Kind::Lost,
        Kind::Hung,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Pending => "pending",
            Kind::Response => "response",
            Kind::FallbackShortCircuited => "short-circuited",
            Kind::FallbackRejected => "bulkhead or pool full",
            Kind::FallbackTimeout => "timed out",
            Kind::FallbackPanicked => "panicked",
            Kind::FallbackBudgetError => "error (retry refused by the budget)",
            Kind::FallbackBudget503 => "503 (retry refused by the budget)",
            Kind::Fallback503 => "503 (attempts used up)",
            Kind::FallbackNoEndpoint => "no healthy endpoint",
            Kind::FallbackOther => "error (attempts used up)",
            Kind::ErrorFallbackRejected => "fallback rejected",
            Kind::ErrorOther => "other error",
            Kind::Lost => "lost",
            Kind::Hung => "hung",
        }
    }

    /// For the phase table.
    fn short(self) -> &'static str {
        match self {
            Kind::FallbackShortCircuited => "open",
            Kind::FallbackRejected => "full",
            Kind::FallbackTimeout => "timeout",
            Kind::FallbackPanicked => "panic",
            Kind::FallbackBudgetError | Kind::FallbackBudget503 => "budget",
            Kind::Fallback503 => "503",
            Kind::FallbackNoEndpoint => "none",
            Kind::FallbackOther => "error",
            _ => self.name(),
        }
    }

    fn is_fallback(self) -> bool {
        (Kind::FallbackShortCircuited as u8..=Kind::FallbackOther as u8).contains(&(self as u8))
    }

    fn is_error(self) -> bool {
        matches!(self, Kind::ErrorFallbackRejected | Kind::ErrorOther)
    }
}

/// Events counted per [`TICK`] since the start of the run.
struct Series {
    epoch: Instant,
    ticks: Box<[AtomicU32]>,
    /// Events past the end of the series (there must be none).
    late: AtomicU64,
}

impl Series {
    fn new(epoch: Instant) -> Series {
        Series {
            epoch,
            ticks: touched(TICKS),
            late: AtomicU64::new(0),
        }
    }

    fn add(&self, at: Instant, n: u32) {
        let tick =
            (at.saturating_duration_since(self.epoch).as_micros() / TICK.as_micros()) as usize;
        if let Some(count) = self.ticks.get(tick) {
            count.fetch_add(n, Ordering::Relaxed);
        } else {
            self.late.fetch_add(u64::from(n), Ordering::Relaxed);
        }
    }

    fn counts(&self) -> Vec<u64> {
        self.ticks
            .iter()
            .map(|t| u64::from(t.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One row per request id, allocated (and touched) before the run so that
/// the ledger itself does not grow while memory is measured.
struct Ledger {
    next: AtomicU64,
    outcome: Box<[AtomicU8]>,
    latency_us: Box<[AtomicU32]>,
    phase_of: Box<[AtomicU8]>,
    /// Attempts the balancer handed to an endpoint, per request.
    attempts: Box<[AtomicU8]>,
    /// First attempts (the budget's deposits), over time.
    first_attempts: Series,
    /// Outcomes recorded over one already recorded (there must be none).
    twice: AtomicU64,
    phase: AtomicU8,
    /// The first few "other" errors, to say what they were.
    other_errors: Mutex<Vec<String>>,
}

impl Ledger {
    fn new(epoch: Instant) -> Ledger {
        Ledger {
            next: AtomicU64::new(0),
            outcome: touched(CAPACITY),
            latency_us: touched(CAPACITY),
            phase_of: touched(CAPACITY),
            attempts: touched(CAPACITY),
            first_attempts: Series::new(epoch),
            twice: AtomicU64::new(0),
            phase: AtomicU8::new(0),
            other_errors: Mutex::new(Vec::with_capacity(16)),
        }
    }

    fn enter(&self, phase: usize) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// The next request's id, with its row opened; `None` once the
    /// ledger is full.
    fn open(&self) -> Option<Entry<'_>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        if id >= CAPACITY {
            return None;
        }
        self.phase_of[id].store(self.phase.load(Ordering::Relaxed), Ordering::Relaxed);
        Some(Entry {
            ledger: self,
            id,
            started: Instant::now(),
            closed: false,
        })
    }

    fn issued(&self) -> usize {
        (self.next.load(Ordering::SeqCst) as usize).min(CAPACITY)
    }

    /// An attempt on an endpoint, as the balancer hands it over.
    fn attempt(&self, id: usize) {
        let Some(attempts) = self.attempts.get(id) else {
            return;
        };
        if attempts.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_attempts.add(Instant::now(), 1);
        }
    }

    fn record(&self, id: usize, kind: Kind, took: Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.latency_us[id].store(us, Ordering::Relaxed);
        if self.outcome[id]
            .compare_exchange(
                Kind::Pending as u8,
                kind as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_err()
        {
            self.twice.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A request's row, open until it records how the request ended; dropped
/// without an outcome, it records the request as lost.
struct Entry<'a> {
    ledger: &'a Ledger,
    id: usize,
    started: Instant,
    closed: bool,
}

impl Entry<'_> {
    fn close(mut self, kind: Kind) {
        self.closed = true;
        self.ledger.record(self.id, kind, self.started.elapsed());
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if !self.closed {
            self.ledger
                .record(self.id, Kind::Lost, self.started.elapsed());
        }
    }
}

/// `n` zeroed atomics, every page written, so that they are resident
/// before the run (a zeroed allocation is mapped lazily).
fn touched<T: Default + Touch>(n: usize) -> Box<[T]> {
    let v: Box<[T]> = (0..n).map(|_| T::default()).collect();
    for a in v.iter() {
        a.touch();
    }
    v
}

trait Touch {
    fn touch(&self);
}

macro_rules! touch {
    ($($t:ty),*) => {$(
        impl Touch for $t {
            fn touch(&self) {
                self.store(0, Ordering::Relaxed);
            }
        }
    )*};
}
touch!(AtomicU8, AtomicU16, AtomicU32);

// ===== rampart's retry counter, timed =====

/// Counts each increment of one rampart counter, over time.
struct Timed {
    series: Series,
    total: AtomicU64,
}

impl CounterFn for Timed {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        self.series.add(Instant::now(), value as u32);
    }

    fn absolute(&self, _: u64) {}
}

/// A `metrics` recorder that times the balancer's `retry` events (each
/// one a withdrawal from the budget, counted right after it) and counts
/// its `retry_budget_exhausted` events; every other metric is a no-op.
struct Recorder {
    retries: Arc<Timed>,
    refused: Arc<Timed>,
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
        };
        if key.name() != "rampart_events_total" || label("layer").as_deref() != Some("balance") {
            return Counter::noop();
        }
        match label("event").as_deref() {
            Some("retry") => Counter::from_arc(self.retries.clone()),
            Some("retry_budget_exhausted") => Counter::from_arc(self.refused.clone()),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

// ===== the client stack =====

type Req = Request<Full<Bytes>>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;
type EndpointService = BoxCloneSyncService<Req, Response<Bytes>, BoxError>;

/// `request` to the instance at `uri`, body read in full.
async fn send(client: HttpClient, uri: Uri, request: Req) -> Result<Response<Bytes>, BoxError> {
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    let response = client.request(Request::from_parts(parts, body)).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// Counts each attempt the balancer hands over, per request id: once
/// `call` has returned, as the balancer's deposit (an attempt whose `call`
/// panicked sent nothing).
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    ledger: Arc<Ledger>,
}

impl<S: Service<Req>> Service<Req> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> S::Future {
        let id = request_id(request.headers());
        let future = self.inner.call(request);
        if let Some(id) = id {
            self.ledger.attempt(id);
        }
        future
    }
}

/// What a command answers: a server's answer, or its fallback's, and why
/// the fallback ran.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Served,
    Fallback(Kind),
}

/// A 5xx the balancer returned (its retries used up, or refused).
#[derive(Debug)]
struct Unavailable {
    status: StatusCode,
    retry_refused: bool,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "answered {}", self.status)?;
        if self.retry_refused {
            f.write_str(" (retry refused by the budget)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unavailable {}

/// A 5xx becomes an error, so that the breaker counts it and the fallback
/// serves it.
fn answer(result: Result<Response<Bytes>, BoxError>) -> Result<Answer, BoxError> {
    let response = result?;
    if response.status().is_success() {
        return Ok(Answer::Served);
    }
    Err(Unavailable {
        status: response.status(),
        retry_refused: response
            .extensions()
            .get::<RetryBudgetExhaustedMarker>()
            .is_some(),
    }
    .into())
}

fn fallback(cause: &Cause) -> Result<Answer, BoxError> {
    let kind = match cause.kind() {
        ErrorKind::CircuitOpen => Kind::FallbackShortCircuited,
        ErrorKind::BulkheadFull => Kind::FallbackRejected,
        ErrorKind::Timeout => Kind::FallbackTimeout,
        ErrorKind::Panicked => Kind::FallbackPanicked,
        ErrorKind::RetryBudgetExhausted => Kind::FallbackBudgetError,
        ErrorKind::NoHealthyEndpoint => Kind::FallbackNoEndpoint,
        _ => match cause.error().downcast_ref::<Unavailable>() {
            Some(u) if u.retry_refused => Kind::FallbackBudget503,
            Some(_) => Kind::Fallback503,
            None => Kind::FallbackOther,
        },
    };
    Ok(Answer::Fallback(kind))
}

/// Breaker state changes: when, which command, to what.
type Transitions = Mutex<Vec<(Instant, usize, State)>>;

fn breaker_rules<C>(
    breaker: BreakerBuilder<C>,
    transitions: &Arc<Transitions>,
    command: usize,
) -> BreakerBuilder<C> {
    let transitions = transitions.clone();
    breaker
        .window(Window::time(Duration::from_secs(2), 10))
        .min_calls(20)
        .failure_rate(0.5)
        .open_for(Duration::from_secs(1))
        .on_state_change(move |change| {
            transitions
                .lock()
                .unwrap()
                .push((Instant::now(), command, change.to));
        })
}

const COMMANDS: [&str; 2] = ["soak", "soak-pooled"];

// ===== the drivers =====

/// Starts, pauses and stops the driver tasks.
struct Drivers {
    stop: AtomicBool,
    pause: watch::Sender<bool>,
    /// Drivers past the pause check: about to make, or making, a request.
    busy: AtomicU64,
}

impl Drivers {
    /// Runs `measure` while no request is in flight: pauses the drivers,
    /// waits (a bounded while: at most a deadline) for the requests in
    /// flight to end, measures, and lets the drivers go on.
    async fn quiet<T>(&self, measure: impl FnOnce() -> T) -> T {
        self.pause.send_replace(true);
        let waited = Instant::now();
        while self.busy.load(Ordering::SeqCst) != 0 {
            assert!(
                waited.elapsed() < DEADLINE + WATCHDOG,
                "requests never ended"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let measured = measure();
        self.pause.send_replace(false);
        measured
    }
}

async fn drive<A, B>(
    n: usize,
    mut main: A,
    mut pooled: B,
    ledger: Arc<Ledger>,
    drivers: Arc<Drivers>,
) where
    A: Service<Req, Response = Answer, Error = BoxError>,
    B: Service<Req, Response = Answer, Error = BoxError>,
{
    let period = Duration::from_micros(1_000_000 * DRIVERS as u64 / RATE);
    let first = Instant::now() + period * n as u32 / DRIVERS as u32;
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        if drivers.stop.load(Ordering::SeqCst) {
            return;
        }
        let mut pause = drivers.pause.subscribe();
        if *pause.borrow_and_update() {
            let _ = pause.wait_for(|paused| !*paused).await;
            continue;
        }
        // Announced, then checked again: `quiet` either sees this driver
        // busy or this driver sees the pause.
        drivers.busy.fetch_add(1, Ordering::SeqCst);
        if *pause.borrow() {
            drivers.busy.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let more = drive_one(&mut main, &mut pooled, &ledger).await;
        drivers.busy.fetch_sub(1, Ordering::SeqCst);
        if !more {
            return;
        }
    }
}

/// Makes one request and records how it ended; `false` once the ledger
/// is full.
async fn drive_one<A, B>(main: &mut A, pooled: &mut B, ledger: &Ledger) -> bool
where
    A: Service<Req, Response = Answer, Error = BoxError>,
    B: Service<Req, Response = Answer, Error = BoxError>,
{
    let Some(entry) = ledger.open() else {
        return false;
    };
    let request = Request::get("/")
        .header(ID_HEADER, entry.id)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let call = async {
        if entry.id % 5 == 0 {
            pooled.ready().await?.call(request).await
        } else {
            main.ready().await?.call(request).await
        }
    };
    let kind = match tokio::time::timeout(DEADLINE + WATCHDOG, call).await {
        Err(_) => Kind::Hung,
        Ok(Ok(Answer::Served)) => Kind::Response,
        Ok(Ok(Answer::Fallback(kind))) => kind,
        Ok(Err(e)) if ErrorKind::of(&e) == ErrorKind::FallbackRejected => {
            Kind::ErrorFallbackRejected
        }
        Ok(Err(e)) => {
            let mut others = ledger.other_errors.lock().unwrap();
            if others.len() < others.capacity() {
                others.push(format!("{e} ({:?})", ErrorKind::of(&e)));
            }
            Kind::ErrorOther
        }
    };
    entry.close(kind);
    true
}

// ===== the test =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: run by .ci/run in release mode"]
async fn soak() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    assert_eq!(
        workers, THREADS,
        "THREADS names the runtime's worker threads"
    );
    // Injected panics are expected: keep their messages out of the output.
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload_as_str() != Some(PANIC_MESSAGE) {
            report_panic(info);
        }
    }));
    let epoch = Instant::now();
    let retries = Arc::new(Timed {
        series: Series::new(epoch),
        total: AtomicU64::new(0),
    });
    let refused = Arc::new(Timed {
        series: Series::new(epoch),
        total: AtomicU64::new(0),
    });
    metrics::set_global_recorder(Recorder {
        retries: retries.clone(),
        refused: refused.clone(),
    })
    .expect("the only recorder in this binary");
    let ledger = Arc::new(Ledger::new(epoch));
    let fleet = Fleet::start();
    let registry = Registry::new();

    // ----- the client stack -----
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IDLE_PER_INSTANCE)
        .build(connector);
    let panics = ChaosLayer::builder("soak-panics")
        .abort(
            Abort::error(|| -> std::io::Error { panic!("soak: injected panic") }),
            PANIC_PERCENT,
        )
        .seed(1)
        .build()
        .unwrap();
    let brownout = ChaosLayer::builder("soak-brownout")
        .abort(
            Abort::response(|| {
                let mut response = Response::new(Bytes::new());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
            }),
            100.0 / 3.0,
        )
        .seed(2)
        .build()
        .unwrap();
    let endpoints = fleet.servers.iter().enumerate().map(|(id, server)| {
        let uri: Uri = format!("http://{}/", server.addr).parse().unwrap();
        let client = client.clone();
        let http = tower::service_fn(move |request| send(client.clone(), uri.clone(), request));
        let attempt = Counted {
            inner: panics.layer(brownout.layer(http)),
            ledger: ledger.clone(),
        };
        Endpoint::new(id, EndpointService::new(attempt))
    });
    let budget = RetryBudget::new(BUDGET_WINDOW, FLOOR_PER_SEC, RATIO).unwrap();
    let balance = Balance::builder("soak")
        .policy(HttpPolicy)
        .retries_same(RETRIES_SAME)
        .retries_next(RETRIES_NEXT)
        .retry_budget(budget.clone())
        .eject_for(Duration::from_secs(1), Duration::from_secs(4))
        .registry(&registry)
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let lb = balance.handle();
    let transitions: Arc<Transitions> = Arc::new(Mutex::new(Vec::with_capacity(4096)));
    let main = Command::builder(COMMANDS[0])
        .timeout(DEADLINE)
        .bulkhead(BULKHEAD)
        .breaker(|b| breaker_rules(b, &transitions, 0))
        .fallback_sync(fallback)
        .contain_panics()
        .registry(&registry)
        .build()
        .unwrap();
    let pooled = Command::builder(COMMANDS[1])
        .group("soak-pool")
        .timeout(DEADLINE)
        .pool(POOL_SIZE, POOL_QUEUE)
        .breaker(|b| breaker_rules(b, &transitions, 1))
        .fallback_sync(fallback)
        .contain_panics()
        .registry(&registry)
        .build()
        .unwrap();
    let inner = balance.map_result(answer as fn(_) -> _);

    // ----- the run -----
    let control = Arc::new(Drivers {
        stop: AtomicBool::new(false),
        pause: watch::Sender::new(false),
        busy: AtomicU64::new(0),
    });
    let mut drivers = JoinSet::new();
    for n in 0..DRIVERS {
        drivers.spawn(drive(
            n,
            main.layer(inner.clone()),
            pooled.layer(inner.clone()),
            ledger.clone(),
            control.clone(),
        ));
    }
    let marks = script(
        &fleet,
        &ledger,
        &control,
        &panics.handle(),
        &brownout.handle(),
    )
    .await;
    control.stop.store(true, Ordering::SeqCst);
    while let Some(driver) = drivers.join_next().await {
        driver.expect("a driver task ended cleanly");
    }
    let run_time = epoch.elapsed();

    // ----- every count back to zero -----
    let (bulkhead, pool) = (main.bulkhead(), pooled.pool());
    let fallbacks = [main.fallback(), pooled.fallback()];
    let breakers = [main.breaker(), pooled.breaker()];
    let counts = || {
        let endpoints: usize = lb.endpoints().iter().map(|e| e.in_flight).sum();
        [
            ("bulkhead in flight", bulkhead.in_flight()),
            ("bulkhead waiting", bulkhead.waiting()),
            ("pool active", pool.active()),
            ("pool queued", pool.queued()),
            (
                "fallbacks running",
                fallbacks[0].running() + fallbacks[1].running(),
            ),
            ("endpoint attempts in flight", endpoints),
        ]
    };
    // Jobs aborted on the pool end on its threads, a moment after their
    // callers: wait for that, a bounded while (nothing signals it).
    let settle_started = Instant::now();
    while counts().iter().any(|(_, n)| *n != 0) && settle_started.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let settled_in = settle_started.elapsed();
    let left = counts();

    // ----- the ledger's story -----
    let report = Report::gather(&ledger, &fleet);
    let budget_check = check_budget(&retries.series.counts(), &ledger.first_attempts.counts());
    let run_allowed = budget_over_the_run(run_time, report.first_attempts);
    let breaker_story = breaker_story(&transitions, &marks, &breakers);
    let ejections: u64 = lb.endpoints().iter().map(|e| e.ejections).sum();
    let marked_dead: u64 = lb.endpoints().iter().map(|e| e.times_marked_dead).sum();
    let served_at_last: Vec<u64> = fleet
        .received()
        .iter()
        .zip(&marks.received_before_last_calm)
        .map(|(now, then)| now - then)
        .collect();
    let out_at_end: Vec<String> = lb
        .endpoints()
        .iter()
        .filter(|e| e.ejected || e.marked_dead)
        .map(|e| e.key.clone())
        .collect();
    let (warm, end) = (marks.memory[WARM_UP_CYCLES - 1], marks.memory[CYCLES - 1]);
    let one_arena = std::env::var("MALLOC_ARENA_MAX").is_ok_and(|n| n == "1");
    let injected_panics = panics.handle().injected_aborts();
    let stats = lb.endpoints();
    let selected: u64 = stats.iter().map(|e| e.selected).sum();
    let timeouts: u64 = stats.iter().map(|e| e.timeouts).sum();
    let cancelled: u64 = stats.iter().map(|e| e.cancelled).sum();
    let ended: u64 = stats
        .iter()
        .map(|e| e.successes + e.failures + e.timeouts + e.ignored + e.cancelled)
        .sum();

    report.print(run_time);
    let counted_retries = retries.total.load(Ordering::SeqCst);
    println!(
        "  retries    {counted_retries} of {run_allowed:.0} the budget allowed over the run \
         ({} sent, {} given up in their backoff); busiest budget window {} of {:.0} ({:.0} %); \
         {} refused",
        report.retries_sent,
        counted_retries.saturating_sub(report.retries_sent),
        budget_check.busiest.0,
        budget_check.busiest.1,
        100.0 * budget_check.busiest.0 as f64 / budget_check.busiest.1,
        refused.total.load(Ordering::SeqCst),
    );
    println!("  breakers   {}", breaker_story.summary);
    println!(
        "  ejections  {ejections} ejected, {marked_dead} marked dead; {} out at the end; \
         requests per instance in the last calm phase {served_at_last:?}",
        out_at_end.len()
    );
    println!(
        "  deadline   {timeouts} attempts cut off by a command's timeout, counted against their \
         endpoint as timeouts ({cancelled} as cancellations)"
    );
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    let kib = |from: u64, to: u64| (to as f64 - from as f64) / 1024.0;
    println!(
        "  memory     resident {:.2} -> {:.2} MiB from the warm-up ({WARM_UP_CYCLES} cycles) to \
         the end ({:+.0} KiB), heap in use {:.2} -> {:.2} MiB ({:+.0} KiB); {}",
        mib(warm.resident),
        mib(end.resident),
        kib(warm.resident, end.resident),
        mib(warm.heap),
        mib(end.heap),
        kib(warm.heap, end.heap),
        match one_arena {
            true => "malloc arenas: 1".to_owned(),
            false => format!("malloc arenas: glibc's default (resident not checked: {ARENAS})"),
        }
    );
    println!(
        "  by cycle   {}",
        marks
            .memory
            .iter()
            .map(|m| format!(
                "{:.2} / {:.2} MiB, {} connections",
                mib(m.resident),
                mib(m.heap),
                m.connections
            ))
            .collect::<Vec<_>>()
            .join("; "),
    );
    println!(
        "  at the end {} (settled in {settled_in:.0?})",
        left.iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    report.print_phases();
    if !ledger.other_errors.lock().unwrap().is_empty() {
        println!("  other errors: {:?}", ledger.other_errors.lock().unwrap());
    }

    // ----- the assertions -----
    assert!(
        report.issued >= MIN_REQUESTS,
        "only {} requests were made (at least {MIN_REQUESTS} wanted)",
        report.issued
    );
    assert!(report.issued < CAPACITY, "the ledger filled up");
    assert_eq!(
        report.by_kind[Kind::Pending as usize],
        0,
        "requests with no outcome"
    );
    assert_eq!(
        ledger.twice.load(Ordering::SeqCst),
        0,
        "outcomes recorded twice"
    );
    assert_eq!(report.by_kind[Kind::Lost as usize], 0, "requests lost");
    assert_eq!(report.by_kind[Kind::Hung as usize], 0, "requests hung");
    assert!(
        report.latency.max <= DEADLINE + SLACK,
        "a request took {:?}, past its deadline {DEADLINE:?} + {SLACK:?}",
        report.latency.max
    );
    assert_eq!(
        report.by_kind[Kind::ErrorOther as usize],
        0,
        "untyped errors"
    );
    assert_eq!(
        report.by_kind[Kind::FallbackPanicked as usize] as u64,
        injected_panics,
        "every injected panic ended as a fallback"
    );
    assert!(injected_panics > 0, "the script injected panics");

    assert_eq!(
        report.strangers, 0,
        "requests without an id reached a server"
    );
    assert!(
        report.most_attempts <= MAX_ATTEMPTS,
        "a request was sent {} times; the settings allow {MAX_ATTEMPTS}",
        report.most_attempts
    );
    assert_eq!(
        report.seen_beyond_sent, 0,
        "servers saw requests more often than they were sent"
    );
    assert!(
        report.most_on_one_server <= 1 + RETRIES_SAME as u64,
        "one server saw a request {} times; the settings allow {}",
        report.most_on_one_server,
        1 + RETRIES_SAME
    );
    assert_eq!(report.seen_unissued, 0, "servers saw ids never issued");

    assert!(
        report.retries_sent <= counted_retries,
        "{} retries were sent, rampart counted {counted_retries} withdrawals",
        report.retries_sent
    );
    assert!(
        budget_check.violations.is_empty(),
        "retries beyond the budget: {:?}",
        budget_check.violations
    );
    assert!(
        counted_retries as f64 <= run_allowed,
        "{counted_retries} retries over the run, {run_allowed:.0} allowed"
    );
    assert!(
        refused.total.load(Ordering::SeqCst) > 0,
        "the budget never refused a retry: the script did not test it"
    );
    assert_eq!(
        retries.series.late.load(Ordering::SeqCst),
        0,
        "the run outlasted its series"
    );
    assert_eq!(
        ledger.first_attempts.late.load(Ordering::SeqCst),
        0,
        "the run outlasted its series"
    );

    assert!(
        report.by_kind[Kind::FallbackTimeout as usize] > 0,
        "no request met its deadline: the script did not test it"
    );
    // No caller walks away here: every attempt cut off was cut off by a
    // command's timeout, and counts against its endpoint as a timeout.
    assert_eq!(
        cancelled, 0,
        "attempts counted as cancelled by their caller"
    );
    assert!(
        timeouts > 0,
        "timed-out attempts counted against their endpoints"
    );
    assert!(
        timeouts <= report.by_kind[Kind::FallbackTimeout as usize] as u64,
        "{timeouts} attempts timed out, more than the calls that did"
    );

    // rampart's own books agree with the ledger's.
    assert_eq!(selected, report.attempts, "attempts the balancer counted");
    assert_eq!(
        ended,
        selected + injected_panics,
        "every attempt ended once in the balancer's counts (a panicking call too)"
    );
    for (command, handle) in fallbacks.iter().enumerate() {
        assert_eq!(
            handle.successes() as usize,
            report.fallbacks_by_command[command],
            "fallbacks served by {}",
            COMMANDS[command]
        );
    }

    for problem in &breaker_story.problems {
        println!("  breaker problem: {problem}");
    }
    assert!(
        breaker_story.problems.is_empty(),
        "{:?}",
        breaker_story.problems
    );

    assert!(ejections > 0, "no instance was ever ejected");
    assert!(
        out_at_end.is_empty(),
        "still out at the end: {out_at_end:?}"
    );
    assert!(
        served_at_last.iter().all(|n| *n > 0),
        "every instance serves again in the last calm phase: {served_at_last:?}"
    );

    for (what, n) in left {
        assert_eq!(n, 0, "{what} at the end");
    }

    if one_arena {
        assert!(
            end.resident < warm.resident + RESIDENT_GROWTH,
            "resident memory grew from {} to {} bytes",
            warm.resident,
            end.resident
        );
    }
    assert!(
        end.heap < warm.heap + HEAP_GROWTH,
        "heap in use grew from {} to {} bytes",
        warm.heap,
        end.heap
    );
}

// ===== the report =====

#[derive(Debug, Default)]
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latency {
    fn of(mut us: Vec<u32>) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        let at =
            |p: f64| Duration::from_micros(u64::from(us[((us.len() - 1) as f64 * p) as usize]));
        Latency {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            self.p50, self.p99, self.max
        )
    }
}

struct Report {
    issued: usize,
    by_kind: [usize; KINDS],
    latency: Latency,
    phases: Vec<(usize, [usize; KINDS], Latency)>,
    attempts: u64,
    first_attempts: u64,
    retries_sent: u64,
    most_attempts: u64,
    seen_total: u64,
    seen_beyond_sent: usize,
    seen_unissued: usize,
    most_on_one_server: u64,
    strangers: u64,
    /// Fallbacks served, per command (index in `COMMANDS`).
    fallbacks_by_command: [usize; 2],
}

impl Report {
    fn gather(ledger: &Ledger, fleet: &Fleet) -> Report {
        let issued = ledger.issued();
        let mut by_kind = [0; KINDS];
        let mut phases: Vec<(usize, [usize; KINDS], Vec<u32>)> =
            PHASES.iter().map(|_| (0, [0; KINDS], Vec::new())).collect();
        let mut latencies = Vec::with_capacity(issued);
        let (mut attempts, mut first_attempts, mut most_attempts) = (0, 0, 0);
        let (mut seen_total, mut seen_beyond_sent, mut most_on_one_server) = (0, 0, 0);
        let mut fallbacks_by_command = [0; 2];
        for id in 0..issued {
            let kind = ledger.outcome[id].load(Ordering::SeqCst) as usize;
            let us = ledger.latency_us[id].load(Ordering::SeqCst);
            by_kind[kind] += 1;
            if Kind::ALL[kind].is_fallback() {
                fallbacks_by_command[usize::from(id % 5 == 0)] += 1;
            }
            latencies.push(us);
            let phase = &mut phases[ledger.phase_of[id].load(Ordering::SeqCst) as usize];
            phase.0 += 1;
            phase.1[kind] += 1;
            phase.2.push(us);
            let sent = u64::from(ledger.attempts[id].load(Ordering::SeqCst));
            attempts += sent;
            first_attempts += u64::from(sent > 0);
            most_attempts = most_attempts.max(sent);
            let mut seen = 0;
            for server in &fleet.servers {
                let n = u64::from(server.state.seen[id].load(Ordering::SeqCst));
                seen += n;
                most_on_one_server = most_on_one_server.max(n);
            }
            seen_total += seen;
            seen_beyond_sent += usize::from(seen > sent);
        }
        let seen_unissued = (issued..CAPACITY)
            .filter(|&id| {
                fleet
                    .servers
                    .iter()
                    .any(|s| s.state.seen[id].load(Ordering::SeqCst) > 0)
            })
            .count();
        Report {
            issued,
            by_kind,
            latency: Latency::of(latencies),
            phases: phases
                .into_iter()
                .map(|(n, kinds, us)| (n, kinds, Latency::of(us)))
                .collect(),
            attempts,
            first_attempts,
            retries_sent: attempts - first_attempts,
            most_attempts,
            seen_total,
            seen_beyond_sent,
            seen_unissued,
            most_on_one_server,
            strangers: fleet
                .servers
                .iter()
                .map(|s| s.state.strangers.load(Ordering::SeqCst))
                .sum(),
            fallbacks_by_command,
        }
    }

    fn count(kinds: &[usize; KINDS], f: fn(Kind) -> bool) -> usize {
        Kind::ALL
            .iter()
            .filter(|k| f(**k))
            .map(|k| kinds[*k as usize])
            .sum()
    }

    /// What the ledger says of the requests, and how often they were sent.
    fn print(&self, run_time: Duration) {
        let k = &self.by_kind;
        let fallbacks = Report::count(k, Kind::is_fallback);
        println!(
            "soak: {} requests in {:.0} s from {DRIVERS} tasks, 2 commands over 1 balancer over \
             {SERVERS} hyper servers, {CYCLES} cycles of faults",
            self.issued,
            run_time.as_secs_f64()
        );
        println!(
            "  outcomes   {} responses ({:.1} %), {} fallbacks ({:.1} %), {} typed errors, {} lost, {} hung",
            k[Kind::Response as usize],
            pct(k[Kind::Response as usize], self.issued),
            fallbacks,
            pct(fallbacks, self.issued),
            Report::count(k, Kind::is_error),
            k[Kind::Lost as usize],
            k[Kind::Hung as usize],
        );
        println!("  fallbacks  {}", causes(k, |kind| kind.name()));
        println!("  latency    {} (deadline {DEADLINE:?})", self.latency);
        println!(
            "  attempts   {} for {} calls that reached the balancer; at most {} for one request \
             (allowed {MAX_ATTEMPTS}), at most {} of it on one server (allowed {}); servers saw {}",
            self.attempts,
            self.first_attempts,
            self.most_attempts,
            self.most_on_one_server,
            1 + RETRIES_SAME,
            self.seen_total,
        );
    }

    /// The same, phase by phase, over every cycle.
    fn print_phases(&self) {
        println!(
            "  {:<15} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9}  fallbacks by cause",
            "phase", "requests", "responses", "fallbacks", "p50", "p99", "max"
        );
        for (name, (n, kinds, latency)) in PHASES.iter().zip(&self.phases) {
            println!(
                "  {name:<15} {n:>8} {:>8.1} % {:>8.1} % {:>9.1?} {:>9.1?} {:>9.1?}  {}",
                pct(kinds[Kind::Response as usize], *n),
                pct(Report::count(kinds, Kind::is_fallback), *n),
                latency.p50,
                latency.p99,
                latency.max,
                causes(kinds, |kind| kind.short()),
            );
        }
    }
}

fn pct(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// The fallbacks' causes and the errors, most frequent first.
fn causes(kinds: &[usize; KINDS], name: fn(Kind) -> &'static str) -> String {
    let mut seen: Vec<(usize, Kind)> = Kind::ALL
        .iter()
        .filter(|kind| kind.is_fallback() || kind.is_error())
        .map(|kind| (kinds[*kind as usize], *kind))
        .filter(|(n, _)| *n > 0)
        .collect();
    seen.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    seen.iter()
        .map(|(n, kind)| format!("{} {n}", name(*kind)))
        .collect::<Vec<_>>()
        .join(", ")
}

// ===== the budget's promise =====

struct BudgetCheck {
    /// Windows where more was withdrawn than allowed: (end tick, withdrawn, allowed).
    violations: Vec<(usize, u64, f64)>,
    /// The fullest window: (withdrawn, allowed).
    busiest: (u64, f64),
}

/// Checks the retry budget's promise against rampart's withdrawals, timed
/// as they happen (the `retry` event), and the first attempts the ledger
/// timed (the budget's deposits), both in [`TICK`]s.
///
/// The budget counts over 10 buckets of 1 s, the current one included: at
/// a withdrawal at time `t` it looks at some span that holds `[t - 9 s, t]`
/// and lies within `(t - 10 s, t]`, and lets the withdrawal through only if
/// the withdrawals there stay within `RESERVE + RATIO × deposits there`,
/// give or take [`OVERDRAW`]. So, wherever its buckets fall, at every tick
/// holding a withdrawal: the withdrawals of the last 8.99 s (899 ticks,
/// one tick short of 9 s for the timing of the events) are at most
/// `RESERVE + RATIO × the deposits of the last 10.02 s (1002 ticks)` plus
/// the overdraw.
fn check_budget(withdrawn: &[u64], deposited: &[u64]) -> BudgetCheck {
    const SPAN: usize = 899;
    const DEPOSITS: usize = 1002;
    let prefix = |xs: &[u64]| {
        let mut p = Vec::with_capacity(xs.len() + 1);
        p.push(0);
        for x in xs {
            p.push(p.last().unwrap() + x);
        }
        p
    };
    let (w, d) = (prefix(withdrawn), prefix(deposited));
    let sum = |p: &[u64], end: usize, len: usize| p[end + 1] - p[(end + 1).saturating_sub(len)];
    let allowed = |end: usize| RESERVE + RATIO * sum(&d, end, DEPOSITS) as f64 + OVERDRAW;
    let mut check = BudgetCheck {
        violations: Vec::new(),
        busiest: (0, 1.0),
    };
    for end in (0..withdrawn.len()).filter(|&i| withdrawn[i] > 0) {
        let (taken, allowed) = (sum(&w, end, SPAN), allowed(end));
        if taken as f64 > allowed {
            check.violations.push((end, taken, allowed));
        }
        if taken as f64 / allowed > check.busiest.0 as f64 / check.busiest.1 {
            check.busiest = (taken, allowed);
        }
    }
    check
}

/// The retries the budget allows over a run of `run_time` with
/// `deposits` first attempts: `RATIO × deposits`, plus the reserve (and the
/// overdraw) once per 10 of its 1-s buckets.
///
/// Why: take the last bucket holding a withdrawal, then the last one at
/// least 10 buckets before it, and so on. The 10-bucket windows ending at
/// those buckets are disjoint and hold every withdrawal; at the last
/// withdrawal of each, the withdrawals in it were at most the reserve plus
/// `RATIO ×` its deposits (plus the overdraw). There are at most
/// `ceil(buckets / 10)` of them, and the run spans at most
/// `ceil(seconds) + 1` of the budget's buckets.
fn budget_over_the_run(run_time: Duration, deposits: u64) -> f64 {
    let buckets = run_time.as_secs_f64().ceil() + 1.0;
    RATIO * deposits as f64 + (RESERVE + OVERDRAW) * (buckets / 10.0).ceil()
}

// ===== the breakers =====

struct BreakerStory {
    summary: String,
    problems: Vec<String>,
}

fn breaker_story(
    transitions: &Transitions,
    marks: &Marks,
    breakers: &[CircuitBreakerHandle; 2],
) -> BreakerStory {
    let transitions = transitions.lock().unwrap();
    let mut summary = Vec::new();
    let mut problems = Vec::new();
    for (command, name) in COMMANDS.iter().enumerate() {
        let mine: Vec<(Instant, State)> = transitions
            .iter()
            .filter(|(_, c, _)| *c == command)
            .map(|(at, _, to)| (*at, *to))
            .collect();
        let opened = mine.iter().filter(|(_, to)| *to == State::Open).count();
        let closed = mine.iter().filter(|(_, to)| *to == State::Closed).count();
        summary.push(format!("{name} opened {opened} times, closed {closed}"));
        for (n, (down, up)) in marks.outages.iter().enumerate() {
            if !mine
                .iter()
                .any(|(at, to)| *to == State::Open && at >= down && at <= up)
            {
                problems.push(format!("{name} did not open during outage {}", n + 1));
            }
            // Closed again before the next outage began.
            let next = marks.outages.get(n + 1).map(|(down, _)| *down);
            if !mine
                .iter()
                .any(|(at, to)| *to == State::Closed && at > up && next.is_none_or(|d| *at < d))
            {
                problems.push(format!("{name} did not close after outage {}", n + 1));
            }
        }
        let state = breakers[command].state();
        if state != State::Closed || !breakers[command].is_call_permitted() {
            problems.push(format!("{name} ends {state:?}"));
        }
    }
    let verdict = match problems.is_empty() {
        true => format!(
            "each opened during each of the {} outages and closed after it",
            marks.outages.len()
        ),
        false => format!("{} problems", problems.len()),
    };
    BreakerStory {
        summary: format!("{}; {verdict}", summary.join(", ")),
        problems,
    }
}

// ===== memory =====

#[derive(Debug, Clone, Copy)]
struct Memory {
    /// Resident memory, as the kernel counts it.
    resident: u64,
    /// Heap bytes allocated and not freed, as the counting allocator counts
    /// them: what resident memory holds minus what the allocator keeps.
    heap: u64,
    /// Connections open (idle, kept by the client's pool).
    connections: u64,
}

impl Memory {
    fn now(fleet: &Fleet) -> Memory {
        Memory {
            resident: resident_bytes(),
            heap: alloc::live_bytes() as u64,
            connections: fleet
                .servers
                .iter()
                .map(|s| s.state.connections.load(Ordering::SeqCst))
                .sum(),
        }
    }
}

/// The process's resident memory (`VmRSS` of `/proc/self/status`, the
/// `resident` of `/proc/self/statm` in bytes rather than pages).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}
