//! The collapser on a paused clock: when batches go out (window, bound),
//! what each caller gets (its item, its own error, a batch's error), and
//! callers that give up, items that are missing, batches that are slow or
//! panic.

use rampart::collapse::{BatchFailed, CollapseHandle, CollapseLayer, MissingItem};
use rampart::registry::Registry;
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, ErrorKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// One batch received: when (since the test began), and which ids.
type Batch = (Duration, Vec<u32>);

/// The batches a bulk endpoint received.
#[derive(Clone)]
struct Log {
    start: Instant,
    batches: Arc<Mutex<Vec<Batch>>>,
}

impl Log {
    fn new() -> Self {
        Log {
            start: Instant::now(),
            batches: Arc::default(),
        }
    }

    fn record(&self, ids: &[u32]) {
        let at = self.start.elapsed();
        self.batches.lock().unwrap().push((at, ids.to_vec()));
    }

    fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap().clone()
    }
}

/// A bulk endpoint answering `title N` for each id, in order, after
/// `wait`.
fn titles(
    log: &Log,
    wait: Duration,
) -> impl Service<Vec<u32>, Response = Vec<String>, Error = BoxError, Future: Send>
       + Send
       + Clone
       + 'static {
    let log = log.clone();
    service_fn(move |ids: Vec<u32>| {
        log.record(&ids);
        async move {
            tokio::time::sleep(wait).await;
            Ok::<_, BoxError>(ids.iter().map(|id| format!("title {id}")).collect())
        }
    })
}

fn collapser(window: u64, max_batch: usize) -> CollapseLayer<u32> {
    CollapseLayer::builder("TitlesGet")
        .registry(&Registry::new())
        .window(MS(window))
        .max_batch(max_batch)
        .build()
        .unwrap()
}

/// Starts `ids` as calls at once, each in its own task.
fn call_all<S>(
    svc: &S,
    ids: impl IntoIterator<Item = u32>,
) -> Vec<tokio::task::JoinHandle<(Result<String, BoxError>, Duration)>>
where
    S: Service<u32, Response = String, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    ids.into_iter()
        .map(|id| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let result = svc.oneshot(id).await;
                (result, start.elapsed())
            })
        })
        .collect()
}

async fn results(
    calls: Vec<tokio::task::JoinHandle<(Result<String, BoxError>, Duration)>>,
) -> Vec<(Result<String, BoxError>, Duration)> {
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

fn counts(handle: &CollapseHandle) -> (u64, u64, u64, u64, u64) {
    (
        handle.batches(),
        handle.requests_batched(),
        handle.failed_batches(),
        handle.missing_items(),
        handle.abandoned(),
    )
}

#[tokio::test(start_paused = true)]
async fn calls_within_the_window_go_as_one_batch_sent_when_the_window_ends() {
    let log = Log::new();
    let layer = collapser(10, 100);
    let handle = layer.handle();
    let svc = layer.layer(titles(&log, MS(5)));

    let first = call_all(&svc, [1, 2]);
    tokio::time::sleep(MS(4)).await;
    let later = call_all(&svc, [3]);
    let mut all = results(first).await;
    all.extend(results(later).await);

    assert_eq!(log.batches(), [(MS(10), vec![1, 2, 3])]);
    let answers: Vec<String> = all
        .iter()
        .map(|(r, _)| r.as_ref().unwrap().clone())
        .collect();
    assert_eq!(answers, ["title 1", "title 2", "title 3"]);
    // The window runs from the batch's first request: the first callers
    // waited the window and the batch call, the later one less.
    assert_eq!(all[0].1, MS(15));
    assert_eq!(all[2].1, MS(11));
    assert_eq!(counts(&handle), (1, 3, 0, 0, 0));

    // The next call opens a new window.
    let next = results(call_all(&svc, [4])).await;
    assert_eq!(next[0].0.as_ref().unwrap(), "title 4");
    assert_eq!(log.batches()[1], (MS(25), vec![4]));
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_sent_at_once_and_the_rest_wait_for_their_window() {
    let log = Log::new();
    let layer = collapser(10, 3);
    let handle = layer.handle();
    let svc = layer.layer(titles(&log, MS(1)));

    let all = results(call_all(&svc, 1..=7)).await;

    assert_eq!(
        log.batches(),
        [
            (MS(0), vec![1, 2, 3]),
            (MS(0), vec![4, 5, 6]),
            (MS(10), vec![7]),
        ]
    );
    for (id, (result, _)) in (1..=7).zip(&all) {
        assert_eq!(result.as_ref().unwrap(), &format!("title {id}"));
    }
    assert_eq!(counts(&handle), (3, 7, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_fails_each_of_its_callers_with_the_batchs_error_typed() {
    let log = Log::new();
    let layer = collapser(10, 100);
    let handle = layer.handle();
    // The bulk endpoint takes 1 s; a 100 ms timeout beneath the collapser
    // cuts the batch off.
    let timeout = TimeoutLayer::builder("TitlesBatch")
        .timeout(MS(100))
        .build()
        .unwrap();
    let svc = layer.layer(timeout.layer(titles(&log, MS(1000))));

    let all = results(call_all(&svc, [1, 2, 3])).await;

    assert_eq!(log.batches().len(), 1);
    for (result, waited) in &all {
        let error = result.as_ref().unwrap_err();
        assert_eq!(ErrorKind::of(error), ErrorKind::Timeout, "{error}");
        let failed = error.downcast_ref::<BatchFailed>().expect("a BatchFailed");
        assert!(failed.error().original().is::<rampart::timeout::Elapsed>());
        assert_eq!(*waited, MS(110));
    }
    assert_eq!(counts(&handle), (1, 3, 1, 0, 0));

    // A batch service whose error is the dependency's own: Inner.
    let layer = collapser(10, 100);
    let refused = layer.layer(service_fn(|_: Vec<u32>| async {
        Err::<Vec<String>, BoxError>("connection refused".into())
    }));
    let all = results(call_all(&refused, [1, 2])).await;
    for (result, _) in all {
        let error = result.unwrap_err();
        assert_eq!(ErrorKind::of(&error), ErrorKind::Inner);
        assert_eq!(error.to_string(), "the batch call failed");
        assert_eq!(error.source().unwrap().to_string(), "connection refused");
    }
}

#[tokio::test(start_paused = true)]
async fn each_caller_gets_its_own_item_and_its_own_error() {
    // Items carry their own outcome: the collapser hands each caller its
    // item, errors included, without failing the others.
    let layer: CollapseLayer<u32> = CollapseLayer::builder("RatingsGet")
        .registry(&Registry::new())
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|ids: Vec<u32>| async move {
        Ok::<_, BoxError>(
            ids.iter()
                .map(|&id| {
                    if id % 2 == 0 {
                        Ok(id * 10)
                    } else {
                        Err(format!("no rating for {id}"))
                    }
                })
                .collect::<Vec<Result<u32, String>>>(),
        )
    }));
    let calls: Vec<_> = (1..=4)
        .map(|id| tokio::spawn(svc.clone().oneshot(id)))
        .collect();
    let mut got = Vec::new();
    for call in calls {
        got.push(call.await.unwrap().unwrap());
    }
    assert_eq!(
        got,
        [
            Err("no rating for 1".to_string()),
            Ok(20),
            Err("no rating for 3".to_string()),
            Ok(40)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_item_fails_only_its_caller_and_never_hangs() {
    let layer = collapser(10, 100);
    let handle = layer.handle();
    // The endpoint drops id 2's item: the response is one item short.
    let svc = layer.layer(service_fn(|ids: Vec<u32>| async move {
        Ok::<_, BoxError>(
            ids.iter()
                .take(ids.len() - 1)
                .map(|id| format!("title {id}"))
                .collect::<Vec<_>>(),
        )
    }));
    let all = results(call_all(&svc, [1, 2])).await;
    assert_eq!(all[0].0.as_ref().unwrap(), "title 1");
    let error = all[1].0.as_ref().unwrap_err();
    assert!(error.is::<MissingItem>(), "{error}");
    assert_eq!(ErrorKind::of(error), ErrorKind::Inner);
    assert_eq!(
        all[1].1,
        MS(10),
        "answered with its batch, not left waiting"
    );
    assert_eq!(counts(&handle), (1, 2, 0, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn matched_by_key_in_any_order_with_strays_duplicates_and_missing_keys() {
    let layer = CollapseLayer::builder("UsersGet")
        .registry(&Registry::new())
        .match_by(|id: &u32| *id, |user: &(u32, String)| user.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    // Answers in reverse, with a stray user 99, and without user 3.
    let svc = layer.layer(service_fn(|ids: Vec<u32>| async move {
        let mut users: Vec<(u32, String)> = ids
            .iter()
            .filter(|&&id| id != 3)
            .map(|&id| (id, format!("user {id}")))
            .collect();
        users.push((99, "stray".into()));
        users.reverse();
        Ok::<_, BoxError>(users)
    }));
    let calls: Vec<_> = [1, 2, 1, 3]
        .into_iter()
        .map(|id| tokio::spawn(svc.clone().oneshot(id)))
        .collect();
    let mut got = Vec::new();
    for call in calls {
        got.push(
            call.await
                .unwrap()
                .map(|(_, name)| name)
                .map_err(|e| e.is::<MissingItem>()),
        );
    }
    assert_eq!(
        got,
        [
            Ok("user 1".to_string()),
            Ok("user 2".to_string()),
            Ok("user 1".to_string()),
            Err(true)
        ]
    );
    assert_eq!(counts(&handle), (1, 4, 0, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_leaves_the_batch_without_disturbing_the_others() {
    let log = Log::new();
    let layer = collapser(10, 100);
    let handle = layer.handle();
    let svc = layer.layer(titles(&log, MS(20)));

    // Caller 2 gives up after 5 ms, before the batch is sent: its request
    // is not sent.
    let calls = call_all(&svc, [1, 3]);
    let quitter = tokio::spawn(tokio::time::timeout(MS(5), svc.clone().oneshot(2)));
    assert!(quitter.await.unwrap().is_err(), "caller 2 timed out");
    let all = results(calls).await;
    assert_eq!(log.batches(), [(MS(10), vec![1, 3])]);
    assert_eq!(all[0].0.as_ref().unwrap(), "title 1");
    assert_eq!(all[1].0.as_ref().unwrap(), "title 3");
    assert_eq!(counts(&handle), (1, 2, 0, 0, 1));

    // Caller 5 gives up while its batch is in flight: the batch goes on
    // and the others get their items.
    let calls = call_all(&svc, [4, 6]);
    let quitter = tokio::spawn(tokio::time::timeout(MS(15), svc.clone().oneshot(5)));
    assert!(quitter.await.unwrap().is_err(), "caller 5 timed out");
    let all = results(calls).await;
    assert_eq!(log.batches()[1].1, [4, 6, 5]);
    assert_eq!(all[0].0.as_ref().unwrap(), "title 4");
    assert_eq!(all[1].0.as_ref().unwrap(), "title 6");
    assert_eq!(counts(&handle), (2, 5, 0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_batch_holds_up_only_its_own_callers() {
    let start = Instant::now();
    let calls_made = Arc::new(Mutex::new(0u32));
    let counter = calls_made.clone();
    let layer = collapser(10, 100);
    // The first batch takes a second; the ones after it, 5 ms.
    let svc = layer.layer(service_fn(move |ids: Vec<u32>| {
        let n = {
            let mut made = counter.lock().unwrap();
            *made += 1;
            *made
        };
        async move {
            tokio::time::sleep(if n == 1 { MS(1000) } else { MS(5) }).await;
            Ok::<_, BoxError>(ids)
        }
    }));
    let svc = svc.map_response(|id: u32| id.to_string());
    let slow = call_all(&svc, [1, 2]);
    tokio::time::sleep(MS(20)).await;
    let quick = results(call_all(&svc, [3])).await;
    assert_eq!(quick[0].0.as_ref().unwrap(), "3");
    assert_eq!(
        quick[0].1,
        MS(15),
        "sent after its own window while the slow batch ran"
    );
    assert_eq!(start.elapsed(), MS(35));
    let slow = results(slow).await;
    assert!(slow
        .iter()
        .all(|(r, waited)| r.is_ok() && *waited == MS(1010)));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_batch_fails_its_callers_as_panicked_and_the_collapser_goes_on() {
    let layer = collapser(10, 100);
    let handle = layer.handle();
    let svc = layer.layer(service_fn(|ids: Vec<u32>| async move {
        if ids.contains(&13) {
            panic!("unlucky batch");
        }
        Ok::<_, BoxError>(
            ids.iter()
                .map(|id| format!("title {id}"))
                .collect::<Vec<_>>(),
        )
    }));
    let all = results(call_all(&svc, [12, 13])).await;
    for (result, _) in &all {
        let error = result.as_ref().unwrap_err();
        assert_eq!(ErrorKind::of(error), ErrorKind::Panicked, "{error}");
    }
    let next = results(call_all(&svc, [14])).await;
    assert_eq!(next[0].0.as_ref().unwrap(), "title 14");
    assert_eq!(counts(&handle), (2, 3, 1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_batch_service_not_ready_with_an_error_fails_the_batch() {
    #[derive(Clone)]
    struct Broken;
    impl Service<Vec<u32>> for Broken {
        type Response = Vec<String>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Vec<String>, BoxError>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), BoxError>> {
            std::task::Poll::Ready(Err(tower::load_shed::error::Overloaded::new().into()))
        }
        fn call(&mut self, _: Vec<u32>) -> Self::Future {
            unreachable!("never ready")
        }
    }
    let layer = collapser(10, 100);
    let handle = layer.handle();
    let svc = layer.layer(Broken);
    let all = results(call_all(&svc, [1, 2])).await;
    for (result, _) in &all {
        assert_eq!(
            ErrorKind::of(result.as_ref().unwrap_err()),
            ErrorKind::BulkheadFull
        );
    }
    assert_eq!(counts(&handle), (0, 0, 1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn clones_share_batches_and_the_handle_sees_every_service_of_the_layer() {
    let log = Log::new();
    let layer = collapser(10, 100);
    let handle = layer.handle();
    let a = layer.layer(titles(&log, MS(1)));
    let b = a.clone();
    let mut calls = call_all(&a, [1]);
    calls.extend(call_all(&b, [2]));
    results(calls).await;
    assert_eq!(log.batches(), [(MS(10), vec![1, 2])]);

    // Another service of the same layer batches apart, counted together.
    let other = layer.layer(titles(&log, MS(1)));
    results(call_all(&other, [3])).await;
    assert_eq!(log.batches().len(), 2);
    assert_eq!(counts(&handle), (2, 3, 0, 0, 0));
}

#[test]
fn every_bad_option_is_a_config_error_naming_its_field() {
    let err = CollapseLayer::<u32>::builder("")
        .window(Duration::from_micros(10))
        .max_batch(0)
        .build()
        .unwrap_err();
    for field in ["name", "window", "max_batch"] {
        assert!(err.names(field), "{err}");
    }
    let err = CollapseLayer::<u32>::builder("x")
        .window(Duration::from_secs(61))
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("window: must be from 1 ms to 60 s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_registry_lists_collapsers_until_dropped() {
    let registry = Registry::new();
    let layer: CollapseLayer<u32> = CollapseLayer::builder("TitlesGet")
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(registry.collapsers()[0].name(), "TitlesGet");
    assert_eq!(registry.collapsers()[0].max_batch(), 100);
    assert_eq!(registry.collapsers()[0].window(), MS(10));
    drop(layer);
    assert!(registry.collapsers().is_empty());
}
