//! The collapser against a real hyper server on 127.0.0.1 with a bulk
//! endpoint: 10 000 single-title calls from 200 concurrent callers become
//! at most 5 % as many HTTP requests, none over the batch bound, and every
//! caller gets its own title. Real clock; bounded in requests and time.
//!
//! What a caller waits (the window, then its batch's call) is asserted on
//! a paused clock in `tests/collapse.rs`, to the millisecond. Here, on a
//! loaded 2-core machine, the real clock only says how long scheduling
//! took, so the latencies are printed, not asserted:
//! `cargo test --all-features --test collapse_hyper -- --nocapture`.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::collapse::CollapseLayer;
use rampart::registry::Registry;
use rampart::BoxError;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const CALLERS: usize = 200;
const CALLS_EACH: usize = 50;
const WINDOW: Duration = Duration::from_millis(10);
const MAX_BATCH: usize = 100;

/// A bulk endpoint: `POST /titles` with ids `1,2,3` answers `title 1`,
/// `title 2`, `title 3`, one per line. Counts its requests.
async fn server(requests: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                let serve = hyper::service::service_fn(move |request: Request<Incoming>| {
                    requests.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let ids = request.into_body().collect().await.unwrap().to_bytes();
                        let ids = std::str::from_utf8(&ids).unwrap();
                        let titles: Vec<String> =
                            ids.split(',').map(|id| format!("title {id}")).collect();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                            titles.join("\n"),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), serve)
                    .await;
            });
        }
    });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_single_calls_become_a_few_bulk_requests() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let requests = Arc::new(AtomicU64::new(0));
        let addr = server(requests.clone()).await;
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        // Each batch's size and call time.
        let batch_times = Arc::new(Mutex::new(Vec::new()));
        let times = batch_times.clone();
        // The bulk client: one POST per batch, timed.
        let bulk = tower::service_fn(move |ids: Vec<u32>| {
            let client = client.clone();
            let times = times.clone();
            async move {
                let start = Instant::now();
                let body: Vec<String> = ids.iter().map(u32::to_string).collect();
                let request = Request::post(format!("http://{addr}/titles"))
                    .body(Full::new(Bytes::from(body.join(","))))?;
                let response = client.request(request).await?;
                let text = response.into_body().collect().await?.to_bytes();
                let titles: Vec<String> = std::str::from_utf8(&text)?
                    .lines()
                    .map(str::to_owned)
                    .collect();
                times.lock().unwrap().push((ids.len(), start.elapsed()));
                Ok::<_, BoxError>(titles)
            }
        });
        let collapser: CollapseLayer<u32> = CollapseLayer::builder("TitlesGet")
            .registry(&Registry::new())
            .window(WINDOW)
            .max_batch(MAX_BATCH)
            .build()
            .unwrap();
        let handle = collapser.handle();
        let titles = collapser.layer(bulk);

        let started = Instant::now();
        let callers: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let titles = titles.clone();
                tokio::spawn(async move {
                    let mut waited = Vec::with_capacity(CALLS_EACH);
                    for call in 0..CALLS_EACH {
                        let id = (caller * CALLS_EACH + call) as u32;
                        let start = Instant::now();
                        let title = titles.clone().oneshot(id).await.unwrap();
                        waited.push(start.elapsed());
                        assert_eq!(title, format!("title {id}"), "each caller gets its own");
                    }
                    waited
                })
            })
            .collect();
        let mut waited = Vec::with_capacity(CALLERS * CALLS_EACH);
        for caller in callers {
            waited.extend(caller.await.unwrap());
        }
        let elapsed = started.elapsed();
        waited.sort();
        let batches = batch_times.lock().unwrap().clone();
        let largest = batches.iter().map(|&(size, _)| size).max().unwrap();
        let mut batch_times: Vec<Duration> = batches.iter().map(|&(_, took)| took).collect();
        batch_times.sort();

        let calls = waited.len() as u64;
        let http = requests.load(Ordering::Relaxed);
        let (p50, p99) = (percentile(&waited, 50.0), percentile(&waited, 99.0));
        let (batch_p50, batch_p99, batch_max) = (
            percentile(&batch_times, 50.0),
            percentile(&batch_times, 99.0),
            *batch_times.last().unwrap(),
        );
        eprintln!(
            "{calls} calls from {CALLERS} callers in {elapsed:?}: {http} HTTP requests \
             ({:.2} %), mean batch {:.1}; caller p50 {p50:?}, p99 {p99:?}; \
             largest batch {largest}; batch call p50 {batch_p50:?}, p99 {batch_p99:?}, \
             max {batch_max:?}; window {WINDOW:?}",
            http as f64 * 100.0 / calls as f64,
            calls as f64 / http as f64,
        );
        assert_eq!(calls, (CALLERS * CALLS_EACH) as u64);
        assert_eq!(handle.requests_batched(), calls);
        assert_eq!(handle.batches(), http, "one HTTP request per batch");
        assert_eq!(batches.len() as u64, http, "every batch call ended");
        assert!(largest <= MAX_BATCH, "a batch of {largest} ids");
        assert!(
            http * 20 <= calls,
            "{http} HTTP requests for {calls} calls: more than 5 %"
        );
    })
    .await
    .expect("bounded: a minute at most");
}
