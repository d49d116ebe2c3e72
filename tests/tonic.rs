//! rampart's tonic integration (feature `tonic`): gRPC status codes
//! deciding what a breaker counts and what a balancer retries, against
//! real tonic servers on 127.0.0.1, and the table, the policy and
//! `into_status` on their own.
//!
//! Each server test starts its own tonic servers on random ports. A server
//! has one unary method (`test.Catalog/GetTitle`, messages derived with
//! prost by hand), answers as an atomic says (a title; `INVALID_ARGUMENT`
//! for id 0; or `UNAVAILABLE`, or nothing at all, to everything) and counts
//! the requests that reach it.
//!
//! # Time
//!
//! Server tests run on the real clock (real sockets), each bounded by
//! [`TEST_LIMIT`]; every step awaits an answer or a tonic deadline of
//! 50 ms against a server that never answers. Nothing sleeps. The other
//! tests run on a paused clock.

use bytes::Bytes;
use hyper::body::Body;
use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, Endpoint, Endpoints, Policy};
use rampart::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, Classify, Outcome, State};
use rampart::retry::{Backoff, RetryBudget, RetryLayer};
use rampart::tonic::{into_status, status_of, GrpcClassifier, GrpcPolicy};
use rampart::{BoxError, Command, ErrorKind};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Server};
use tonic::{Code, Status};
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

/// Every server test must finish well within this.
const TEST_LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test finished in time")
}

// ===== the protocol =====

#[derive(Clone, PartialEq, prost::Message)]
struct TitleRequest {
    #[prost(uint64, tag = "1")]
    id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TitleReply {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    served_by: String,
}

const GET_TITLE: &str = "/test.Catalog/GetTitle";

/// What tonic-build generates for the service, over any channel stack.
#[derive(Clone)]
struct CatalogClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> CatalogClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<BoxError> + Send,
{
    fn new(inner: T) -> Self {
        CatalogClient {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    async fn get_title(&mut self, id: u64) -> Result<tonic::Response<TitleReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("Service was not ready: {}", e.into())))?;
        let codec = tonic_prost::ProstCodec::<TitleRequest, TitleReply>::default();
        let path = http::uri::PathAndQuery::from_static(GET_TITLE);
        let request = tonic::Request::new(TitleRequest { id });
        self.inner.unary(request, path, codec).await
    }
}

// ===== the servers =====

const HEALTHY: u8 = 0;
const UNAVAILABLE: u8 = 1;
const HANG: u8 = 2;

struct TestServer {
    name: &'static str,
    uri: String,
    mode: AtomicU8,
    received: AtomicU64,
}

impl TestServer {
    async fn start(name: &'static str) -> Arc<TestServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Arc::new(TestServer {
            name,
            uri: format!("http://{}", listener.local_addr().unwrap()),
            mode: AtomicU8::new(HEALTHY),
            received: AtomicU64::new(0),
        });
        let this = server.clone();
        let service = service_fn(move |request: http::Request<tonic::body::Body>| {
            let this = this.clone();
            async move {
                let handler = service_fn(move |request: tonic::Request<TitleRequest>| {
                    let this = this.clone();
                    async move { this.get_title(request.into_inner().id).await }
                });
                let codec = tonic_prost::ProstCodec::<TitleReply, TitleRequest>::default();
                let response = tonic::server::Grpc::new(codec)
                    .unary(handler, request)
                    .await;
                Ok::<_, Infallible>(response)
            }
        });
        // Ends with the test's runtime.
        tokio::spawn(Server::builder().serve_with_incoming(service, TcpIncoming::from(listener)));
        server
    }

    async fn get_title(&self, id: u64) -> Result<tonic::Response<TitleReply>, Status> {
        self.received.fetch_add(1, Ordering::Relaxed);
        match self.mode.load(Ordering::Relaxed) {
            UNAVAILABLE => return Err(Status::unavailable("shutting down")),
            HANG => std::future::pending().await,
            _ => {}
        }
        if id == 0 {
            return Err(Status::invalid_argument("id must be positive"));
        }
        Ok(tonic::Response::new(TitleReply {
            title: format!("title #{id}"),
            served_by: self.name.to_owned(),
        }))
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// A channel to this server, each call bounded by `deadline`.
    fn channel(&self, deadline: Duration) -> Channel {
        TonicEndpoint::from_shared(self.uri.clone())
            .unwrap()
            .timeout(deadline)
            .connect_lazy()
    }

    /// A balancer endpoint: a message in, the tonic client's own result out.
    fn endpoint(
        &self,
        deadline: Duration,
    ) -> Endpoint<
        &'static str,
        impl Service<
                TitleRequest,
                Response = tonic::Response<TitleReply>,
                Error = Status,
                Future: Send,
            > + Clone
            + Send
            + Sync,
    > {
        let client = CatalogClient::new(self.channel(deadline));
        let service = service_fn(move |request: TitleRequest| {
            let mut client = client.clone();
            async move { client.get_title(request.id).await }
        });
        Endpoint::new(self.name, service)
    }
}

/// The command-over-balancer stack of `examples/tonic_client.rs`:
/// round robin, no backoff, ejection after 3 failures in a row; a breaker
/// opening after 3 failures in a row.
macro_rules! catalog {
    ($policy:expr, $($server:expr),+) => {{
        let balancer = Balance::builder("catalog")
            .rule(RoundRobin::new())
            .policy($policy)
            .backoff(Backoff::none())
            .eject_after(3)
            .build(Endpoints::fixed([$($server.endpoint(Duration::from_millis(50))),+]))
            .unwrap();
        let endpoints = balancer.handle();
        let command = Command::builder("catalog")
            .breaker(|b| b.classify(GrpcClassifier::new()).consecutive_failures(3))
            .build()
            .unwrap();
        let breaker = command.breaker();
        (command.layer(balancer), endpoints, breaker)
    }};
}

async fn call<S>(svc: &mut S, id: u64) -> Result<TitleReply, BoxError>
where
    S: Service<TitleRequest, Response = tonic::Response<TitleReply>, Error = BoxError>,
{
    let response = svc.ready().await?.call(TitleRequest { id }).await?;
    Ok(response.into_inner())
}

// ===== against real servers =====

#[tokio::test]
async fn unavailable_is_retried_on_the_other_instance_and_ejects_its_server() {
    bounded(async {
        let (down, up) = (
            TestServer::start("down").await,
            TestServer::start("up").await,
        );
        down.set(UNAVAILABLE);
        let (mut catalog, endpoints, breaker) = catalog!(GrpcPolicy::new(), down, up);

        for id in 1..=10 {
            let reply = call(&mut catalog, id).await.expect("answered by `up`");
            assert_eq!(
                (reply.title, reply.served_by),
                (format!("title #{id}"), "up".into())
            );
        }
        // Round robin sent every other call to `down` until its third
        // failure in a row ejected it.
        assert_eq!(down.received(), 3);
        assert_eq!(up.received(), 10);
        let down_stats = endpoints
            .endpoints()
            .into_iter()
            .find(|e| e.key == "\"down\"")
            .unwrap();
        assert_eq!(down_stats.failures, 3);
        assert!(down_stats.ejected, "{down_stats:?}");
        // The breaker above saw only the successes.
        assert_eq!(
            (breaker.counts().successes, breaker.counts().failed()),
            (10, 0)
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_argument_comes_back_unretried_and_counts_against_nothing() {
    bounded(async {
        let (a, b) = (TestServer::start("a").await, TestServer::start("b").await);
        let (mut catalog, endpoints, breaker) = catalog!(GrpcPolicy::new(), a, b);

        // More than enough to eject an instance or open the breaker, were
        // they failures.
        for _ in 0..8 {
            let error = call(&mut catalog, 0).await.unwrap_err();
            assert_eq!(ErrorKind::of(&error), ErrorKind::Inner);
            let status = into_status(error);
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(status.message(), "id must be positive");
        }
        assert_eq!(a.received() + b.received(), 8, "each sent once");
        let counts = breaker.counts();
        assert_eq!(
            (counts.ignored, counts.failed(), counts.successes),
            (8, 0, 0)
        );
        assert_eq!(breaker.state(), State::Closed);
        for e in endpoints.endpoints() {
            assert_eq!((e.ignored, e.failures, e.ejected), (4, 0, false), "{e:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_tonic_deadline_counts_as_deadline_exceeded_everywhere() {
    bounded(async {
        let hanging = TestServer::start("hanging").await;
        hanging.set(HANG);
        let mut client = CatalogClient::new(hanging.channel(Duration::from_millis(50)));

        // tonic's own reading: CANCELLED, caused by its TimeoutExpired.
        let result = client.get_title(1).await;
        let status = result.as_ref().unwrap_err();
        assert_eq!(status.code(), Code::Cancelled);
        assert_eq!(ErrorKind::of(status), ErrorKind::Timeout);
        assert_eq!(GrpcClassifier::new().classify(&result), Outcome::Failure);
        let policy = GrpcPolicy::new();
        let boxed: Result<tonic::Response<TitleReply>, BoxError> = result.map_err(Into::into);
        let request = TitleRequest { id: 1 };
        assert_eq!(
            <GrpcPolicy as Policy<TitleRequest, _>>::outcome(&policy, &boxed),
            Outcome::Failure
        );
        // Not retried unless said so: the server may be acting on it.
        assert!(!policy.is_retryable(&request, &boxed));
        let policy = policy.retry_on(Code::DeadlineExceeded);
        assert!(policy.is_retryable(&request, &boxed));
        assert_eq!(
            into_status(boxed.unwrap_err()).code(),
            Code::DeadlineExceeded
        );
    })
    .await;
}

#[tokio::test]
async fn a_timed_out_attempt_is_a_timeout_for_its_instance_and_retried_when_asked() {
    bounded(async {
        let (hanging, up) = (
            TestServer::start("hanging").await,
            TestServer::start("up").await,
        );
        hanging.set(HANG);
        let policy = GrpcPolicy::new().retry_on(Code::DeadlineExceeded);
        let (mut catalog, endpoints, breaker) = catalog!(policy, hanging, up);

        for id in 1..=4 {
            let reply = call(&mut catalog, id).await.expect("answered by `up`");
            assert_eq!(reply.served_by, "up");
        }
        let stats = endpoints
            .endpoints()
            .into_iter()
            .find(|e| e.key == "\"hanging\"")
            .unwrap();
        // Every attempt on it ended in its deadline, each counted as a
        // timeout, none as a plain failure.
        assert!(stats.timeouts >= 1, "{stats:?}");
        assert_eq!(
            (stats.timeouts, stats.failures),
            (hanging.received(), 0),
            "{stats:?}"
        );
        assert_eq!(breaker.counts().failed(), 0);
    })
    .await;
}

#[tokio::test]
async fn beneath_the_tonic_client_a_trailers_only_status_is_seen() {
    bounded(async {
        let server = TestServer::start("server").await;
        // The breaker on the channel: it sees `http::Response`s, the
        // status in their headers when the server fails before a message.
        let breaker = CircuitBreakerLayer::builder("catalog-channel")
            .classify(GrpcClassifier::new())
            .consecutive_failures(3)
            .build()
            .unwrap();
        let handle = breaker.handle();
        let mut client = CatalogClient::new(breaker.layer(server.channel(Duration::from_secs(5))));

        // A success: grpc-status comes in trailers, after the message.
        client.get_title(1).await.unwrap();
        // The caller's mistake: trailers-only INVALID_ARGUMENT, ignored.
        for _ in 0..3 {
            let status = client.get_title(0).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
        let counts = handle.counts();
        assert_eq!(
            (counts.successes, counts.ignored, counts.failed()),
            (1, 3, 0)
        );

        // The server's failure: trailers-only UNAVAILABLE, three open it.
        server.set(UNAVAILABLE);
        for _ in 0..3 {
            assert_eq!(
                client.get_title(1).await.unwrap_err().code(),
                Code::Unavailable
            );
        }
        assert_eq!(handle.state(), State::Open);
        let received = server.received();

        // tonic reads rampart's rejection as UNKNOWN, keeping it as the
        // source: `ErrorKind::of` and `into_status` still tell.
        let status = client.get_title(1).await.unwrap_err();
        assert_eq!(server.received(), received, "short-circuited");
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(ErrorKind::of(&status), ErrorKind::CircuitOpen);
        assert_eq!(into_status(status.into()).code(), Code::Unavailable);
    })
    .await;
}

/// tower-http's `GrpcErrorsAsFailures` (feature `tower-http`) sees the same
/// trailers-only status: a unary call's UNAVAILABLE counts.
#[cfg(feature = "tower-http")]
#[tokio::test]
async fn tower_http_grpc_errors_as_failures_sees_a_trailers_only_unavailable() {
    bounded(async {
        let server = TestServer::start("server").await;
        let breaker = CircuitBreakerLayer::builder("catalog-tower-http")
            .classify(tower_http::classify::GrpcErrorsAsFailures::new())
            .consecutive_failures(2)
            .build()
            .unwrap();
        let handle = breaker.handle();
        let mut client = CatalogClient::new(breaker.layer(server.channel(Duration::from_secs(5))));
        client.get_title(1).await.unwrap();
        server.set(UNAVAILABLE);
        for _ in 0..2 {
            client.get_title(1).await.unwrap_err();
        }
        assert_eq!(
            (handle.counts().successes, handle.state()),
            (1, State::Open)
        );
    })
    .await;
}

// ===== the table, the policy and `into_status` =====

/// gRPC code → HTTP status, as Envoy (`Grpc::Utility::grpcToHttpStatus`)
/// and grpc-gateway map them: the table's source.
const HTTP_OF_CODE: [(Code, u16); 17] = [
    (Code::Ok, 200),
    (Code::Cancelled, 499),
    (Code::Unknown, 500),
    (Code::InvalidArgument, 400),
    (Code::DeadlineExceeded, 504),
    (Code::NotFound, 404),
    (Code::AlreadyExists, 409),
    (Code::PermissionDenied, 403),
    (Code::ResourceExhausted, 429),
    (Code::FailedPrecondition, 400),
    (Code::Aborted, 409),
    (Code::OutOfRange, 400),
    (Code::Unimplemented, 501),
    (Code::Internal, 500),
    (Code::Unavailable, 503),
    (Code::DataLoss, 500),
    (Code::Unauthenticated, 401),
];

#[test]
fn a_code_fails_when_grpc_maps_it_to_a_5xx_and_is_ignored_when_to_a_4xx() {
    let classifier = GrpcClassifier::new();
    for (code, http) in HTTP_OF_CODE {
        let expected = match http {
            200 => Outcome::Success,
            500.. => Outcome::Failure,
            _ => Outcome::Ignored,
        };
        assert_eq!(classifier.outcome(code), expected, "{code:?}");
        // The same through every result type it classifies.
        let status: Result<tonic::Response<()>, Status> = if code == Code::Ok {
            Ok(tonic::Response::new(()))
        } else {
            Err(Status::new(code, "x"))
        };
        assert_eq!(classifier.classify(&status), expected, "{code:?}");
        let boxed: Result<tonic::Response<()>, BoxError> = status.map_err(Into::into);
        assert_eq!(classifier.classify(&boxed), expected, "{code:?}");
        let response = http::Response::builder()
            .header("grpc-status", code as i32)
            .body(())
            .unwrap();
        let http: Result<_, BoxError> = Ok(response);
        assert_eq!(classifier.classify(&http), expected, "{code:?}");
    }
}

#[test]
fn errors_without_a_status_fail_and_a_row_can_be_changed() {
    let classifier = GrpcClassifier::new();
    for error in [
        BoxError::from(CircuitOpen::new()),
        BoxError::from("connection reset"),
    ] {
        let result: Result<tonic::Response<()>, BoxError> = Err(error);
        assert_eq!(classifier.classify(&result), Outcome::Failure);
    }
    let http: Result<http::Response<()>, BoxError> = Err("connection reset".into());
    assert_eq!(classifier.classify(&http), Outcome::Failure);

    let shed: Result<tonic::Response<()>, Status> = Err(Status::resource_exhausted("shed"));
    assert_eq!(classifier.classify(&shed), Outcome::Ignored);
    let changed = classifier.with(Code::ResourceExhausted, Outcome::Failure);
    assert_eq!(changed.classify(&shed), Outcome::Failure);
    assert_eq!(changed.outcome(Code::InvalidArgument), Outcome::Ignored);
}

#[test]
fn the_policy_retries_unavailable_and_what_it_is_told_and_refused_connections() {
    let policy = GrpcPolicy::new();
    let request = TitleRequest { id: 1 };
    let retried = |policy: &GrpcPolicy, error: BoxError| {
        let result: Result<tonic::Response<TitleReply>, BoxError> = Err(error);
        policy.is_retryable(&request, &result)
    };
    assert!(retried(&policy, Status::unavailable("down").into()));
    for code in [
        Code::DeadlineExceeded,
        Code::Internal,
        Code::InvalidArgument,
        Code::Unknown,
    ] {
        assert!(!retried(&policy, Status::new(code, "x").into()), "{code:?}");
    }
    assert!(retried(
        &policy.retry_on(Code::Internal),
        Status::internal("x").into()
    ));
    // No status: only what proves the request was never sent.
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert!(retried(&policy, refused.into()));
    assert!(!retried(&policy, "connection reset".into()));
    assert!(retried(&policy, CircuitOpen::new().into()));
    // A success is never retried; hedges only for idempotent calls.
    let ok: Result<tonic::Response<TitleReply>, BoxError> =
        Ok(tonic::Response::new(TitleReply::default()));
    assert!(!policy.is_retryable(&request, &ok));
    let may_send_twice = |policy: GrpcPolicy| {
        <GrpcPolicy as Policy<TitleRequest, tonic::Response<TitleReply>>>::may_send_twice(
            &policy, &request,
        )
    };
    assert!(!may_send_twice(policy));
    assert!(may_send_twice(policy.idempotent()));
}

/// An UNAVAILABLE with `grpc-retry-pushback-ms` set to `pushback`.
fn pushed_back(pushback: &str) -> Status {
    let mut status = Status::unavailable("busy");
    status
        .metadata_mut()
        .insert("grpc-retry-pushback-ms", pushback.parse().unwrap());
    status
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_waits_as_long_as_the_server_pushes_back_and_not_at_all_when_told() {
    for (pushback, attempts, waited) in [("300", 2, 300), ("-1", 1, 0), ("later", 1, 0)] {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let inner = service_fn(move |_: TitleRequest| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                match n {
                    0 => Err(pushed_back(pushback)),
                    _ => Ok(tonic::Response::new(TitleReply::default())),
                }
            }
        });
        let retry = RetryLayer::builder("catalog")
            .policy(GrpcPolicy::new())
            .backoff(Backoff::none())
            .max_attempts(3)
            .build()
            .unwrap();
        let mut svc = ServiceBuilder::new().layer(retry).service(inner);
        let start = tokio::time::Instant::now();
        let result = svc
            .ready()
            .await
            .unwrap()
            .call(TitleRequest { id: 1 })
            .await;
        assert_eq!(
            calls.load(Ordering::Relaxed),
            attempts,
            "pushback {pushback}"
        );
        assert_eq!(result.is_ok(), attempts == 2, "pushback {pushback}");
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(waited),
            "pushback {pushback}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn into_status_gives_the_servers_status_or_reads_rampart_errors() {
    // The server's own status, metadata and all, out of the box.
    let status = into_status(pushed_back("10").into());
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unavailable, "busy")
    );
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "10"
    );

    // rampart's rejections and timeouts.
    assert_eq!(
        into_status(CircuitOpen::new().into()).code(),
        Code::Unavailable
    );
    let timeout = rampart::timeout::TimeoutLayer::builder("catalog")
        .timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let mut slow = timeout.layer(service_fn(|_: ()| {
        std::future::pending::<Result<(), Status>>()
    }));
    let elapsed = slow.ready().await.unwrap().call(()).await.unwrap_err();
    let status = into_status(elapsed);
    assert_eq!(
        (status.code(), status.message()),
        (Code::DeadlineExceeded, "timed out")
    );

    // A retry the budget refused: the last attempt's status.
    let failing = Endpoint::new(
        "failing",
        service_fn(|_: TitleRequest| async {
            Err::<tonic::Response<TitleReply>, _>(Status::unavailable("down"))
        }),
    );
    let mut balancer = Balance::builder("catalog")
        .policy(GrpcPolicy::new())
        .backoff(Backoff::none())
        .retry_budget(RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap())
        .build(Endpoints::fixed([failing]))
        .unwrap();
    let error = balancer
        .ready()
        .await
        .unwrap()
        .call(TitleRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&error), ErrorKind::RetryBudgetExhausted);
    assert_eq!(status_of(&error).map(Status::code), Some(Code::Unavailable));
    let status = into_status(error);
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unavailable, "down")
    );

    // An adaptive limit's rejection is transient; a partition over its
    // share has spent its quota (found by a user trial: both were UNKNOWN).
    assert_eq!(
        into_status(rampart::limit::LimitExceeded::new().into()).code(),
        Code::Unavailable
    );
    assert_eq!(
        into_status(rampart::limit::PartitionLimitExceeded::new().into()).code(),
        Code::ResourceExhausted
    );

    // A fallback refused by its cap answers as the call's own error, as
    // rampart::axum does (found by a user trial: it was UNKNOWN).
    let fallback = rampart::fallback::FallbackLayer::builder("catalog")
        .max_concurrent(1)
        .fallback(|_cause| std::future::pending::<Result<(), BoxError>>())
        .build()
        .unwrap();
    let mut timing_out = fallback.layer(timeout.layer(service_fn(|_: ()| {
        std::future::pending::<Result<(), Status>>()
    })));
    let held = tokio::spawn(timing_out.ready().await.unwrap().call(()));
    // Past its timeout: its fallback runs, holding the only place.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rejected = timing_out
        .ready()
        .await
        .unwrap()
        .call(())
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&rejected), ErrorKind::FallbackRejected);
    assert_eq!(into_status(rejected).code(), Code::DeadlineExceeded);
    held.abort();

    // Anything else: tonic's own reading.
    assert_eq!(into_status("disk on fire".into()).code(), Code::Unknown);
}
