//! The Netflix story: a home page that keeps serving while its dependencies
//! fail, each behind its own [`rampart::Command`], one of them spread over
//! several instances by a [`rampart::balance::Balance`].
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! A small "home page" service renders 30 pages a second for 24 s, each page
//! on its own task, so several are in flight at once. Each page calls three
//! dependencies at once, over real HTTP/1 to hyper servers on `127.0.0.1`
//! (random ports), through one pooled client, each call through its own
//! command (fallback → breaker → bulkhead → timeout):
//!
//! | dependency        | timeout | bulkhead | fallback when it cannot answer |
//! |-------------------|---------|----------|--------------------------------|
//! | `recommendations` | 300 ms  | 10       | popular titles                 |
//! | `ratings`         | 250 ms  | 4        | no ratings shown               |
//! | `bookmarks`       | 200 ms  | 10       | "continue watching" hidden     |
//!
//! `bookmarks` runs as three instances (`b1`–`b3`, three servers), and its
//! command wraps a balancer over them (Ribbon inside Hystrix:
//! `ServiceBuilder::new().layer(command).service(balance)`): each call goes
//! to the next instance in turn (round robin, Ribbon's default rule, so the
//! shares are easy to read; `examples/balance.rs` shows rampart's default,
//! power of two choices on latency); a call that fails there without an
//! answer (refused, cut off) is retried once on another instance, within the
//! command's timeout; an instance that fails 5 times in a row is ejected for
//! 2 s, then 4 s, 8 s while the probe after each ejection fails.
//!
//! The client turns an answer other than `2xx` into an error: the fallback
//! only ever sees errors, so a `500` must be one to be replaced.
//!
//! Each command's breaker trips when at least half of the calls of the last
//! 2 s failed (at least 20 calls; a `500`, a connection error, a timeout and
//! a bulkhead rejection all count as failures), stays open for 3 s, then lets
//! one probe call through: a good answer closes it, a bad one opens it again.
//!
//! What goes wrong, and when (`--` lines announce each incident):
//!
//! | time    | incident                                                         |
//! |---------|------------------------------------------------------------------|
//! | 3–9 s   | `recommendations` fails: 80 % of its answers are `500`s          |
//! | 8–14 s  | `ratings` turns slow: answers take 1–1.5 s, far over its timeout |
//! | 16 s    | `bookmarks`' instance `b2` is killed (listener, connections cut) |
//! | 20 s    | `b2` is restarted on the same port                               |
//!
//! Otherwise every server answers in 2–15 ms, and still fails 1 % of its
//! calls at random (`NORMAL_ERROR_RATE`): the few `f` fallbacks outside the
//! incidents. The demo says so, with the schedule, before it starts.
//!
//! What you will see:
//!
//! 1. **recommendations** (errors): within a second of failing, the `>>`
//!    line says its breaker tripped; while it is open its calls are
//!    short-circuited (`s`) and never reach the server, and every page shows
//!    popular titles instead. Every 3 s one probe goes through (a lone `1f`
//!    among the `s` when it fails); while the server still fails, the probe
//!    most likely fails and the breaker opens again; the first probe after
//!    9 s succeeds and the breaker closes.
//! 2. **ratings** (latency): calls now end at the 250 ms timeout (`t`), so
//!    about 7 are wanted at once and the 4-slot bulkhead rejects the rest at
//!    once (`r`). Timeouts and rejections trip the breaker; the probes time
//!    out until the server is fast again. The slowest page never takes much
//!    more than the longest timeout: a slow dependency cannot hold the page.
//! 3. **bookmarks** (one instance down): the calls sent to `b2` are refused
//!    and retried on `b1` or `b3` (`retried`), so every bookmarks call is
//!    still answered by the dependency: no `c`, no fallback, and the breaker
//!    never notices. After 5 refusals in a row the `>>` line says `b2` is
//!    ejected (`*`) and it gets no more calls; 2 s later it is let back on
//!    probation, its probe is refused and it is ejected again, for 4 s; by
//!    then it has been restarted, so its next probe is answered and it is
//!    back in rotation.
//!
//! One line is printed per second (a legend says what the columns mean),
//! about the pages that ended in that second: how many (`pages`), how many
//! of them used at least one fallback (`degr`), the slowest of them (ms);
//! then per dependency how those pages' calls to it ended: its breaker at
//! the end of the second (`B`: `.` closed, `O` open, `H` half-open), answered
//! by it (`ok`), answered by its fallback (`fb`) and why (`f` HTTP 500, `c`
//! connection error, `t` timed out, `r` rejected by the bulkhead, `s`
//! short-circuited by the breaker; `e` would be a call lost). A page and
//! its three calls are counted together when the page ends, so each
//! dependency's `ok + fb (+ e)` is that second's `pages`. Last, the requests
//! each `bookmarks` instance received (`*` while the balancer has it
//! ejected) and the attempts the balancer retried on another instance
//! (`rt`): requests, not pages. `>>` lines show the breakers' state changes,
//! and the balancer's ejections and readmissions, as they happen; `--` lines
//! the incidents. Every line fits in 100 columns.
//!
//! The summary shows a page from each part of the story, then counts every
//! call by how it was answered: by the dependency, or by its fallback and why.
//! `calls lost` is computed, not assumed: calls made minus calls answered
//! (any call that ended in an error would also print a `!!` line). It comes
//! out 0, and no page fails. rampart's own fallback counters are checked
//! against the demo's. A last table shows each `bookmarks` instance: the
//! attempts the balancer sent it, the requests it saw, its ejections; then
//! the retries (attempts − calls that reached the balancer), and whether
//! killing `b2` cost any page its bookmarks.
//!
//! The servers' failures and latencies come from random generators with fixed
//! seeds, so runs look alike; as the calls run concurrently on real time,
//! exact counts still shift a little from run to run.
//!
//! The rolling window is 2 s here (Hystrix's default is 10 s) so that the
//! breakers react within the demo's 24 s.

use bytes::Bytes;
use http::{Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, BalanceHandle, Endpoint, EndpointStats, Endpoints, Policy};
use rampart::bulkhead::{BulkheadHandle, BulkheadLayer};
use rampart::circuit_breaker::{
    Builder as BreakerBuilder, CircuitBreakerHandle, State, StateChange, TransitionReason, Window,
};
use rampart::fallback::{Cause, FallbackHandle};
use rampart::{BoxError, Command, CommandLayer, ErrorKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Pages the home page service renders per second.
const PAGES_PER_SECOND: u32 = 30;
/// How long pages are rendered: the whole demo ends within 30 s.
const RUN_FOR: Duration = secs(24);

/// `recommendations` answers `500` to most calls.
const RECS_FAILING: Range<Duration> = secs(3)..secs(9);
/// `ratings` answers far too late.
const RATINGS_SLOW: Range<Duration> = secs(8)..secs(14);
/// One of `bookmarks`' instances is gone.
const BOOKMARKS_DOWN: Range<Duration> = secs(16)..secs(20);
/// `bookmarks` runs as this many instances behind a balancer, and this one
/// (`b2`) is the one killed.
const BOOKMARKS_INSTANCES: usize = 3;
const BOOKMARKS_KILLED: usize = 1;
/// The balancer's outlier ejection: failures in a row, then ejected for
/// 2 s, doubling to 8 s while each probe fails (Ribbon: 10 s up to 30 s).
const EJECT_AFTER: u32 = 5;
const EJECT_FOR: Duration = secs(2);
const EJECT_FOR_MAX: Duration = secs(8);

/// The share of `500`s while failing, and otherwise: even a healthy
/// server fails 1 % of its calls at random, so a few fallbacks (`f`) show
/// up outside the incidents.
const FAILING_ERROR_RATE: f64 = 0.8;
const NORMAL_ERROR_RATE: f64 = 0.01;
/// How long a server takes to answer, when slow and otherwise (ms).
const SLOW_MS: Range<u64> = 1_000..1_500;
const NORMAL_MS: Range<u64> = 2..15;

/// The breakers' trip rule: rolling window, minimum calls, failure rate.
const WINDOW: Duration = secs(2);
const MIN_CALLS: u32 = 20;
const FAILURE_RATE: f64 = 0.5;
/// How long a tripped breaker rejects calls before a probe.
const OPEN_FOR: Duration = secs(3);

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Every line the demo prints fits in this many columns.
const WIDTH: usize = 100;

/// Prints `text` after `lead`, wrapped at [`WIDTH`] columns, the following
/// lines indented as deep as `lead`. The demo prints ASCII only, so a
/// byte is a column.
fn say(lead: &str, text: &str) {
    let indent = " ".repeat(lead.len());
    let mut line = lead.to_string();
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            println!("{line}");
            line.clone_from(&indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line += word;
        empty = false;
    }
    println!("{line}");
}

// ===== the dependencies: HTTP servers whose health changes over time =====

/// One dependency's server: what it answers, and when it misbehaves.
struct Upstream {
    answer: &'static str,
    started: Instant,
    /// When most answers are `500`s.
    failing: Option<Range<Duration>>,
    /// When answers take longer than any caller waits.
    slow: Option<Range<Duration>>,
    rng: Mutex<SmallRng>,
    /// Requests that reached the server.
    received: AtomicU64,
}

impl Upstream {
    fn new(answer: &'static str, started: Instant, seed: u64) -> Upstream {
        Upstream {
            answer,
            started,
            failing: None,
            slow: None,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            received: AtomicU64::new(0),
        }
    }

    async fn respond(&self) -> Response<Full<Bytes>> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed();
        let during =
            |phase: &Option<Range<Duration>>| phase.as_ref().is_some_and(|p| p.contains(&now));
        let (fail, delay_ms) = {
            let mut rng = self.rng.lock().unwrap();
            let error_rate = if during(&self.failing) {
                FAILING_ERROR_RATE
            } else {
                NORMAL_ERROR_RATE
            };
            let delay = if during(&self.slow) {
                SLOW_MS
            } else {
                NORMAL_MS
            };
            (rng.random_bool(error_rate), rng.random_range(delay))
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
/// every open connection too, as a crashed process would.
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
                    // A client hanging up mid-request is not the demo's concern.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A server the demo can kill and restart on the same port.
struct Server {
    addr: SocketAddr,
    upstream: Arc<Upstream>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(upstream: Arc<Upstream>) -> Result<Server, BoxError> {
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
}

impl Why {
    const ALL: [Why; 5] = [
        Why::Http500,
        Why::Connection,
        Why::TimedOut,
        Why::Rejected,
        Why::ShortCircuited,
    ];

    fn of(cause: &Cause) -> Why {
        match cause.kind() {
            ErrorKind::CircuitOpen => Why::ShortCircuited,
            ErrorKind::BulkheadFull => Why::Rejected,
            ErrorKind::Timeout => Why::TimedOut,
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

/// What `bookmarks`' balancer resends to another instance: every failed
/// attempt but a `500` (each call is a `GET`, safe to resend). Errors count
/// against the instance's health, `500`s included, as by default.
///
/// rampart's [`DefaultPolicy`](rampart::balance::DefaultPolicy) retries only
/// errors with a refused, reset or aborted connection in their chain; an
/// instance that dies mid-answer makes hyper report "connection closed
/// before message completed", which has none, so that call would go to the
/// fallback.
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

// ===== bookkeeping =====

/// What happened to one dependency's calls, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    calls: u64,
    ok: u64,
    fallbacks: [u64; 5],
    lost: u64,
}

impl Tally {
    fn fallback_total(&self) -> u64 {
        self.fallbacks.iter().sum()
    }

    /// Counts one call, by how it ended: `None` if it was lost.
    fn add(&mut self, ended: Option<ServedBy>) {
        self.calls += 1;
        match ended {
            Some(ServedBy::Dependency) => self.ok += 1,
            Some(ServedBy::Fallback(why)) => self.fallbacks[why as usize] += 1,
            None => self.lost += 1,
        }
    }

    /// "12t 9r" style: the fallbacks' causes, the zero ones left out, then
    /// the calls lost (`e`), if any.
    fn why(&self) -> String {
        let mut parts: Vec<_> = Why::ALL
            .iter()
            .filter(|w| self.fallbacks[**w as usize] > 0)
            .map(|w| format!("{}{}", self.fallbacks[*w as usize], w.letter()))
            .collect();
        if self.lost > 0 {
            parts.push(format!("{}e", self.lost));
        }
        parts.join(" ")
    }
}

/// One dependency as the home page sees it: counts and rampart's handles.
struct Dep {
    name: &'static str,
    started: Instant,
    calls: AtomicU64,
    ok: AtomicU64,
    fallbacks: [AtomicU64; 5],
    lost: AtomicU64,
    /// Times the breaker opened, turned half-open and closed.
    transitions: [AtomicU64; 3],
    handles: OnceLock<Handles>,
}

struct Handles {
    breaker: CircuitBreakerHandle,
    fallback: FallbackHandle,
    bulkhead: BulkheadHandle,
}

impl Dep {
    fn new(name: &'static str, started: Instant) -> Arc<Dep> {
        Arc::new(Dep {
            name,
            started,
            calls: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            fallbacks: Default::default(),
            lost: AtomicU64::new(0),
            transitions: Default::default(),
            handles: OnceLock::new(),
        })
    }

    /// Keeps the command's handles: its breaker, fallback and bulkhead.
    fn attach<FB, C>(&self, command: &CommandLayer<FB, BulkheadLayer, C>) {
        let handles = Handles {
            breaker: command.breaker(),
            fallback: command.fallback(),
            bulkhead: command.bulkhead(),
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
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// Calls the dependency through its command; `None` if the call was
    /// lost (neither the dependency nor the fallback answered).
    async fn call<S>(&self, command: S) -> Option<Section>
    where
        S: Service<(), Response = Section, Error = BoxError>,
    {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match command.oneshot(()).await {
            Ok(section) => {
                match section.served_by {
                    ServedBy::Dependency => &self.ok,
                    ServedBy::Fallback(why) => &self.fallbacks[why as usize],
                }
                .fetch_add(1, Ordering::Relaxed);
                Some(section)
            }
            Err(e) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
                say(
                    &format!("  !! {:5.2}s  {:<15}  ", self.elapsed(), self.name),
                    &format!("call lost: {e}"),
                );
                None
            }
        }
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The `>>` line for a breaker state change.
    fn on_state_change(&self, change: &StateChange) {
        let slot = match change.to {
            State::Open => Some(0),
            State::HalfOpen => Some(1),
            State::Closed => Some(2),
            _ => None,
        };
        if let Some(slot) = slot {
            self.transitions[slot].fetch_add(1, Ordering::Relaxed);
        }
        let open_for = change.open_for.unwrap_or_default().as_secs();
        let why = match change.reason {
            TransitionReason::FailureRate { rate } => {
                // The listener is not told the counts behind the rate; the
                // handle still has them.
                let counts = self.handles.get().map(|h| h.breaker.counts());
                let detail = counts.map_or(String::new(), |c| {
                    let parts = [
                        (c.successes, "ok"),
                        (c.failures, "failed"),
                        (c.timeouts, "timed out"),
                        (c.rejections, "rejected by the bulkhead"),
                    ];
                    let parts: Vec<_> = parts
                        .iter()
                        .filter(|(n, _)| *n > 0)
                        .map(|(n, what)| format!("{n} {what}"))
                        .collect();
                    format!(" ({})", parts.join(", "))
                });
                format!(
                    "{:.0}% of the calls in the last {}s failed{detail}; short-circuiting for {open_for}s",
                    rate * 100.0,
                    WINDOW.as_secs(),
                )
            }
            TransitionReason::OpenElapsed => "open time is up; letting one probe through".into(),
            TransitionReason::ProbeFailed => {
                format!("the probe failed; short-circuiting for another {open_for}s")
            }
            TransitionReason::ProbesSucceeded => {
                "the probe succeeded; calls flow again, fresh window".into()
            }
            ref other => other.as_str().into(),
        };
        say(
            &format!("  >> {:5.2}s  {:<15}  ", self.elapsed(), self.name),
            &format!("{} -> {}: {why}", change.from, change.to),
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

/// When to keep a page to show in the summary: all healthy; recommendations
/// and ratings down; a bookmarks instance down (the page is whole).
const SAMPLES_AT: [Duration; 3] = [secs(2), Duration::from_millis(9_500), secs(18)];

/// Pages served, and how.
#[derive(Default)]
struct Pages {
    /// The first page started after each of `SAMPLES_AT`.
    samples: Mutex<[Option<(Duration, String)>; 3]>,
    served: AtomicU64,
    /// Served with at least one section from a fallback.
    degraded: AtomicU64,
    failed: AtomicU64,
    /// The slowest page since the last line (µs).
    slowest: AtomicU64,
    /// The pages that ended since the last line, and how each one's calls
    /// ended: counted together, under one lock, so that a line always adds
    /// up (per dependency, ok + fallbacks + lost = pages).
    this_second: Mutex<Second>,
}

/// The pages that ended in one second, and how their calls ended.
#[derive(Debug, Default)]
struct Second {
    pages: u64,
    degraded: u64,
    failed: u64,
    deps: [Tally; 3],
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

/// Fetches the three sections at once, and renders the page.
async fn render_page<R, T, B>(
    deps: &[Arc<Dep>; 3],
    pages: &Pages,
    recs: R,
    ratings: T,
    bookmarks: B,
) where
    R: Service<(), Response = Section, Error = BoxError>,
    T: Service<(), Response = Section, Error = BoxError>,
    B: Service<(), Response = Section, Error = BoxError>,
{
    let began = Instant::now();
    let since_start = began - deps[0].started;

    let (recs, ratings, bookmarks) = tokio::join!(
        deps[0].call(recs),
        deps[1].call(ratings),
        deps[2].call(bookmarks)
    );
    let ended = [&recs, &ratings, &bookmarks].map(|s| s.as_ref().map(|s| s.served_by));
    let page = match (recs, ratings, bookmarks) {
        (Some(recs), Some(ratings), Some(bookmarks)) => Some(render(&recs, &ratings, &bookmarks)),
        _ => None,
    };
    {
        let mut second = pages.this_second.lock().unwrap();
        second.pages += 1;
        match &page {
            Some((_, degraded)) => second.degraded += u64::from(*degraded),
            None => second.failed += 1,
        }
        for (tally, ended) in second.deps.iter_mut().zip(ended) {
            tally.add(ended);
        }
    }
    match page {
        Some((html, degraded)) => {
            // A real service would send the HTML back; the demo keeps a few.
            let mut samples = pages.samples.lock().unwrap();
            let due = SAMPLES_AT.iter().zip(samples.iter_mut());
            if let Some((_, sample)) = due.filter(|(at, _)| since_start >= **at).last() {
                sample.get_or_insert((since_start, html));
            }
            drop(samples);
            pages.served.fetch_add(1, Ordering::Relaxed);
            if degraded {
                pages.degraded.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            pages.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    let took = began.elapsed().as_micros() as u64;
    pages.slowest.fetch_max(took, Ordering::Relaxed);
}

// ===== bookmarks' instances =====

/// `bookmarks`' instances, and the balancer in front of them.
struct Fleet {
    servers: Vec<Server>,
    handle: BalanceHandle,
    /// Calls that reached the balancer: past the breaker and the bulkhead.
    calls: Arc<AtomicU64>,
}

impl Fleet {
    fn name(n: usize) -> String {
        format!("b{}", n + 1)
    }

    /// Each instance's statistics, in the servers' order. The handle names
    /// an endpoint by its key's `Debug` form.
    fn stats(&self) -> Vec<Option<EndpointStats>> {
        let stats = self.handle.endpoints();
        self.servers
            .iter()
            .map(|s| {
                let key = format!("{:?}", s.addr);
                stats.iter().find(|e| e.key == key).cloned()
            })
            .collect()
    }

    /// Attempts the balancer made, and the retries among them.
    fn attempts_and_retries(&self) -> (u64, u64) {
        let attempts: u64 = self.stats().iter().flatten().map(|e| e.selected).sum();
        let calls = self.calls.load(Ordering::Relaxed);
        (attempts, attempts.saturating_sub(calls))
    }

    fn received(&self) -> Vec<u64> {
        self.servers
            .iter()
            .map(|s| s.upstream.received.load(Ordering::Relaxed))
            .collect()
    }
}

/// What the ejection watcher remembers of one instance.
#[derive(Debug, Clone, Default)]
struct Watched {
    ejected: bool,
    ejections: u64,
    /// Ejections since it last answered: the next one lasts twice as long.
    in_a_row: u32,
    since: Option<Instant>,
    /// Back from an ejection, and the requests its server had seen by then.
    probation: Option<u64>,
}

/// Prints a `>>` line whenever `bookmarks`' balancer ejects or readmits an
/// instance, polling its handle: `ejections` going up is an ejection (even
/// one that ended and began again between two polls), `ejected` going
/// false is the end of one.
async fn watch_ejections(
    started: Instant,
    handle: BalanceHandle,
    instances: Vec<(SocketAddr, Arc<Upstream>)>,
) {
    let mut watched = vec![Watched::default(); instances.len()];
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticks.tick().await;
        let stats = handle.endpoints();
        for (n, ((addr, upstream), w)) in instances.iter().zip(&mut watched).enumerate() {
            let key = format!("{addr:?}");
            let Some(s) = stats.iter().find(|e| e.key == key) else {
                continue;
            };
            let tell = |what: String| {
                let who = format!("bookmarks {}", Fleet::name(n));
                let at = started.elapsed().as_secs_f64();
                say(&format!("  >> {at:5.2}s  {who:<15}  "), &what)
            };
            let received = upstream.received.load(Ordering::Relaxed);
            if s.ejections > w.ejections {
                let out_for = (EJECT_FOR * 2u32.pow(w.in_a_row.min(10))).min(EJECT_FOR_MAX);
                let why = if w.in_a_row > 0 {
                    "its probe failed".to_string()
                } else {
                    format!("{EJECT_AFTER} failed attempts in a row")
                };
                tell(format!(
                    "ejected by the balancer: {why}; left out for {}s",
                    out_for.as_secs()
                ));
                w.in_a_row += 1;
                w.since = Some(Instant::now());
                w.probation = None;
            } else if w.ejected && !s.ejected {
                let out = w.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                tell(format!(
                    "back on probation after {out:.1}s out: its next answer decides"
                ));
                w.probation = Some(received);
            }
            if let Some(before) = w.probation {
                if !s.ejected && received > before {
                    tell("answered on probation: back in rotation".into());
                    w.probation = None;
                    w.in_a_row = 0;
                }
            }
            w.ejected = s.ejected;
            w.ejections = s.ejections;
        }
    }
}

// ===== the per-second lines =====

/// Prints the per-second lines and plays the incidents at their times.
struct Reporter {
    started: tokio::time::Instant,
    deps: [Arc<Dep>; 3],
    pages: Arc<Pages>,
    fleet: Fleet,
    /// Requests each bookmarks instance had seen, and the balancer's
    /// retries, at the last line.
    last_fleet: (Vec<u64>, u64),
}

/// The per-second line's columns: pages, then per dependency, then
/// bookmarks' instances. The header and the lines share them.
fn pages_cells(
    t: &str,
    pages: &dyn fmt::Display,
    degr: &dyn fmt::Display,
    slow: &dyn fmt::Display,
) -> String {
    format!("{t:>3} {pages:>5} {degr:>4} {slow:>4}")
}

fn dep_cells(
    breaker: &dyn fmt::Display,
    ok: &dyn fmt::Display,
    fb: &dyn fmt::Display,
    why: &dyn fmt::Display,
) -> String {
    format!(" | {breaker:<1}{ok:>3}{fb:>3} {why:<9}")
}

fn instance_cell(requests: &dyn fmt::Display, ejected: bool) -> String {
    format!(" {requests:>2}{}", if ejected { '*' } else { ' ' })
}

impl Reporter {
    /// The legend and the column heads, printed once.
    fn header(&self) {
        println!("One line per second, for the pages that ended in it (a page ends when its last call does):");
        let lines = [
            "pages = pages that ended; degr = those served with at least one section from a fallback; \
             slow = the slowest of them (ms).",
            "Per dependency, how those pages' calls to it ended, so that ok + fb (+ e) = pages: \
             B = its breaker at the end of the second (. closed, O open, H half-open); \
             ok = answered by the dependency; fb = answered by its fallback, and why: \
             f HTTP 500, c connection error, t timed out, r rejected by the bulkhead, \
             s short-circuited by the open breaker (e = no answer at all, the call lost: never expected).",
            "Bookmarks' instances: the requests each one's server received in the second \
             (* = ejected by the balancer at its end); rt = attempts the balancer retried \
             on another instance. These count requests, not pages.",
        ];
        for line in lines {
            say("  ", line);
        }
        println!();
        let mut top = " ".repeat(pages_cells("", &"", &"", &"").len());
        let mut columns = pages_cells("t", &"pages", &"degr", &"slow");
        for dep in &self.deps {
            let cells = dep_cells(&"B", &"ok", &"fb", &"why");
            top += &format!(" | {:<w$}", dep.name, w = cells.len() - 3);
            columns += &cells;
        }
        top += " | instances";
        columns += " |";
        for n in 0..self.fleet.servers.len() {
            columns += &instance_cell(&Fleet::name(n), false);
        }
        columns += &format!(" {:>2}", "rt");
        println!("{}", top.trim_end());
        println!("{}", columns.trim_end());
    }

    /// Whether pages ended since the last line.
    fn has_news(&self) -> bool {
        self.pages.this_second.lock().unwrap().pages > 0
    }

    /// One line: the pages that ended since the last one.
    fn line(&mut self, label: &str) {
        let second = std::mem::take(&mut *self.pages.this_second.lock().unwrap());
        let slowest = self.pages.slowest.swap(0, Ordering::Relaxed);
        let mut line = pages_cells(label, &second.pages, &second.degraded, &(slowest / 1000));
        for (dep, tally) in self.deps.iter().zip(&second.deps) {
            let breaker = match dep.handles().breaker.state() {
                State::Closed => '.',
                State::Open => 'O',
                State::HalfOpen => 'H',
                _ => '?',
            };
            line += &dep_cells(&breaker, &tally.ok, &tally.fallback_total(), &tally.why());
        }
        // bookmarks' instances: requests each received, `*` if ejected now.
        let received = self.fleet.received();
        let (_, retries) = self.fleet.attempts_and_retries();
        let stats = self.fleet.stats();
        line += " |";
        for (n, now) in received.iter().enumerate() {
            let ejected = stats[n].as_ref().is_some_and(|e| e.ejected);
            line += &instance_cell(&(now - self.last_fleet.0[n]), ejected);
        }
        line += &format!(" {:>2}", retries - self.last_fleet.1);
        self.last_fleet = (received, retries);
        println!("{}", line.trim_end());
        if second.failed > 0 {
            println!("  !! {} pages of that second FAILED", second.failed);
        }
    }

    fn say(&self, what: &str) {
        let at = self.started.elapsed().as_secs_f64();
        say(&format!("  -- {at:5.2}s  "), what);
    }

    /// A line every second, and the incidents at their times.
    async fn run(mut self) -> Result<Reporter, BoxError> {
        for second in 1..=RUN_FOR.as_secs() {
            tokio::time::sleep_until(self.started + secs(second)).await;
            self.line(&format!("{second}s"));
            let at = secs(second);
            if at == RECS_FAILING.start {
                self.say("recommendations starts failing: 80% of its answers are 500s");
            }
            if at == RECS_FAILING.end {
                self.say("recommendations has recovered");
            }
            if at == RATINGS_SLOW.start {
                self.say(
                    "ratings turns slow: answers take 1-1.5 s; its timeout is 250 ms, its bulkhead 4",
                );
            }
            if at == RATINGS_SLOW.end {
                self.say("ratings is fast again");
            }
            let b = BOOKMARKS_KILLED;
            if at == BOOKMARKS_DOWN.start {
                self.fleet.servers[b].kill().await;
                self.say(&format!(
                    "bookmarks' instance {} is killed: listener on {} closed, connections cut",
                    Fleet::name(b),
                    self.fleet.servers[b].addr
                ));
            }
            if at == BOOKMARKS_DOWN.end {
                self.fleet.servers[b].restart()?;
                self.say(&format!(
                    "bookmarks' instance {} is restarted on {}",
                    Fleet::name(b),
                    self.fleet.servers[b].addr
                ));
            }
        }
        Ok(self)
    }
}

// ===== the home page service =====

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = tokio::time::Instant::now();
    let std_started = started.into_std();

    // The three dependencies' servers.
    let mut recs_upstream = Upstream::new("Top picks for you", std_started, 1);
    recs_upstream.failing = Some(RECS_FAILING);
    let mut ratings_upstream = Upstream::new("4.6 stars", std_started, 2);
    ratings_upstream.slow = Some(RATINGS_SLOW);
    let recs_server = Server::start(Arc::new(recs_upstream)).await?;
    let ratings_server = Server::start(Arc::new(ratings_upstream)).await?;
    // bookmarks: several instances of the same server.
    let mut bookmarks_servers = Vec::new();
    for n in 0..BOOKMARKS_INSTANCES {
        let upstream = Upstream::new("Continue watching: episode 3", std_started, 3 + n as u64);
        bookmarks_servers.push(Server::start(Arc::new(upstream)).await?);
    }
    let upstreams: [Vec<Arc<Upstream>>; 3] = [
        vec![recs_server.upstream.clone()],
        vec![ratings_server.upstream.clone()],
        bookmarks_servers
            .iter()
            .map(|s| s.upstream.clone())
            .collect(),
    ];

    let recs = Dep::new("recommendations", std_started);
    let ratings = Dep::new("ratings", std_started);
    let bookmarks = Dep::new("bookmarks", std_started);

    // One command per dependency: fallback → breaker → bulkhead → timeout.
    let recs_command = Command::builder("RecommendationsGet")
        .group("Recommendations")
        .timeout(Duration::from_millis(300))
        .bulkhead(10)
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

    // The services: one pooled HTTP client, each dependency behind its command.
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let get = |addr: SocketAddr, path: &str| -> Result<_, BoxError> {
        let uri: Uri = format!("http://{addr}{path}").parse()?;
        let client = client.clone();
        Ok(move |()| fetch(client.clone(), uri.clone()))
    };
    let recs_service = ServiceBuilder::new()
        .layer(recs_command.clone())
        .service_fn(get(recs_server.addr, "/recommendations")?);
    let ratings_service = ServiceBuilder::new()
        .layer(ratings_command.clone())
        .service_fn(get(ratings_server.addr, "/ratings")?);

    // bookmarks: the command wraps a balancer over the instances, which
    // retries a failed call on another instance and ejects a failing one.
    let instances = bookmarks_servers
        .iter()
        .map(|s| {
            Ok(Endpoint::new(
                s.addr,
                tower::service_fn(get(s.addr, "/bookmarks")?),
            ))
        })
        .collect::<Result<Vec<_>, BoxError>>()?;
    let bookmarks_balance = Balance::builder("bookmarks")
        .rule(RoundRobin::new())
        .retries_next(1)
        .eject_after(EJECT_AFTER)
        .eject_for(EJECT_FOR, EJECT_FOR_MAX)
        .policy(RetryUnanswered)
        .build(Endpoints::fixed(instances))?;
    let bookmarks_handle = bookmarks_balance.handle();
    // Counts the calls that reach the balancer, to tell its retries apart.
    let balanced_calls = Arc::new(AtomicU64::new(0));
    let count_call = {
        let calls = balanced_calls.clone();
        move |request: ()| {
            calls.fetch_add(1, Ordering::Relaxed);
            request
        }
    };
    let bookmarks_service = ServiceBuilder::new()
        .layer(bookmarks_command.clone())
        .map_request(count_call)
        .service(bookmarks_balance);

    // See it live: every command and balancer above is in the global
    // registry; the stream (and the page reading it) show them as they run.
    let live = rampart::stream::Server::new(rampart::stream::HystrixStream::new())
        .start()
        .await?;
    println!("watch it live while it runs:");
    println!("  dashboard page: {}", live.url("/"));
    println!(
        "  stream (Hystrix dashboard, Turbine): {}",
        live.url("/hystrix.stream")
    );
    println!();
    println!(
        "home page service: {PAGES_PER_SECOND} pages/s for {}s; each page calls, at once:",
        RUN_FOR.as_secs()
    );
    for (server, command) in [
        (&recs_server, recs_command.name()),
        (&ratings_server, ratings_command.name()),
    ] {
        println!("  http://{}  through command {command}", server.addr);
    }
    for (n, server) in bookmarks_servers.iter().enumerate() {
        println!(
            "  http://{}  through command {} and balancer {:?}: instance {}",
            server.addr,
            bookmarks_command.name(),
            bookmarks_handle.name(),
            Fleet::name(n)
        );
    }
    say(
        "",
        &format!(
            "Each command: timeout, bulkhead, breaker (trips at >= {:.0}% failed of >= {MIN_CALLS} \
             calls in the last {}s, open {}s, then 1 probe), fallback. The balancer: round robin, \
             1 retry on another instance, ejection after {EJECT_AFTER} failures in a row for {}s, \
             doubling up to {}s.",
            FAILURE_RATE * 100.0,
            WINDOW.as_secs(),
            OPEN_FOR.as_secs(),
            EJECT_FOR.as_secs(),
            EJECT_FOR_MAX.as_secs()
        ),
    );
    println!();
    println!("What goes wrong, and when:");
    let span = |r: &Range<Duration>| format!("{}-{}s", r.start.as_secs(), r.end.as_secs());
    for (when, what) in [
        (
            span(&RECS_FAILING),
            format!(
                "recommendations fails: {:.0}% of its answers are 500s",
                FAILING_ERROR_RATE * 100.0
            ),
        ),
        (
            span(&RATINGS_SLOW),
            format!(
                "ratings is slow: answers take {}-{}ms, over its 250ms timeout",
                SLOW_MS.start, SLOW_MS.end
            ),
        ),
        (
            span(&BOOKMARKS_DOWN),
            format!(
                "bookmarks' instance {} is down: killed, then restarted on its port",
                Fleet::name(BOOKMARKS_KILLED)
            ),
        ),
        (
            "always".to_string(),
            format!(
                "every server also answers {:.0}% of its calls with a 500 at random, even when \
                 healthy (NORMAL_ERROR_RATE): the few fallbacks (f) outside the incidents",
                NORMAL_ERROR_RATE * 100.0
            ),
        ),
    ] {
        say(&format!("  {when:<8}"), &what);
    }
    println!();

    let deps = [recs.clone(), ratings.clone(), bookmarks.clone()];
    let pages = Arc::new(Pages::default());
    let reporter = Reporter {
        started,
        deps: deps.clone(),
        pages: pages.clone(),
        last_fleet: (vec![0; bookmarks_servers.len()], 0),
        fleet: Fleet {
            servers: bookmarks_servers,
            handle: bookmarks_handle.clone(),
            calls: balanced_calls,
        },
    };
    reporter.header();
    let watcher = tokio::spawn(watch_ejections(
        std_started,
        bookmarks_handle.clone(),
        reporter
            .fleet
            .servers
            .iter()
            .map(|s| (s.addr, s.upstream.clone()))
            .collect(),
    ));
    let reporting = tokio::spawn(reporter.run());

    // The home page: a page every 1/30 s, each on its own task.
    let deps = Arc::new(deps);
    let mut in_flight = JoinSet::new();
    let mut ticks = tokio::time::interval(secs(1) / PAGES_PER_SECOND);
    let total = u64::from(PAGES_PER_SECOND) * RUN_FOR.as_secs();
    for _ in 0..total {
        ticks.tick().await;
        let (r, t, b) = (
            recs_service.clone(),
            ratings_service.clone(),
            bookmarks_service.clone(),
        );
        let (deps, pages) = (deps.clone(), pages.clone());
        in_flight.spawn(async move { render_page(&deps, &pages, r, t, b).await });
        while in_flight.try_join_next().is_some() {}
    }
    while let Some(page) = in_flight.join_next().await {
        page?;
    }
    let mut reporter = reporting.await??;
    // The pages still in flight when the last full second ended.
    if reporter.has_news() {
        reporter.line("end");
    }
    watcher.abort();
    let mut fleet = reporter.fleet;

    // ===== the summary =====
    let served = pages.served.load(Ordering::Relaxed);
    let degraded = pages.degraded.load(Ordering::Relaxed);
    let failed = pages.failed.load(Ordering::Relaxed);
    println!();
    say(
        "",
        &format!(
            "== after {:.1}s: {total} pages requested, {served} served ({degraded} of them with \
             a fallback section), {failed} failed ==",
            started.elapsed().as_secs_f64(),
        ),
    );
    println!();
    println!("what the page looked like:");
    for (at, html) in pages.samples.lock().unwrap().iter().flatten() {
        println!("  at {:5.2}s: {html}", at.as_secs_f64());
    }
    println!();
    let row = |cells: [&dyn fmt::Display; 12]| {
        let [name, calls, ok, fb, f, c, t, r, s, lost, saw, breaker] = cells;
        println!(
            "{name:<15} {calls:>5} {ok:>5} {fb:>5} | {f:>5} {c:>5} {t:>7} {r:>8} {s:>6} | {lost:>4} {saw:>6} {breaker:>7}"
        );
    };
    println!("{:<34}| {:<44}|", "", "fallbacks, by why the call failed");
    row([
        &"dependency",
        &"calls",
        &"ok",
        &"fb",
        &"500",
        &"conn",
        &"timeout",
        &"bulkhead",
        &"short",
        &"lost",
        &"saw",
        &"o/h/c",
    ]);
    let (mut calls, mut by_deps, mut by_fallbacks, mut spared) = (0, 0, 0, 0);
    for (dep, upstream) in deps.iter().zip(&upstreams) {
        let t = dep.tally();
        calls += t.calls;
        by_deps += t.ok;
        by_fallbacks += t.fallback_total();
        let fb = |why: Why| t.fallbacks[why as usize];
        spared += fb(Why::ShortCircuited) + fb(Why::Rejected);
        let [opened, half_open, closed] = dep
            .transitions
            .each_ref()
            .map(|n| n.load(Ordering::Relaxed));
        row([
            &dep.name,
            &t.calls,
            &t.ok,
            &t.fallback_total(),
            &fb(Why::Http500),
            &fb(Why::Connection),
            &fb(Why::TimedOut),
            &fb(Why::Rejected),
            &fb(Why::ShortCircuited),
            &t.lost,
            &upstream
                .iter()
                .map(|u| u.received.load(Ordering::Relaxed))
                .sum::<u64>(),
            &format!("{opened}/{half_open}/{closed}"),
        ]);
    }
    println!();
    for line in [
        "ok: answered by the dependency; fb: answered by its fallback (recommendations -> popular \
         titles, ratings -> no ratings shown, bookmarks -> \"continue watching\" hidden).".to_string(),
        "500, conn: the dependency failed (HTTP 500, connection error); timeout: the timeout cut the \
         call; bulkhead: rejected, the bulkhead was full; short: short-circuited, the open breaker \
         answered at once.".to_string(),
        format!(
            "The last two never reached a server: {spared} calls spared. saw: requests the \
             dependency's servers received. o/h/c: times the breaker opened / turned half-open \
             to probe / closed again."
        ),
    ] {
        say("", &line);
    }

    // bookmarks' instances, as the balancer and their servers saw them.
    println!();
    say(
        "",
        &format!(
            "bookmarks' instances, behind balancer {:?} inside command {}:",
            fleet.handle.name(),
            bookmarks_command.name()
        ),
    );
    println!(
        "{:<8}  {:<16}  {:>8}  {:>10}  {:>9}  {:>11}",
        "instance", "address", "attempts", "server saw", "ejections", "latency now"
    );
    let stats = fleet.stats();
    let received = fleet.received();
    for (n, server) in fleet.servers.iter().enumerate() {
        let e = stats[n].as_ref();
        println!(
            "{:<8}  {:<16}  {:>8}  {:>10}  {:>9}  {:>11}",
            Fleet::name(n),
            server.addr.to_string(),
            e.map_or(0, |e| e.selected),
            received[n],
            e.map_or(0, |e| e.ejections),
            e.map_or("?".into(), |e| format!(
                "{:.1}ms",
                e.latency.as_secs_f64() * 1e3
            )),
        );
    }
    let (attempts, retries) = fleet.attempts_and_retries();
    let balanced = fleet.calls.load(Ordering::Relaxed);
    let saw: u64 = received.iter().sum();
    say(
        "",
        &format!(
            "{balanced} calls reached the balancer; {attempts} attempts = {balanced} calls + \
             {retries} retries on another instance; the instances saw {saw} requests: {} attempts \
             found {} dead (connection refused).",
            attempts.saturating_sub(saw),
            Fleet::name(BOOKMARKS_KILLED)
        ),
    );
    let b = bookmarks.tally();
    let conn_errors = b.fallbacks[Why::Connection as usize];
    let opened = bookmarks.transitions[0].load(Ordering::Relaxed);
    if conn_errors == 0 && opened == 0 {
        say(
            "",
            &format!(
                "Killing {} cost no page its \"continue watching\": no bookmarks call fell back \
                 on a connection error, its breaker never opened.",
                Fleet::name(BOOKMARKS_KILLED)
            ),
        );
    } else {
        say(
            "",
            &format!(
                "Killing {} cost {conn_errors} bookmarks calls their section (connection errors); \
                 its breaker opened {opened} times.",
                Fleet::name(BOOKMARKS_KILLED)
            ),
        );
    }
    let lost = calls - by_deps - by_fallbacks;
    println!();
    say(
        "",
        &format!(
            "calls made {calls} - answered by the dependencies {by_deps} - answered by fallbacks \
             {by_fallbacks} = calls lost = {lost}"
        ),
    );
    let fallbacks = deps.each_ref().map(|d| d.handles().fallback.clone());
    let rampart_served = fallbacks.iter().map(FallbackHandle::successes).sum::<u64>();
    say(
        "",
        &format!(
            "rampart's own fallback counters {}: {rampart_served} fallbacks served, {} failed, {} \
             refused by the fallback cap",
            if rampart_served == by_fallbacks {
                "agree"
            } else {
                "DISAGREE"
            },
            fallbacks.iter().map(FallbackHandle::failures).sum::<u64>(),
            fallbacks
                .iter()
                .map(FallbackHandle::rejections)
                .sum::<u64>(),
        ),
    );
    say(
        "",
        &format!(
            "bulkhead slots still held: {}; breakers now: {}",
            deps.iter()
                .map(|d| d.handles().bulkhead.in_flight())
                .sum::<usize>(),
            deps.iter()
                .map(|d| format!("{} {}", d.name, d.handles().breaker.state()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    for server in &mut fleet.servers {
        server.kill().await;
    }
    Ok(())
}
