//! A tonic gRPC client behind a rampart `Command` and a rampart balancer,
//! over two tonic servers, with gRPC status codes classified.
//!
//! ```text
//! cargo run --example tonic_client --features tonic
//! ```
//!
//! ```text
//!  caller → Command (timeout, bulkhead, breaker) → Balance → tonic client → i1 | i2
//! ```
//!
//! It starts two tonic servers on `127.0.0.1` (free ports), instances `i1`
//! and `i2` of a catalog service with one unary method,
//! `catalog.Catalog/GetTitle`, and never talks to anything else. The
//! messages are plain Rust structs with `#[derive(prost::Message)]`, and
//! `CatalogClient` is what `tonic-build` would generate from the `.proto`
//! in its comment, written out: no build script, no `protoc`.
//!
//! Whose fault a status is decides what rampart makes of it
//! ([`GrpcClassifier`] for the breaker, [`GrpcPolicy`] for the balancer):
//! `UNAVAILABLE` and `DEADLINE_EXCEEDED` are the server's failures: they
//! count against the breaker and the instance, and an `UNAVAILABLE` is
//! sent to the other instance; `INVALID_ARGUMENT` is the caller's mistake:
//! it comes back as it is and counts against nothing.
//!
//! What you will see:
//!
//! 1. `i2` answers `UNAVAILABLE` to everything: the balancer sends each
//!    call that `i2` fails to `i1`, and after three failures in a row
//!    ejects `i2`; every call is answered, by `i1`;
//! 2. calls with id 0 get `i1`'s `INVALID_ARGUMENT` back, unchanged, sent
//!    once each (no retry), and the breaker counts them as ignored, not as
//!    failures;
//! 3. `i1` hangs too: each call runs into its 200 ms deadline
//!    (`DEADLINE_EXCEEDED`), three in a row open the breaker, and the next
//!    calls fail at once with `UNAVAILABLE` ("circuit open") without
//!    reaching either server;
//! 4. both recover: once the breaker's open time is up, a probe closes it
//!    and every call is answered again.
//!
//! It ends by itself in about two seconds, and exits with status 1 if
//! any of that did not happen.

use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, BalanceHandle, Endpoint, Endpoints};
use rampart::circuit_breaker::{CircuitBreakerHandle, State, StateChange};
use rampart::retry::Backoff;
use rampart::tonic::{GrpcClassifier, GrpcPolicy};
use rampart::{BoxError, Command, ErrorKind};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Server};
use tonic::{Code, Status};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Each attempt's deadline, set on the tonic channel.
const ATTEMPT_DEADLINE: Duration = Duration::from_millis(200);
/// How long the breaker stays open before letting a probe through.
const OPEN_FOR: Duration = Duration::from_secs(1);
/// Failures in a row that eject an instance.
const EJECT_AFTER: u32 = 3;

// ===== the protocol, as tonic-build would generate it =====
//
// syntax = "proto3";
// package catalog;
// service Catalog { rpc GetTitle(TitleRequest) returns (TitleReply); }
// message TitleRequest { uint64 id = 1; }
// message TitleReply { string title = 1; string served_by = 2; }

/// `catalog.TitleRequest`. Cloned by the balancer for a retry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TitleRequest {
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// `catalog.TitleReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TitleReply {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub served_by: String,
}

const GET_TITLE: &str = "/catalog.Catalog/GetTitle";

/// The client `tonic-build` would generate for `catalog.Catalog`.
#[derive(Clone)]
pub struct CatalogClient {
    inner: tonic::client::Grpc<Channel>,
}

impl CatalogClient {
    pub fn new(channel: Channel) -> Self {
        CatalogClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn get_title(
        &mut self,
        request: impl tonic::IntoRequest<TitleRequest>,
    ) -> Result<tonic::Response<TitleReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("Service was not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<TitleRequest, TitleReply>::default();
        let path = http::uri::PathAndQuery::from_static(GET_TITLE);
        self.inner.unary(request.into_request(), path, codec).await
    }
}

// ===== the servers: two tonic servers on 127.0.0.1 =====

/// How an instance answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Mode {
    /// A title, or `INVALID_ARGUMENT` for id 0.
    Healthy = 0,
    /// `UNAVAILABLE` to everything (say, shutting down).
    Unavailable = 1,
    /// Never answers (say, stuck on a lock).
    Hanging = 2,
}

/// One instance of the catalog service.
struct Instance {
    name: &'static str,
    /// `http://127.0.0.1:PORT`.
    uri: String,
    /// Requests that reached its handler.
    received: AtomicU64,
    mode: AtomicU8,
}

impl Instance {
    async fn start(name: &'static str) -> Result<Arc<Instance>, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let instance = Arc::new(Instance {
            name,
            uri: format!("http://{}", listener.local_addr()?),
            received: AtomicU64::new(0),
            mode: AtomicU8::new(Mode::Healthy as u8),
        });
        // The whole server is one hand-written service: tonic's `Grpc`
        // decodes the request, calls `get_title`, encodes the answer (an
        // error status as a trailers-only response).
        let server = instance.clone();
        let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let instance = server.clone();
            async move {
                if request.uri().path() != GET_TITLE {
                    return Ok::<_, Infallible>(Status::unimplemented("").into_http());
                }
                let handler = tower::service_fn(move |request: tonic::Request<TitleRequest>| {
                    let instance = instance.clone();
                    async move { instance.get_title(request.into_inner()).await }
                });
                let codec = tonic_prost::ProstCodec::<TitleReply, TitleRequest>::default();
                Ok(tonic::server::Grpc::new(codec)
                    .unary(handler, request)
                    .await)
            }
        });
        let incoming = TcpIncoming::from(listener);
        tokio::spawn(Server::builder().serve_with_incoming(service, incoming));
        Ok(instance)
    }

    async fn get_title(
        &self,
        request: TitleRequest,
    ) -> Result<tonic::Response<TitleReply>, Status> {
        self.received.fetch_add(1, Ordering::Relaxed);
        match self.mode() {
            Mode::Unavailable => return Err(Status::unavailable("shutting down")),
            Mode::Hanging => std::future::pending().await,
            Mode::Healthy => {}
        }
        if request.id == 0 {
            return Err(Status::invalid_argument("id must be positive"));
        }
        Ok(tonic::Response::new(TitleReply {
            title: format!("title #{}", request.id),
            served_by: self.name.to_owned(),
        }))
    }

    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            1 => Mode::Unavailable,
            2 => Mode::Hanging,
            _ => Mode::Healthy,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    fn hits(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

// ===== the client =====

/// One instance as a balancer endpoint: a tonic client over a channel of
/// its own, a `TitleRequest` in, the client's own `Result` out. With a
/// generated client, this closure is all there is to write.
fn endpoint(instance: &Instance) -> Result<Endpoint<&'static str, impl CatalogService>, BoxError> {
    let channel = TonicEndpoint::from_shared(instance.uri.clone())?
        .timeout(ATTEMPT_DEADLINE)
        .connect_lazy();
    let client = CatalogClient::new(channel);
    let service = tower::service_fn(move |request: TitleRequest| {
        let mut client = client.clone();
        async move { client.get_title(request).await }
    });
    Ok(Endpoint::new(instance.name, service))
}

/// What a balancer endpoint must be: cloned per attempt, shared between
/// threads.
trait CatalogService:
    Service<
        TitleRequest,
        Response = tonic::Response<TitleReply>,
        Error = Status,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> CatalogService for S where
    S: Service<
            TitleRequest,
            Response = tonic::Response<TitleReply>,
            Error = Status,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// One call through `catalog`, answered as a gRPC caller expects: the
/// reply, or a `Status` (the server's own, or rampart's errors as
/// statuses).
async fn get_title<S>(catalog: &mut S, id: u64) -> Result<TitleReply, Status>
where
    S: Service<TitleRequest, Response = tonic::Response<TitleReply>, Error = BoxError>,
{
    let ready = catalog.ready().await.map_err(rampart::tonic::into_status)?;
    match ready.call(TitleRequest { id }).await {
        Ok(response) => Ok(response.into_inner()),
        Err(error) => Err(rampart::tonic::into_status(error)),
    }
}

/// Prints every state change of the breaker as it happens.
fn print_change(change: &StateChange) {
    println!(
        "   >> breaker {:?}: {} -> {} ({})",
        &*change.name,
        change.from,
        change.to,
        change.reason.as_str()
    );
}

/// The checks that failed, to exit with 1 at the end.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("   [{}] {what}", if ok { "ok" } else { "FAILED" });
        if !ok {
            self.failed.push(what);
        }
    }
}

fn print_endpoints(balancer: &BalanceHandle) {
    for e in balancer.endpoints() {
        println!(
            "   balancer, {}: {} ok, {} failed, {} timed out, {} ignored; ejected {}",
            e.key.trim_matches('"'),
            e.successes,
            e.failures,
            e.timeouts,
            e.ignored,
            e.ejected || e.marked_dead
        );
    }
}

fn print_breaker(breaker: &CircuitBreakerHandle) {
    let counts = breaker.counts();
    println!(
        "   breaker: {}; {} ok, {} failed, {} ignored, {} short-circuited",
        breaker.state(),
        counts.successes,
        counts.failed(),
        counts.ignored,
        counts.short_circuited
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let i1 = Instance::start("i1").await?;
    let i2 = Instance::start("i2").await?;
    println!("instances listening: i1 on {}, i2 on {}\n", i1.uri, i2.uri);
    let mut checks = Checks::default();

    // The balancer: round robin (so both instances get calls from the
    // start), no backoff between attempts (another instance is tried at
    // once), an instance that fails three times in a row left out for a
    // second. `GrpcPolicy`: `UNAVAILABLE` is retried on the other instance.
    let balancer = Balance::builder("catalog")
        .rule(RoundRobin::default())
        .policy(GrpcPolicy::new())
        .backoff(Backoff::none())
        .eject_after(EJECT_AFTER)
        .eject_for(Duration::from_secs(1), Duration::from_secs(2))
        .build(Endpoints::fixed([endpoint(&i1)?, endpoint(&i2)?]))?;
    let instances = balancer.handle();

    // The command: a 1 s timeout over the whole call (attempts included),
    // ten calls at once, and a breaker that counts by `GrpcClassifier`
    // and opens after three failures in a row. No fallback: it would
    // answer the caller's INVALID_ARGUMENT too (`rampart::tonic`'s docs,
    // "With a fallback", show how to decline those).
    let command = Command::builder("catalog")
        .timeout(Duration::from_secs(1))
        .bulkhead(10)
        .breaker(|b| {
            b.classify(GrpcClassifier::new())
                .consecutive_failures(3)
                .open_for(OPEN_FOR)
                .on_state_change(print_change)
        })
        .build()?;
    let breaker = command.breaker();
    let mut catalog = ServiceBuilder::new().layer(command).service(balancer);

    // 1. UNAVAILABLE from i2: retried on i1, i2 ejected.
    println!("1. i2 answers UNAVAILABLE to everything: twenty calls");
    i2.set(Mode::Unavailable);
    let mut by_i1 = 0;
    for id in 1..=20 {
        match get_title(&mut catalog, id).await {
            Ok(reply) if reply.served_by == "i1" => by_i1 += 1,
            Ok(reply) => println!("   call {id}: answered by {}", reply.served_by),
            Err(status) => println!("   call {id}: {:?} {}", status.code(), status.message()),
        }
    }
    println!(
        "   requests seen by i1: {}, by i2: {}",
        i1.hits(),
        i2.hits()
    );
    print_endpoints(&instances);
    print_breaker(&breaker);
    let i2_stats = instances
        .endpoints()
        .into_iter()
        .find(|e| e.key == "\"i2\"");
    checks.check(
        by_i1 == 20,
        format!("every call answered by i1 ({by_i1} of 20)"),
    );
    checks.check(
        i2.hits() == u64::from(EJECT_AFTER),
        format!(
            "i2 got {} requests before it was ejected (expected {EJECT_AFTER})",
            i2.hits()
        ),
    );
    checks.check(
        i2_stats.is_some_and(|e| e.ejected || e.marked_dead),
        "i2 is out of the balancer's rotation",
    );
    checks.check(
        breaker.counts().failed() == 0,
        "the breaker saw no failure: the balancer stepped around i2",
    );

    // 2. INVALID_ARGUMENT: the caller's mistake, passed through unchanged.
    println!("2. ten calls with id 0 (invalid)");
    let before = i1.hits() + i2.hits();
    let mut invalid = 0;
    for _ in 0..10 {
        match get_title(&mut catalog, 0).await {
            Err(status) if status.code() == Code::InvalidArgument => {
                if invalid == 0 {
                    println!("   {:?}: {:?}", status.code(), status.message());
                }
                invalid += usize::from(status.message() == "id must be positive");
            }
            other => println!("   unexpected: {other:?}"),
        }
    }
    let sent = i1.hits() + i2.hits() - before;
    print_breaker(&breaker);
    checks.check(
        invalid == 10,
        format!("every call got the server's INVALID_ARGUMENT ({invalid} of 10)"),
    );
    checks.check(
        sent == 10,
        format!("each was sent once, never retried ({sent} requests)"),
    );
    let counts = breaker.counts();
    checks.check(
        counts.ignored == 10 && counts.failed() == 0 && breaker.state() == State::Closed,
        "the breaker counted them as ignored, not as failures, and stayed closed",
    );

    // 3. DEADLINE_EXCEEDED: i1 hangs, i2 is still unavailable. Nowhere to
    // step to: the failures reach the breaker, which opens.
    println!(
        "3. i1 hangs (past its {} ms deadline), i2 still answers UNAVAILABLE",
        ATTEMPT_DEADLINE.as_millis()
    );
    i1.set(Mode::Hanging);
    let (mut calls, mut deadline_exceeded) = (0, 0);
    while breaker.state() == State::Closed && calls < 10 {
        calls += 1;
        match get_title(&mut catalog, 7).await {
            Err(status) => {
                println!("   {:?}: {}", status.code(), status.message());
                deadline_exceeded += usize::from(status.code() == Code::DeadlineExceeded);
            }
            Ok(reply) => println!("   unexpected answer from {}", reply.served_by),
        }
    }
    checks.check(
        breaker.state() == State::Open,
        format!("the breaker opened after {deadline_exceeded} DEADLINE_EXCEEDED"),
    );
    let before = (i1.hits(), i2.hits());
    let mut short_circuited = 0;
    for _ in 0..5 {
        let error = match catalog.ready().await {
            Ok(ready) => ready.call(TitleRequest { id: 7 }).await.err(),
            Err(error) => Some(error),
        };
        if let Some(error) = error {
            short_circuited += usize::from(ErrorKind::of(&error) == ErrorKind::CircuitOpen);
            let status = rampart::tonic::into_status(error);
            if short_circuited == 1 {
                println!("   {:?}: {} (at once)", status.code(), status.message());
            }
        }
    }
    print_breaker(&breaker);
    checks.check(
        short_circuited == 5,
        format!("calls while open were short-circuited ({short_circuited} of 5)"),
    );
    checks.check(
        (i1.hits(), i2.hits()) == before,
        "no request reached a server while the breaker was open",
    );

    // 4. Both recover; after the open time a probe closes the breaker.
    let wait = breaker.retry_after().unwrap_or_default();
    println!("4. both instances recover; waiting {wait:.1?} for the breaker's probe");
    i1.set(Mode::Healthy);
    i2.set(Mode::Healthy);
    tokio::time::sleep(wait).await;
    let mut answered = [0u32; 2];
    for id in 1..=20 {
        match get_title(&mut catalog, id).await {
            Ok(reply) => answered[usize::from(reply.served_by == "i2")] += 1,
            Err(status) => println!("   call {id}: {:?} {}", status.code(), status.message()),
        }
    }
    println!("   answered by i1: {}, by i2: {}", answered[0], answered[1]);
    print_endpoints(&instances);
    print_breaker(&breaker);
    checks.check(
        answered[0] + answered[1] == 20,
        "every call was answered after the probe",
    );
    checks.check(breaker.state() == State::Closed, "the breaker closed");

    if checks.failed.is_empty() {
        println!("\nall as expected");
        Ok(())
    } else {
        println!("\n{} check(s) failed:", checks.failed.len());
        for what in &checks.failed {
            println!("  - {what}");
        }
        std::process::exit(1);
    }
}
