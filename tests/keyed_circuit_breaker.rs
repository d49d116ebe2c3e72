//! One circuit breaker per key, on a paused clock: keys kept apart, the
//! bound on keys (least recently used forgotten, with their state), the
//! handle and the registry's listing, and a balancer whose endpoints take
//! their breakers from one keyed layer.

use rampart::balance::rule::{AvailabilityFilter, RoundRobin};
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::circuit_breaker::{CircuitBreakerLayer, KeyedCircuitBreakerLayer, State};
use rampart::registry::Registry;
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::advance;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A request: its host, and whether the host fails it.
type Req = (&'static str, bool);

fn host(req: &Req) -> &'static str {
    req.0
}

/// A dependency that counts its calls and fails those asked to.
fn dependency(
    calls: Arc<AtomicUsize>,
) -> impl Service<Req, Response = (), Error = BoxError> + Clone {
    service_fn(move |(_, fail): Req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if fail {
                Err::<(), BoxError>("connection refused".into())
            } else {
                Ok(())
            }
        }
    })
}

fn per_host(
    registry: &Registry,
    max_keys: usize,
) -> KeyedCircuitBreakerLayer<&'static str, fn(&Req) -> &'static str> {
    CircuitBreakerLayer::builder("hosts")
        .consecutive_failures(2)
        .open_for(Duration::from_secs(5))
        .registry(registry)
        .keyed(host as fn(&Req) -> &'static str)
        .max_keys(max_keys)
        .build()
        .unwrap()
}

async fn call<S: Service<Req, Response = (), Error = BoxError>>(
    svc: &mut S,
    req: Req,
) -> Result<(), BoxError> {
    svc.ready().await?.call(req).await
}

#[tokio::test(start_paused = true)]
async fn one_keys_failures_open_only_its_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = per_host(&Registry::new(), 100);
    let hosts = layer.handle();
    let mut svc = layer.layer(dependency(calls.clone()));

    call(&mut svc, ("a", false)).await.unwrap();
    for _ in 0..2 {
        call(&mut svc, ("b", true)).await.unwrap_err();
    }
    assert_eq!(hosts.get(&"b").unwrap().state(), State::Open);
    assert_eq!(hosts.get(&"a").unwrap().state(), State::Closed);

    // b is rejected without reaching the dependency; a and a new host are not.
    let before = calls.load(Ordering::SeqCst);
    let err = call(&mut svc, ("b", false)).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);
    assert_eq!(calls.load(Ordering::SeqCst), before);
    call(&mut svc, ("a", false)).await.unwrap();
    call(&mut svc, ("c", false)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), before + 2);
    assert_eq!(hosts.get(&"b").unwrap().rolling_counts().short_circuited, 1);

    // b's own half-open probe closes it again.
    advance(Duration::from_secs(5)).await;
    call(&mut svc, ("b", false)).await.unwrap();
    assert_eq!(hosts.get(&"b").unwrap().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn past_max_keys_the_least_recently_used_go_with_their_state() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = per_host(&Registry::new(), 8);
    let hosts = layer.handle();
    let mut svc = layer.layer(dependency(calls.clone()));
    const HOSTS: [&str; 10] = ["h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"];

    // h0 opens; then h1..h7 come, one per millisecond.
    for _ in 0..2 {
        call(&mut svc, (HOSTS[0], true)).await.unwrap_err();
    }
    for host in &HOSTS[1..8] {
        advance(Duration::from_millis(1)).await;
        call(&mut svc, (host, false)).await.unwrap();
    }
    // h1 is used again: now h0 and h2 are the least recently used.
    advance(Duration::from_millis(1)).await;
    call(&mut svc, (HOSTS[1], false)).await.unwrap();
    assert_eq!(hosts.len(), 8);
    assert_eq!(hosts.evicted(), 0);

    // A 9th host: 8 − 8/8 = 7 stay; h0 and h2 go.
    advance(Duration::from_millis(1)).await;
    call(&mut svc, (HOSTS[8], false)).await.unwrap();
    assert_eq!(hosts.len(), 7);
    assert_eq!(hosts.evicted(), 2);
    assert!(hosts.get(&"h0").is_none() && hosts.get(&"h2").is_none());
    for kept in ["h1", "h3", "h4", "h5", "h6", "h7", "h8"] {
        assert!(hosts.get(&kept).is_some(), "{kept} was forgotten");
    }

    // h0 was open; forgotten, it starts over closed.
    call(&mut svc, (HOSTS[0], false)).await.unwrap();
    assert_eq!(hosts.get(&"h0").unwrap().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_handle_and_the_registry_list_every_keys_breaker() {
    let registry = Registry::new();
    let lone = CircuitBreakerLayer::builder("lone")
        .registry(&registry)
        .build()
        .unwrap();
    let layer = per_host(&registry, 100);
    let hosts = layer.handle();
    let mut svc = layer.layer(dependency(Arc::default()));
    for host in ["b", "a"] {
        call(&mut svc, (host, false)).await.unwrap();
    }
    // Forced from the handle, before the key's first call.
    hosts.breaker(&"c").force_open();
    let err = call(&mut svc, ("c", false)).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::CircuitOpen);

    let mut listed: Vec<_> = hosts
        .breakers()
        .into_iter()
        .map(|(key, breaker)| (key, breaker.name().to_owned(), breaker.state()))
        .collect();
    listed.sort_by_key(|(key, ..)| *key);
    assert_eq!(
        listed,
        [
            ("a", "hosts/\"a\"".to_owned(), State::Closed),
            ("b", "hosts/\"b\"".to_owned(), State::Closed),
            ("c", "hosts/\"c\"".to_owned(), State::ForcedOpen),
        ]
    );
    let names: Vec<_> = registry
        .breakers()
        .iter()
        .map(|b| b.name().to_owned())
        .collect();
    assert_eq!(names, ["lone", "hosts/\"a\"", "hosts/\"b\"", "hosts/\"c\""]);

    assert!(hosts.remove(&"a"));
    assert!(!hosts.remove(&"a"));
    assert_eq!(registry.breakers().len(), 3);
    // Gone with the layer and its services.
    drop((layer, svc, hosts, lone));
    assert!(registry.breakers().is_empty());
}

#[test]
fn bad_options_are_named_the_breakers_too() {
    let err = CircuitBreakerLayer::builder("hosts")
        .probes(0)
        .keyed(host as fn(&Req) -> &'static str)
        .max_keys(0)
        .build()
        .unwrap_err();
    assert!(err.names("max_keys"), "{err}");
    assert!(err.names("probes"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_balancer_skips_an_endpoint_whose_keyed_breaker_is_open() {
    let breakers = CircuitBreakerLayer::builder("ratings")
        .consecutive_failures(1)
        .registry(&Registry::new())
        .keyed(|addr: &&str| *addr)
        .build()
        .unwrap();
    let calls = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let endpoints: Vec<_> = ["10.0.0.1:80", "10.0.0.2:80"]
        .into_iter()
        .zip(calls.clone())
        .map(|(addr, calls)| {
            let breaker = breakers.for_key(&addr);
            let handle = breaker.handle();
            let client = service_fn(move |fail: bool| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if fail {
                        Err::<(), BoxError>("connection reset".into())
                    } else {
                        Ok(())
                    }
                }
            });
            Endpoint::new(addr, breaker.layer(client)).breaker(handle)
        })
        .collect();
    let mut balance = Balance::builder("ratings")
        .rule(AvailabilityFilter::new(RoundRobin::new()))
        .retries_next(0)
        .registry(&Registry::new())
        .build(Endpoints::fixed(endpoints))
        .unwrap();
    let hosts = breakers.handle();
    assert_eq!(hosts.len(), 2);

    // The first endpoint fails once: its breaker, the keyed layer's, opens.
    let _ = balance.ready().await.unwrap().call(true).await;
    assert_eq!(hosts.get(&"10.0.0.1:80").unwrap().state(), State::Open);
    let before = calls[0].load(Ordering::SeqCst);
    for _ in 0..10 {
        balance.ready().await.unwrap().call(false).await.unwrap();
    }
    assert_eq!(
        calls[0].load(Ordering::SeqCst),
        before,
        "the open endpoint was called"
    );
    assert_eq!(calls[1].load(Ordering::SeqCst), 10);
}

#[tokio::test(start_paused = true)]
async fn a_keys_breaker_trips_on_slow_calls_without_keeping_latency_histograms() {
    // A key's window keeps counts only (2.2 KB a key instead of 16 KB):
    // the slow-call rule reads a count, so it still trips.
    let breakers = CircuitBreakerLayer::builder("slow-hosts")
        .failure_rate(None)
        .slow_call(Duration::from_millis(100), 0.5)
        .min_calls(4)
        .registry(&Registry::new())
        .keyed(host as fn(&Req) -> &'static str)
        .build()
        .unwrap();
    let handle = breakers.handle();
    let mut svc = breakers.layer(service_fn(|(host, _): Req| async move {
        if host == "slow" {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<(), BoxError>(())
    }));
    for _ in 0..4 {
        call(&mut svc, ("slow", false)).await.unwrap();
        call(&mut svc, ("fast", false)).await.unwrap();
    }
    let slow = handle.get(&"slow").unwrap();
    assert_eq!(slow.state(), State::Open);
    assert_eq!(slow.rolling_counts().slow, 4);
    assert_eq!(handle.get(&"fast").unwrap().state(), State::Closed);
    // What it does not keep: a latency distribution.
    assert_eq!(slow.latencies().count(), 0);
    assert_eq!(slow.latencies().percentile(99.0), Duration::ZERO);
}
