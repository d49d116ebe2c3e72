//! A game day: the Simian Army against a home page, and a ledger that
//! proves no page request was lost.
//!
//! ```text
//! cargo run --example game_day --features chaos
//! ```
//!
//! A "home page" service renders 40 pages a second for 40 s (a few fewer
//! if the machine is too busy to keep that pace), each page on its own
//! task. Each page calls three dependencies at once, over real
//! HTTP/1 to hyper servers on `127.0.0.1` (random ports), each call through
//! its own [`rampart::Command`] (fallback → breaker → bulkhead → timeout):
//!
//! | dependency        | instances                     | timeout | bulkhead | fallback                   |
//! |-------------------|-------------------------------|---------|----------|----------------------------|
//! | `recommendations` | 6: `a1`–`a3` in zone a, `b1`–`b3` in zone b, behind a balancer | 300 ms | 20 | popular titles |
//! | `ratings`         | 1, with a chaos layer beneath its command | 250 ms | 4 | no ratings shown |
//! | `bookmarks`       | 1 (left alone: the control)   | 200 ms  | 10       | "continue watching" hidden |
//!
//! The home page runs in zone `a`. `recommendations`' balancer
//! ([`rampart::balance::Balance`], inside its command) prefers its own zone
//! ([`ZoneAffinity`] over round robin, Ribbon's zone-avoidance recipe): it
//! sends every call to zone a while at least half of zone a's instances are
//! eligible, and to both zones otherwise. A call that fails without an
//! answer (refused, cut off) is retried on up to three other instances (as
//! many as a zone has, so a call can always get out of a dead zone), each
//! retry drawn from the balancer's retry budget (20 % of the last 10 s of
//! calls plus 10 a second); an instance that fails 5 times in a row is
//! ejected for 1 s, doubling to 4 s while its probe after each spell fails.
//! At most one instance in ten (so one of six) is ejected at a time; past
//! that cap, failure accrual *marks a failing instance dead* on the same
//! schedule instead (see [`rampart::balance::Builder::failure_accrual`]).
//! Each breaker trips when at least half of the calls of the last 2 s failed
//! (at least 20 calls), stays open 3 s, then lets one probe through.
//!
//! # The script
//!
//! | time    | act       | what happens                                                           |
//! |---------|-----------|------------------------------------------------------------------------|
//! | 0–5 s   | `calm`    | a quiet morning                                                        |
//! | 5–17 s  | `monkey`  | Chaos Monkey kills a `recommendations` instance at 5, 9 and 13 s (chosen with a fixed seed); each is replaced 3 s later, on the same port |
//! | 17–26 s | `latency` | Latency Monkey: from 17 to 23 s `ratings`' chaos layer delays every call, log-normally (median 300 ms, p99 1.5 s); its timeout is 250 ms |
//! | 26–33 s | `gorilla` | Chaos Gorilla kills every instance of zone a at 26 s                  |
//! | 33–40 s | `return`  | zone a's instances are back at 33 s, on their ports                   |
//!
//! Killing an instance aborts its server task: its listener closes and
//! every open connection is cut, as a crashed process's would be. Otherwise
//! every server answers in 2–12 ms, with the odd `500` (0.5 %).
//!
//! # What you will see
//!
//! 1. **Chaos Monkey**: the calls sent to a dead instance of zone a are
//!    refused and retried on another instance of the same zone (`retry`),
//!    so no `recommendations` call falls back; after 5 refusals in a row the
//!    `>>` line says it is ejected (`E`) and its share drops to 0. A second
//!    later it is back on probation, its probe is refused, and it is out
//!    again for twice as long. When it is replaced, its next probe is
//!    answered and its share comes back. A dead instance in zone b gets no
//!    traffic (zone affinity), so nothing notices it: it stays marked `x`
//!    until it is replaced.
//! 2. **Latency Monkey**: `ratings`' calls end at their timeout (`t`), the
//!    4-slot bulkhead rejects the rest (`r`), the breaker trips (`OPEN`) and
//!    short-circuits (`s`): pages are served without ratings (`degr`), none
//!    slower than the timeouts allow. Its probes fail until the monkey is
//!    switched off; the next one closes the breaker.
//! 3. **Chaos Gorilla**: the first calls to zone a are refused, retried in
//!    zone a, then in zone b; within a fraction of a second the three zone a
//!    instances are out (one ejected, `E`, the other two marked dead, `D`),
//!    fewer than half of zone a is eligible, and all traffic moves to zone b
//!    (the `zone %` columns). Were the retry budget spent in that first
//!    moment, calls would get popular titles instead (`b`); it is not. While
//!    zone a is down its instances come back on probation now and then
//!    (their small shares), fail their probe, and go out for longer. Once
//!    zone a is back, their probes are answered, and traffic moves home.
//!
//! One line per second: the act, pages finished that second (`pages`) and
//! how many of them used a fallback (`degr`); per dependency, the calls it
//! answered (`ok`), the calls its fallback answered (`fb`) and why (`f` HTTP
//! 500, `c` connection refused or cut, `t` timed out, `r` rejected by the
//! bulkhead, `s` short-circuited, `b` retry budget spent, `n` no instance),
//! and its breaker at the end of the second (`-` closed, `OPEN`, `half`
//! probing); then each `recommendations` instance's share of the
//! balancer's attempts that second, in %, marked `E` ejected, `D` marked
//! dead, `x` killed but not (yet) out; the share of each zone; and the
//! attempts the balancer retried on another instance. `--` lines are the
//! script, `>>` lines rampart reacting: breakers changing state, instances
//! ejected or marked dead (again, when the probe after a spell out fails),
//! and back in rotation when a probe is answered.
//!
//! # The ledger
//!
//! Every page request ends exactly one way: answered fully, degraded (at
//! least one section from a fallback), failed with a typed error
//! ([`ErrorKind`]), or hung: cut off by the page's 1 s deadline, which no
//! page should ever reach (the commands' timeouts are far shorter). A page
//! that never ended at all (its task still running long past the deadline,
//! or dead) is *lost*; it is counted from the tasks themselves, so that
//! "requested = the five outcomes" is a real check. The ledger also counts every dependency call (answered, fallback and why,
//! error, lost), the retries against the budget, the ejections and dead
//! marks, each breaker's trips and recoveries, and the traffic by zone in
//! each act. **The example exits with status 1** if a page or a call was
//! lost, a page hung, or the outcomes do not add up, so it can run as a
//! check.
//!
//! While it runs, [`HystrixStream`] is served on a free port: the dashboard
//! page at `/`, the stream at `/hystrix.stream` (both printed at the start).
//!
//! Server latencies and errors, the Chaos Monkey's victims and the Latency
//! Monkey's delays come from fixed seeds; the calls still run concurrently
//! on real time, so exact counts shift a little from run to run.

use bytes::Bytes;
use http::{Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::balance::rule::{RoundRobin, ZoneAffinity};
use rampart::balance::{Balance, BalanceHandle, Endpoint, EndpointStats, Endpoints, Policy};
use rampart::bulkhead::BulkheadLayer;
use rampart::chaos::{ChaosHandle, ChaosLayer, Delay};
use rampart::circuit_breaker::{
    Builder as BreakerBuilder, CircuitBreakerHandle, State, StateChange, TransitionReason, Window,
};
use rampart::fallback::{Cause, FallbackHandle};
use rampart::stream::{HystrixStream, Server as StreamServer};
use rampart::{BoxError, Command, CommandLayer, ErrorKind};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Pages the home page service renders per second, and for how long.
const PAGES_PER_SECOND: u32 = 40;
const SCRIPT_SECONDS: u64 = 40;
/// No page may take longer; one that would is cut off and counted as hung.
const PAGE_DEADLINE: Duration = Duration::from_secs(1);

/// The home page's zone, and `recommendations`' instances per zone.
const HOME_ZONE: &str = "a";
const ZONES: [&str; 2] = ["a", "b"];
const PER_ZONE: usize = 3;

/// Chaos Monkey: kills one instance at each of these seconds, chosen with
/// this seed; each is replaced this many seconds later.
const MONKEY_SEED: u64 = 3;
const MONKEY_KILLS_AT: [u64; 3] = [5, 9, 13];
const REPLACED_AFTER: u64 = 3;
/// Latency Monkey: when `ratings`' chaos layer is on, and what it does.
const LATENCY_MONKEY: Range<u64> = 17..23;
const LATENCY_P50: Duration = Duration::from_millis(300);
const LATENCY_P99: Duration = Duration::from_millis(1_500);
const LATENCY_SEED: u64 = 17;
/// Chaos Gorilla: zone a is down for these seconds.
const GORILLA: Range<u64> = 26..33;

/// The acts of the day, each from its second on.
struct Act {
    name: &'static str,
    from: u64,
    what: &'static str,
}

const ACTS: [Act; 5] = [
    Act {
        name: "calm",
        from: 0,
        what: "a quiet morning, every instance healthy",
    },
    Act {
        name: "monkey",
        from: 5,
        what: "Chaos Monkey kills a recommendations instance every 4 s; each is replaced 3 s later",
    },
    Act {
        name: "latency",
        from: 17,
        what: "Latency Monkey slows ratings for 6 s",
    },
    Act {
        name: "gorilla",
        from: 26,
        what: "Chaos Gorilla takes out zone a: all three of its recommendations instances",
    },
    Act {
        name: "return",
        from: 33,
        what: "zone a is back",
    },
];

/// The act running at `second` (since the start).
fn act_at(second: u64) -> usize {
    ACTS.iter().rposition(|a| a.from <= second).unwrap_or(0)
}

/// Servers: the share of `500`s, and how long an answer takes (ms).
const ERROR_RATE: f64 = 0.005;
const ANSWER_MS: Range<u64> = 2..12;

/// Breakers: rolling window, minimum calls, failure rate, open time.
const WINDOW: Duration = Duration::from_secs(2);
const MIN_CALLS: u32 = 20;
const FAILURE_RATE: f64 = 0.5;
const OPEN_FOR: Duration = Duration::from_secs(3);
/// The balancer: retries on other instances, and outlier ejection.
/// As many retries as a zone has instances: a call can always get out of a
/// dead zone.
const RETRIES_NEXT: u32 = 3;
const EJECT_AFTER: u32 = 5;
const EJECT_FOR: Duration = Duration::from_secs(1);
const EJECT_FOR_MAX: Duration = Duration::from_secs(4);

// ===== the dependencies' servers, killable and restartable =====

/// What one server answers, and what it has seen.
struct Upstream {
    answer: &'static str,
    rng: Mutex<SmallRng>,
    /// Requests that reached the server.
    received: AtomicU64,
}

impl Upstream {
    fn new(answer: &'static str, seed: u64) -> Arc<Upstream> {
        Arc::new(Upstream {
            answer,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            received: AtomicU64::new(0),
        })
    }

    async fn respond(&self) -> Response<Full<Bytes>> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let (fail, delay_ms) = {
            let mut rng = self.rng.lock().unwrap();
            (rng.random_bool(ERROR_RATE), rng.random_range(ANSWER_MS))
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let (status, body) = if fail {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        } else {
            (StatusCode::OK, self.answer)
        };
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
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
/// every open connection, as a crashed process would.
async fn serve(listener: TcpListener, upstream: Arc<Upstream>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |_: http::Request<Incoming>| {
                        let upstream = upstream.clone();
                        async move { Ok::<_, Infallible>(upstream.respond().await) }
                    });
                    // A client hanging up mid-request is not the server's concern.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One instance of a dependency: a server that can be killed and brought
/// back on the same port.
struct Instance {
    name: String,
    zone: &'static str,
    addr: SocketAddr,
    upstream: Arc<Upstream>,
    task: Option<JoinHandle<()>>,
}

impl Instance {
    async fn start(
        name: &str,
        zone: &'static str,
        upstream: Arc<Upstream>,
    ) -> Result<Instance, BoxError> {
        let listener = listen("127.0.0.1:0".parse()?)?;
        let addr = listener.local_addr()?;
        let task = Some(tokio::spawn(serve(listener, upstream.clone())));
        Ok(Instance {
            name: name.to_string(),
            zone,
            addr,
            upstream,
            task,
        })
    }

    fn is_up(&self) -> bool {
        self.task.is_some()
    }

    async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Wait until the listener and the connections are really gone.
            let _ = task.await;
        }
    }

    fn restart(&mut self) -> std::io::Result<()> {
        if self.task.is_none() {
            let listener = listen(self.addr)?;
            self.task = Some(tokio::spawn(serve(listener, self.upstream.clone())));
        }
        Ok(())
    }

    /// The balancer's key for it: `a1 127.0.0.1:40123` on the dashboard.
    fn key(&self) -> Key {
        Key(format!("{} {}", self.name, self.addr))
    }

    /// The key as [`EndpointStats::key`] has it (its `Debug` form).
    fn stats_key(&self) -> String {
        format!("{:?}", self.key())
    }
}

/// An endpoint key whose `Debug` form (the dashboard's and the metrics'
/// label) is plain text.
#[derive(Clone, PartialEq)]
struct Key(String);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ===== the client side: sections of the home page =====

/// One section of the page, and who provided it.
#[derive(Debug)]
struct Section {
    text: String,
    served_by: ServedBy,
}

#[derive(Debug, Clone, Copy)]
enum ServedBy {
    Dependency,
    Fallback(Why),
}

/// Why a fallback was served.
#[derive(Debug, Clone, Copy)]
enum Why {
    Http500,
    Connection,
    TimedOut,
    Rejected,
    ShortCircuited,
    Budget,
    NoInstance,
}

impl Why {
    const ALL: [Why; 7] = [
        Why::Http500,
        Why::Connection,
        Why::TimedOut,
        Why::Rejected,
        Why::ShortCircuited,
        Why::Budget,
        Why::NoInstance,
    ];

    fn of(cause: &Cause) -> Why {
        match cause.kind() {
            ErrorKind::CircuitOpen => Why::ShortCircuited,
            ErrorKind::BulkheadFull => Why::Rejected,
            ErrorKind::Timeout => Why::TimedOut,
            ErrorKind::RetryBudgetExhausted => Why::Budget,
            ErrorKind::NoHealthyEndpoint => Why::NoInstance,
            _ if cause.error().is::<HttpStatus>() => Why::Http500,
            _ => Why::Connection,
        }
    }

    /// The letter in the per-second lines.
    fn letter(self) -> char {
        match self {
            Why::Http500 => 'f',
            Why::Connection => 'c',
            Why::TimedOut => 't',
            Why::Rejected => 'r',
            Why::ShortCircuited => 's',
            Why::Budget => 'b',
            Why::NoInstance => 'n',
        }
    }
}

impl Section {
    fn fallback(cause: &Cause, text: &str) -> Section {
        Section {
            text: text.to_string(),
            served_by: ServedBy::Fallback(Why::of(cause)),
        }
    }
}

// The fallbacks: plain functions, told why the call failed.

fn popular_titles(cause: &Cause) -> Result<Section, BoxError> {
    Ok(Section::fallback(cause, "Popular on Netflix"))
}

fn no_ratings(cause: &Cause) -> Result<Section, BoxError> {
    Ok(Section::fallback(cause, ""))
}

fn hide_continue_watching(cause: &Cause) -> Result<Section, BoxError> {
    Ok(Section::fallback(cause, ""))
}

/// A non-2xx answer: the dependency's failure, so the fallback serves.
#[derive(Debug)]
struct HttpStatus(StatusCode);

impl fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dependency answered {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}

/// What `recommendations`' balancer resends to another instance: every
/// failed attempt but a `500` (each call is a `GET`, safe to resend).
///
/// rampart's [`DefaultPolicy`](rampart::balance::DefaultPolicy) retries only
/// errors with a refused connection in their chain; an instance killed
/// mid-answer makes hyper report "connection closed before message
/// completed", which has none, and that call would go to the fallback.
#[derive(Debug, Clone, Copy)]
struct RetryUnanswered;

impl Policy<(), Section> for RetryUnanswered {
    fn is_retryable(&self, _: &(), result: &Result<Section, BoxError>) -> bool {
        result.as_ref().is_err_and(|e| !e.is::<HttpStatus>())
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One `GET`, body read in full, so the timeout covers the whole answer.
async fn fetch(client: HttpClient, uri: Uri) -> Result<Section, BoxError> {
    let response = client.get(uri).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(HttpStatus(status).into());
    }
    Ok(Section {
        text: String::from_utf8_lossy(&body).into_owned(),
        served_by: ServedBy::Dependency,
    })
}

// ===== bookkeeping: every call and every page, counted once =====

/// What happened to one dependency's calls, so far.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    calls: u64,
    ok: u64,
    fallbacks: [u64; 7],
    errors: u64,
}

impl Tally {
    fn fallback_total(&self) -> u64 {
        self.fallbacks.iter().sum()
    }

    /// Calls that neither the dependency, nor its fallback, nor an error
    /// ended (only calls still in flight, or a bug).
    fn unended(&self) -> u64 {
        self.calls - self.ok - self.fallback_total() - self.errors
    }

    fn minus(&self, before: &Tally) -> Tally {
        Tally {
            calls: self.calls - before.calls,
            ok: self.ok - before.ok,
            fallbacks: std::array::from_fn(|i| self.fallbacks[i] - before.fallbacks[i]),
            errors: self.errors - before.errors,
        }
    }

    /// "12t9r": the fallbacks' causes, the zero ones left out.
    fn why(&self) -> String {
        Why::ALL
            .iter()
            .filter(|w| self.fallbacks[**w as usize] > 0)
            .map(|w| format!("{}{}", self.fallbacks[*w as usize], w.letter()))
            .collect()
    }
}

/// One dependency as the home page sees it: counts and rampart's handles.
struct Dep {
    name: &'static str,
    started: Instant,
    calls: AtomicU64,
    ok: AtomicU64,
    fallbacks: [AtomicU64; 7],
    errors: AtomicU64,
    /// Breaker: tripped (closed → open), probe failed (half-open → open),
    /// recovered (half-open → closed).
    trips: AtomicU64,
    reopened: AtomicU64,
    recovered: AtomicU64,
    handles: OnceLock<Handles>,
}

struct Handles {
    breaker: CircuitBreakerHandle,
    fallback: FallbackHandle,
}

impl Dep {
    fn new(name: &'static str, started: Instant) -> Arc<Dep> {
        Arc::new(Dep {
            name,
            started,
            calls: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            fallbacks: Default::default(),
            errors: AtomicU64::new(0),
            trips: AtomicU64::new(0),
            reopened: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            handles: OnceLock::new(),
        })
    }

    fn attach<FB, C>(&self, command: &CommandLayer<FB, BulkheadLayer, C>) {
        let handles = Handles {
            breaker: command.breaker(),
            fallback: command.fallback(),
        };
        assert!(self.handles.set(handles).is_ok(), "one command each");
    }

    fn handles(&self) -> &Handles {
        self.handles
            .get()
            .expect("set right after the command is built")
    }

    fn tally(&self) -> Tally {
        Tally {
            calls: self.calls.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.each_ref().map(|n| n.load(Ordering::Relaxed)),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Calls the dependency through its command.
    async fn call<S>(&self, command: S) -> Result<Section, BoxError>
    where
        S: Service<(), Response = Section, Error = BoxError>,
    {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let result = command.oneshot(()).await;
        match &result {
            Ok(section) => match section.served_by {
                ServedBy::Dependency => &self.ok,
                ServedBy::Fallback(why) => &self.fallbacks[why as usize],
            }
            .fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                println!(
                    "   !! {:5.2}s  {}: call failed ({}): {e}",
                    self.started.elapsed().as_secs_f64(),
                    self.name,
                    ErrorKind::of(e)
                );
                self.errors.fetch_add(1, Ordering::Relaxed)
            }
        };
        result
    }

    /// The `>>` line for a breaker state change.
    fn on_state_change(&self, change: &StateChange) {
        match (change.from, change.to) {
            (State::Closed, State::Open) => &self.trips,
            (State::HalfOpen, State::Open) => &self.reopened,
            (State::HalfOpen, State::Closed) => &self.recovered,
            _ => return self.say_change(change),
        }
        .fetch_add(1, Ordering::Relaxed);
        self.say_change(change);
    }

    fn say_change(&self, change: &StateChange) {
        let open_for = change.open_for.unwrap_or_default().as_secs();
        let why = match change.reason {
            TransitionReason::FailureRate { rate } => format!(
                "{:.0}% of its calls in the last {}s failed; short-circuits for {open_for}s",
                rate * 100.0,
                WINDOW.as_secs()
            ),
            TransitionReason::OpenElapsed => "one probe call goes through".into(),
            TransitionReason::ProbeFailed
            | TransitionReason::ProbeAbandoned
            | TransitionReason::ProbeTimedOut => {
                format!("the probe failed; short-circuits for another {open_for}s")
            }
            TransitionReason::ProbesSucceeded => "the probe was answered: calls flow again".into(),
            ref other => other.as_str().into(),
        };
        println!(
            "   >> {:5.2}s  {:<17} breaker {} -> {}: {why}",
            self.started.elapsed().as_secs_f64(),
            self.name,
            change.from,
            change.to,
        );
    }
}

/// The trip rule shared by the three breakers, and their `>>` lines.
fn trip_rule<C>(breaker: BreakerBuilder<C>, dep: &Arc<Dep>) -> BreakerBuilder<C> {
    let dep = dep.clone();
    breaker
        .window(Window::time(WINDOW, 4))
        .min_calls(MIN_CALLS)
        .failure_rate(FAILURE_RATE)
        .open_for(OPEN_FOR)
        .probes(1)
        .on_state_change(move |change| dep.on_state_change(change))
}

/// Pages requested, and how each one ended.
#[derive(Default)]
struct Pages {
    requested: AtomicU64,
    /// Every section from its dependency.
    full: AtomicU64,
    /// At least one section from a fallback.
    degraded: AtomicU64,
    /// A section's call ended in an error: the page failed with it.
    failed: AtomicU64,
    failed_by_kind: Mutex<BTreeMap<String, u64>>,
    /// Cut off by the page deadline.
    hung: AtomicU64,
    in_flight: AtomicU64,
    /// The slowest page since the last line, and of the whole day (µs).
    slowest: AtomicU64,
    slowest_ever: AtomicU64,
    /// A page from each act: the first started 2 s into it.
    samples: Mutex<[Option<(f64, String)>; ACTS.len()]>,
}

impl Pages {
    fn ended(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
            + self.degraded.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.hung.load(Ordering::Relaxed)
    }
}

/// The page's HTML, and whether a fallback filled any section of it. An
/// empty section (no ratings, no "continue watching") is left out.
fn render(recs: &Section, ratings: &Section, bookmarks: &Section) -> (String, bool) {
    let mut html = format!("<h2>{}</h2>", recs.text);
    if !ratings.text.is_empty() {
        html += &format!("<span>{}</span>", ratings.text);
    }
    if !bookmarks.text.is_empty() {
        html += &format!("<h2>{}</h2>", bookmarks.text);
    }
    let degraded = [recs, ratings, bookmarks]
        .iter()
        .any(|s| matches!(s.served_by, ServedBy::Fallback(_)));
    (html, degraded)
}

/// Fetches the three sections at once and renders the page; a section
/// that ended in an error fails the page with it.
async fn fetch_page<R, T, B>(
    deps: &[Arc<Dep>; 3],
    recs: R,
    ratings: T,
    bookmarks: B,
) -> Result<(String, bool), BoxError>
where
    R: Service<(), Response = Section, Error = BoxError>,
    T: Service<(), Response = Section, Error = BoxError>,
    B: Service<(), Response = Section, Error = BoxError>,
{
    let (recs, ratings, bookmarks) = tokio::join!(
        deps[0].call(recs),
        deps[1].call(ratings),
        deps[2].call(bookmarks)
    );
    Ok(render(&recs?, &ratings?, &bookmarks?))
}

/// One page request, from start to its one outcome.
async fn serve_page<R, T, B>(
    deps: Arc<[Arc<Dep>; 3]>,
    pages: Arc<Pages>,
    started: Instant,
    services: (R, T, B),
) where
    R: Service<(), Response = Section, Error = BoxError>,
    T: Service<(), Response = Section, Error = BoxError>,
    B: Service<(), Response = Section, Error = BoxError>,
{
    let began = Instant::now();
    let since_start = (began - started).as_secs_f64();
    pages.in_flight.fetch_add(1, Ordering::Relaxed);
    let (r, t, b) = services;
    match tokio::time::timeout(PAGE_DEADLINE, fetch_page(&deps, r, t, b)).await {
        Ok(Ok((html, degraded))) => {
            // A real service would send the HTML back; this one keeps a few.
            let act = act_at(since_start as u64);
            if since_start >= ACTS[act].from as f64 + 2.0 {
                pages.samples.lock().unwrap()[act].get_or_insert((since_start, html));
            }
            if degraded {
                &pages.degraded
            } else {
                &pages.full
            }
            .fetch_add(1, Ordering::Relaxed);
        }
        Ok(Err(e)) => {
            *pages
                .failed_by_kind
                .lock()
                .unwrap()
                .entry(ErrorKind::of(&e).to_string())
                .or_default() += 1;
            pages.failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            println!("   !! {since_start:5.2}s  a page hung: no answer within {PAGE_DEADLINE:?}");
            pages.hung.fetch_add(1, Ordering::Relaxed);
        }
    }
    pages.in_flight.fetch_sub(1, Ordering::Relaxed);
    let took = began.elapsed().as_micros() as u64;
    pages.slowest.fetch_max(took, Ordering::Relaxed);
    pages.slowest_ever.fetch_max(took, Ordering::Relaxed);
}

// ===== recommendations' instances =====

/// `recommendations`' instances, and the balancer in front of them.
struct Fleet {
    instances: Vec<Instance>,
    handle: BalanceHandle,
    /// Calls that reached the balancer: past the breaker and the bulkhead.
    calls: Arc<AtomicU64>,
}

impl Fleet {
    /// Each instance's statistics, in the instances' order.
    fn stats(&self) -> Vec<Option<EndpointStats>> {
        let stats = self.handle.endpoints();
        self.instances
            .iter()
            .map(|i| {
                let key = i.stats_key();
                stats.iter().find(|e| e.key == key).cloned()
            })
            .collect()
    }

    /// Attempts the balancer made, and the calls that reached it.
    fn attempts_and_calls(&self, stats: &[Option<EndpointStats>]) -> (u64, u64) {
        let attempts = stats.iter().flatten().map(|e| e.selected).sum();
        (attempts, self.calls.load(Ordering::Relaxed))
    }
}

/// What the fleet watcher remembers of one instance.
#[derive(Debug, Clone, Default)]
struct Watched {
    out: bool,
    ejections: u64,
    dead_marks: u64,
    successes: u64,
    /// Back from a spell out, not yet answered.
    probation: bool,
}

/// Prints a `>>` line whenever `recommendations`' balancer ejects an
/// instance or marks one dead, and when one it had left out answers again
/// (back in rotation), polling its handle. The return on probation in
/// between is not printed: the next line says how the probe went.
async fn watch_fleet(started: Instant, handle: BalanceHandle, keys: Vec<(String, String)>) {
    let mut watched = vec![Watched::default(); keys.len()];
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticks.tick().await;
        let stats = handle.endpoints();
        for ((name, key), w) in keys.iter().zip(&mut watched) {
            let Some(s) = stats.iter().find(|e| &e.key == key) else {
                continue;
            };
            let say = |what: String| {
                println!(
                    "   >> {:5.2}s  {:<17} {what}",
                    started.elapsed().as_secs_f64(),
                    format!("recommendations {name}")
                )
            };
            let out = s.ejected || s.marked_dead;
            let ejected = s.ejections > w.ejections;
            if ejected || s.times_marked_dead > w.dead_marks {
                // Out again straight from a spell out (perhaps between two
                // polls): it was back on probation and its probe failed.
                let (how, why) = match (ejected, w.probation || w.out) {
                    (true, false) => ("ejected", format!("{EJECT_AFTER} failures in a row")),
                    (true, true) => ("ejected again", "its probe failed".into()),
                    (false, false) => (
                        "marked dead (the ejection cap is taken)",
                        format!("{EJECT_AFTER} failures in a row"),
                    ),
                    (false, true) => ("marked dead again", "its probe failed".into()),
                };
                say(format!(
                    "{how}: {why}; out for {:.0}s",
                    s.out_for.as_secs_f64()
                ));
                w.probation = false;
            } else if w.out && !out {
                w.probation = true;
            }
            if w.probation && !out && s.successes > w.successes {
                say("answered its probe: back in rotation".into());
                w.probation = false;
            }
            w.out = out;
            w.ejections = s.ejections;
            w.dead_marks = s.times_marked_dead;
            w.successes = s.successes;
        }
    }
}

// ===== the per-second lines, and the script =====

/// Prints a line every second and plays the script at its seconds.
struct Reporter {
    started: Instant,
    deps: [Arc<Dep>; 3],
    pages: Arc<Pages>,
    fleet: Fleet,
    latency_monkey: ChaosHandle<(), Section>,
    /// The Chaos Monkey's victims, by index into the fleet.
    victims: Vec<usize>,
    last: [Tally; 3],
    /// Pages ended, degraded, failed and hung at the last line.
    last_pages: [u64; 4],
    /// Attempts each instance had been sent, and the balancer's attempts
    /// and calls, at the last line.
    last_selected: Vec<u64>,
    last_attempts: (u64, u64),
    /// The balancer's attempts per act and zone.
    by_act: [[u64; 2]; ACTS.len()],
}

impl Reporter {
    fn header(&self) {
        let mut top = format!("{:<21}", "");
        let mut columns = format!("{:>3} {:<7}{:>5}{:>5}", "t", "act", "pages", "degr");
        for dep in &self.deps[..2] {
            top += &format!(" │ {:<18}", dep.name);
            columns += &format!(" │{:>3}{:>3} {:<7} {:<4}", "ok", "fb", "why", "brk");
        }
        top += &format!(" │ {:<11}", self.deps[2].name);
        columns += &format!(" │{:>3}{:>3} {:<4}", "ok", "fb", "brk");
        top += " │ recs' instances, % of tries │ zone %";
        columns += " │";
        for (n, instance) in self.fleet.instances.iter().enumerate() {
            if n == PER_ZONE {
                columns += " ";
            }
            columns += &format!("{:>3} ", instance.name);
        }
        columns += &format!("│{:>4}{:>4}{:>6}", ZONES[0], ZONES[1], "retry");
        println!("{}", top.trim_end());
        println!("{}", columns.trim_end());
    }

    /// One line: what happened in the second ending at `second`.
    fn line(&mut self, label: &str, act: usize) {
        let p = &self.pages;
        let now = [
            p.ended(),
            p.degraded.load(Ordering::Relaxed),
            p.failed.load(Ordering::Relaxed),
            p.hung.load(Ordering::Relaxed),
        ];
        let [ended, degraded, failed, hung] = std::array::from_fn(|i| now[i] - self.last_pages[i]);
        self.last_pages = now;
        let slowest = p.slowest.swap(0, Ordering::Relaxed);

        let mut line = format!("{label:>3} {:<7}{ended:>5}{degraded:>5}", ACTS[act].name);
        for (n, (dep, last)) in self.deps.iter().zip(self.last.iter_mut()).enumerate() {
            let now = dep.tally();
            let delta = now.minus(last);
            *last = now;
            let breaker = match dep.handles().breaker.state() {
                State::Closed => "-",
                State::Open => "OPEN",
                State::HalfOpen => "half",
                other => other.as_str(),
            };
            line += &if n < 2 {
                format!(
                    " │{:>3}{:>3} {:<7} {breaker:<4}",
                    delta.ok,
                    delta.fallback_total(),
                    delta.why()
                )
            } else {
                format!(
                    " │{:>3}{:>3} {breaker:<4}",
                    delta.ok,
                    delta.fallback_total()
                )
            };
        }

        // recommendations' instances: share of this second's attempts.
        let stats = self.fleet.stats();
        let selected: Vec<u64> = stats
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.selected))
            .collect();
        let sent: Vec<u64> = selected
            .iter()
            .zip(&self.last_selected)
            .map(|(now, before)| now - before)
            .collect();
        let total: u64 = sent.iter().sum();
        // "-" when the balancer made no attempt at all that second.
        let share = |n: u64| {
            (n * 100 + total / 2)
                .checked_div(total)
                .map_or("-".to_string(), |p| p.to_string())
        };
        line += " │";
        let mut zones = [0u64; 2];
        for (n, instance) in self.fleet.instances.iter().enumerate() {
            if n == PER_ZONE {
                line += " ";
            }
            let s = stats[n].as_ref();
            let mark = if s.is_some_and(|s| s.ejected) {
                'E'
            } else if s.is_some_and(|s| s.marked_dead) {
                'D'
            } else if !instance.is_up() {
                'x'
            } else {
                ' '
            };
            line += &format!("{:>3}{mark}", share(sent[n]));
            zones[usize::from(instance.zone != ZONES[0])] += sent[n];
        }
        for (zone, n) in zones.iter().enumerate() {
            self.by_act[act][zone] += n;
        }
        let (attempts, calls) = self.fleet.attempts_and_calls(&stats);
        let retried =
            (attempts - self.last_attempts.0).saturating_sub(calls - self.last_attempts.1);
        self.last_attempts = (attempts, calls);
        self.last_selected = selected;
        line += &format!("│{:>4}{:>4}{retried:>6}", share(zones[0]), share(zones[1]));
        if failed > 0 {
            line += &format!("  {failed} pages FAILED");
        }
        if hung > 0 {
            line += &format!("  {hung} pages HUNG");
        }
        if slowest > PAGE_DEADLINE.as_micros() as u64 / 2 {
            line += &format!("  slowest page {}ms", slowest / 1000);
        }
        println!("{}", line.trim_end());
    }

    fn say(&self, what: &str) {
        println!(
            "   -- {:5.2}s  {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// A line every second, and the script at its seconds.
    async fn run(mut self) -> Result<Reporter, BoxError> {
        for second in 1..=SCRIPT_SECONDS {
            tokio::time::sleep_until(self.started + Duration::from_secs(second)).await;
            self.line(&format!("{second}s"), act_at(second - 1));
            if second == SCRIPT_SECONDS {
                break;
            }
            if let Some(n) = ACTS.iter().position(|a| a.from == second) {
                self.say(&format!(
                    "act {}, {}: {}",
                    n + 1,
                    ACTS[n].name,
                    ACTS[n].what
                ));
            }
            self.play(second).await?;
        }
        Ok(self)
    }

    /// What the script does at `second`.
    async fn play(&mut self, second: u64) -> Result<(), BoxError> {
        for (&at, &victim) in MONKEY_KILLS_AT.iter().zip(&self.victims) {
            let instance = &mut self.fleet.instances[victim];
            if second == at {
                instance.kill().await;
                let what = format!(
                    "Chaos Monkey kills recommendations {} (zone {}, {}): listener closed, connections cut",
                    instance.name, instance.zone, instance.addr
                );
                self.say(&what);
            } else if second == at + REPLACED_AFTER {
                instance.restart()?;
                let what = format!(
                    "recommendations {} is replaced: a new instance on {}",
                    instance.name, instance.addr
                );
                self.say(&what);
            }
        }
        if second == LATENCY_MONKEY.start {
            self.latency_monkey.enable();
            self.say(&format!(
                "Latency Monkey on: every ratings call delayed, log-normal, median {}ms, p99 {}ms (its timeout: 250ms)",
                LATENCY_P50.as_millis(),
                LATENCY_P99.as_millis()
            ));
        }
        if second == LATENCY_MONKEY.end {
            self.latency_monkey.disable();
            self.say(&format!(
                "Latency Monkey off, after delaying {} ratings calls",
                self.latency_monkey.injected_delays()
            ));
        }
        if second == GORILLA.start {
            let mut names = Vec::new();
            for instance in &mut self.fleet.instances {
                if instance.zone == HOME_ZONE {
                    instance.kill().await;
                    names.push(instance.name.clone());
                }
            }
            self.say(&format!(
                "Chaos Gorilla takes out zone {HOME_ZONE}, the home page's own: {} killed",
                names.join(", ")
            ));
        }
        if second == GORILLA.end {
            for instance in &mut self.fleet.instances {
                if instance.zone == HOME_ZONE {
                    instance.restart()?;
                }
            }
            self.say(&format!(
                "zone {HOME_ZONE} is back: its three instances restarted on their ports"
            ));
        }
        Ok(())
    }
}

// ===== the home page service and its game day =====

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let started = Instant::now();

    // The servers: recommendations' six instances over two zones, and one
    // each for ratings and bookmarks.
    let mut fleet_instances = Vec::new();
    for (z, zone) in ZONES.iter().enumerate() {
        for n in 0..PER_ZONE {
            let seed = 10 + (z * PER_ZONE + n) as u64;
            let upstream = Upstream::new("Top picks for you", seed);
            let name = format!("{zone}{}", n + 1);
            fleet_instances.push(Instance::start(&name, zone, upstream).await?);
        }
    }
    let ratings_server = Instance::start("r1", HOME_ZONE, Upstream::new("4.6 stars", 1)).await?;
    let bookmarks_server = Instance::start(
        "k1",
        HOME_ZONE,
        Upstream::new("Continue watching: episode 3", 2),
    )
    .await?;

    let recs = Dep::new("recommendations", started);
    let ratings = Dep::new("ratings", started);
    let bookmarks = Dep::new("bookmarks", started);

    // One command per dependency: fallback → breaker → bulkhead → timeout.
    let recs_command = Command::builder("RecommendationsGet")
        .group("Recommendations")
        .timeout(Duration::from_millis(300))
        .bulkhead(20)
        .breaker(|b| trip_rule(b, &recs))
        .fallback_sync(popular_titles)
        .build()?;
    let ratings_command = Command::builder("RatingsGet")
        .group("Ratings")
        .timeout(Duration::from_millis(250))
        .bulkhead(4)
        .breaker(|b| trip_rule(b, &ratings))
        .fallback_sync(no_ratings)
        .build()?;
    let bookmarks_command = Command::builder("BookmarksGet")
        .group("Bookmarks")
        .timeout(Duration::from_millis(200))
        .bulkhead(10)
        .breaker(|b| trip_rule(b, &bookmarks))
        .fallback_sync(hide_continue_watching)
        .build()?;
    recs.attach(&recs_command);
    ratings.attach(&ratings_command);
    bookmarks.attach(&bookmarks_command);

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let get = |addr: SocketAddr, path: &str| -> Result<_, BoxError> {
        let uri: Uri = format!("http://{addr}{path}").parse()?;
        let client = client.clone();
        Ok(move |()| fetch(client.clone(), uri.clone()))
    };

    // recommendations: the command wraps a balancer over the six
    // instances, preferring the home page's zone.
    let endpoints = fleet_instances
        .iter()
        .map(|i| {
            let service = tower::service_fn(get(i.addr, "/recommendations")?);
            Ok(Endpoint::new(i.key(), service).zone(i.zone))
        })
        .collect::<Result<Vec<_>, BoxError>>()?;
    let balance = Balance::builder("recommendations")
        .rule(ZoneAffinity::new(HOME_ZONE, RoundRobin::new()))
        .retries_next(RETRIES_NEXT)
        .eject_after(EJECT_AFTER)
        .eject_for(EJECT_FOR, EJECT_FOR_MAX)
        .policy(RetryUnanswered)
        .build(Endpoints::fixed(endpoints))?;
    let fleet_handle = balance.handle();
    // Counts the calls that reach the balancer, to tell its retries apart.
    let balanced_calls = Arc::new(AtomicU64::new(0));
    let count_call = {
        let calls = balanced_calls.clone();
        move |request: ()| {
            calls.fetch_add(1, Ordering::Relaxed);
            request
        }
    };
    let recs_service = ServiceBuilder::new()
        .layer(recs_command.clone())
        .map_request(count_call)
        .service(balance);

    // ratings: a chaos layer beneath the command, off until the script
    // turns it on. The command's timeout sees the injected latency as it
    // would a slow server's.
    let latency_monkey = ChaosLayer::builder("ratings-latency-monkey")
        .delay(Delay::log_normal(LATENCY_P50, LATENCY_P99), 100.0)
        .seed(LATENCY_SEED)
        .build()?;
    let latency_handle = latency_monkey.handle();
    let ratings_service = ServiceBuilder::new()
        .layer(ratings_command.clone())
        .layer(latency_monkey)
        .service_fn(get(ratings_server.addr, "/ratings")?);
    let bookmarks_service = ServiceBuilder::new()
        .layer(bookmarks_command.clone())
        .service_fn(get(bookmarks_server.addr, "/bookmarks")?);

    // The Chaos Monkey's victims, drawn now from its seed.
    let mut order: Vec<usize> = (0..fleet_instances.len()).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(MONKEY_SEED));
    let victims = order[..MONKEY_KILLS_AT.len()].to_vec();

    // See it live: every command and the balancer are in the registry.
    let live = StreamServer::new(HystrixStream::new()).start().await?;
    println!("game day: the Simian Army against a home page, watched live while it runs:");
    println!("  dashboard: {}", live.url("/"));
    println!(
        "  stream (Hystrix dashboard, Turbine): {}",
        live.url("/hystrix.stream")
    );
    println!();
    println!(
        "home page service in zone {HOME_ZONE}: {PAGES_PER_SECOND} pages/s for {SCRIPT_SECONDS}s, each calling at once:"
    );
    println!(
        "  recommendations  command {} over balancer {:?}: zone affinity {HOME_ZONE}, round robin,",
        recs_command.name(),
        fleet_handle.name()
    );
    println!(
        "                   {RETRIES_NEXT} retries elsewhere, ejection after {EJECT_AFTER} failures for {}s doubling to {}s:",
        EJECT_FOR.as_secs(),
        EJECT_FOR_MAX.as_secs()
    );
    for zone in ZONES {
        let members: Vec<String> = fleet_instances
            .iter()
            .filter(|i| i.zone == zone)
            .map(|i| format!("{} {}", i.name, i.addr))
            .collect();
        println!("                   zone {zone}: {}", members.join(", "));
    }
    println!(
        "  ratings          command {} over a chaos layer (off), {}",
        ratings_command.name(),
        ratings_server.addr
    );
    println!(
        "  bookmarks        command {}, {}",
        bookmarks_command.name(),
        bookmarks_server.addr
    );
    println!("the script:");
    for (n, act) in ACTS.iter().enumerate() {
        let until = ACTS.get(n + 1).map_or(SCRIPT_SECONDS, |a| a.from);
        println!(
            "  {:>2}-{:<2}s  act {} {:<8} {}",
            act.from,
            until,
            n + 1,
            act.name,
            act.what
        );
    }
    println!(
        "  Chaos Monkey (seed {MONKEY_SEED}) will kill {}",
        MONKEY_KILLS_AT
            .iter()
            .zip(&victims)
            .map(|(at, &v)| format!("{} at {at}s", fleet_instances[v].name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "columns: pages finished that second, degr = with a fallback section; per dependency: ok = answered by it,"
    );
    println!(
        "  fb = by its fallback, why: f HTTP 500, c connection refused/cut, t timed out, r bulkhead full, s short-circuited,"
    );
    println!(
        "  b retry budget spent, n no instance; brk = breaker: - closed, OPEN, half (probing); recs' instances: share of"
    );
    println!(
        "  the balancer's attempts, E ejected, D marked dead, x killed and not (yet) out; zone % of attempts; retried elsewhere"
    );
    println!();

    let deps = [recs.clone(), ratings.clone(), bookmarks.clone()];
    let pages = Arc::new(Pages::default());
    let watcher = tokio::spawn(watch_fleet(
        started,
        fleet_handle.clone(),
        fleet_instances
            .iter()
            .map(|i| (i.name.clone(), i.stats_key()))
            .collect(),
    ));
    let fleet_size = fleet_instances.len();
    let reporter = Reporter {
        started,
        deps: deps.clone(),
        pages: pages.clone(),
        fleet: Fleet {
            instances: fleet_instances,
            handle: fleet_handle.clone(),
            calls: balanced_calls,
        },
        latency_monkey: latency_handle.clone(),
        victims: victims.clone(),
        last: Default::default(),
        last_pages: [0; 4],
        last_selected: vec![0; fleet_size],
        last_attempts: (0, 0),
        by_act: Default::default(),
    };
    reporter.header();
    let reporting = tokio::spawn(reporter.run());

    // The home page: a page every 1/40 s, each on its own task.
    let deps = Arc::new(deps);
    let mut in_flight = JoinSet::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / PAGES_PER_SECOND);
    // Should this process be starved of CPU for a moment (a busy machine),
    // go on at the same pace rather than send the missed pages at once, and
    // stop with the script all the same: the day lasts as long, with a few
    // pages fewer.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let day_ends = started + Duration::from_secs(SCRIPT_SECONDS);
    loop {
        ticks.tick().await;
        if Instant::now() >= day_ends {
            break;
        }
        let services = (
            recs_service.clone(),
            ratings_service.clone(),
            bookmarks_service.clone(),
        );
        pages.requested.fetch_add(1, Ordering::Relaxed);
        in_flight.spawn(serve_page(deps.clone(), pages.clone(), started, services));
        while in_flight.try_join_next().is_some() {}
    }
    // Every page has its deadline; give the last ones that long, and then
    // some, before counting what never ended.
    let mut panicked = 0;
    let drain = tokio::time::sleep(PAGE_DEADLINE * 2);
    tokio::pin!(drain);
    loop {
        tokio::select! {
            joined = in_flight.join_next() => match joined {
                Some(Ok(())) => {}
                Some(Err(_)) => panicked += 1,
                None => break,
            },
            () = &mut drain => break,
        }
    }
    let never_ended = in_flight.len();
    in_flight.abort_all();
    let mut reporter = reporting.await??;
    if reporter.pages.ended() > reporter.last_pages[0] {
        reporter.line("end", ACTS.len() - 1);
    }
    watcher.abort();

    // ===== the ledger =====
    let requested = pages.requested.load(Ordering::Relaxed);
    let full = pages.full.load(Ordering::Relaxed);
    let degraded = pages.degraded.load(Ordering::Relaxed);
    let failed = pages.failed.load(Ordering::Relaxed);
    let hung = pages.hung.load(Ordering::Relaxed);
    // A page that never ended: still running long after its deadline, or
    // its task died. Counted from the tasks, not derived from the other
    // outcomes, so the sum below is a real check.
    let lost = never_ended as u64 + panicked;
    println!(
        "\n== ledger, after {:.1}s ==",
        started.elapsed().as_secs_f64()
    );
    let row = |label: &str, n: u64, note: &str| println!("{label:<33}{n:>6}{note}");
    row("page requests", requested, "");
    row("  answered fully", full, "");
    row("  degraded: a fallback section", degraded, "");
    let kinds: Vec<String> = (pages.failed_by_kind.lock().unwrap().iter())
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let kinds = if kinds.is_empty() {
        String::new()
    } else {
        format!("   ({})", kinds.join(", "))
    };
    row("  failed with a typed error", failed, &kinds);
    row(
        &format!("  hung past the {PAGE_DEADLINE:?} deadline"),
        hung,
        "",
    );
    row(
        "  lost: never ended",
        lost,
        &format!("   ({never_ended} still running at the end, {panicked} panicked)"),
    );
    println!(
        "slowest page: {}ms",
        pages.slowest_ever.load(Ordering::Relaxed) / 1000
    );
    println!("what the page looked like:");
    for (n, sample) in pages.samples.lock().unwrap().iter().enumerate() {
        if let Some((at, html)) = sample {
            println!("  {:<8} at {at:5.2}s: {html}", ACTS[n].name);
        }
    }

    // Every dependency call, by how it ended.
    println!();
    println!(
        "{:<16}{:>6}{:>8}{:>9}{:>8}{:>6} │ breaker:{:>6}{:>9}{:>10} │ fallbacks, why",
        "dependency",
        "calls",
        "by dep",
        "fallback",
        "errors",
        "lost",
        "trips",
        "reopened",
        "recovered"
    );
    let mut calls_lost = 0;
    for dep in deps.iter() {
        let t = dep.tally();
        calls_lost += t.unended();
        let causes: Vec<String> = Why::ALL
            .iter()
            .filter(|w| t.fallbacks[**w as usize] > 0)
            .map(|w| format!("{}{}", t.fallbacks[*w as usize], w.letter()))
            .collect();
        println!(
            "{:<16}{:>6}{:>8}{:>9}{:>8}{:>6} │ {:>14}{:>9}{:>10} │ {}",
            dep.name,
            t.calls,
            t.ok,
            t.fallback_total(),
            t.errors,
            t.unended(),
            dep.trips.load(Ordering::Relaxed),
            dep.reopened.load(Ordering::Relaxed),
            dep.recovered.load(Ordering::Relaxed),
            causes.join(" ")
        );
    }
    let fallbacks: Vec<FallbackHandle> =
        deps.iter().map(|d| d.handles().fallback.clone()).collect();
    let ours: u64 = deps.iter().map(|d| d.tally().fallback_total()).sum();
    let theirs: u64 = fallbacks.iter().map(FallbackHandle::successes).sum();
    println!(
        "rampart's fallback counters {}: {theirs} served, {} failed, {} refused by the cap",
        if ours == theirs { "agree" } else { "DISAGREE" },
        fallbacks.iter().map(FallbackHandle::failures).sum::<u64>(),
        fallbacks
            .iter()
            .map(FallbackHandle::rejections)
            .sum::<u64>(),
    );

    // recommendations' instances, as the balancer and their servers saw them.
    let fleet = &mut reporter.fleet;
    let stats = fleet.stats();
    println!(
        "\nrecommendations' instances (balancer {:?}):",
        fleet.handle.name()
    );
    println!(
        "{:<9}{:>5}  {:<16}{:>9}{:>11}{:>11}{:>11}  killed by",
        "instance", "zone", "address", "attempts", "server saw", "ejections", "dead marks",
    );
    for (n, instance) in fleet.instances.iter().enumerate() {
        let s = stats[n].as_ref();
        let mut killed_by = Vec::new();
        for (&at, _) in MONKEY_KILLS_AT
            .iter()
            .zip(&victims)
            .filter(|(_, &v)| v == n)
        {
            killed_by.push(format!("Chaos Monkey at {at}s"));
        }
        if instance.zone == HOME_ZONE {
            killed_by.push(format!("Chaos Gorilla at {}s", GORILLA.start));
        }
        println!(
            "{:<9}{:>5}  {:<16}{:>9}{:>11}{:>11}{:>11}  {}",
            instance.name,
            instance.zone,
            instance.addr.to_string(),
            s.map_or(0, |s| s.selected),
            instance.upstream.received.load(Ordering::Relaxed),
            s.map_or(0, |s| s.ejections),
            s.map_or(0, |s| s.times_marked_dead),
            killed_by.join(", ")
        );
    }
    let (attempts, calls) = fleet.attempts_and_calls(&stats);
    let retries = attempts.saturating_sub(calls);
    let refused = recs.tally().fallbacks[Why::Budget as usize];
    println!(
        "retries: {calls} calls reached the balancer, {attempts} attempts: {retries} retries on another instance;"
    );
    println!(
        "  the budget (20% of the last 10s of calls + 10/s) refused {refused} (those calls fell back); {:.0} retries left now",
        fleet.handle.retry_budget().balance()
    );
    println!(
        "ejections: {} (one instance at most at a time), dead marks: {} (failure accrual past that cap)",
        stats.iter().flatten().map(|s| s.ejections).sum::<u64>(),
        stats.iter().flatten().map(|s| s.times_marked_dead).sum::<u64>()
    );
    let zone_shares: Vec<String> = ACTS
        .iter()
        .zip(&reporter.by_act)
        .map(|(act, [a, b])| {
            let total = (a + b).max(1);
            format!(
                "{} {}/{}",
                act.name,
                (a * 100 + total / 2) / total,
                (b * 100 + total / 2) / total
            )
        })
        .collect();
    println!("attempts by zone, % a/b: {}", zone_shares.join(", "));
    println!(
        "chaos: Latency Monkey delayed {} ratings calls; Chaos Monkey killed {}; Chaos Gorilla took zone {HOME_ZONE} for {}s",
        latency_handle.injected_delays(),
        victims
            .iter()
            .map(|&v| fleet.instances[v].name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        GORILLA.end - GORILLA.start
    );
    println!(
        "breakers now: {}",
        deps.iter()
            .map(|d| format!("{} {}", d.name, d.handles().breaker.state()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let accounted = full + degraded + failed + hung + lost == requested;
    let pass = lost == 0 && hung == 0 && calls_lost == 0 && accounted;
    println!(
        "\n{requested} page requests = {full} full + {degraded} degraded + {failed} failed + {hung} hung + {lost} lost; {calls_lost} calls lost"
    );
    if pass {
        println!("PASS: every page request accounted for, none lost, none hung");
    } else {
        println!("FAIL: pages or calls were lost, or a page hung past its deadline");
    }
    for instance in &mut fleet.instances {
        instance.kill().await;
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
