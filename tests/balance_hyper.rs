//! The load balancer in front of real hyper HTTP/1 servers on 127.0.0.1:
//! the real-network complement of `tests/balance.rs`.
//!
//! Each test starts its own fleet of servers on random ports. Each server
//! counts the requests it receives, and answers `200` or `503` as an atomic
//! says, optionally after a delay or after a gate the test opens. A server
//! can also be killed: its accept task, which owns the listener and every
//! connection, drops the listener and aborts the connections, waiting until
//! none runs; its port is then held by a socket that is bound but not
//! listening, so connections to it are refused for the rest of the test
//! (and no other test's server can be given the port meanwhile).
//!
//! The endpoint services are plain HTTP/1 clients, one per instance, that
//! open a new connection for every attempt and count their attempts, so a
//! test can count attempts that never reached a server (a refused
//! connection) as well as the requests each server saw.
//!
//! # Time
//!
//! These tests run on the real clock: a paused clock auto-advances whenever
//! the runtime waits on a real socket (see `tests/hyper_server.rs`). Every
//! step awaits the event it depends on (a response, a server's arrival
//! count, a task's end) except one: waiting for an ejection to run out,
//! which nothing signals, is a bounded loop that reads the balancer's
//! handle every few milliseconds ([`poll_until`]).
//!
//! Two tests, each next to a control, reproduce bugs these tests found (a
//! removed endpoint leaking an ejection place; a readmitted endpoint
//! starved under P2C); they guard the fixes.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rampart::balance::rule::{PowerOfTwoChoices, RoundRobin, Rule};
use rampart::balance::{
    Balance, BalanceHandle, Endpoint, EndpointStats, Endpoints, HttpPolicy, Policy,
};
use rampart::circuit_breaker::Outcome;
use rampart::retry::{Backoff, RetryBudget, RetryBudgetExhausted, RetryBudgetExhaustedMarker};
use rampart::{BoxError, ErrorKind};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

/// Every test must finish well within this.
const TEST_LIMIT: Duration = Duration::from_secs(10);

/// Worker threads of the multi-threaded tests. The retry budget may be
/// overdrawn by one retry per thread withdrawing at the same moment
/// (documented on `RetryBudget::try_withdraw`), so bounds on attempts allow
/// `WORKERS - 1` more.
const WORKERS: usize = 2;

// ===== the servers =====

const HEALTHY: u8 = 0;
const UNAVAILABLE: u8 = 1;

struct Control {
    id: usize,
    /// `HEALTHY` (200) or `UNAVAILABLE` (503).
    mode: AtomicU8,
    /// Requests still to answer with 503 whatever the mode.
    fail_next: AtomicU64,
    /// Added before every response.
    delay_ms: AtomicU64,
    /// Requests wait until the gate is open (`true`).
    gate: watch::Sender<bool>,
    /// Requests received so far, also as a channel to wait on.
    received: AtomicU64,
    arrivals: watch::Sender<u64>,
}

struct TestServer {
    addr: SocketAddr,
    control: Arc<Control>,
    /// Stops the accept task, which owns the listener and connections.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Once killed: the port, bound but not listening, so that connecting
    /// to it is refused and no other server can be given it.
    tombstone: Mutex<Option<TcpSocket>>,
}

impl TestServer {
    async fn start(id: usize) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Control {
            id,
            mode: AtomicU8::new(HEALTHY),
            fail_next: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            gate: watch::Sender::new(true),
            received: AtomicU64::new(0),
            arrivals: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, control.clone(), stopped));
        TestServer {
            addr,
            control,
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
            tombstone: Mutex::new(None),
        }
    }

    /// Stops the server: its listener and every open connection are gone
    /// when this returns, and new connections are refused.
    async fn kill(&self) {
        let stop = self.stop.lock().unwrap().take().expect("killed once");
        let task = self.task.lock().unwrap().take().unwrap();
        stop.send(()).unwrap();
        task.await.unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        // The connections the server closed may linger in TIME_WAIT.
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(self.addr)
            .expect("the killed server's port is still free");
        *self.tombstone.lock().unwrap() = Some(socket);
    }
}

async fn accept(listener: TcpListener, control: Arc<Control>, mut stop: oneshot::Receiver<()>) {
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
        let control = control.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(respond(&control).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Killed: refuse new connections, abort every open one, and wait until
    // none runs any more. (Aborting alone returns while a connection task
    // being polled on another worker finishes that poll, and may still
    // count and answer a request.)
    drop(listener);
    connections.shutdown().await;
}

/// Counts the request, decides its status on arrival, waits for the gate
/// and the delay, and answers with the server's id as the body.
async fn respond(control: &Control) -> Response<Full<Bytes>> {
    control.received.fetch_add(1, Ordering::SeqCst);
    let fail = control.mode.load(Ordering::SeqCst) == UNAVAILABLE
        || control
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    control.arrivals.send_modify(|n| *n += 1);
    let mut gate = control.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    let delay = control.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        // The server's own slowness, not synchronisation.
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = if fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Full::new(Bytes::from(control.id.to_string())));
    *response.status_mut() = status;
    response
}

// ===== the clients =====

type Req = Request<Full<Bytes>>;
type HttpResult = Result<Response<Bytes>, BoxError>;
type Client = BoxCloneSyncService<Req, Response<Bytes>, BoxError>;

/// What the endpoint services need to reach each instance: cheap to clone
/// into a `watch` feed's `make`.
#[derive(Clone)]
struct Clients {
    addrs: Arc<[SocketAddr]>,
    attempts: Arc<[AtomicU64]>,
}

impl Clients {
    /// A client of instance `id` that counts its attempts.
    fn client(&self, id: usize) -> Client {
        let this = self.clone();
        BoxCloneSyncService::new(tower::service_fn(move |request: Req| {
            this.attempts[id].fetch_add(1, Ordering::SeqCst);
            send(this.addrs[id], request)
        }))
    }

    /// Instance `id` as an endpoint keyed by its id.
    fn endpoint(&self, id: usize) -> Endpoint<usize, Client> {
        Endpoint::new(id, self.client(id))
    }
}

/// Sends `request` to `addr` on a new connection and reads the body in
/// full: the body is part of the call, so a connection lost mid-body is the
/// call's failure too.
async fn send(addr: SocketAddr, mut request: Req) -> HttpResult {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&addr.to_string())?,
    );
    let (parts, body) = sender.send_request(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

fn get() -> Req {
    Request::get("/").body(Full::new(Bytes::new())).unwrap()
}

/// The id of the server that answered.
fn served_by(response: &Response<Bytes>) -> usize {
    std::str::from_utf8(response.body())
        .unwrap()
        .parse()
        .unwrap()
}

async fn call<P: Policy<Req, Response<Bytes>>>(
    lb: &mut Balance<usize, Client, P>,
    request: Req,
) -> HttpResult {
    lb.ready().await?.call(request).await
}

/// A successful call's response; panics with the error otherwise.
fn ok(result: HttpResult) -> Response<Bytes> {
    let response = result.unwrap_or_else(|e| panic!("the call failed: {e} ({e:?})"));
    assert_eq!(response.status(), StatusCode::OK);
    response
}

// ===== the fleet =====

struct Fleet {
    servers: Vec<TestServer>,
    clients: Clients,
}

impl Fleet {
    async fn start(n: usize) -> Fleet {
        let mut servers = Vec::new();
        for id in 0..n {
            servers.push(TestServer::start(id).await);
        }
        let clients = Clients {
            addrs: servers.iter().map(|s| s.addr).collect(),
            attempts: (0..n).map(|_| AtomicU64::new(0)).collect(),
        };
        Fleet { servers, clients }
    }

    fn endpoints(&self) -> Endpoints<usize, Client> {
        Endpoints::fixed((0..self.servers.len()).map(|id| self.clients.endpoint(id)))
    }

    fn control(&self, id: usize) -> &Control {
        &self.servers[id].control
    }

    fn set_mode(&self, id: usize, mode: u8) {
        self.control(id).mode.store(mode, Ordering::SeqCst);
    }

    fn set_gate(&self, id: usize, open: bool) {
        self.control(id).gate.send_replace(open);
    }

    /// Waits until server `id` has received `n` requests in all.
    async fn arrived(&self, id: usize, n: u64) {
        let mut arrivals = self.control(id).arrivals.subscribe();
        arrivals.wait_for(|&seen| seen >= n).await.unwrap();
    }

    fn received(&self, id: usize) -> u64 {
        self.control(id).received.load(Ordering::SeqCst)
    }

    fn all_received(&self) -> Vec<u64> {
        (0..self.servers.len())
            .map(|id| self.received(id))
            .collect()
    }

    /// Attempts the endpoint services made, reaching a server or not.
    fn total_attempts(&self) -> u64 {
        self.clients
            .attempts
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .sum()
    }

    async fn kill(&self, id: usize) {
        self.servers[id].kill().await;
    }
}

// ===== helpers =====

fn stats(handle: &BalanceHandle, id: usize) -> EndpointStats {
    handle
        .endpoints()
        .into_iter()
        .find(|e| e.key == id.to_string())
        .unwrap_or_else(|| panic!("endpoint {id} is in the set"))
}

fn ejected(handle: &BalanceHandle) -> BTreeSet<usize> {
    handle
        .endpoints()
        .iter()
        .filter(|e| e.ejected)
        .map(|e| e.key.parse().unwrap())
        .collect()
}

fn print_stats(test: &str, fleet: &Fleet, handle: &BalanceHandle) {
    let mut stats = handle.endpoints();
    stats.sort_by(|a, b| a.key.cmp(&b.key));
    for e in stats {
        let id: usize = e.key.parse().unwrap();
        eprintln!(
            "{test}: endpoint {id}: received {:4}, selected {:4}, latency {:>9.3?}, ejected {} ({} ejections, {} failures in a row)",
            fleet.received(id),
            e.selected,
            e.latency,
            e.ejected,
            e.ejections,
            e.consecutive_failures
        );
    }
}

/// Makes `calls` calls of `GET /` from `tasks` concurrent tasks, calling
/// `after_each` with the number of calls finished so far; returns every
/// result.
async fn load<P: Policy<Req, Response<Bytes>>>(
    lb: Balance<usize, Client, P>,
    calls: usize,
    tasks: usize,
    after_each: impl Fn(usize) + Send + Sync + 'static,
) -> Vec<HttpResult> {
    let issued = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let after_each = Arc::new(after_each);
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let (mut lb, issued, finished, after_each) = (
            lb.clone(),
            issued.clone(),
            finished.clone(),
            after_each.clone(),
        );
        set.spawn(async move {
            let mut results = Vec::new();
            while issued.fetch_add(1, Ordering::SeqCst) < calls {
                results.push(call(&mut lb, get()).await);
                after_each(finished.fetch_add(1, Ordering::SeqCst) + 1);
            }
            results
        });
    }
    let mut results = Vec::new();
    while let Some(task) = set.join_next().await {
        results.extend(task.unwrap());
    }
    results
}

/// Waits, 5 ms at a time and for at most `limit`, until `done` holds. Only
/// for waiting on time to pass (an ejection to run out): nothing signals
/// that, so there is no event to await.
async fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Runs a test body under [`TEST_LIMIT`].
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test ran past its time limit");
}

/// A budget that never runs out, for tests about something else.
fn ample_budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10), 100_000, 10.0).unwrap()
}

// ===== 1. an instance dies under load =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_mid_load_loses_no_call_and_takes_it_out_of_rotation() {
    bounded(async {
        const VICTIM: usize = 2;
        const KILL_AFTER: usize = 50;
        const AFTER_KILL: usize = 150;
        const TASKS: usize = 4;
        // Never reached: only bounds the loop should the kill not happen.
        const CAP: usize = 2_000;
        let fleet = Fleet::start(5).await;
        // A request in flight on the victim when it dies can fail with an
        // error hyper reports without an `io::Error` source (the connection
        // closed before the request was sent, or before its response).
        // `DefaultPolicy` does not retry those (the request may have been
        // handled), nor did `HttpPolicy` before it retried idempotent
        // requests after any error: about one run in fifteen, one call
        // failed so. `HyperPolicy` retries them on top of `HttpPolicy`.
        let lb = Balance::builder("kill")
            .policy(HyperPolicy)
            .backoff(Backoff::none())
            .build(fleet.endpoints())
            .unwrap();
        let handle = lb.handle();

        // Tasks call until AFTER_KILL calls have been started after the
        // kill; the call that finishes KILL_AFTER-th triggers the kill.
        let finished = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let started_after_kill = Arc::new(AtomicUsize::new(0));
        let issued = Arc::new(AtomicUsize::new(0));
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let kill_tx = Arc::new(Mutex::new(Some(kill_tx)));
        let mut tasks = JoinSet::new();
        for _ in 0..TASKS {
            let mut lb = lb.clone();
            let (finished, killed, started_after_kill, issued, kill_tx) = (
                finished.clone(),
                killed.clone(),
                started_after_kill.clone(),
                issued.clone(),
                kill_tx.clone(),
            );
            tasks.spawn(async move {
                let mut results = Vec::new();
                while issued.fetch_add(1, Ordering::SeqCst) < CAP {
                    if killed.load(Ordering::SeqCst)
                        && started_after_kill.fetch_add(1, Ordering::SeqCst) >= AFTER_KILL
                    {
                        break;
                    }
                    results.push(call(&mut lb, get()).await);
                    if finished.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                        let _ = kill_tx.lock().unwrap().take().unwrap().send(());
                    }
                }
                results
            });
        }
        kill_rx.await.unwrap();
        fleet.kill(VICTIM).await;
        let finished_at_kill = finished.load(Ordering::SeqCst);
        killed.store(true, Ordering::SeqCst);
        let received_at_kill = fleet.received(VICTIM);

        let mut results = Vec::new();
        while let Some(task) = tasks.join_next().await {
            results.extend(task.unwrap());
        }
        print_stats("kill", &fleet, &handle);
        eprintln!(
            "kill: {} calls, {finished_at_kill} finished before the kill; victim received {received_at_kill}",
            results.len()
        );
        assert!(
            started_after_kill.load(Ordering::SeqCst) > AFTER_KILL,
            "the loop ended by count, not by the cap"
        );
        let failures: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| format!("{e} ({e:?})"))
            .collect();
        assert!(failures.is_empty(), "failed calls: {failures:#?}");
        assert!(results.len() >= KILL_AFTER + AFTER_KILL);
        for result in results {
            ok(result);
        }
        assert_eq!(fleet.received(VICTIM), received_at_kill, "dead is dead");

        // The dead instance is out of rotation within `eject_after`
        // attempts: ejected at the fifth failure in a row, or steered away
        // from sooner, each failure having doubled its load estimate. (This
        // test once required the ejection; the instance then had to fail
        // five times first.)
        let victim = stats(&handle, VICTIM);
        let attempts_after_kill =
            fleet.clients.attempts[VICTIM].load(Ordering::SeqCst) - received_at_kill;
        eprintln!("kill: {attempts_after_kill} attempts on the victim after the kill");
        assert!(
            attempts_after_kill <= u64::from(rampart::balance::DEFAULT_EJECT_AFTER),
            "{attempts_after_kill} attempts after the kill: {victim:?}"
        );
        let healthy_worst = handle
            .endpoints()
            .iter()
            .filter(|e| e.key != VICTIM.to_string())
            .map(|e| e.latency)
            .max()
            .unwrap();
        assert!(
            victim.ejected || victim.latency > healthy_worst,
            "ejected or costlier than any healthy instance: {victim:?}"
        );
        assert!(victim.ejections <= 1, "{victim:?}");
        assert!(ejected(&handle).is_subset(&BTreeSet::from([VICTIM])));
    })
    .await;
}

// ===== 2. a slow instance =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_gets_clearly_less_traffic_under_p2c() {
    bounded(async {
        const SLOW: usize = 0;
        const CALLS: usize = 300;
        let fleet = Fleet::start(5).await;
        fleet.control(SLOW).delay_ms.store(50, Ordering::SeqCst);
        // The default rule: power of two choices on peak-EWMA latency. With
        // the default 10 s decay the fast instances' estimates stay near the
        // 30 ms initial one over so short a run, while the slow one's peaks
        // at once past 50 ms; and its calls in flight weigh on it the
        // longest (cost = latency × (in flight + 1)).
        let lb = Balance::builder("slow").build(fleet.endpoints()).unwrap();
        let handle = lb.handle();

        let results = load(lb, CALLS, 8, |_| {}).await;
        assert_eq!(results.into_iter().map(ok).count(), CALLS);

        print_stats("slow", &fleet, &handle);
        let received = fleet.all_received();
        assert_eq!(received.iter().sum::<u64>(), CALLS as u64, "no retries");
        let slow = received[SLOW] as f64;
        let fast: Vec<f64> = (0..5)
            .filter(|&id| id != SLOW)
            .map(|id| received[id] as f64)
            .collect();
        let fast_mean = fast.iter().sum::<f64>() / fast.len() as f64;
        eprintln!("slow: distribution {received:?}; fast mean {fast_mean:.1}");
        assert!(
            slow < fast_mean / 2.0,
            "the slow instance got {slow} calls, a fast one {fast_mean:.1} on average: {received:?}"
        );
    })
    .await;
}

// ===== 3. a failing instance is ejected and readmitted =====

/// Instance 0 of 4 answers 503: it is ejected after `eject_after` failures,
/// readmitted after 200 ms (on probation), ejected again by its first
/// request, and once healthy and back it serves again. Calls are
/// sequential.
async fn eject_readmit_recover(rule: impl Rule, eject_after: u32) {
    let eject_after_requests = u64::from(eject_after);
    bounded(async {
        const VICTIM: usize = 0;
        const FIRST: Duration = Duration::from_millis(200);
        let fleet = Fleet::start(4).await;
        fleet.set_mode(VICTIM, UNAVAILABLE);
        let mut lb = Balance::builder("eject")
            .rule(rule)
            .policy(HttpPolicy)
            .eject_after(eject_after)
            .eject_for(FIRST, Duration::from_secs(1))
            .retries_next(3)
            .backoff(Backoff::none())
            .retry_budget(ample_budget())
            .build(fleet.endpoints())
            .unwrap();
        let handle = lb.handle();

        // `eject_after` 503s in a row eject it; every call is retried
        // elsewhere.
        // Calls are sequential, so its failures are exactly its requests.
        let mut ejecting_call_started = None;
        for _ in 0..300 {
            let started = Instant::now();
            ok(call(&mut lb, get()).await);
            if stats(&handle, VICTIM).ejected {
                ejecting_call_started = Some(started);
                break;
            }
        }
        let ejected_at_or_after = ejecting_call_started.expect("ejected within 300 calls");
        assert_eq!(
            fleet.received(VICTIM),
            eject_after_requests,
            "ejected after eject_after failures"
        );
        assert_eq!(stats(&handle, VICTIM).ejections, 1);
        assert_eq!(ejected(&handle), BTreeSet::from([VICTIM]));

        // While ejected, no call reaches it. The ejection began during the
        // call that started at `ejected_at_or_after`, so it lasts at least
        // until FIRST after that; on a machine too slow to make these calls
        // in that time the check says nothing, and is skipped.
        for _ in 0..20 {
            ok(call(&mut lb, get()).await);
        }
        if Instant::now() < ejected_at_or_after + FIRST {
            assert_eq!(
                fleet.received(VICTIM),
                eject_after_requests,
                "no traffic while ejected"
            );
        } else {
            eprintln!("eject: too slow to check the ejected spell");
        }

        // Readmitted once its time is up, on probation: still failing, its
        // first request ejects it again (for twice as long).
        assert!(
            poll_until(Duration::from_secs(2), || !stats(&handle, VICTIM).ejected).await,
            "readmitted after {FIRST:?}"
        );
        for _ in 0..300 {
            ok(call(&mut lb, get()).await);
            if fleet.received(VICTIM) > eject_after_requests {
                break;
            }
        }
        assert_eq!(
            fleet.received(VICTIM),
            eject_after_requests + 1,
            "one probing request"
        );
        let victim = stats(&handle, VICTIM);
        assert_eq!(victim.ejections, 2, "ejected again at once: {victim:?}");

        // Healthy again: once the second ejection is over it serves.
        fleet.set_mode(VICTIM, HEALTHY);
        assert!(
            poll_until(Duration::from_secs(3), || !stats(&handle, VICTIM).ejected).await,
            "readmitted after {:?}",
            FIRST * 2
        );
        let mut served = 0;
        for _ in 0..500 {
            if served_by(&ok(call(&mut lb, get()).await)) == VICTIM {
                served += 1;
                if served == 5 {
                    break;
                }
            }
        }
        print_stats("eject", &fleet, &handle);
        assert_eq!(served, 5, "the recovered instance serves again");
        let victim = stats(&handle, VICTIM);
        assert!(!victim.ejected, "{victim:?}");
        assert_eq!(victim.consecutive_failures, 0, "{victim:?}");
        assert_eq!(victim.ejections, 2, "{victim:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_instance_is_ejected_readmitted_and_serves_again_once_healthy() {
    eject_readmit_recover(RoundRobin::new(), 3).await;
}

/// The same under the default rule. An endpoint back from ejection starts
/// again from the initial latency estimate (30 ms), while the others'
/// estimates have decayed a little below it since they were created. With
/// sequential calls nothing is in flight, so the power of two choices
/// compares estimates alone, and a strictly lower cost always wins: the
/// readmitted endpoint loses every pairing and gets no call at all (0 of
/// 300 here, in every run), until the others' estimates fall below its own
/// pure decay (seconds to tens of seconds). Its probation never begins; it
/// is, in effect, ejected for much longer than `eject_for`.
///
/// Ejected at its first failure here: under the default rule a failure
/// doubles the instance's load estimate, so the power of two choices steers
/// every later call away from it and it would never fail three times in a
/// row. (This test once used `eject_after(3)`, when failures left the
/// estimate alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_instance_is_readmitted_under_the_default_rule() {
    eject_readmit_recover(PowerOfTwoChoices, 1).await;
}

// ===== 4. the ejection cap and panic mode =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ejection_cap_keeps_all_but_one_of_three_failing_instances_in_and_marks_them_dead() {
    bounded(async {
        let fleet = Fleet::start(10).await;
        // Two answer 503, one is dead.
        fleet.set_mode(0, UNAVAILABLE);
        fleet.set_mode(1, UNAVAILABLE);
        fleet.kill(2).await;
        // Round robin gives each failing instance its turn until it is out.
        // (This test once used the default rule; now that a failure raises
        // an instance's load estimate, the power of two choices steers
        // calls away from a failing instance before its third failure.)
        let lb = Balance::builder("cap")
            .rule(RoundRobin::new())
            .policy(HttpPolicy)
            .eject_after(3)
            .max_ejected(0.1)
            .retries_next(9)
            .backoff(Backoff::none())
            .retry_budget(ample_budget())
            .build(fleet.endpoints())
            .unwrap();
        let handle = lb.handle();

        let most_ejected = Arc::new(AtomicUsize::new(0));
        let (h, most) = (handle.clone(), most_ejected.clone());
        let results = load(lb, 300, 4, move |_| {
            most.fetch_max(ejected(&h).len(), Ordering::SeqCst);
        })
        .await;
        assert_eq!(results.into_iter().map(ok).count(), 300);

        print_stats("cap", &fleet, &handle);
        assert_eq!(
            most_ejected.load(Ordering::SeqCst),
            1,
            "never more than 10 % of 10"
        );
        let out = ejected(&handle);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out.is_subset(&BTreeSet::from([0, 1, 2])), "{out:?}");
        for id in (0..3).filter(|id| !out.contains(id)) {
            let e = stats(&handle, id);
            assert!(
                e.consecutive_failures >= 3,
                "instance {id} failed enough to be ejected but for the cap: {e:?}"
            );
            assert_eq!(e.ejections, 0, "{e:?}");
            assert!(e.marked_dead, "failure accrual has no cap: {e:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_panic_mode_traffic_spreads_over_every_instance() {
    bounded(async {
        const FAILING: usize = 7;
        let fleet = Fleet::start(10).await;
        for id in 0..FAILING {
            fleet.set_mode(id, UNAVAILABLE);
        }
        let mut lb = Balance::builder("panic")
            .policy(HttpPolicy)
            .eject_after(2)
            .max_ejected(1.0)
            .panic_threshold(0.5)
            .retries_next(9)
            .backoff(Backoff::none())
            .retry_budget(ample_budget())
            .build(fleet.endpoints())
            .unwrap();
        let handle = lb.handle();

        // Eject until fewer than half are healthy.
        for _ in 0..1_000 {
            ok(call(&mut lb, get()).await);
            if ejected(&handle).len() >= 6 {
                break;
            }
        }
        let out = ejected(&handle);
        assert!(out.len() >= 6, "panic reached: {out:?}");
        assert!(out.iter().all(|&id| id < FAILING), "{out:?}");

        // Panic mode: ejections are ignored, every instance gets traffic.
        let before = fleet.all_received();
        let results = load(lb, 200, 4, |_| {}).await;
        assert_eq!(results.into_iter().map(ok).count(), 200);
        print_stats("panic", &fleet, &handle);
        let during: Vec<u64> = fleet
            .all_received()
            .iter()
            .zip(&before)
            .map(|(after, before)| after - before)
            .collect();
        eprintln!("panic: requests per instance in panic mode {during:?}");
        assert!(
            during.iter().all(|&n| n > 0),
            "every instance, ejected or not, got traffic: {during:?}"
        );
        assert!(
            ejected(&handle).len() >= 6,
            "still ejected, still panicking"
        );
    })
    .await;
}

// ===== 5. the retry budget in a full outage =====

/// Floor of `RetryBudget::new(10 s, 1, 0.2)`: 1 retry/s over 10 s.
const FLOOR: u64 = 10;

fn outage_budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10), 1, 0.2).unwrap()
}

fn outage_cap(requests: u64) -> u64 {
    requests + requests / 5 + FLOOR + (WORKERS as u64 - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_requests_when_every_instance_answers_503() {
    bounded(async {
        const REQUESTS: u64 = 200;
        let fleet = Fleet::start(5).await;
        for id in 0..5 {
            fleet.set_mode(id, UNAVAILABLE);
        }
        let budget = outage_budget();
        let lb = Balance::builder("outage-503")
            .policy(HttpPolicy)
            .retries_same(2)
            .retries_next(4)
            .backoff(Backoff::none())
            .retry_budget(budget.clone())
            .build(fleet.endpoints())
            .unwrap();
        let handle = lb.handle();

        let results = load(lb, REQUESTS as usize, 4, |_| {}).await;
        print_stats("outage-503", &fleet, &handle);
        // A 503 is a response, not an error: the call that cannot retry
        // returns it as it is, marked (it once came back unmarked, and the
        // caller could not tell). No call can make its 15 attempts (the
        // budget never holds 14 retries), so every call ends refused.
        for result in results {
            let response = result.expect("a 503 is a response");
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                response
                    .extensions()
                    .get::<RetryBudgetExhaustedMarker>()
                    .is_some(),
                "the refused retry is marked"
            );
        }
        let total: u64 = fleet.all_received().iter().sum();
        let cap = outage_cap(REQUESTS);
        eprintln!(
            "outage-503: {total} requests reached the servers for {REQUESTS} calls (cap {cap})"
        );
        assert!(total > REQUESTS, "some retries were allowed: {total}");
        assert!(
            total <= cap,
            "{total} requests for {REQUESTS} calls, cap {cap}"
        );
        assert_eq!(fleet.total_attempts(), total);
        assert!(budget.balance() < 1.0, "spent: {}", budget.balance());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_attempts_when_every_instance_is_dead() {
    bounded(async {
        const REQUESTS: u64 = 200;
        let fleet = Fleet::start(5).await;
        for id in 0..5 {
            fleet.kill(id).await;
        }
        let budget = outage_budget();
        let lb = Balance::builder("outage-dead")
            .policy(HttpPolicy)
            .retries_same(2)
            .retries_next(4)
            .backoff(Backoff::none())
            .retry_budget(budget.clone())
            .build(fleet.endpoints())
            .unwrap();
        let handle = lb.handle();

        let results = load(lb, REQUESTS as usize, 4, |_| {}).await;
        print_stats("outage-dead", &fleet, &handle);
        let attempts = fleet.total_attempts();
        let cap = outage_cap(REQUESTS);
        eprintln!("outage-dead: {attempts} connection attempts for {REQUESTS} calls (cap {cap})");
        assert!(attempts > REQUESTS, "some retries were allowed: {attempts}");
        assert!(
            attempts <= cap,
            "{attempts} attempts for {REQUESTS} calls, cap {cap}"
        );
        // A call that could have made all of its 15 attempts would end in
        // the connection error itself; but the budget never holds 14
        // retries (10 + 20 % of the calls so far, shared by all of them),
        // so every call ends short of retries.
        for result in results {
            let err = result.expect_err("every instance is dead");
            assert_eq!(
                ErrorKind::of(&err),
                ErrorKind::RetryBudgetExhausted,
                "{err}"
            );
            let last = err
                .downcast_ref::<RetryBudgetExhausted>()
                .expect("the balancer's own error")
                .last_error();
            let io =
                std::iter::successors(Some(&**last as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .find_map(|e| e.downcast_ref::<std::io::Error>())
                .unwrap_or_else(|| panic!("an io error in the chain: {last:?}"));
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        assert!(budget.balance() < 1.0, "spent: {}", budget.balance());
    })
    .await;
}

// ===== 6. discovery removes an instance with calls in flight =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_instance_from_the_watch_feed_loses_none_of_its_calls_in_flight() {
    bounded(async {
        const GONE: usize = 0;
        let fleet = Fleet::start(3).await;
        let (registry, feed) = watch::channel(vec![0usize, 1, 2]);
        let clients = fleet.clients.clone();
        let mut lb = Balance::builder("watched")
            .rule(RoundRobin::new())
            .build(Endpoints::watch(feed, move |id: &usize| {
                clients.endpoint(*id)
            }))
            .unwrap();
        let handle = lb.handle();
        assert_eq!(handle.endpoints().len(), 3);

        // GONE holds its requests until the test opens its gate. Six calls
        // in turn: two land on each instance, whatever order the tasks run
        // in.
        fleet.set_gate(GONE, false);
        let mut first = Vec::new();
        for _ in 0..6 {
            lb.ready().await.unwrap();
            first.push(tokio::spawn(lb.call(get())));
        }
        fleet.arrived(GONE, 2).await;
        assert_eq!(stats(&handle, GONE).in_flight, 2);

        // The registry drops GONE while its two calls are in flight.
        registry.send(vec![1, 2]).unwrap();
        for _ in 0..30 {
            let response = ok(call(&mut lb, get()).await);
            assert_ne!(served_by(&response), GONE, "no new call goes to it");
        }
        let keys: BTreeSet<String> = handle.endpoints().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, BTreeSet::from(["1".to_string(), "2".to_string()]));
        assert_eq!(fleet.received(GONE), 2);

        // Its calls in flight still finish, on it.
        fleet.set_gate(GONE, true);
        let mut by_gone = 0;
        for task in first {
            if served_by(&ok(task.await.unwrap())) == GONE {
                by_gone += 1;
            }
        }
        assert_eq!(by_gone, 2);
        assert_eq!(fleet.received(GONE), 2);
        print_stats("watched", &fleet, &handle);
    })
    .await;
}

// ===== a call in flight on an instance that dies =====

/// `HttpPolicy`, also retrying idempotent requests that hyper reports
/// failed because the connection closed: before the request was sent
/// (`is_canceled`) or before its response ("connection closed before
/// message completed", `is_incomplete_message`). That is what a request in
/// flight on an instance that dies gets. `HttpPolicy` cannot see hyper's
/// error type, and these errors have no `io::Error` source, so it does not
/// retry them itself.
#[derive(Debug, Clone, Copy)]
struct HyperPolicy;

impl Policy<Req, Response<Bytes>> for HyperPolicy {
    fn outcome(&self, result: &HttpResult) -> Outcome {
        Policy::<Req, Response<Bytes>>::outcome(&HttpPolicy, result)
    }

    fn is_retryable(&self, request: &Req, result: &HttpResult) -> bool {
        HttpPolicy.is_retryable(request, result)
            || request.method().is_idempotent()
                && result
                    .as_ref()
                    .err()
                    .and_then(|e| e.downcast_ref::<hyper::Error>())
                    .is_some_and(|e| e.is_canceled() || e.is_incomplete_message())
    }
}

/// Kills instance 0 while a `GET` waits on it, under `policy`; returns
/// that call's result.
async fn kill_with_a_call_in_flight<P: Policy<Req, Response<Bytes>>>(policy: P) -> HttpResult {
    const VICTIM: usize = 0;
    let fleet = Fleet::start(3).await;
    let mut lb = Balance::builder("in-flight")
        .rule(RoundRobin::new())
        .policy(policy)
        .backoff(Backoff::none())
        .build(fleet.endpoints())
        .unwrap();
    // Calls in turn until one waits on the victim, at its gate, its
    // request read in full; then the victim dies.
    fleet.set_gate(VICTIM, false);
    for _ in 0..3 {
        lb.ready().await.unwrap();
        let mut call = tokio::spawn(lb.call(get()));
        tokio::select! {
            () = fleet.arrived(VICTIM, 1) => {
                fleet.kill(VICTIM).await;
                return call.await.unwrap();
            }
            done = &mut call => {
                ok(done.unwrap());
            }
        }
    }
    panic!("round robin reached the victim within three calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_in_flight_on_an_instance_that_dies_is_retried_with_a_hyper_aware_policy() {
    bounded(async {
        let response = ok(kill_with_a_call_in_flight(HyperPolicy).await);
        assert_ne!(served_by(&response), 0);
    })
    .await;
}

/// `HttpPolicy` itself retries such a `GET`: no response came back, and
/// sending an idempotent request again is safe. (It once retried only
/// errors with a connection-level `io::Error` in their chain, which hyper's
/// "connection closed before message completed" does not have, so the call
/// failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_in_flight_on_an_instance_that_dies_is_retried_with_http_policy() {
    bounded(async {
        let response = ok(kill_with_a_call_in_flight(HttpPolicy).await);
        assert_ne!(served_by(&response), 0);
    })
    .await;
}

// ===== bugs and regressions, each next to a control =====

/// Instances 0, 1, 2 behind a `watch` feed with `eject_after(1)`: one call
/// waits on instance 0 while the feed removes it, then ends in a 503 (or a
/// 200 if not `gone_fails`). Then instance 1 answers 503 to three calls;
/// returns its statistics.
///
/// With 2 endpoints left one may be ejected, so instance 1 should be
/// ejected at its first failure, whatever the removed endpoint did.
async fn removal_then_a_failing_instance(gone_fails: bool) -> (EndpointStats, u64) {
    const GONE: usize = 0;
    let fleet = Fleet::start(3).await;
    let (registry, feed) = watch::channel(vec![0usize, 1, 2]);
    let clients = fleet.clients.clone();
    let mut lb = Balance::builder("removed")
        .rule(RoundRobin::new())
        .policy(HttpPolicy)
        .eject_after(1)
        .retries_next(2)
        .backoff(Backoff::none())
        .retry_budget(ample_budget())
        .build(Endpoints::watch(feed, move |id: &usize| {
            clients.endpoint(*id)
        }))
        .unwrap();
    let handle = lb.handle();

    // One call on each instance; GONE's waits at its gate.
    if gone_fails {
        fleet.set_mode(GONE, UNAVAILABLE);
    }
    fleet.set_gate(GONE, false);
    let mut first = Vec::new();
    for _ in 0..3 {
        lb.ready().await.unwrap();
        first.push(tokio::spawn(lb.call(get())));
    }
    fleet.arrived(GONE, 1).await;
    registry.send(vec![1, 2]).unwrap();
    lb.ready().await.unwrap(); // applies the removal
    assert_eq!(handle.endpoints().len(), 2);
    assert!(ejected(&handle).is_empty());
    // GONE answers its call in flight (a 503 is retried elsewhere).
    fleet.set_gate(GONE, true);
    for task in first {
        ok(task.await.unwrap());
    }
    assert!(ejected(&handle).is_empty());

    // Instance 1 fails from now on.
    fleet.set_mode(1, UNAVAILABLE);
    let before = fleet.received(1);
    for _ in 0..20 {
        ok(call(&mut lb, get()).await);
        if fleet.received(1) >= before + 3 {
            break;
        }
    }
    print_stats("removed", &fleet, &handle);
    (stats(&handle, 1), fleet.received(1) - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_instance_answering_its_call_in_flight_leaves_the_ejection_cap_alone() {
    bounded(async {
        let (one, requests) = removal_then_a_failing_instance(false).await;
        assert!(one.ejected && one.ejections == 1, "{one:?}");
        assert_eq!(requests, 1, "no traffic once ejected");
    })
    .await;
}

/// An endpoint removed from the set while it has a call in flight, whose
/// call then fails, is ejected *after* its removal
/// (`Ejection::failed` is called with the removed endpoint's health, and
/// `Ejection::removed` has already run). It takes a place among the
/// ejected that is never given back: it is no longer in any snapshot, so
/// no selection or handle read ever sees its ejection end. Here the cap is
/// one endpoint, so no endpoint can ever be ejected again; with a higher
/// panic threshold the phantom could also hold the balancer in panic mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_instance_failing_its_call_in_flight_leaves_the_ejection_cap_alone() {
    bounded(async {
        let (one, requests) = removal_then_a_failing_instance(true).await;
        assert!(
            one.ejected && one.ejections == 1,
            "instance 1 failed {requests} times in a row yet was not ejected: the removed \
             endpoint's ejection holds the only place: {one:?}"
        );
    })
    .await;
}

/// One instance whose client has a concurrency limit of one, and
/// `retries_same(1)`. Call A holds the permit at the server's gate; call B
/// is made (and, if `b_waits`, polled once, finding the client not ready)
/// before A finishes; B's first request gets a 503 and should be retried on
/// the same instance, which then answers 200. Returns B's status and the
/// requests the instance received.
async fn a_503_after_waiting_for_the_client(b_waits: bool) -> (StatusCode, u64) {
    const ONLY: usize = 0;
    let fleet = Fleet::start(1).await;
    let limited = BoxCloneSyncService::new(tower::limit::ConcurrencyLimit::new(
        fleet.clients.client(ONLY),
        1,
    ));
    let mut lb = Balance::builder("pending")
        .policy(HttpPolicy)
        .retries_same(1)
        .retries_next(0)
        .backoff(Backoff::none())
        .retry_budget(ample_budget())
        .build(Endpoints::fixed([Endpoint::new(ONLY, limited)]))
        .unwrap();

    // Call A holds the only permit, waiting at the gate.
    fleet.set_gate(ONLY, false);
    lb.ready().await.unwrap();
    let a = tokio::spawn(lb.call(get()));
    fleet.arrived(ONLY, 1).await;

    lb.ready().await.unwrap();
    let mut b = std::pin::pin!(lb.call(get()));
    if b_waits {
        // B finds the endpoint not ready: its client has no permit.
        assert!(futures::poll!(b.as_mut()).is_pending());
    }

    // A finishes with a 200; B's first attempt gets a 503.
    fleet.control(ONLY).fail_next.store(1, Ordering::SeqCst);
    fleet.set_gate(ONLY, true);
    ok(a.await.unwrap());
    let b = b.await.expect("a response");
    (b.status(), fleet.received(ONLY))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_same_retries_a_503_on_the_same_instance() {
    bounded(async {
        assert_eq!(
            a_503_after_waiting_for_the_client(false).await,
            (StatusCode::OK, 3),
            "B's 503 was retried on the same endpoint"
        );
    })
    .await;
}

/// A call that finds its endpoint not ready at first (here behind a
/// concurrency limit of one; equally a `Buffer`, a rate limit or a hyper
/// `SendRequest` busy with another request) still has its retry on the
/// endpoint. (`ResponseFuture::poll` once counted every poll of a pending
/// `poll_ready` as an attempt, so such a call sent its first attempt as its
/// last and did not retry its 503.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_same_is_not_used_up_by_an_endpoint_that_was_not_ready() {
    bounded(async {
        assert_eq!(
            a_503_after_waiting_for_the_client(true).await,
            (StatusCode::OK, 3),
            "B's 503 was retried on the same endpoint"
        );
    })
    .await;
}

// ===== 7. dead instances under the defaults =====

/// `n` instances of which the first `dead` refuse connections, behind a
/// balancer with every default; 600 sequential `GET`s. Returns, over the
/// calls after the first 100, the share of first attempts that went to a
/// dead instance and the share of calls that succeeded.
async fn dead_instances_under_the_defaults(n: usize, dead: usize) -> (f64, f64) {
    const CALLS: usize = 600;
    const NOBODY: usize = usize::MAX;
    let fleet = Fleet::start(n).await;
    for id in 0..dead {
        fleet.kill(id).await;
    }
    // Which instance got the current call's first attempt.
    let first = Arc::new(AtomicUsize::new(NOBODY));
    let endpoints = Endpoints::fixed((0..n).map(|id| {
        let (client, first) = (fleet.clients.client(id), first.clone());
        let service = tower::service_fn(move |request: Req| {
            let _ = first.compare_exchange(NOBODY, id, Ordering::SeqCst, Ordering::SeqCst);
            client.clone().oneshot(request)
        });
        Endpoint::new(id, BoxCloneSyncService::new(service))
    }));
    let mut lb = Balance::builder("dead").build(endpoints).unwrap();
    let handle = lb.handle();
    let (mut dead_first, mut succeeded, mut counted) = (0, 0, 0);
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..CALLS {
        let result = call(&mut lb, get()).await;
        let took = first.swap(NOBODY, Ordering::SeqCst);
        assert_ne!(took, NOBODY, "every call makes an attempt");
        if i >= 100 {
            counted += 1;
            dead_first += usize::from(took < dead);
            succeeded += usize::from(result.is_ok());
        }
        if let Err(e) = result {
            *errors
                .entry(format!("{:?}", ErrorKind::of(&e)))
                .or_default() += 1;
        }
    }
    print_stats("dead", &fleet, &handle);
    eprintln!("dead: {dead} of {n}: errors over all calls {errors:?}");
    (
        dead_first as f64 / counted as f64,
        succeeded as f64 / counted as f64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dead_instances_of_three_get_almost_no_first_attempts_under_the_defaults() {
    bounded(async {
        let (dead, success) = dead_instances_under_the_defaults(3, 2).await;
        eprintln!("2 of 3 dead: dead first attempts {dead:.3}, success {success:.3}");
        assert!(
            dead <= 0.05,
            "dead instances took {dead:.3} of first attempts"
        );
        assert!(success >= 0.99, "only {success:.3} of calls succeeded");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_dead_instances_of_ten_get_almost_no_first_attempts_under_the_defaults() {
    bounded(async {
        let (dead, success) = dead_instances_under_the_defaults(10, 5).await;
        eprintln!("5 of 10 dead: dead first attempts {dead:.3}, success {success:.3}");
        assert!(
            dead <= 0.05,
            "dead instances took {dead:.3} of first attempts"
        );
        assert!(success >= 0.99, "only {success:.3} of calls succeeded");
    })
    .await;
}
