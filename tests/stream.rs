//! The Hystrix stream: its schema, its numbers against the calls made, and
//! how it treats subscribers.
//!
//! Most tests call the [`HystrixStream`] service directly and read the
//! response body frame by frame, on a paused clock: no socket, so time
//! moves only when every task waits on it. One test goes through a real
//! hyper server on 127.0.0.1 (real clock, bounded waits) for the headers on
//! the wire and for a connection that goes away.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::registry::Registry;
use rampart::stream::{HystrixStream, ResponseBody, SlowSubscriber};
use rampart::{BoxError, Command};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

async fn subscribe(stream: &mut HystrixStream, path: &str) -> Response<ResponseBody> {
    ServiceExt::<Request<()>>::ready(stream)
        .await
        .unwrap()
        .call(get(path))
        .await
        .unwrap()
}

/// The next frame of a subscriber's body.
async fn frame(body: &mut ResponseBody) -> Bytes {
    let frame = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("a frame within a minute")
        .expect("the stream never ends")
        .expect("not dropped");
    frame.into_data().expect("data frames only")
}

/// A frame taken after everything before this call: a frame produced
/// while the calls ran may be waiting, so wait past the next interval.
async fn latest(body: &mut ResponseBody) -> Bytes {
    tokio::time::sleep(Duration::from_millis(600)).await;
    frame(body).await
}

/// The events of a frame, each parsed as JSON.
fn events(frame: &[u8]) -> Vec<Map<String, Value>> {
    let text = std::str::from_utf8(frame).expect("UTF-8");
    assert!(text.ends_with("\n\n"), "every event ends with a blank line");
    text.split_terminator("\n\n")
        .map(|event| {
            let json = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("an unnamed data event, got {event:?}"));
            match serde_json::from_str(json).expect("valid JSON") {
                Value::Object(object) => object,
                other => panic!("an object, got {other}"),
            }
        })
        .collect()
}

fn find<'a>(events: &'a [Map<String, Value>], kind: &str, name: &str) -> &'a Map<String, Value> {
    events
        .iter()
        .find(|e| e["type"] == kind && e["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name:?} in {events:#?}"))
}

const PERCENTILE_KEYS: [&str; 9] = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"];

const COMMAND_NUMBERS: &[&str] = &[
    "currentTime",
    "errorPercentage",
    "errorCount",
    "requestCount",
    "rollingCountBadRequests",
    "rollingCountCollapsedRequests",
    "rollingCountEmit",
    "rollingCountExceptionsThrown",
    "rollingCountFailure",
    "rollingCountFallbackEmit",
    "rollingCountFallbackFailure",
    "rollingCountFallbackMissing",
    "rollingCountFallbackRejection",
    "rollingCountFallbackSuccess",
    "rollingCountResponsesFromCache",
    "rollingCountSemaphoreRejected",
    "rollingCountShortCircuited",
    "rollingCountSuccess",
    "rollingCountThreadPoolRejected",
    "rollingCountTimeout",
    "currentConcurrentExecutionCount",
    "rollingMaxConcurrentExecutionCount",
    "latencyExecute_mean",
    "latencyTotal_mean",
    "propertyValue_circuitBreakerRequestVolumeThreshold",
    "propertyValue_circuitBreakerSleepWindowInMilliseconds",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
    "propertyValue_executionTimeoutInMilliseconds",
    "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];
const COMMAND_BOOLS: &[&str] = &[
    "isCircuitBreakerOpen",
    "propertyValue_circuitBreakerForceOpen",
    "propertyValue_circuitBreakerForceClosed",
    "propertyValue_circuitBreakerEnabled",
    "propertyValue_executionIsolationThreadInterruptOnTimeout",
    "propertyValue_requestCacheEnabled",
    "propertyValue_requestLogEnabled",
];
const COMMAND_STRINGS: &[&str] = &[
    "type",
    "name",
    "group",
    "propertyValue_executionIsolationStrategy",
    "threadPool",
    "rampartCircuitState",
];
const POOL_NUMBERS: &[&str] = &[
    "currentTime",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "rollingCountCommandRejections",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];
const ENDPOINT_NUMBERS: &[&str] = &[
    "currentTime",
    "rollingCountSelected",
    "rollingCountSuccess",
    "rollingCountFailure",
    "rollingCountTimeout",
    "rollingCountIgnored",
    "rollingCountCancelled",
    "rollingCountEjections",
    "rollingCountMarkedDead",
    "currentInFlight",
    "latencyEstimateMs",
    "consecutiveFailures",
    "outForMs",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];

/// Hystrix's `HystrixCollapser` numbers (besides `batchSize`).
const COLLAPSER_NUMBERS: &[&str] = &[
    "currentTime",
    "rollingCountRequestsBatched",
    "rollingCountBatches",
    "rollingCountResponsesFromCache",
    "batchSize_mean",
    "propertyValue_maxRequestsInBatch",
    "propertyValue_timerDelayInMilliseconds",
    "reportingHosts",
];

/// Checks one object against its type's schema: exactly these keys, each
/// of its JSON type, numbers whole and finite.
fn check_schema(event: &Map<String, Value>) {
    type Keys = &'static [&'static str];
    let (numbers, bools, strings, maps, nullable_strings): (Keys, Keys, Keys, Keys, Keys) =
        match event["type"].as_str() {
            Some("HystrixCommand") => (
                COMMAND_NUMBERS,
                COMMAND_BOOLS,
                COMMAND_STRINGS,
                &["latencyExecute", "latencyTotal"],
                &["propertyValue_executionIsolationThreadPoolKeyOverride"],
            ),
            Some("HystrixThreadPool") => (POOL_NUMBERS, &[], &["type", "name"], &[], &[]),
            Some("HystrixCollapser") => (
                COLLAPSER_NUMBERS,
                &["propertyValue_requestCacheEnabled"],
                &["type", "name"],
                &[],
                &[],
            ),
            Some("RampartEndpoint") => (
                ENDPOINT_NUMBERS,
                &["ejected", "markedDead"],
                &["type", "name", "balancer", "endpoint", "zone"],
                &[],
                &[],
            ),
            other => panic!("unexpected type {other:?}"),
        };
    let whole = |key: &str, v: &Value| {
        assert!(
            v.is_u64(),
            "{key} of {} must be a whole number, got {v}",
            event["name"]
        )
    };
    for &key in numbers {
        whole(key, &event[key]);
    }
    for &key in bools {
        assert!(event[key].is_boolean(), "{key} must be a JSON bool");
    }
    for &key in strings {
        assert!(event[key].is_string(), "{key} must be a string");
    }
    for &key in nullable_strings {
        let v = &event[key];
        assert!(v.is_string() || v.is_null(), "{key}: string or null");
    }
    for &key in maps {
        let map = event[key].as_object().expect("a percentile object");
        let keys: BTreeSet<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys, PERCENTILE_KEYS.into_iter().collect(), "{key} keys");
        for (k, v) in map {
            whole(k, v);
        }
    }
    // A collapser's batch sizes: Hystrix sends no "0" for them.
    let mut objects: Vec<&str> = maps.to_vec();
    if event["type"] == "HystrixCollapser" {
        let sizes = event["batchSize"].as_object().expect("a percentile object");
        let keys: BTreeSet<&str> = sizes.keys().map(String::as_str).collect();
        assert_eq!(keys, PERCENTILE_KEYS[1..].iter().copied().collect());
        for (k, v) in sizes {
            whole(k, v);
        }
        objects.push("batchSize");
    }
    let expected: BTreeSet<&str> = [numbers, bools, strings, &objects, nullable_strings]
        .concat()
        .into_iter()
        .collect();
    let got: BTreeSet<&str> = event.keys().map(String::as_str).collect();
    assert_eq!(got, expected, "the keys of {}", event["name"]);
    if let Some(strategy) = event.get("propertyValue_executionIsolationStrategy") {
        assert!(strategy == "THREAD" || strategy == "SEMAPHORE");
    }
    assert_eq!(event["reportingHosts"], 1);
}

async fn ok_after(ms: u64) -> Result<&'static str, BoxError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok("ok")
}

async fn fail_after(ms: u64) -> Result<&'static str, BoxError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Err("connection refused".into())
}

#[tokio::test(start_paused = true)]
async fn every_object_has_the_hystrix_schema_and_the_numbers_of_the_calls_made() {
    let registry = Registry::new();
    let healthy = Command::builder("RatingsGet")
        .group("Ratings")
        .registry(&registry)
        .build()
        .unwrap();
    let failing = Command::builder("BookmarksGet")
        .registry(&registry)
        .fallback(|_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok("no bookmarks")
        })
        .build()
        .unwrap();
    let pooled = Command::builder("ImagesGet")
        .registry(&registry)
        .pool(4, 2)
        .build()
        .unwrap();
    let lone = CircuitBreakerLayer::builder("LoneBreaker")
        .registry(&registry)
        .build()
        .unwrap();
    let endpoints = (0..2).map(|n| {
        Endpoint::new(
            format!("10.0.0.{n}:80"),
            tower::service_fn(|_: ()| ok_after(5)),
        )
    });
    let mut balancer = Balance::builder("catalog")
        .registry(&registry)
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();

    // Subscribe first: running totals (endpoints) count from here.
    let mut body = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    frame(&mut body).await;

    let mut healthy_svc = healthy.layer(tower::service_fn(|_: ()| ok_after(30)));
    for _ in 0..7 {
        healthy_svc.ready().await.unwrap().call(()).await.unwrap();
    }
    let mut failing_svc = failing.layer(tower::service_fn(|_: ()| fail_after(10)));
    // 20 failures trip the breaker (20 calls, 50 %); 5 more are
    // short-circuited. The fallback serves all 25.
    for _ in 0..25 {
        let served = failing_svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(served, "no bookmarks");
    }
    for _ in 0..6 {
        balancer.ready().await.unwrap().call(()).await.unwrap();
    }
    let _lone_svc = lone.layer(tower::service_fn(|_: ()| ok_after(1)));
    let _pooled_svc = pooled.layer(tower::service_fn(|_: ()| ok_after(1)));

    let events = events(&latest(&mut body).await);
    for event in &events {
        check_schema(event);
    }
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("HystrixCommand", "RatingsGet"),
            ("HystrixCommand", "BookmarksGet"),
            ("HystrixCommand", "ImagesGet"),
            ("HystrixCommand", "LoneBreaker"),
            ("HystrixThreadPool", "ImagesGet"),
            ("RampartEndpoint", "catalog/\"10.0.0.0:80\""),
            ("RampartEndpoint", "catalog/\"10.0.0.1:80\""),
        ]
    );

    let ratings = find(&events, "HystrixCommand", "RatingsGet");
    assert_eq!(ratings["group"], "Ratings");
    assert_eq!(ratings["threadPool"], "Ratings");
    assert_eq!(ratings["isCircuitBreakerOpen"], false);
    assert_eq!(ratings["rampartCircuitState"], "closed");
    assert_eq!(ratings["requestCount"], 7);
    assert_eq!(ratings["rollingCountSuccess"], 7);
    assert_eq!(ratings["errorCount"], 0);
    assert_eq!(ratings["errorPercentage"], 0);
    assert_eq!(ratings["rollingMaxConcurrentExecutionCount"], 1);
    assert_eq!(
        ratings["propertyValue_executionIsolationStrategy"],
        "SEMAPHORE"
    );
    assert_eq!(
        ratings["propertyValue_executionIsolationSemaphoreMaxConcurrentRequests"],
        10
    );
    assert_eq!(
        ratings["propertyValue_executionTimeoutInMilliseconds"],
        1000
    );
    assert_eq!(
        ratings["propertyValue_circuitBreakerRequestVolumeThreshold"],
        20
    );
    assert_eq!(
        ratings["propertyValue_circuitBreakerErrorThresholdPercentage"],
        50
    );
    assert_eq!(
        ratings["propertyValue_circuitBreakerSleepWindowInMilliseconds"],
        5000
    );
    assert_eq!(
        ratings["propertyValue_metricsRollingStatisticalWindowInMilliseconds"],
        10000
    );
    // 30 ms calls: the histogram is within 6.25 %.
    for p in PERCENTILE_KEYS {
        let ms = ratings["latencyExecute"][p].as_u64().unwrap();
        assert!((28..=32).contains(&ms), "latencyExecute[{p}] = {ms}");
    }
    assert_eq!(ratings["latencyExecute_mean"], 30);
    assert_eq!(
        ratings["latencyTotal"], ratings["latencyExecute"],
        "no fallback ran"
    );

    let bookmarks = find(&events, "HystrixCommand", "BookmarksGet");
    assert_eq!(bookmarks["isCircuitBreakerOpen"], true);
    assert_eq!(bookmarks["rampartCircuitState"], "open");
    assert_eq!(bookmarks["requestCount"], 20);
    assert_eq!(bookmarks["errorCount"], 20);
    assert_eq!(bookmarks["errorPercentage"], 100);
    assert_eq!(bookmarks["rollingCountFailure"], 20);
    assert_eq!(bookmarks["rollingCountShortCircuited"], 5);
    assert_eq!(bookmarks["rollingCountFallbackSuccess"], 25);
    assert_eq!(bookmarks["rollingCountFallbackMissing"], 0);
    assert_eq!(bookmarks["rollingCountExceptionsThrown"], 0);
    assert_eq!(bookmarks["latencyExecute_mean"], 10);
    assert_eq!(bookmarks["latencyExecute"]["100"], 10);
    // What the caller waited: 20 calls of 10 + 20 ms, 5 short-circuits of
    // 20 ms (the fallback alone); percentiles within the histogram's 6.25 %,
    // the mean exact.
    let total = |p: &str| bookmarks["latencyTotal"][p].as_u64().unwrap();
    assert!((19..=21).contains(&total("0")), "{}", total("0"));
    for p in ["25", "50", "99", "100"] {
        assert!((29..=31).contains(&total(p)), "{p}: {}", total(p));
    }
    assert_eq!(bookmarks["latencyTotal_mean"], (20 * 30 + 5 * 20) / 25);

    let images = find(&events, "HystrixCommand", "ImagesGet");
    assert_eq!(images["propertyValue_executionIsolationStrategy"], "THREAD");
    assert_eq!(images["threadPool"], "ImagesGet");
    assert_eq!(
        images["propertyValue_executionIsolationThreadPoolKeyOverride"],
        "ImagesGet"
    );
    let pool = find(&events, "HystrixThreadPool", "ImagesGet");
    assert_eq!(pool["currentCorePoolSize"], 4);
    assert_eq!(pool["propertyValue_queueSizeRejectionThreshold"], 2);

    let lone = find(&events, "HystrixCommand", "LoneBreaker");
    assert_eq!(lone["group"], "LoneBreaker");
    assert_eq!(lone["requestCount"], 0);

    let selected: u64 = events
        .iter()
        .filter(|e| e["type"] == "RampartEndpoint")
        .map(|e| {
            assert_eq!(e["balancer"], "catalog");
            assert_eq!(e["ejected"], false);
            assert_eq!(e["rollingCountFailure"], 0);
            e["rollingCountSelected"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(selected, 6);
}

#[tokio::test(start_paused = true)]
async fn failures_without_a_fallback_are_missing_fallbacks_and_thrown() {
    let registry = Registry::new();
    let command = Command::builder("NoFallback")
        .registry(&registry)
        .build()
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut body = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let mut svc = command.layer(tower::service_fn(|_: ()| fail_after(1)));
    for _ in 0..3 {
        assert!(svc.ready().await.unwrap().call(()).await.is_err());
    }
    let events = events(&latest(&mut body).await);
    let event = find(&events, "HystrixCommand", "NoFallback");
    assert_eq!(event["rollingCountFallbackMissing"], 3);
    assert_eq!(event["rollingCountExceptionsThrown"], 3);
    assert_eq!(event["rollingCountFallbackSuccess"], 0);
}

#[tokio::test(start_paused = true)]
async fn a_component_that_goes_away_is_announced_once() {
    let registry = Registry::new();
    let command = Command::builder("Ephemeral")
        .registry(&registry)
        .build()
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut body = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let first = events(&frame(&mut body).await);
    find(&first, "HystrixCommand", "Ephemeral");

    drop(command);
    let second = events(&frame(&mut body).await);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["deleteData"], "true");
    assert_eq!(second[0]["name"], "Ephemeral");
    assert_eq!(second[0]["type"], "HystrixCommand");

    // Then nothing to report: keep-alive pings.
    assert_eq!(&frame(&mut body).await[..], b"ping: \n\n");
}

#[tokio::test(start_paused = true)]
async fn each_key_of_a_keyed_breaker_shows_as_a_breaker_and_a_forgotten_key_leaves() {
    let registry = Registry::new();
    let per_tenant = CircuitBreakerLayer::builder("tenants")
        .consecutive_failures(1)
        .registry(&registry)
        .keyed(|tenant: &&str| *tenant)
        .build()
        .unwrap();
    let tenants = per_tenant.handle();
    let mut svc = per_tenant.layer(tower::service_fn(|tenant: &'static str| async move {
        if tenant == "noisy" {
            Err::<(), BoxError>("boom".into())
        } else {
            Ok(())
        }
    }));
    for tenant in ["noisy", "quiet", "quiet"] {
        let _ = svc.ready().await.unwrap().call(tenant).await;
    }
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut body = subscribe(&mut stream, "/hystrix.stream").await.into_body();

    let seen = events(&frame(&mut body).await);
    let noisy = find(&seen, "HystrixCommand", "tenants/\"noisy\"");
    check_schema(noisy);
    assert_eq!(noisy["isCircuitBreakerOpen"], true);
    assert_eq!(noisy["rampartCircuitState"], "open");
    assert_eq!(noisy["rollingCountFailure"], 1);
    let quiet = find(&seen, "HystrixCommand", "tenants/\"quiet\"");
    assert_eq!(quiet["isCircuitBreakerOpen"], false);
    assert_eq!(quiet["rollingCountSuccess"], 2);

    // A key forgotten is announced gone, once, like any component.
    tenants.remove(&"noisy");
    let gone = events(&frame(&mut body).await);
    let deleted: Vec<_> = gone
        .iter()
        .filter(|e| e.contains_key("deleteData"))
        .collect();
    assert_eq!(deleted.len(), 1, "{gone:?}");
    assert_eq!(deleted[0]["name"], "tenants/\"noisy\"");
    let after = events(&frame(&mut body).await);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["name"], "tenants/\"quiet\"");
}

#[tokio::test(start_paused = true)]
async fn each_frame_is_serialised_once_and_shared() {
    let registry = Registry::new();
    let _command = Command::builder("Shared")
        .registry(&registry)
        .build()
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut a = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let mut b = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let (fa, fb) = (frame(&mut a).await, frame(&mut b).await);
    assert_eq!(fa, fb);
    assert_eq!(fa.as_ptr(), fb.as_ptr(), "one buffer, not a copy each");
}

#[tokio::test(start_paused = true)]
async fn the_interval_is_500_ms_and_a_subscriber_may_ask_for_another() {
    let registry = Registry::new();
    let _command = Command::builder("Paced")
        .registry(&registry)
        .build()
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut fast = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let mut slow = subscribe(&mut stream, "/hystrix.stream?delay=2000")
        .await
        .into_body();
    let start = tokio::time::Instant::now();
    frame(&mut fast).await;
    frame(&mut slow).await;
    let mut gaps = Vec::new();
    for _ in 0..4 {
        let before = tokio::time::Instant::now();
        frame(&mut fast).await;
        gaps.push(before.elapsed());
    }
    assert!(
        gaps.iter().all(|g| *g == Duration::from_millis(500)),
        "{gaps:?}"
    );
    let before = tokio::time::Instant::now();
    frame(&mut slow).await;
    assert_eq!(before.elapsed(), Duration::from_millis(0), "already due");
    assert!(start.elapsed() >= Duration::from_millis(2000));
}

#[tokio::test(start_paused = true)]
async fn the_subscriber_limit_answers_503_and_a_gone_subscriber_frees_its_place() {
    let registry = Registry::new();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .max_subscribers(2)
        .build()
        .unwrap();
    let first = subscribe(&mut stream, "/hystrix.stream").await;
    let _second = subscribe(&mut stream, "/hystrix.stream").await;
    let refused = subscribe(&mut stream, "/hystrix.stream").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"MaxConcurrentConnections reached: 2");

    drop(first);
    let again = subscribe(&mut stream, "/hystrix.stream").await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_reads_nothing_is_dropped_and_frees_its_place() {
    let registry = Registry::new();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .max_subscribers(2)
        .slow_subscriber_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut reader = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let mut stalled = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    // 6 s of frames read by one subscriber only.
    for _ in 0..14 {
        frame(&mut reader).await;
    }
    let newcomer = subscribe(&mut stream, "/hystrix.stream").await;
    assert_eq!(
        newcomer.status(),
        StatusCode::OK,
        "the stalled place is free"
    );
    let ended = stalled.frame().await.expect("an error, not the end");
    let error = ended.expect_err("dropped as slow");
    assert_eq!(error, SlowSubscriber);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_a_clear_answer() {
    let mut stream = HystrixStream::builder()
        .registry(&Registry::new())
        .build()
        .unwrap();
    for (path, status, says) in [
        ("/hystrix.stream?delay=abc", 400, "`delay`"),
        ("/hystrix.stream?delay=50", 400, "from 100 to 600000"),
        (
            "/hystrix.stream?delay=99999999999999999999999",
            400,
            "`delay`",
        ),
        ("/metrics", 404, "hystrix.stream"),
    ] {
        let response = subscribe(&mut stream, path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains(says), "{path}: {body}");
    }
    let post = Request::builder()
        .method(Method::POST)
        .uri("/hystrix.stream")
        .body(())
        .unwrap();
    let response = stream.call(post).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    let ok = subscribe(&mut stream, "/admin/hystrix.stream?delay=1000").await;
    assert_eq!(ok.status(), StatusCode::OK, "mounted under a prefix");
}

#[test]
fn bad_options_are_config_errors() {
    let error = HystrixStream::builder()
        .delay(Duration::from_millis(10))
        .max_subscribers(0)
        .slow_subscriber_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    let text = error.to_string();
    for field in ["delay", "max_subscribers", "slow_subscriber_timeout"] {
        assert!(text.contains(field), "{text}");
    }
}

/// Through a real hyper server: the headers on the wire, and a subscriber
/// whose connection closes frees its place.
#[tokio::test]
async fn over_http_the_headers_are_hystrixs_and_a_closed_connection_frees_its_place() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let registry = Registry::new();
    let _command = Command::builder("OverHttp")
        .registry(&registry)
        .build()
        .unwrap();
    let stream = HystrixStream::builder()
        .registry(&registry)
        .max_subscribers(1)
        .build()
        .unwrap();
    let serving = rampart::stream::Server::new(stream).start().await.unwrap();
    assert!(serving.local_addr().ip().is_loopback());
    let url = serving.url("/hystrix.stream?delay=100");
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();

    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/event-stream;charset=UTF-8");
    assert_eq!(
        header("cache-control"),
        "no-cache, no-store, max-age=0, must-revalidate"
    );
    assert_eq!(header("pragma"), "no-cache");
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a frame within 10 s")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(first.starts_with(b"data: {\"type\":\"HystrixCommand\",\"name\":\"OverHttp\""));

    // The only place is taken.
    let refused = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Closing the connection frees it: the server notices when its next
    // frame cannot be written.
    drop(body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = client.get(url.parse().unwrap()).await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not freed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(all(feature = "collapse", feature = "cache"))]
#[tokio::test(start_paused = true)]
async fn collapsed_requests_cache_hits_and_collapsers_reach_the_stream() {
    use rampart::cache::CacheLayer;
    use rampart::collapse::CollapseLayer;

    let registry = Registry::new();
    // The batch command, and a collapser above it naming it.
    let batch = Command::builder("TitlesBatchGet")
        .registry(&registry)
        .build()
        .unwrap();
    let collapser: CollapseLayer<u32> = CollapseLayer::builder("TitlesGet")
        .registry(&registry)
        .command(&batch)
        .build()
        .unwrap();
    // A command with a cache.
    let ratings = Command::builder("RatingsGet")
        .registry(&registry)
        .cache(
            CacheLayer::builder("RatingsGet", |title: &u32| *title)
                .ttl(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut body = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    frame(&mut body).await;

    let titles = collapser.layer(batch.layer(tower::service_fn(|ids: Vec<u32>| async move {
        Ok::<_, BoxError>(
            ids.iter()
                .map(|id| format!("title {id}"))
                .collect::<Vec<_>>(),
        )
    })));
    // Two batches: 7 requests, then 3.
    for round in [7u32, 3] {
        let calls: Vec<_> = (0..round)
            .map(|id| tokio::spawn(titles.clone().oneshot(id)))
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
    }
    let mut rated = ratings.layer(tower::service_fn(|title: u32| async move {
        Ok::<_, BoxError>(title % 5)
    }));
    for _ in 0..4 {
        rated.ready().await.unwrap().call(7).await.unwrap();
    }

    let events = events(&latest(&mut body).await);
    for event in &events {
        check_schema(event);
    }
    let batch = find(&events, "HystrixCommand", "TitlesBatchGet");
    assert_eq!(batch["requestCount"], 2, "two batch calls");
    assert_eq!(batch["rollingCountCollapsedRequests"], 10);
    assert_eq!(batch["propertyValue_requestCacheEnabled"], false);

    let collapser = find(&events, "HystrixCollapser", "TitlesGet");
    assert_eq!(collapser["rollingCountRequestsBatched"], 10);
    assert_eq!(collapser["rollingCountBatches"], 2);
    assert_eq!(collapser["rollingCountResponsesFromCache"], 0);
    assert_eq!(collapser["batchSize_mean"], 5);
    assert_eq!(collapser["batchSize"]["25"], 3);
    assert_eq!(collapser["batchSize"]["50"], 3);
    assert_eq!(collapser["batchSize"]["100"], 7);
    assert_eq!(collapser["propertyValue_maxRequestsInBatch"], 100);
    assert_eq!(collapser["propertyValue_timerDelayInMilliseconds"], 10);

    let ratings = find(&events, "HystrixCommand", "RatingsGet");
    assert_eq!(ratings["rollingCountResponsesFromCache"], 3);
    assert_eq!(ratings["requestCount"], 1, "hits reach no breaker");
    assert_eq!(ratings["propertyValue_requestCacheEnabled"], true);
}

#[tokio::test(start_paused = true)]
async fn live_changes_show_in_the_property_values() {
    let registry = Registry::new();
    let command = Command::builder("RatingsGet")
        .registry(&registry)
        .build()
        .unwrap();
    let _svc = command.layer(tower::service_fn(|_: ()| ok_after(1)));
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let mut body = subscribe(&mut stream, "/hystrix.stream").await.into_body();
    let before = events(&frame(&mut body).await);
    let ratings = find(&before, "HystrixCommand", "RatingsGet");
    assert_eq!(
        ratings["propertyValue_executionTimeoutInMilliseconds"],
        1000
    );
    assert_eq!(
        ratings["propertyValue_circuitBreakerErrorThresholdPercentage"],
        50
    );

    use rampart::config::Source;
    for (property, value) in [
        ("timeout", "800ms"),
        ("failure_rate", "0.3"),
        ("min_calls", "7"),
        ("open_for", "30s"),
        ("max_concurrent", "25"),
        ("force_open", "true"),
    ] {
        registry
            .apply(Source::File, "RatingsGet", property, Some(value))
            .unwrap();
    }
    let after = events(&latest(&mut body).await);
    let ratings = find(&after, "HystrixCommand", "RatingsGet");
    for (key, value) in [
        ("propertyValue_executionTimeoutInMilliseconds", 800),
        (
            "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
            800,
        ),
        ("propertyValue_circuitBreakerErrorThresholdPercentage", 30),
        ("propertyValue_circuitBreakerRequestVolumeThreshold", 7),
        (
            "propertyValue_circuitBreakerSleepWindowInMilliseconds",
            30_000,
        ),
        (
            "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
            25,
        ),
    ] {
        assert_eq!(ratings[key], value, "{key}");
    }
    assert_eq!(ratings["propertyValue_circuitBreakerForceOpen"], true);
}
