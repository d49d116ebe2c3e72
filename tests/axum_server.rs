//! rampart's layers in a real axum `Router`, their errors answered by
//! `rampart::axum`: each error's status, `x-rampart-error` and
//! `Retry-After`, as a client would see them.
//!
//! Requests go through the router with `tower::ServiceExt::oneshot`, on a
//! paused tokio clock: a slow handler's sleep and a breaker's open time pass
//! when the test says so, not on the wall clock.

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::bulkhead::BulkheadLayer;
use rampart::catch_panic::CatchPanicLayer;
use rampart::circuit_breaker::{CircuitBreakerLayer, Outcome, State};
use rampart::retry::RetryBudget;
use rampart::timeout::TimeoutLayer;
use rampart::BoxError;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

// ===== helpers =====

async fn get_from(app: &Router, path: &str) -> Response {
    let request = Request::get(path).body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap()
}

async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

/// Asserts a response of rampart's: its status, `x-rampart-error`, a
/// plain-text body, and `Retry-After` (or none).
async fn assert_answer(
    response: Response,
    status: StatusCode,
    error: Option<&str>,
    retry_after: Option<&str>,
    body: &str,
) {
    assert_eq!(response.status(), status);
    assert_eq!(header(&response, "x-rampart-error"), error);
    assert_eq!(header(&response, "retry-after"), retry_after);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(body_text(response).await, body);
}

/// A route whose service fails with whatever `fail` makes, answered by
/// `error_response`.
fn failing_route(fail: fn() -> BoxError) -> Router {
    let service = service_fn(move |_: Request<Body>| async move { Err::<Response, _>(fail()) });
    Router::new().route_service(
        "/",
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(rampart::axum::error_response))
            .service(service),
    )
}

// ===== timeout =====

#[tokio::test(start_paused = true)]
async fn a_timeout_answers_504() {
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "done"
            }),
        )
        .route("/fast", get(|| async { "done" }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(rampart::axum::error_response))
                .layer(
                    TimeoutLayer::builder("api")
                        .timeout(Duration::from_secs(1))
                        .build()
                        .unwrap(),
                ),
        );

    let started = tokio::time::Instant::now();
    let response = get_from(&app, "/slow").await;
    assert_eq!(started.elapsed(), Duration::from_secs(1), "at the deadline");
    assert_answer(
        response,
        StatusCode::GATEWAY_TIMEOUT,
        Some("timeout"),
        None,
        "timed out",
    )
    .await;

    let response = get_from(&app, "/fast").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-rampart-error"), None);
    assert_eq!(body_text(response).await, "done");
}

#[tokio::test(start_paused = true)]
async fn towers_own_timeout_answers_504_too() {
    let app = Router::new()
        .route("/slow", get(std::future::pending::<&str>))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(rampart::axum::error_response))
                .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1))),
        );
    assert_answer(
        get_from(&app, "/slow").await,
        StatusCode::GATEWAY_TIMEOUT,
        Some("timeout"),
        None,
        "timed out",
    )
    .await;
}

// ===== bulkhead =====

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_answers_503() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let app = Router::new()
        .route(
            "/hold",
            get(move || {
                let (entered, release) = (e.clone(), r.clone());
                async move {
                    entered.notify_one();
                    release.notified().await;
                    "held"
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(rampart::axum::error_response))
                .layer(
                    BulkheadLayer::builder("api")
                        .max_concurrent(1)
                        .build()
                        .unwrap(),
                ),
        );

    // The only slot, held by a request inside its handler.
    let holder = tokio::spawn({
        let app = app.clone();
        async move { get_from(&app, "/hold").await }
    });
    entered.notified().await;

    assert_answer(
        get_from(&app, "/hold").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("bulkhead_full"),
        None,
        "bulkhead full",
    )
    .await;

    release.notify_one();
    let held = holder.await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(body_text(held).await, "held");
}

// ===== circuit breaker =====

/// A breaker that opens on one 5xx, for `open_for`, in front of `/fail`
/// (always 500) and `/ok`.
fn breaker(
    open_for: Duration,
) -> rampart::circuit_breaker::CircuitBreakerLayer<
    impl Fn(&Result<Response, Infallible>) -> Outcome + Clone + Send + Sync + 'static,
> {
    CircuitBreakerLayer::builder("api")
        .min_calls(1)
        .open_for(open_for)
        .classify(|result: &Result<Response, Infallible>| match result {
            Ok(response) if response.status().is_server_error() => Outcome::Failure,
            _ => Outcome::Success,
        })
        .build()
        .unwrap()
}

fn routes() -> Router {
    Router::new()
        .route(
            "/fail",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR.into_response() }),
        )
        .route("/ok", get(|| async { "ok" }))
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_answers_503_with_retry_after_in_whole_seconds_rounded_up() {
    let breaker = breaker(Duration::from_millis(2_500));
    let handle = breaker.handle();
    let app = routes().route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(rampart::axum::error_response_with(
                handle.clone(),
            )))
            .layer(breaker),
    );

    // The handler's own 500 passes as it is, and trips the breaker.
    let response = get_from(&app, "/fail").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(header(&response, "x-rampart-error"), None);
    assert_eq!(handle.state(), State::Open);

    // 2.5 s left: "3".
    assert_answer(
        get_from(&app, "/ok").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("circuit_open"),
        Some("3"),
        "circuit open",
    )
    .await;

    // 1.5 s left: "2"; 0.5 s left: "1".
    tokio::time::advance(Duration::from_secs(1)).await;
    let response = get_from(&app, "/ok").await;
    assert_eq!(header(&response, "retry-after"), Some("2"));
    tokio::time::advance(Duration::from_secs(1)).await;
    let response = get_from(&app, "/ok").await;
    assert_eq!(header(&response, "retry-after"), Some("1"));

    // Open time over: the probe goes through, and the breaker closes.
    tokio::time::advance(Duration::from_millis(500)).await;
    let response = get_from(&app, "/ok").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_forced_open_breaker_answers_503_without_retry_after() {
    let breaker = breaker(Duration::from_secs(5));
    let handle = breaker.handle();
    let app = routes().route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(rampart::axum::error_response_with(
                handle.clone(),
            )))
            .layer(breaker),
    );
    // Forced open, it waits for a person: no time to give.
    handle.force_open();
    assert_answer(
        get_from(&app, "/ok").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("circuit_open"),
        None,
        "circuit open",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn error_response_alone_answers_an_open_breaker_without_retry_after() {
    let breaker = breaker(Duration::from_secs(5));
    let handle = breaker.handle();
    let app = routes().route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(rampart::axum::error_response))
            .layer(breaker),
    );
    get_from(&app, "/fail").await;
    assert_eq!(handle.state(), State::Open);
    assert_answer(
        get_from(&app, "/ok").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("circuit_open"),
        None,
        "circuit open",
    )
    .await;
}

// ===== balancer and retry budget =====

#[tokio::test(start_paused = true)]
async fn no_endpoint_answers_503() {
    // Discovery has delivered no endpoint yet.
    let (_feed, endpoints) = tokio::sync::watch::channel(Vec::<u16>::new());
    let ratings = Balance::builder("ratings")
        .build(Endpoints::watch(endpoints, |port: &u16| {
            Endpoint::new(
                *port,
                service_fn(|_: ()| async { Ok::<_, BoxError>("ratings") }),
            )
        }))
        .unwrap();
    let route = service_fn(move |_: Request<Body>| {
        let mut ratings = ratings.clone();
        async move {
            let body = ratings.ready().await?.call(()).await?;
            Ok::<_, BoxError>(body.into_response())
        }
    });
    let app = Router::new().route_service(
        "/",
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(rampart::axum::error_response))
            .service(route),
    );
    assert_answer(
        get_from(&app, "/").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("no_healthy_endpoint"),
        None,
        "no healthy endpoint",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_spent_retry_budget_answers_503() {
    let refused = || {
        service_fn(|_: ()| async {
            Err::<&str, BoxError>(io::Error::from(io::ErrorKind::ConnectionRefused).into())
        })
    };
    // No retry at all in the budget: the retry on the other instance that
    // a refused connection warrants is refused.
    let ratings = Balance::builder("ratings")
        .retries_next(1)
        .retry_budget(RetryBudget::new(Duration::from_secs(1), 0, 0.0).unwrap())
        .build(Endpoints::fixed([
            Endpoint::new(1, refused()),
            Endpoint::new(2, refused()),
        ]))
        .unwrap();
    let route = service_fn(move |_: Request<Body>| {
        let mut ratings = ratings.clone();
        async move {
            let body = ratings.ready().await?.call(()).await?;
            Ok::<_, BoxError>(body.into_response())
        }
    });
    let app = Router::new().route_service(
        "/",
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(rampart::axum::error_response))
            .service(route),
    );
    assert_answer(
        get_from(&app, "/").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("retry_budget_exhausted"),
        None,
        "retry budget exhausted",
    )
    .await;
}

// ===== panics and everything else =====

#[tokio::test(start_paused = true)]
async fn a_contained_panic_answers_500() {
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                if true {
                    panic!("index out of bounds");
                }
                "unreachable"
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(rampart::axum::error_response))
                .layer(CatchPanicLayer::new()),
        );
    assert_answer(
        get_from(&app, "/").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        Some("panicked"),
        None,
        "panicked",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn any_other_error_answers_500_without_its_text() {
    let app = failing_route(|| "password authentication failed for user \"app\"".into());
    let response = get_from(&app, "/").await;
    // Not rampart's: no header, and nothing of the error's own text.
    assert_answer(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        None,
        "internal server error",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_wrapped_rampart_error_is_still_recognised() {
    #[derive(Debug, thiserror::Error)]
    #[error("loading ratings")]
    struct Context(#[source] BoxError);

    let app = failing_route(|| Context(rampart::bulkhead::BulkheadFull::new().into()).into());
    assert_answer(
        get_from(&app, "/").await,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("bulkhead_full"),
        None,
        "bulkhead full",
    )
    .await;
}
