//! Live configuration: options changed on running breakers, timeouts and
//! bulkheads, through handles and through the registry's sources, keeping
//! their state; on a paused clock where time matters.

use rampart::bulkhead::BulkheadLayer;
use rampart::circuit_breaker::{CircuitBreakerLayer, State, Window};
use rampart::config::{Property, Source};
use rampart::registry::Registry;
use rampart::timeout::TimeoutLayer;
use rampart::{BoxError, Command, ErrorKind};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::advance;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A service that fails when asked to.
fn dependency() -> impl Service<bool, Response = (), Error = BoxError> + Clone {
    service_fn(|fail: bool| async move {
        if fail {
            Err::<(), BoxError>("connection reset".into())
        } else {
            Ok(())
        }
    })
}

async fn call<S: Service<bool, Response = ()>>(svc: &mut S, fail: bool) -> Result<(), S::Error> {
    svc.ready().await?.call(fail).await
}

#[tokio::test(start_paused = true)]
async fn a_lowered_failure_rate_trips_on_the_window_it_already_holds() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .window(Window::count(10))
        .min_calls(4)
        .failure_rate(0.9)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = layer.layer(dependency());
    for fail in [true, true, false, false] {
        let _ = call(&mut svc, fail).await;
    }
    assert_eq!(breaker.state(), State::Closed, "2 of 4 failed: under 90 %");

    breaker.set_failure_rate(0.5).unwrap();
    assert_eq!(breaker.counts().calls(), 4, "the window is kept");
    assert_eq!(
        breaker.state(),
        State::Closed,
        "effective from the next call"
    );
    let _ = call(&mut svc, true).await;
    assert_eq!(
        breaker.state(),
        State::Open,
        "3 of 5 failed: over the new 50 %"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_stays_open_and_its_next_period_takes_the_new_open_time() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .consecutive_failures(1)
        .open_for(Duration::from_secs(5))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = layer.layer(dependency());
    let _ = call(&mut svc, true).await;
    assert_eq!(breaker.state(), State::Open);

    registry
        .apply(Source::File, "dep", "open_for", Some("1m"))
        .unwrap();
    assert_eq!(breaker.state(), State::Open, "still open after the change");
    assert_eq!(
        breaker.retry_after(),
        Some(Duration::from_secs(5)),
        "the running open period keeps its end"
    );
    advance(Duration::from_secs(5)).await;
    let _ = call(&mut svc, true).await; // a failed probe re-opens it
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.retry_after(), Some(Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_finishes_and_counts_across_a_change() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .window(Window::count(10))
        .min_calls(1)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (release, wait) = oneshot::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(Some(wait)));
    let mut svc = layer.layer(service_fn(move |_: ()| {
        let wait = wait.lock().unwrap().take();
        async move {
            if let Some(wait) = wait {
                let _ = wait.await;
            }
            Ok::<_, BoxError>(())
        }
    }));
    let in_flight = svc.ready().await.unwrap().call(());
    let running = tokio::spawn(in_flight);
    tokio::task::yield_now().await;

    breaker.set_min_calls(5).unwrap();
    breaker.set_probes(3).unwrap();
    release.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(
        breaker.counts().calls(),
        1,
        "the call admitted before counts"
    );
    assert_eq!(breaker.options().min_calls, 5);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_grows_and_shrinks_without_cutting_off_its_calls() {
    let registry = Registry::new();
    let bulkhead = BulkheadLayer::builder("dep")
        .registry(&registry)
        .max_concurrent(1)
        .build()
        .unwrap();
    let handle = bulkhead.handle();
    let hang = service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, BoxError>(())
    });
    let mut first = bulkhead.layer(hang);
    let mut second = bulkhead.layer(hang);
    let mut third = bulkhead.layer(hang);
    let one = tokio::spawn(first.ready().await.unwrap().call(()));
    let err = second.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);

    registry
        .apply(Source::Etcd, "dep", "max_concurrent", Some("2"))
        .unwrap();
    let two = tokio::spawn(second.ready().await.unwrap().call(()));
    assert_eq!(handle.in_flight(), 2);

    handle.set_max_concurrent(1).unwrap();
    assert_eq!(handle.in_flight(), 2, "no call is cut off");
    let err = third.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull);
    advance(Duration::from_secs(10)).await;
    one.await.unwrap().unwrap();
    two.await.unwrap().unwrap();
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_told_to_wait_lets_a_caller_wait_for_a_slot() {
    let registry = Registry::new();
    let bulkhead = BulkheadLayer::builder("dep")
        .registry(&registry)
        .max_concurrent(1)
        .build()
        .unwrap();
    let handle = bulkhead.handle();
    let slow = service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, BoxError>(())
    });
    let mut first = bulkhead.layer(slow);
    let mut second = bulkhead.layer(slow);
    let one = tokio::spawn(first.ready().await.unwrap().call(()));
    handle
        .set_max_wait(Some(Duration::from_millis(500)))
        .unwrap();
    assert_eq!(handle.max_wait(), Some(Duration::from_millis(500)));
    second.ready().await.unwrap().call(()).await.unwrap();
    one.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_shorter_timeout_cuts_the_next_call() {
    let registry = Registry::new();
    let timeout = TimeoutLayer::builder("dep")
        .registry(&registry)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc = timeout.layer(service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, BoxError>(())
    }));
    svc.ready().await.unwrap().call(()).await.unwrap();
    registry
        .apply(Source::File, "dep", "timeout", Some("100ms"))
        .unwrap();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::Timeout);
}

#[test]
fn a_bad_change_is_refused_and_the_old_values_stay() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .open_for(Duration::from_secs(5))
        .open_for_max(Duration::from_secs(60))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let before = breaker.options();

    let err = breaker.set_failure_rate(1.5).unwrap_err();
    assert!(err.names("failure_rate"), "{err}");
    assert!(err.to_string().contains("circuit breaker \"dep\""), "{err}");
    assert!(err.to_string().contains("1.5"), "{err}");
    // The builder's check across options: the cap below the open time.
    let err = breaker.set_open_for(Duration::from_secs(120)).unwrap_err();
    assert!(err.names("open_for_max"), "{err}");
    let err = breaker.set_failure_rate(None).unwrap_err();
    assert!(err.to_string().contains("no trip rule is on"), "{err}");

    let err = registry
        .apply(Source::File, "dep", "probes", Some("0"))
        .unwrap_err();
    assert!(
        err.names("probes") && err.to_string().contains("got 0"),
        "{err}"
    );
    let err = registry
        .apply(Source::File, "dep", "open_for", Some("soon"))
        .unwrap_err();
    assert!(
        err.names("open_for") && err.to_string().contains("\"soon\""),
        "{err}"
    );
    assert!(err.to_string().contains("\"dep\""), "{err}");
    let err = registry
        .apply(Source::File, "dep", "failure_ratio", Some("0.3"))
        .unwrap_err();
    assert!(err.to_string().contains("failure_ratio"), "{err}");
    assert_eq!(breaker.options(), before, "nothing changed");
}

#[test]
fn file_then_etcd_then_handle_and_clearing_falls_back_a_layer() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let rate = || breaker.options().failure_rate;

    registry
        .apply(Source::Etcd, "dep", "failure_rate", Some("0.2"))
        .unwrap();
    registry
        .apply(Source::File, "dep", "failure_rate", Some("0.3"))
        .unwrap();
    assert_eq!(rate(), Some(0.2), "etcd over the file, whatever the order");
    breaker.set_failure_rate(0.9).unwrap();
    assert_eq!(rate(), Some(0.9), "a handle over both");
    registry
        .apply(Source::Etcd, "dep", "failure_rate", Some("0.25"))
        .unwrap();
    assert_eq!(rate(), Some(0.9), "a source does not undo a handle");

    breaker.clear_override("failure_rate");
    assert_eq!(rate(), Some(0.25), "back to etcd");
    registry
        .apply(Source::Etcd, "dep", "failure_rate", None)
        .unwrap();
    assert_eq!(rate(), Some(0.3), "back to the file");
    registry
        .apply(Source::File, "dep", "failure_rate", None)
        .unwrap();
    assert_eq!(rate(), Some(0.5), "back to the built value");
}

#[test]
fn a_component_built_later_gets_what_the_sources_said() {
    let registry = Registry::new();
    registry
        .apply(Source::File, "RatingsGet", "timeout", Some("800ms"))
        .unwrap();
    registry
        .apply(Source::Etcd, "RatingsGet", "failure_rate", Some("0.3"))
        .unwrap();
    registry
        .apply(Source::File, "RatingsGet", "max_concurrent", Some("25"))
        .unwrap();
    let command = Command::builder("RatingsGet")
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(command.timeout(), Duration::from_millis(800));
    let info = &registry.commands()[0];
    assert_eq!(info.timeout(), Duration::from_millis(800));
    assert_eq!(info.breaker().options().failure_rate, Some(0.3));
    match info.isolation() {
        rampart::registry::Isolation::Semaphore(bulkhead) => {
            assert_eq!(bulkhead.max_concurrent(), 25)
        }
        other => panic!("a semaphore, got {other:?}"),
    }
    // Another component of another name is untouched.
    let other = CircuitBreakerLayer::builder("Other")
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(other.handle().options().failure_rate, Some(0.5));
}

#[test]
fn replace_clears_what_a_source_no_longer_says_and_keeps_the_last_good_value() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let p = |name: &str, value: &str| Property {
        component: "dep".into(),
        name: name.into(),
        value: value.into(),
    };
    let errors = registry.replace(
        Source::Etcd,
        &[p("failure_rate", "0.3"), p("min_calls", "7")],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(breaker.options().min_calls, 7);

    // min_calls no longer listed; failure_rate now bad; probes good.
    let errors = registry.replace(Source::Etcd, &[p("failure_rate", "2"), p("probes", "3")]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].names("failure_rate"));
    let options = breaker.options();
    assert_eq!(options.min_calls, 20, "cleared: the built value again");
    assert_eq!(options.failure_rate, Some(0.3), "the last good value stays");
    assert_eq!(options.probes, 3);

    // An order the builder would refuse one by one still lands.
    let errors = registry.replace(
        Source::Etcd,
        &[p("open_for", "2m"), p("open_for_max", "5m")],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(breaker.options().open_for, Duration::from_secs(120));
}

#[test]
fn switches_force_the_state_and_clearing_them_closes_it() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let breaker = layer.handle();
    registry
        .apply(Source::Etcd, "dep", "force_open", Some("true"))
        .unwrap();
    assert_eq!(breaker.state(), State::ForcedOpen);
    breaker.set_property("metrics_only", "true").unwrap();
    assert_eq!(breaker.state(), State::ForcedOpen, "force_open comes first");
    registry
        .apply(Source::Etcd, "dep", "force_open", None)
        .unwrap();
    assert_eq!(breaker.state(), State::MetricsOnly);
    breaker.clear_overrides();
    assert_eq!(breaker.state(), State::Closed);
    assert!(breaker.set_property("force_open", "yes").is_err());
    assert_eq!(breaker.state(), State::Closed);
}

/// Found by a user trial: with `force_open` set through a source, a
/// `reset()` closed the breaker, and setting the property to `true` again
/// changed nothing, so an operator repeating "force open" saw it closed.
/// The property now rules while it is set (Hystrix's `forceOpen`).
#[test]
fn a_reset_keeps_the_state_a_switch_property_forces() {
    use rampart::circuit_breaker::StateChange;
    use std::sync::{Arc, Mutex};

    let registry = Registry::new();
    type Seen = Vec<(State, State, &'static str)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .on_state_change({
            let seen = seen.clone();
            move |change: &StateChange| {
                let reason = change.reason.as_str();
                seen.lock().unwrap().push((change.from, change.to, reason));
            }
        })
        .build()
        .unwrap();
    let breaker = layer.handle();
    registry
        .apply(Source::Etcd, "dep", "force_open", Some("true"))
        .unwrap();
    breaker.reset();
    assert_eq!(breaker.state(), State::ForcedOpen, "the property rules");
    // The operator's own forced state gives way to the property on reset.
    breaker.force_closed();
    breaker.reset();
    assert_eq!(breaker.state(), State::ForcedOpen);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen, "property"),
            (State::ForcedOpen, State::ForcedClosed, "manual"),
            (State::ForcedClosed, State::ForcedOpen, "manual"),
        ],
        "a reset moves straight to the forced state, and not at all when there"
    );
    // Repeating the property keeps it forced.
    registry
        .apply(Source::Etcd, "dep", "force_open", Some("true"))
        .unwrap();
    assert_eq!(breaker.state(), State::ForcedOpen);

    // A handle's switch rules the same way, over the source's `false`.
    registry
        .apply(Source::Etcd, "dep", "force_open", Some("false"))
        .unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&(State::ForcedOpen, State::Closed, "property"))
    );
    breaker.set_property("disabled", "true").unwrap();
    breaker.reset();
    assert_eq!(breaker.state(), State::Disabled);
    breaker.clear_overrides();
    assert_eq!(breaker.state(), State::Closed);
    breaker.force_open();
    breaker.reset();
    assert_eq!(breaker.state(), State::Closed, "no switch set: closed");
}

/// Found by a user trial: clearing the `force_open` property closed a
/// breaker an operator had forced open by hand, though the handle's docs
/// say only `reset()` undoes it.
#[test]
fn clearing_a_switch_property_goes_back_to_the_state_forced_by_hand() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let breaker = layer.handle();
    breaker.force_open();
    registry
        .apply(Source::Etcd, "dep", "disabled", Some("true"))
        .unwrap();
    assert_eq!(breaker.state(), State::Disabled, "a property change wins");
    registry
        .apply(Source::Etcd, "dep", "disabled", None)
        .unwrap();
    assert_eq!(
        breaker.state(),
        State::ForcedOpen,
        "back to the hand's state"
    );
    breaker.set_property("force_open", "true").unwrap();
    breaker.clear_override("force_open");
    assert_eq!(breaker.state(), State::ForcedOpen);
    // A reset forgets it: the properties then go back to closed.
    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    registry
        .apply(Source::Etcd, "dep", "force_open", Some("true"))
        .unwrap();
    registry
        .apply(Source::Etcd, "dep", "force_open", None)
        .unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn the_slow_call_rule_is_turned_on_and_off_live() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let breaker = layer.handle();
    breaker
        .set_slow_call(Some((Duration::from_millis(300), 0.4)))
        .unwrap();
    assert_eq!(
        breaker.options().slow_call,
        Some((Duration::from_millis(300), 0.4))
    );
    let err = registry
        .apply(Source::File, "other", "slow_call_rate", Some("x"))
        .unwrap_err();
    assert!(err.names("slow_call_rate"), "{err}");
    breaker.set_slow_call(None).unwrap();
    assert_eq!(breaker.options().slow_call, None);

    // Through a source, one key after the other as etcd writes and
    // deletes them, in either order (found by a user trial: each was
    // refused without the other).
    breaker.clear_overrides();
    let key = |name, value| registry.apply(Source::Etcd, "dep", name, value);
    key("slow_call_duration", Some("2s")).unwrap();
    assert_eq!(
        breaker.options().slow_call,
        Some((Duration::from_secs(2), 1.0)),
        "resilience4j's default rate until one comes"
    );
    key("slow_call_rate", Some("0.5")).unwrap();
    assert_eq!(
        breaker.options().slow_call,
        Some((Duration::from_secs(2), 0.5))
    );
    key("slow_call_duration", None).unwrap();
    assert_eq!(breaker.options().slow_call, None, "the rate alone is kept");
    key("slow_call_duration", Some("1s")).unwrap();
    assert_eq!(
        breaker.options().slow_call,
        Some((Duration::from_secs(1), 0.5))
    );
    key("slow_call_rate", None).unwrap();
    key("slow_call_duration", None).unwrap();
    assert_eq!(breaker.options().slow_call, None);
    assert!(key("slow_call_rate", Some("1.5"))
        .unwrap_err()
        .names("slow_call_rate"));
}

#[tokio::test(start_paused = true)]
async fn a_fallback_switched_off_lets_errors_through_and_a_cap_set_live_rejects() {
    let registry = Registry::new();
    let layer = rampart::fallback::FallbackLayer::builder("dep")
        .registry(&registry)
        .max_concurrent(None)
        .fallback(|_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, BoxError>(())
        })
        .build()
        .unwrap();
    let fallback = layer.handle();
    let failing = service_fn(|_: ()| async { Err::<(), BoxError>("connection reset".into()) });
    let mut svc = layer.layer(failing);

    registry
        .apply(Source::File, "dep", "fallback_enabled", Some("false"))
        .unwrap();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(err.to_string(), "connection reset", "the error as it was");
    assert_eq!(fallback.successes() + fallback.missing(), 0, "uncounted");

    registry
        .apply(Source::File, "dep", "fallback_enabled", None)
        .unwrap();
    let running = tokio::spawn(svc.ready().await.unwrap().call(()));
    tokio::task::yield_now().await;
    assert_eq!(fallback.running(), 1);
    fallback.set_max_concurrent(Some(1)).unwrap();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::FallbackRejected);
    advance(Duration::from_secs(1)).await;
    running.await.unwrap().unwrap();
    assert_eq!(fallback.successes(), 1);
    assert!(fallback.set_max_concurrent(Some(0)).is_err());
    assert_eq!(fallback.max_concurrent(), Some(1));
}

#[tokio::test]
async fn a_pool_queue_grows_live_and_keeps_what_it_queued() {
    let registry = Registry::new();
    let pool = rampart::bulkhead::pool::PoolLayer::builder("legacy")
        .registry(&registry)
        .size(1)
        .queue(0)
        .build()
        .unwrap();
    let handle = pool.handle();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let open = gate.clone();
    let mut svc = pool.layer(service_fn(move |_: ()| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            Ok::<_, BoxError>(())
        }
    }));
    let first = tokio::spawn(svc.ready().await.unwrap().call(()));
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::BulkheadFull, "no queue yet");

    registry
        .apply(Source::File, "legacy", "queue", Some("1"))
        .unwrap();
    assert_eq!(handle.queue_capacity(), 1);
    let second = tokio::spawn(svc.ready().await.unwrap().call(()));
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        ErrorKind::BulkheadFull,
        "the queue is full"
    );
    handle.set_queue_capacity(0).unwrap();
    assert!(
        handle.set_queue_capacity(1 << 21).is_err(),
        "as the builder"
    );
    assert_eq!(handle.queue_capacity(), 0);

    open.add_permits(2);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_balancer_retries_as_many_times_as_it_is_told_live() {
    use rampart::balance::{Balance, Endpoint, Endpoints};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let registry = Registry::new();
    let attempts = std::sync::Arc::new(AtomicUsize::new(0));
    let endpoints = (0..4).map(|n| {
        let attempts = attempts.clone();
        Endpoint::new(
            format!("10.0.0.{n}:80"),
            service_fn(move |_: ()| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async {
                    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                    Err::<(), BoxError>(refused.into())
                }
            }),
        )
    });
    let mut balancer = Balance::builder("catalog")
        .registry(&registry)
        .eject_after(1000)
        .retry_budget(
            rampart::retry::RetryBudget::new(Duration::from_secs(10), 100_000, 10.0).unwrap(),
        )
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let _ = balancer.ready().await.unwrap().call(()).await;
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 2, "built: 1 retry next");

    registry
        .apply(Source::Etcd, "catalog", "retries_next", Some("3"))
        .unwrap();
    let _ = balancer.ready().await.unwrap().call(()).await;
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 4);
    let err = registry
        .apply(Source::Etcd, "catalog", "retries_next", Some("101"))
        .unwrap_err();
    assert!(err.names("retries_next"), "{err}");
    assert_eq!(balancer.handle().retries(), (0, 3));
}

#[tokio::test(start_paused = true)]
async fn a_keyed_layers_breakers_say_they_cannot_change_live() {
    let registry = Registry::new();
    let keyed = CircuitBreakerLayer::builder("tenants")
        .registry(&registry)
        .keyed(|n: &u32| *n)
        .build()
        .unwrap();
    let mut svc = keyed.layer(service_fn(|_: u32| async { Ok::<_, BoxError>(()) }));
    svc.ready().await.unwrap().call(7).await.unwrap();
    let (_, breaker) = keyed.handle().breakers().remove(0);
    let err = breaker.set_failure_rate(0.3).unwrap_err();
    assert!(err.to_string().contains("cannot change live"), "{err}");
    assert_eq!(breaker.options().failure_rate, Some(0.5));
}

#[tokio::test(start_paused = true)]
async fn a_balancer_ejects_sooner_when_told_live() {
    use rampart::balance::{Balance, Endpoint, Endpoints};
    let registry = Registry::new();
    let endpoints = (0..4).map(|n| {
        Endpoint::new(
            format!("10.0.0.{n}:80"),
            service_fn(move |_: ()| async move {
                if n == 0 {
                    Err::<(), BoxError>("connection reset".into())
                } else {
                    Ok(())
                }
            }),
        )
    });
    let mut balancer = Balance::builder("catalog")
        .registry(&registry)
        .retries_next(0)
        .eject_after(1000)
        .rule(rampart::balance::rule::RoundRobin::new())
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let handle = balancer.handle();
    let err = registry
        .apply(Source::File, "catalog", "eject_for", Some("2h"))
        .unwrap_err();
    assert!(err.names("eject_for"), "{err}");
    registry
        .apply(Source::File, "catalog", "eject_after", Some("1"))
        .unwrap();
    for _ in 0..4 {
        let _ = balancer.ready().await.unwrap().call(()).await;
    }
    let bad = handle
        .endpoints()
        .into_iter()
        .find(|e| e.key.contains("10.0.0.0:80"))
        .unwrap();
    assert!(bad.ejected, "ejected after one failure: {bad:?}");
    assert_eq!(bad.out_for, Duration::from_secs(10));
}

/// The endpoints called, in order, by number.
type Calls = std::sync::Arc<std::sync::Mutex<Vec<usize>>>;

/// Endpoints `10.0.0.0:80` to `10.0.0.3:80` recording the order they are
/// called in; `10.0.0.0:80` refuses connections.
fn recorded() -> (
    Calls,
    Vec<
        rampart::balance::Endpoint<
            String,
            impl Service<(), Response = (), Error = BoxError> + Clone,
        >,
    >,
) {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let endpoints = (0..4)
        .map(|n| {
            let calls = calls.clone();
            rampart::balance::Endpoint::new(
                format!("10.0.0.{n}:80"),
                service_fn(move |_: ()| {
                    calls.lock().unwrap().push(n);
                    async move {
                        if n == 0 {
                            // Retryable (a request that never left).
                            let refused =
                                std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                            Err::<(), BoxError>(refused.into())
                        } else {
                            Ok(())
                        }
                    }
                }),
            )
        })
        .collect();
    (calls, endpoints)
}

/// Always the first eligible endpoint: a rule no property can name.
#[derive(Debug)]
struct First;

impl rampart::balance::rule::Rule for First {
    fn choose(&self, candidates: &rampart::balance::rule::Candidates<'_>) -> Option<usize> {
        (0..candidates.len()).find(|&i| candidates.eligible(i))
    }
}

#[tokio::test(start_paused = true)]
async fn a_balancer_switches_its_rule_live_keeping_its_ejections() {
    use rampart::balance::{Balance, Endpoints};
    let registry = Registry::new();
    let (calls, endpoints) = recorded();
    let mut balancer = Balance::builder("catalog")
        .registry(&registry)
        .retries_next(0)
        .eject_after(1)
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let handle = balancer.handle();
    assert_eq!(handle.rule(), "PowerOfTwoChoices");
    let mut run = async |n: usize| {
        for _ in 0..n {
            let _ = balancer.ready().await.unwrap().call(()).await;
        }
        std::mem::take(&mut *calls.lock().unwrap())
    };

    // By name, from a source: each endpoint in turn; the failing one is
    // ejected after its turn and then skipped.
    registry
        .apply(Source::File, "catalog", "rule", Some("round_robin"))
        .unwrap();
    assert_eq!(run(7).await, [0, 1, 2, 3, 1, 2, 3]);
    let ejected = |handle: &rampart::balance::BalanceHandle| {
        let e = handle
            .endpoints()
            .into_iter()
            .find(|e| e.key.contains("10.0.0.0:80"));
        let e = e.unwrap();
        (e.ejected, e.ejections, e.out_for)
    };
    assert_eq!(ejected(&handle), (true, 1, Duration::from_secs(10)));

    // A rule with no name, through the handle: the ejection stays.
    handle.set_rule(First).unwrap();
    assert_eq!(handle.rule(), "First");
    assert_eq!(run(3).await, [1, 1, 1], "the ejected endpoint stays out");
    assert_eq!(ejected(&handle), (true, 1, Duration::from_secs(10)));

    // Bad names are refused, and the rule in force stays.
    let err = registry
        .apply(Source::Etcd, "catalog", "rule", Some("fastest"))
        .unwrap_err();
    assert!(err.names("rule"), "{err}");
    assert!(
        err.to_string().contains("round_robin"),
        "lists the names: {err}"
    );
    assert!(handle.set_property("rule", "fastest").is_err());
    assert!(handle.set_property("rule", "(a handle's rule)").is_err());
    assert_eq!(handle.rule(), "First");
    assert_eq!(run(2).await, [1, 1]);

    // The handle's rule dropped: the file's round robin again, a new one
    // (from the first endpoint, skipping the ejected one).
    handle.clear_override("rule");
    assert_eq!(run(4).await, [1, 2, 3, 1]);
    registry
        .apply(Source::File, "catalog", "rule", None)
        .unwrap();
    assert_eq!(handle.rule(), "PowerOfTwoChoices");
    assert!(!run(20).await.contains(&0));
    assert_eq!(ejected(&handle), (true, 1, Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn a_balancer_waits_between_retries_as_its_backoff_says_live() {
    use rampart::balance::{Balance, Endpoints};
    use rampart::retry::Backoff;
    let registry = Registry::new();
    let (calls, endpoints) = recorded();
    let mut balancer = Balance::builder("catalog")
        .registry(&registry)
        .rule(First)
        .retries_same(1)
        .retries_next(0)
        .eject_after(1000)
        .backoff(Backoff::none())
        .retry_budget(
            rampart::retry::RetryBudget::new(Duration::from_secs(10), 100_000, 10.0).unwrap(),
        )
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let handle = balancer.handle();
    // One call to the failing endpoint and one retry on it: how long from
    // start to end (the endpoint answers at once, so: the backoff).
    let mut waited = async || {
        let start = tokio::time::Instant::now();
        let _ = balancer.ready().await.unwrap().call(()).await;
        assert_eq!(std::mem::take(&mut *calls.lock().unwrap()), [0, 0]);
        start.elapsed()
    };
    assert_eq!(waited().await, Duration::ZERO);

    // Decorrelated jitter from `base` to `max`: exactly 200 ms here.
    registry
        .apply(
            Source::Etcd,
            "catalog",
            "backoff",
            Some("decorrelated 200ms..200ms"),
        )
        .unwrap();
    assert_eq!(waited().await, Duration::from_millis(200));
    handle
        .set_backoff(Backoff::decorrelated(Duration::from_secs(1), Duration::from_secs(1)).unwrap())
        .unwrap();
    assert_eq!(waited().await, Duration::from_secs(1));

    // Checked as `Backoff::exponential` checks it; the old one stays.
    for bad in [
        "exponential 2s..1s",
        "exponential 0s..1s",
        "linear 1s..2s",
        "1s",
    ] {
        let err = registry
            .apply(Source::File, "catalog", "backoff", Some(bad))
            .unwrap_err();
        assert!(err.names("backoff"), "{bad}: {err}");
        assert!(handle.set_property("backoff", bad).is_err(), "{bad}");
    }
    assert_eq!(waited().await, Duration::from_secs(1));

    // Full jitter up to 50 ms before the first retry.
    handle
        .set_property("backoff", "exponential 50ms..1s")
        .unwrap();
    assert_eq!(
        handle.backoff(),
        Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1)).unwrap()
    );
    assert!(waited().await <= Duration::from_millis(50));
    handle.clear_overrides();
    assert_eq!(waited().await, Duration::from_millis(200), "etcd's again");
}

/// Runs `f` on a thread of its own; a panic (or no answer within 10 s,
/// which here means a deadlock) fails the test instead of hanging it.
fn without_deadlock(what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: deadlocked or panicked"));
}

/// A breaker's state-change listener may change options itself, through
/// the registry or a handle, though the change that woke it was made
/// under the registry's lock and the breaker's own: listeners are told
/// once those are let go.
#[test]
fn a_state_change_listener_may_change_options_through_the_registry_or_a_handle() {
    use rampart::circuit_breaker::{CircuitBreakerHandle, StateChange};
    use std::sync::{Arc, Mutex, OnceLock};

    let registry = Registry::new();
    let handle: Arc<OnceLock<CircuitBreakerHandle>> = Arc::default();
    let seen: Arc<Mutex<Vec<(State, State)>>> = Arc::default();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .on_state_change({
            let (registry, handle, seen) = (registry.clone(), handle.clone(), seen.clone());
            move |change: &StateChange| {
                seen.lock().unwrap().push((change.from, change.to));
                if change.to == State::ForcedOpen {
                    // An operator's rule: a breaker forced open gets a
                    // longer open time, and a lower failure rate.
                    registry
                        .apply(Source::Etcd, "dep", "open_for", Some("2m"))
                        .unwrap();
                    handle.get().unwrap().set_failure_rate(0.25).unwrap();
                }
            }
        })
        .build()
        .unwrap();
    handle.set(layer.handle()).ok().unwrap();

    let breaker = layer.handle();
    without_deadlock("forced open through the registry", {
        let registry = registry.clone();
        move || {
            registry
                .apply(Source::File, "dep", "force_open", Some("true"))
                .unwrap()
        }
    });
    assert_eq!(breaker.state(), State::ForcedOpen);
    let options = breaker.options();
    assert_eq!(options.open_for, Duration::from_secs(120));
    assert_eq!(options.failure_rate, Some(0.25));

    registry
        .apply(Source::File, "dep", "force_open", None)
        .unwrap();
    assert_eq!(breaker.state(), State::Closed);
    without_deadlock("forced open through the handle", {
        let breaker = breaker.clone();
        move || breaker.set_property("force_open", "true").unwrap()
    });
    assert_eq!(breaker.state(), State::ForcedOpen);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed),
            (State::Closed, State::ForcedOpen),
        ]
    );
}

/// A command's checks across its layers hold live too: its timeout must
/// stay longer than its breaker's slow-call bound and within its breaker's
/// window, whichever of the two changes, through the registry or a
/// handle; a change that breaks them is a `ConfigError` and changes
/// nothing.
#[test]
fn a_commands_checks_across_its_layers_are_made_again_on_a_live_change() {
    let registry = Registry::new();
    let command = Command::builder("cmd")
        .registry(&registry)
        .timeout(Duration::from_secs(1))
        .breaker(|b| b.slow_call(Duration::from_millis(200), 0.5))
        .build()
        .unwrap();
    let breaker = command.breaker();
    let slow_call = || breaker.options().slow_call.map(|(bound, _)| bound);

    // The timeout, changed through the registry or the command's handle.
    let err = registry
        .apply(Source::Etcd, "cmd", "timeout", Some("150ms"))
        .unwrap_err();
    assert!(err.names("timeout"), "{err}");
    assert!(
        err.to_string().contains("must be shorter than the timeout"),
        "{err}"
    );
    let err = command.set_timeout(Duration::from_secs(20)).unwrap_err();
    assert!(err.names("timeout"), "{err}");
    assert!(
        err.to_string()
            .contains("the breaker's default window of 10s must be at least the timeout (20s)"),
        "{err}"
    );
    assert_eq!(command.timeout(), Duration::from_secs(1), "unchanged");

    // The slow-call bound, through the registry or the breaker's handle.
    let err = registry
        .apply(Source::Etcd, "cmd", "slow_call_duration", Some("1s"))
        .unwrap_err();
    assert!(err.names("slow_call_duration"), "{err}");
    let err = breaker
        .set_slow_call(Some((Duration::from_secs(2), 0.5)))
        .unwrap_err();
    assert!(err.names("slow_call_duration"), "{err}");
    assert_eq!(slow_call(), Some(Duration::from_millis(200)), "unchanged");

    // Against the other's value in force: a longer timeout first lets a
    // longer bound in, and then the timeout cannot go back under it.
    registry
        .apply(Source::Etcd, "cmd", "timeout", Some("5s"))
        .unwrap();
    registry
        .apply(Source::Etcd, "cmd", "slow_call_duration", Some("2s"))
        .unwrap();
    assert_eq!(slow_call(), Some(Duration::from_secs(2)));
    assert!(command.set_timeout(Duration::from_secs(1)).is_err());
    assert_eq!(command.timeout(), Duration::from_secs(5));

    // A breaker and a timeout of the same name outside the command keep
    // their own checks only.
    let lone = TimeoutLayer::builder("cmd")
        .registry(&Registry::new())
        .build()
        .unwrap();
    lone.set_timeout(Duration::from_secs(20)).unwrap();
}

/// What a listener changes is told after the rest of what woke it: the
/// other listeners hear one thread's changes in the order they were made.
#[test]
fn a_change_a_listener_makes_reaches_the_other_listeners_after_the_one_that_woke_it() {
    use rampart::circuit_breaker::StateChange;
    use std::sync::{Arc, Mutex};

    let registry = Registry::new();
    let heard: Arc<Mutex<Vec<(State, State)>>> = Arc::default();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        // An operator's rule: no forcing open in this service.
        .on_state_change({
            let registry = registry.clone();
            move |change: &StateChange| {
                if change.to == State::ForcedOpen {
                    registry
                        .apply(Source::Etcd, "dep", "force_open", Some("false"))
                        .unwrap();
                }
            }
        })
        .on_state_change({
            let heard = heard.clone();
            move |change: &StateChange| heard.lock().unwrap().push((change.from, change.to))
        })
        .build()
        .unwrap();
    without_deadlock("undone by a listener", {
        let registry = registry.clone();
        move || {
            registry
                .apply(Source::File, "dep", "force_open", Some("true"))
                .unwrap()
        }
    });
    assert_eq!(layer.handle().state(), State::Closed);
    assert_eq!(
        *heard.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ],
        "in the order the changes were made"
    );
}

/// A listener that panics loses no other listener its news: every one is
/// told, then the panic goes on to the caller that made the change.
#[test]
fn a_panicking_listener_does_not_keep_the_others_from_hearing() {
    use rampart::circuit_breaker::StateChange;
    use std::sync::{Arc, Mutex};

    let registry = Registry::new();
    let heard: Arc<Mutex<Vec<&str>>> = Arc::default();
    let breaker = |which: &'static str| {
        let heard = heard.clone();
        CircuitBreakerLayer::builder("x")
            .registry(&registry)
            .on_state_change(move |change: &StateChange| {
                heard.lock().unwrap().push(which);
                if which == "first" && change.to == State::ForcedOpen {
                    panic!("a bug in the first breaker's listener");
                }
            })
            .build()
            .unwrap()
    };
    let (first, second) = (breaker("first"), breaker("second"));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        registry.apply(Source::File, "x", "force_open", Some("true"))
    }));
    assert!(unwound.is_err(), "the listener's panic reaches the caller");
    assert_eq!(*heard.lock().unwrap(), ["first", "second"]);
    assert_eq!(first.handle().state(), State::ForcedOpen);
    assert_eq!(second.handle().state(), State::ForcedOpen);
    // The registry's lock was let go: it still works.
    registry
        .apply(Source::File, "x", "force_open", None)
        .unwrap();
    assert_eq!(second.handle().state(), State::Closed);
}

/// A `tracing` subscriber may read the registry from rampart's events,
/// those a change of options makes included: they are emitted once the
/// registry's lock is let go.
#[test]
fn a_tracing_subscriber_may_read_the_registry_from_the_events_of_a_change() {
    use std::sync::{Arc, Mutex};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// On each of rampart's events, counts the breakers the registry lists.
    struct Reader {
        registry: Registry,
        seen: Arc<Mutex<Vec<(String, usize)>>>,
    }
    impl Subscriber for Reader {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let target = event.metadata().target();
            if target.starts_with("rampart") {
                let breakers = self.registry.breakers().len();
                self.seen
                    .lock()
                    .unwrap()
                    .push((target.to_owned(), breakers));
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let reader = Reader {
        registry: registry.clone(),
        seen: seen.clone(),
    };
    without_deadlock("a subscriber reading the registry", {
        let registry = registry.clone();
        move || {
            tracing::subscriber::with_default(reader, || {
                // A forced open (a state change, at warn), a property
                // changed, and one refused.
                registry
                    .apply(Source::File, "dep", "force_open", Some("true"))
                    .unwrap();
                let _ = registry.replace(
                    Source::Etcd,
                    &[Property {
                        component: "dep".into(),
                        name: "probes".into(),
                        value: "0".into(),
                    }],
                );
            })
        }
    });
    assert_eq!(layer.handle().state(), State::ForcedOpen);
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.iter().all(|(_, breakers)| *breakers == 1), "{seen:?}");
    assert!(
        seen.iter().any(|(target, _)| target.ends_with("config")),
        "the refusal was seen: {seen:?}"
    );
}

/// A source's value hidden by a handle's override is checked as if it were
/// in force: a bad one is refused at once, not taken silently and found
/// only when the override is dropped (which then could not be).
#[test]
fn a_value_hidden_by_an_override_is_checked_as_if_in_force() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder("dep")
        .registry(&registry)
        .build()
        .unwrap();
    let breaker = layer.handle();
    breaker.set_failure_rate(0.9).unwrap();
    let err = registry
        .apply(Source::File, "dep", "failure_rate", Some("7"))
        .unwrap_err();
    assert!(err.names("failure_rate"), "{err}");
    registry
        .apply(Source::File, "dep", "failure_rate", Some("0.3"))
        .unwrap();
    assert_eq!(
        breaker.options().failure_rate,
        Some(0.9),
        "the override wins"
    );
    breaker.clear_override("failure_rate");
    assert_eq!(
        breaker.options().failure_rate,
        Some(0.3),
        "the file's value"
    );

    // In a command, across its layers too: under a handle's timeout of 3 s
    // a file's 20 s (past the 10 s window) is refused.
    let command = Command::builder("cmd").registry(&registry).build().unwrap();
    command.set_timeout(Duration::from_secs(3)).unwrap();
    let err = registry
        .apply(Source::File, "cmd", "timeout", Some("20s"))
        .unwrap_err();
    assert!(err.names("timeout"), "{err}");
    registry
        .apply(Source::File, "cmd", "timeout", Some("2s"))
        .unwrap();
    assert_eq!(command.timeout(), Duration::from_secs(3));

    // A rule the override's value alone allowed: the slow-call bound of
    // 2.5 s under the handle's 3 s. Dropping the override would leave the
    // file's 2 s under the bound: the override stays.
    command
        .breaker()
        .set_slow_call(Some((Duration::from_millis(2500), 0.5)))
        .unwrap();
    command.clear_timeout_override();
    assert_eq!(
        command.timeout(),
        Duration::from_secs(3),
        "the override stays"
    );
}
