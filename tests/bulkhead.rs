//! The semaphore bulkhead: admission, waiting, and slot accounting.

use rampart::bulkhead::{Bulkhead, BulkheadLayer};
use rampart::{BoxError, ErrorKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};
use tower_test::{assert_request_eq, mock};

type Fut = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

/// A dependency whose calls finish when the test says so.
fn gated(
    reached: Arc<AtomicUsize>,
) -> impl Service<oneshot::Receiver<()>, Response = &'static str, Error = BoxError, Future = Fut> + Clone
{
    tower::service_fn(move |gate: oneshot::Receiver<()>| {
        reached.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let _ = gate.await;
            Ok("done")
        }) as Fut
    })
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

#[tokio::test(start_paused = true)]
async fn admits_max_concurrent_and_rejects_the_next_at_once() {
    let layer = BulkheadLayer::builder("ratings")
        .max_concurrent(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let reached = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(gated(reached.clone()));

    let (open_a, gate_a) = oneshot::channel();
    let (_open_b, gate_b) = oneshot::channel();
    let mut a = svc.ready().await.unwrap().call(gate_a);
    let mut b = svc.ready().await.unwrap().call(gate_b);
    assert!(poll_once(&mut a).is_pending() && poll_once(&mut b).is_pending());
    assert_eq!(handle.in_flight(), 2);

    let (_open_c, gate_c) = oneshot::channel();
    let err = svc.ready().await.unwrap().call(gate_c).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    assert_eq!(
        reached.load(Ordering::SeqCst),
        2,
        "the rejected call never reached the dependency"
    );

    // One finishes: its slot is free for the next call.
    open_a.send(()).unwrap();
    assert_eq!(a.await.unwrap(), "done");
    assert_eq!(handle.in_flight(), 1);
    let (open_d, gate_d) = oneshot::channel();
    let d = svc.ready().await.unwrap().call(gate_d);
    open_d.send(()).unwrap();
    assert_eq!(d.await.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn dropping_calls_gives_their_slots_back() {
    let layer = BulkheadLayer::builder("bookmarks")
        .max_concurrent(3)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(gated(Arc::default()));
    let mut gates = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let (open, gate) = oneshot::channel();
        gates.push(open);
        let mut call = svc.ready().await.unwrap().call(gate);
        assert!(poll_once(&mut call).is_pending());
        calls.push(call);
    }
    assert_eq!(handle.in_flight(), 3);
    drop(calls); // e.g. a timeout above gave up on them
    assert_eq!(handle.in_flight(), 0);

    // A slot taken by poll_ready but never used goes back with the service.
    let mut idle = svc.clone();
    idle.ready().await.unwrap();
    assert_eq!(handle.in_flight(), 1);
    drop(idle);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn waits_up_to_max_wait_for_a_slot() {
    let layer = BulkheadLayer::builder("slow")
        .max_concurrent(1)
        .max_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mut svc, mut dep) = mock::spawn_layer::<u32, u32, _>(layer);
    dep.allow(10);

    tokio_test::assert_ready_ok!(svc.poll_ready());
    let first = svc.call(1);
    let (_, reply) = dep.next_request().await.unwrap();

    // Full: the next caller waits in poll_ready.
    let mut waiter = svc.clone();
    tokio_test::assert_pending!(waiter.poll_ready());
    assert_eq!(handle.waiting(), 1);

    // The slot frees up within max_wait: the waiter gets it.
    advance(Duration::from_millis(50)).await;
    reply.send_response(1);
    assert_eq!(first.await.unwrap(), 1);
    assert!(waiter.is_woken());
    tokio_test::assert_ready_ok!(waiter.poll_ready());
    assert_eq!(handle.waiting(), 0);
    let second = waiter.call(2);
    assert_request_eq!(dep, 2).send_response(2);
    assert_eq!(second.await.unwrap(), 2);

    // Nobody frees the slot within max_wait: rejected when it runs out.
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let _held = svc.call(3);
    let mut late = svc.clone();
    tokio_test::assert_pending!(late.poll_ready());
    advance(Duration::from_millis(99)).await;
    tokio_test::assert_pending!(late.poll_ready());
    advance(Duration::from_millis(1)).await;
    tokio_test::assert_ready_ok!(late.poll_ready());
    let err = late.call(4).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    assert_eq!(handle.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_wait_queue_is_bounded() {
    let layer = BulkheadLayer::builder("q")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .max_waiting(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mut svc, mut _dep) = mock::spawn_layer::<u32, u32, _>(layer);
    _dep.allow(10);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let _held = svc.call(1);
    let mut waiting = svc.clone();
    tokio_test::assert_pending!(waiting.poll_ready());
    // The queue holds one: a third caller is rejected at once.
    let mut third = svc.clone();
    tokio_test::assert_ready_ok!(third.poll_ready());
    let err = third.call(3).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    // A waiter that gives up leaves the queue.
    drop(waiting);
    assert_eq!(handle.waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_exact_under_many_concurrent_tasks() {
    let layer = BulkheadLayer::builder("many")
        .max_concurrent(4)
        .max_wait(Duration::from_secs(30))
        .max_waiting(1000)
        .build()
        .unwrap();
    let handle = layer.handle();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (c, p) = (current.clone(), peak.clone());
    let svc: Bulkhead<_> = layer.layer(tower::service_fn(move |i: usize| {
        let (c, p) = (c.clone(), p.clone());
        async move {
            let now = c.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            for _ in 0..(i % 3) {
                tokio::task::yield_now().await;
            }
            c.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, BoxError>(i)
        }
    }));
    let mut tasks = Vec::new();
    for t in 0..64 {
        let mut svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..50 {
                let call = svc.ready().await.unwrap().call(t * 50 + i);
                if i % 7 == 0 {
                    drop(call); // cancelled
                } else if call.await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 4,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(
        ok,
        64 * (50 - 8),
        "every call that was not cancelled got a slot in time"
    );
    assert_eq!(
        (handle.in_flight(), handle.waiting()),
        (0, 0),
        "no slot leaked"
    );
}

#[test]
fn every_bad_option_is_a_config_error_naming_its_field() {
    let b = || BulkheadLayer::builder("x");
    for (field, builder) in [
        ("name", BulkheadLayer::builder("")),
        ("max_concurrent", b().max_concurrent(0)),
        ("max_wait", b().max_wait(Duration::ZERO)),
        ("max_wait", b().max_wait(Duration::from_secs(7200))),
        (
            "max_waiting",
            b().max_wait(Duration::from_secs(1)).max_waiting(0),
        ),
        ("max_waiting", b().max_waiting(5)),
    ] {
        let err = builder.clone().build().expect_err(&format!("{builder:?}"));
        assert!(err.names(field), "{builder:?}: {err}");
        assert_eq!(err.violations().len(), 1, "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejection_decided_in_poll_ready_is_reconsidered_when_polled_again() {
    let layer = BulkheadLayer::builder("repoll")
        .max_concurrent(1)
        .build()
        .unwrap();
    let (mut svc, mut dep) = mock::spawn_layer::<u32, u32, _>(layer);
    dep.allow(10);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let first = svc.call(1);
    let (_, reply) = dep.next_request().await.unwrap();
    // Full: an idle worker polled now is ready to reject...
    let mut worker = svc.clone();
    tokio_test::assert_ready_ok!(worker.poll_ready());
    // ...but once the slot is free, polling it again admits its call.
    reply.send_response(1);
    first.await.unwrap();
    tokio_test::assert_ready_ok!(worker.poll_ready());
    let second = worker.call(2);
    assert_request_eq!(dep, 2).send_response(2);
    assert_eq!(second.await.unwrap(), 2);
}
