//! tower-http's response classifiers deciding what a circuit breaker counts
//! (feature `tower-http`): on a breaker, in a `Command`, and any
//! `ClassifyResponse` through `rampart::tower_http::Classifier`.

use http::{Response, StatusCode};
use rampart::circuit_breaker::{CircuitBreakerLayer, Classify, State};
use rampart::tower_http::Classifier;
use rampart::window::Counts;
use rampart::{BoxError, Command, ErrorKind};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_http::classify::{
    ClassifyResponse, GrpcCode, GrpcErrorsAsFailures, ServerErrorsAsFailures,
    StatusInRangeAsFailures,
};

/// What the dependency answers: a status, a `grpc-status` header, or no
/// response at all.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    Grpc(Option<i32>),
    Error,
}

async fn dependency(answer: Answer) -> Result<Response<()>, BoxError> {
    let response = match answer {
        Answer::Status(status) => Response::builder().status(status),
        Answer::Grpc(Some(code)) => Response::builder().header("grpc-status", code),
        // A gRPC response whose status will come in trailers.
        Answer::Grpc(None) => Response::builder().header("content-type", "application/grpc"),
        Answer::Error => return Err("connection reset".into()),
    };
    Ok(response.body(())?)
}

/// Sends each answer through a fresh breaker classifying with `classify`,
/// and returns what the breaker counted.
async fn counted<C>(classify: C, answers: &[Answer]) -> Counts
where
    C: Classify<Response<()>, BoxError> + Clone,
{
    let layer = CircuitBreakerLayer::builder("ratings")
        .classify(classify)
        // Never trips here: only the counting is under test.
        .min_calls(1_000)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(dependency));
    for &answer in answers {
        let _ = svc.ready().await.unwrap().call(answer).await;
    }
    handle.counts()
}

fn successes_and_failures(counts: Counts) -> (u64, u64) {
    (counts.successes, counts.failures)
}

#[tokio::test(start_paused = true)]
async fn server_errors_as_failures_counts_a_5xx_or_an_error_as_a_failure() {
    let counts = counted(
        ServerErrorsAsFailures::new(),
        &[
            Answer::Status(200),
            Answer::Status(404), // the caller's mistake: a success to tower-http
            Answer::Status(500),
            Answer::Status(503),
            Answer::Error,
        ],
    )
    .await;
    assert_eq!(successes_and_failures(counts), (2, 3));
    assert_eq!(counts.ignored, 0, "tower-http has no ignored class");
}

#[tokio::test(start_paused = true)]
async fn server_errors_as_failures_trip_the_breaker() {
    let layer = CircuitBreakerLayer::builder("ratings")
        .classify(ServerErrorsAsFailures::new())
        .consecutive_failures(3)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(dependency));
    for _ in 0..3 {
        // The 500 reaches the caller as it is, and counts.
        let response = svc
            .ready()
            .await
            .unwrap()
            .call(Answer::Status(500))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(handle.state(), State::Open);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Answer::Status(200))
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
}

#[tokio::test(start_paused = true)]
async fn grpc_errors_as_failures_reads_grpc_status_in_the_headers() {
    let unavailable = GrpcCode::Unavailable as i32;
    let counts = counted(
        GrpcErrorsAsFailures::new(),
        &[
            Answer::Grpc(Some(0)),           // OK
            Answer::Grpc(Some(unavailable)), // a trailers-only failure
            Answer::Grpc(Some(GrpcCode::DeadlineExceeded as i32)),
            Answer::Grpc(None), // status in trailers: not seen, a success
            Answer::Error,
        ],
    )
    .await;
    assert_eq!(successes_and_failures(counts), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn grpc_codes_marked_as_success_are_not_failures() {
    // INVALID_ARGUMENT is the caller's fault, not the dependency's.
    let classifier = GrpcErrorsAsFailures::new().with_success(GrpcCode::InvalidArgument);
    let counts = counted(
        classifier,
        &[
            Answer::Grpc(Some(GrpcCode::InvalidArgument as i32)),
            Answer::Grpc(Some(GrpcCode::Unavailable as i32)),
        ],
    )
    .await;
    assert_eq!(successes_and_failures(counts), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn status_in_range_as_failures_counts_its_range() {
    let counts = counted(
        StatusInRangeAsFailures::new(400..=599),
        &[
            Answer::Status(200),
            Answer::Status(404),
            Answer::Status(502),
        ],
    )
    .await;
    assert_eq!(successes_and_failures(counts), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn any_classify_response_goes_through_classifier() {
    // `map_failure_class` makes a tower-http classifier of another type.
    let classifier = ServerErrorsAsFailures::new().map_failure_class(|class| class.to_string());
    let counts = counted(
        Classifier::new(classifier),
        &[Answer::Status(200), Answer::Status(500), Answer::Error],
    )
    .await;
    assert_eq!(successes_and_failures(counts), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_command_classifies_with_them_too() {
    let command = Command::builder("RatingsGet")
        .breaker(|b| b.classify(ServerErrorsAsFailures::new()).min_calls(1_000))
        .build()
        .unwrap();
    let handle = command.breaker();
    let mut svc = command.layer(service_fn(dependency));
    for answer in [
        Answer::Status(200),
        Answer::Status(500),
        Answer::Status(502),
    ] {
        svc.ready().await.unwrap().call(answer).await.unwrap();
    }
    assert_eq!(successes_and_failures(handle.counts()), (1, 2));
}
