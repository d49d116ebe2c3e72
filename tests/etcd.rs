//! Discovery and properties against a real etcd (Debian's `etcd-server`
//! 3.4): the shared one `.ci/run` starts (`$RAMPART_ETCD`), or, for the
//! tests that stop and restart etcd, one of their own. Without etcd these
//! tests skip, saying so, unless `RAMPART_REQUIRE_ETCD=1` (as in CI). See
//! `tests/support/etcd.rs`.
//!
//! Real time, real leases: the shortest TTL etcd grants is about 2 s, so
//! the tests that wait for a lease take that long; every wait is bounded.

#[path = "support/etcd.rs"]
mod support;

#[path = "support/capture.rs"]
mod capture;

use rampart::balance::rule::RoundRobin;
use rampart::balance::Balance;
use rampart::discovery::{
    Discovery, Instance, Preserving, Property, PropertyEvent, PropertyWatcher, Registration, Status,
};
use rampart::registry::Registry;
use rampart::retry::Backoff;
use std::time::Duration;
use support::{connect, unique, wait_for, Etcd};
use tower::{Service, ServiceExt};

const LIMIT: Duration = Duration::from_secs(10);

fn fast_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(50), Duration::from_millis(300)).unwrap()
}

fn ids(instances: &[Instance]) -> Vec<&str> {
    instances.iter().map(|i| i.id.as_str()).collect()
}

fn register(
    client: &etcd_client::Client,
    prefix: &str,
    id: &str,
) -> rampart::discovery::RegistrationBuilder {
    let _ = client;
    Registration::builder("ratings", id, format!("{id}.local:8080"))
        .prefix(prefix)
        .ttl(Duration::from_secs(2))
        .renew_every(Duration::from_millis(500))
        .backoff(fast_backoff())
}

/// Instances of `ratings` under `prefix`, each with its status and listed
/// in `registry`, once etcd holds every one.
async fn registered(
    client: &etcd_client::Client,
    prefix: &str,
    registry: &Registry,
    instances: &[(&str, Status)],
) -> Vec<Registration> {
    let mut regs = Vec::new();
    for &(id, status) in instances {
        let reg = register(client, prefix, id)
            .status(status)
            .registry(registry)
            .start(client.clone())
            .unwrap();
        tokio::time::timeout(LIMIT, reg.handle().registered())
            .await
            .unwrap()
            .unwrap();
        regs.push(reg);
    }
    regs
}

// ===== options =====

#[tokio::test]
async fn bad_options_are_config_errors_naming_each() {
    // Connecting is lazy: no etcd is needed to build a client, or to check
    // options.
    let client = connect("http://127.0.0.1:9").await;
    let err = Registration::builder("ratings", "a/b", "")
        .ttl(Duration::from_millis(1500))
        .renew_every(Duration::from_secs(2))
        .prefix("services")
        .start(client.clone())
        .unwrap_err();
    for field in ["id", "address", "ttl", "renew_every", "prefix"] {
        assert!(err.names(field), "{field} not named in {err}");
    }
    assert!(!err.names("service"));
    let err = Registration::builder("ratings", "1", "10.0.0.1:80")
        .ttl(Duration::from_secs(30))
        .renew_every(Duration::from_secs(30))
        .start(client.clone())
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("renew_every: must be positive and shorter than the ttl"));

    let err = Discovery::builder("")
        .self_preservation(1.5)
        .preserve_for(Duration::ZERO)
        .start(client.clone())
        .unwrap_err();
    for field in ["service", "self_preservation", "preserve_for"] {
        assert!(err.names(field), "{field} not named in {err}");
    }
    let err = PropertyWatcher::builder("/").start(client).unwrap_err();
    assert!(err.names("prefix"));
}

// ===== discovery =====

#[tokio::test]
async fn registered_up_instances_are_offered_down_ones_are_not() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let a = register(&client, &prefix, "a")
        .zone("zone-1")
        .metadata("version", "1.2")
        .start(client.clone())
        .unwrap();
    let b = register(&client, &prefix, "b")
        .start(client.clone())
        .unwrap();
    let c = register(&client, &prefix, "c")
        .status(Status::Starting)
        .start(client.clone())
        .unwrap();
    for r in [&a, &b, &c] {
        tokio::time::timeout(LIMIT, r.handle().registered())
            .await
            .unwrap()
            .unwrap();
    }
    let discovery = Discovery::builder("ratings")
        .prefix(&prefix)
        .backoff(fast_backoff())
        .start(client.clone())
        .unwrap();
    discovery.synced().await;
    let mut instances = discovery.instances();
    wait_for(&mut instances, LIMIT, "a and b offered", |i| {
        ids(i) == ["a", "b"]
    })
    .await;
    let first = &discovery.current()[0];
    assert_eq!(first.address, "a.local:8080");
    assert_eq!(first.zone.as_deref(), Some("zone-1"));
    assert_eq!(
        first.metadata.get("version").map(String::as_str),
        Some("1.2")
    );
    assert_eq!(discovery.state().registered, 3, "c is registered, STARTING");

    // STARTING -> UP joins; UP -> DOWN leaves at once (not kept: a
    // deliberate change), and back.
    c.set_status(Status::Up);
    wait_for(&mut instances, LIMIT, "c joins", |i| {
        ids(i) == ["a", "b", "c"]
    })
    .await;
    b.set_status(Status::Down);
    wait_for(&mut instances, LIMIT, "b leaves", |i| ids(i) == ["a", "c"]).await;
    assert_eq!(discovery.preserving(), None);
    assert_eq!(discovery.state().registered, 3);
    b.set_status(Status::OutOfService);
    b.set_status(Status::Up);
    wait_for(&mut instances, LIMIT, "b is back", |i| {
        ids(i) == ["a", "b", "c"]
    })
    .await;

    // A graceful shutdown (DOWN, then the lease revoked) is a deliberate
    // departure: one of three is more than 15 %, yet nothing is kept.
    a.shutdown().await.unwrap();
    wait_for(&mut instances, LIMIT, "a leaves", |i| ids(i) == ["b", "c"]).await;
    let mut state = discovery.watch_state();
    wait_for(&mut state, LIMIT, "a deleted", |s| s.registered == 2).await;
    assert_eq!(discovery.preserving(), None);
    let mut kv = client.clone();
    let left = kv.get(format!("{prefix}/ratings/a"), None).await.unwrap();
    assert!(left.kvs().is_empty(), "shutdown deleted the key");

    // Dropping a registration deregisters it too, in the background.
    drop(c);
    wait_for(&mut instances, LIMIT, "c leaves on drop", |i| {
        ids(i) == ["b"]
    })
    .await;
    wait_for(&mut state, LIMIT, "c deleted", |s| s.registered == 1).await;
}

/// A discovery's gauges as a recorder holds them, by metric name, for the
/// service `ratings`.
fn discovery_gauges(
    snapshotter: &metrics_util::debugging::Snapshotter,
) -> std::collections::BTreeMap<String, f64> {
    use metrics_util::debugging::DebugValue;
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let name = key.key().name().strip_prefix("rampart_discovery_")?;
            let service = key.key().labels().find(|l| l.key() == "name")?;
            assert_eq!(service.value(), "ratings");
            match value {
                DebugValue::Gauge(g) => Some((name.to_owned(), g.into_inner())),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test]
async fn discoveries_and_registrations_are_listed_while_they_run() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let registry = Registry::new();
    let mut regs = registered(
        &client,
        &prefix,
        &registry,
        &[("a", Status::Up), ("b", Status::Up), ("c", Status::Down)],
    )
    .await;
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let discovery = metrics::with_local_recorder(&recorder, || {
        Discovery::builder("ratings")
            .prefix(&prefix)
            .registry(&registry)
            .backoff(fast_backoff())
            .start(client.clone())
            .unwrap()
    });
    let mut state = discovery.watch_state();
    wait_for(&mut state, LIMIT, "three read, two offered", |s| {
        s.synced && s.registered == 3 && s.offered == 2
    })
    .await;

    let listed = registry.discoveries();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].service(), "ratings");
    assert_eq!(listed[0].state(), discovery.state());
    let gauges = discovery_gauges(&snapshotter);
    assert_eq!(
        gauges,
        [
            ("kept".to_owned(), 0.0),
            ("offered".to_owned(), 2.0),
            ("reachable".to_owned(), 1.0),
            ("registered".to_owned(), 3.0),
        ]
        .into(),
    );

    // An admin endpoint takes b out of service through the registry
    // (Eureka's status override): the discovery's view and gauges follow.
    let listed_regs = registry.registrations();
    let keys: Vec<&str> = listed_regs.iter().map(|r| r.key()).collect();
    assert_eq!(
        keys,
        ["a", "b", "c"].map(|id| format!("{prefix}/ratings/{id}")),
    );
    listed_regs[1].set_status(Status::OutOfService);
    assert_eq!(regs[1].handle().status(), Status::OutOfService);
    let mut seen = listed[0].watch_state();
    wait_for(&mut seen, LIMIT, "b no longer offered", |s| s.offered == 1).await;
    assert_eq!(discovery_gauges(&snapshotter)["offered"], 1.0);

    // A registration shut down leaves the registry.
    regs.remove(2).shutdown().await.unwrap();
    assert_eq!(registry.registrations().len(), 2);

    // Nothing reads its instances any more: its task ends and it leaves
    // the registry, though a handle from the listing is still held.
    drop(discovery);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !registry.discoveries().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed[0].service(), "ratings", "the handle still reads");
}

/// The objects of type `kind` in the stream's frames, up to the first
/// frame for which `done` says yes (within `LIMIT`).
#[cfg(feature = "stream")]
async fn stream_objects(
    body: &mut rampart::stream::ResponseBody,
    kind: &str,
    mut done: impl FnMut(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    use http_body_util::BodyExt;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no frame with the {kind} expected"))
            .expect("the stream never ends")
            .unwrap();
        let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
        let objects: Vec<serde_json::Value> = text
            .split_terminator("\n\n")
            .filter_map(|event| serde_json::from_str(event.strip_prefix("data: ")?).ok())
            .filter(|o: &serde_json::Value| o["type"] == kind)
            .collect();
        if done(&objects) {
            return objects;
        }
    }
}

#[cfg(feature = "stream")]
#[tokio::test]
async fn a_discovery_shows_in_the_stream_and_leaves_it() {
    use rampart::stream::HystrixStream;
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let registry = Registry::new();
    let _regs = registered(
        &client,
        &prefix,
        &registry,
        &[("a", Status::Up), ("b", Status::Up)],
    )
    .await;
    let discovery = Discovery::builder("ratings")
        .prefix(&prefix)
        .registry(&registry)
        .backoff(fast_backoff())
        .start(client.clone())
        .unwrap();
    let mut stream = HystrixStream::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let request = http::Request::get("/hystrix.stream?delay=100")
        .body(())
        .unwrap();
    let mut body = ServiceExt::<http::Request<()>>::ready(&mut stream)
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap()
        .into_body();
    let shown = stream_objects(&mut body, "RampartDiscovery", |o| {
        o.len() == 1 && o[0]["offered"] == 2
    })
    .await;
    let d = &shown[0];
    assert_eq!(d["name"], "ratings");
    assert_eq!(
        (
            &d["synced"],
            &d["reachable"],
            &d["registered"],
            &d["kept"],
            &d["invalid"]
        ),
        (&true.into(), &true.into(), &2.into(), &0.into(), &0.into())
    );
    drop(discovery);
    let gone = stream_objects(&mut body, "RampartDiscovery", |o| !o.is_empty()).await;
    assert_eq!(
        gone[0]["deleteData"], "true",
        "announced once gone: {gone:?}"
    );
}

/// Found by a user trial: an instance's key deleted by hand stayed gone
/// while its lease lived, and `registered()` still said etcd held it.
/// Eureka registers again when a renewal finds the instance gone.
#[tokio::test]
async fn a_key_deleted_by_hand_is_written_again_at_the_next_renewal() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let mut kv = connect(&endpoint).await;
    let prefix = unique("services");
    let me = register(&kv, &prefix, "a").start(kv.clone()).unwrap();
    let lease = tokio::time::timeout(LIMIT, me.handle().registered())
        .await
        .unwrap();
    let key = format!("{prefix}/ratings/a");
    kv.delete(key.as_str(), None).await.unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if !kv.get(key.as_str(), None).await.unwrap().kvs().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never written again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        me.handle().registered().await,
        lease,
        "under the same lease"
    );
}

#[tokio::test]
async fn a_balancer_over_discovery_calls_the_up_instances() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let _a = register(&client, &prefix, "a")
        .start(client.clone())
        .unwrap();
    let b = register(&client, &prefix, "bb")
        .start(client.clone())
        .unwrap();
    let discovery = Discovery::builder("ratings")
        .prefix(&prefix)
        .start(client.clone())
        .unwrap();
    let mut instances = discovery.instances();
    wait_for(&mut instances, LIMIT, "both offered", |i| i.len() == 2).await;
    // Each endpoint answers with its instance's address.
    // Round robin: every instance is called in turn (power of two choices
    // may keep to one of two equally fast instances).
    let mut balancer = Balance::builder("ratings")
        .rule(RoundRobin::new())
        .build(discovery.endpoints(|instance| {
            let address = instance.address.clone();
            tower::service_fn(move |_: ()| {
                let address = address.clone();
                async move { Ok::<_, rampart::BoxError>(address) }
            })
        }))
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(balancer.ready().await.unwrap().call(()).await.unwrap());
    }
    assert_eq!(seen.len(), 2, "both instances called: {seen:?}");

    b.set_status(Status::Down);
    wait_for(&mut instances, LIMIT, "bb leaves", |i| ids(i) == ["a"]).await;
    for _ in 0..20 {
        let answer = balancer.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(answer, "a.local:8080", "only a is called once bb is DOWN");
    }
}

#[test]
fn a_killed_instance_disappears_after_its_lease() {
    // The killed instance lives on a runtime of its own, as in a process
    // of its own: dropping the runtime kills its task without a revoke.
    let main = tokio::runtime::Runtime::new().unwrap();
    let Some((endpoint, _etcd)) = main.block_on(support::shared()) else {
        return;
    };
    let prefix = unique("services");
    let victim_runtime = tokio::runtime::Runtime::new().unwrap();
    let victim = victim_runtime.block_on(async {
        let client = connect(&endpoint).await;
        let victim = register(&client, &prefix, "victim").start(client).unwrap();
        tokio::time::timeout(LIMIT, victim.handle().registered())
            .await
            .unwrap()
            .unwrap();
        victim
    });
    main.block_on(async {
        let client = connect(&endpoint).await;
        let _others: Vec<Registration> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|id| {
                register(&client, &prefix, id)
                    .start(client.clone())
                    .unwrap()
            })
            .collect();
        // Seven others: one of eight is 12.5 %, under the default 15 %.
        // A short vanish window: it leaves half a second after its key.
        let discovery = Discovery::builder("ratings")
            .prefix(&prefix)
            .vanish_window(Duration::from_millis(500))
            .start(client.clone())
            .unwrap();
        let mut instances = discovery.instances();
        wait_for(&mut instances, LIMIT, "eight offered", |i| i.len() == 8).await;

        let killed_at = std::time::Instant::now();
        victim_runtime.shutdown_background();
        // Its lease (2 s) runs out; etcd deletes the key; it leaves.
        wait_for(&mut instances, LIMIT, "the victim leaves", |i| {
            i.len() == 7 && !ids(i).contains(&"victim")
        })
        .await;
        let after = killed_at.elapsed();
        assert!(
            after >= Duration::from_millis(1000),
            "gone after {after:?}: before its lease could run out"
        );
        assert_eq!(
            discovery.preserving(),
            None,
            "12.5 % is not a mass vanishing"
        );
        // The registration of a dead runtime drops without a fuss.
        drop(victim);
    });
}

#[tokio::test]
async fn self_preservation_keeps_instances_that_vanish_at_once() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let dir = format!("{prefix}/ratings/");
    let mut kv = client.clone();
    // Four instances written by hand (no lease), so they can vanish
    // together: two share the key prefix `x-` and go in one deletion.
    for id in ["x-1", "x-2", "y-1", "y-2"] {
        let value = format!(r#"{{"address":"{id}:80","status":"UP"}}"#);
        kv.put(format!("{dir}{id}"), value, None).await.unwrap();
    }
    let discovery = Discovery::builder("ratings")
        .prefix(&prefix)
        .preserve_for(Duration::from_secs(2))
        .start(client.clone())
        .unwrap();
    let mut instances = discovery.instances();
    wait_for(&mut instances, LIMIT, "four offered", |i| i.len() == 4).await;

    // Half vanish in one revision: more than 15 %, so they are kept.
    let deleted = kv
        .delete(
            format!("{dir}x-"),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), 2);
    let mut state = discovery.watch_state();
    wait_for(&mut state, LIMIT, "the deletion seen", |s| {
        s.registered == 2
    })
    .await;
    assert_eq!(ids(&discovery.current()), ["x-1", "x-2", "y-1", "y-2"]);
    assert_eq!(
        discovery.preserving(),
        Some(Preserving::Vanished { kept: 2 })
    );
    assert_eq!(discovery.state().kept, ["x-1", "x-2"]);

    // One comes back: it is etcd's again, one still kept.
    kv.put(
        format!("{dir}x-1"),
        r#"{"address":"x-1:81","status":"UP"}"#,
        None,
    )
    .await
    .unwrap();
    wait_for(&mut state, LIMIT, "x-1 back", |s| s.kept == ["x-2"]).await;
    let x1 = discovery
        .current()
        .into_iter()
        .find(|i| i.id == "x-1")
        .unwrap();
    assert_eq!(x1.address, "x-1:81", "the instance as etcd holds it now");

    // After preserve_for (2 s here), the missing one is taken as gone.
    wait_for(
        &mut instances,
        LIMIT,
        "x-2 dropped after preserve_for",
        |i| ids(i) == ["x-1", "y-1", "y-2"],
    )
    .await;
    assert_eq!(discovery.preserving(), None);

    // One of three is above 15 % too, but a share of 0.5 lets it go.
    let lenient = Discovery::builder("ratings")
        .prefix(&prefix)
        .self_preservation(0.5)
        .vanish_window(Duration::ZERO)
        .start(client.clone())
        .unwrap();
    let mut lenient_instances = lenient.instances();
    wait_for(&mut lenient_instances, LIMIT, "three offered", |i| {
        i.len() == 3
    })
    .await;
    kv.delete(format!("{dir}y-1"), None).await.unwrap();
    wait_for(&mut lenient_instances, LIMIT, "y-1 leaves", |i| {
        ids(i) == ["x-1", "y-2"]
    })
    .await;
    assert_eq!(lenient.preserving(), None);
}

/// Instances cut off together: their leases run out one by one, each in
/// a revision of its own, yet within the vanish window they count as one
/// mass vanishing and are kept.
#[test]
fn a_mass_lease_expiry_is_kept() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let Some((endpoint, _etcd)) = main.block_on(support::shared()) else {
        return;
    };
    let prefix = unique("services");
    let victims_runtime = tokio::runtime::Runtime::new().unwrap();
    let victims: Vec<Registration> = victims_runtime.block_on(async {
        let client = connect(&endpoint).await;
        let victims: Vec<Registration> = (0..4)
            .map(|i| {
                register(&client, &prefix, &format!("v{i}"))
                    .start(client.clone())
                    .unwrap()
            })
            .collect();
        for victim in &victims {
            tokio::time::timeout(LIMIT, victim.handle().registered())
                .await
                .unwrap();
        }
        victims
    });
    main.block_on(async {
        let client = connect(&endpoint).await;
        let _others: Vec<Registration> = (0..6)
            .map(|i| {
                register(&client, &prefix, &format!("o{i}"))
                    .start(client.clone())
                    .unwrap()
            })
            .collect();
        let discovery = Discovery::builder("ratings")
            .prefix(&prefix)
            .vanish_window(Duration::from_secs(5))
            .start(client.clone())
            .unwrap();
        let mut instances = discovery.instances();
        wait_for(&mut instances, LIMIT, "ten offered", |i| i.len() == 10).await;
        // Four of ten (40 %) cut off at once.
        victims_runtime.shutdown_background();
        let mut state = discovery.watch_state();
        wait_for(&mut state, LIMIT, "their leases run out", |s| {
            s.registered == 6
        })
        .await;
        assert_eq!(
            discovery.preserving(),
            Some(Preserving::Vanished { kept: 4 })
        );
        assert_eq!(discovery.current().len(), 10);
    });
    drop(victims);
}

#[tokio::test]
async fn undecodable_instances_are_counted_not_offered() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let dir = format!("{prefix}/ratings/");
    let mut kv = client.clone();
    kv.put(
        format!("{dir}good"),
        r#"{"address":"g:80","status":"UP"}"#,
        None,
    )
    .await
    .unwrap();
    kv.put(format!("{dir}bad"), "not json", None).await.unwrap();
    let discovery = Discovery::builder("ratings")
        .prefix(&prefix)
        .start(client.clone())
        .unwrap();
    let mut state = discovery.watch_state();
    wait_for(&mut state, LIMIT, "read", |s| s.synced).await;
    assert_eq!(ids(&discovery.current()), ["good"]);
    assert_eq!(discovery.state().invalid, 1);
    kv.put(format!("{dir}worse"), r#"{"status":"SIDEWAYS"}"#, None)
        .await
        .unwrap();
    wait_for(&mut state, LIMIT, "the second bad value seen", |s| {
        s.invalid == 2
    })
    .await;
    kv.put(
        format!("{dir}bad"),
        r#"{"address":"b:80","status":"UP"}"#,
        None,
    )
    .await
    .unwrap();
    wait_for(&mut state, LIMIT, "bad repaired", |s| {
        s.invalid == 1 && s.offered == 2
    })
    .await;
}

#[tokio::test]
async fn a_lost_lease_is_registered_again() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("services");
    let me = register(&client, &prefix, "me")
        .start(client.clone())
        .unwrap();
    let handle = me.handle();
    let first = tokio::time::timeout(LIMIT, handle.registered())
        .await
        .unwrap()
        .unwrap();
    // Someone revokes the lease (as if it had run out): the key goes, the
    // next keep-alive answers TTL 0, and the instance registers again.
    let mut leases = client.clone();
    leases.lease_revoke(first).await.unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let second = loop {
        match handle.lease() {
            Some(lease) if lease != first => break lease,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not registered again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut kv = client.clone();
    let got = kv.get(handle.key(), None).await.unwrap();
    let kv0 = &got.kvs()[0];
    assert_eq!(kv0.lease(), second);
    assert!(kv0.value_str().unwrap().contains(r#""status":"UP""#));
    me.shutdown().await.unwrap();
}

/// etcd killed under a registration and a discovery: the balancer keeps
/// serving the last known set, a status change waits, and a restart
/// resynchronises both.
#[tokio::test]
async fn etcd_down_keeps_the_last_set_and_a_restart_resyncs() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let client = etcd.client().await;
    let prefix = "/services";
    let regs: Vec<Registration> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            Registration::builder("ratings", *id, format!("{id}:80"))
                .prefix(prefix)
                .ttl(Duration::from_secs(30))
                .renew_every(Duration::from_millis(500))
                .backoff(fast_backoff())
                .start(client.clone())
                .unwrap()
        })
        .collect();
    let registry = Registry::new();
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let discovery = metrics::with_local_recorder(&recorder, || {
        Discovery::builder("ratings")
            .prefix(prefix)
            .registry(&registry)
            .backoff(fast_backoff())
            .start(client.clone())
            .unwrap()
    });
    let mut instances = discovery.instances();
    wait_for(&mut instances, LIMIT, "three offered", |i| i.len() == 3).await;
    let mut balancer = Balance::builder("ratings")
        .rule(RoundRobin::new())
        .build(discovery.endpoints(|instance| {
            let address = instance.address.clone();
            tower::service_fn(move |_: ()| {
                let address = address.clone();
                async move { Ok::<_, rampart::BoxError>(address) }
            })
        }))
        .unwrap();

    let started = std::time::Instant::now();
    etcd.kill();
    let mut state = discovery.watch_state();
    wait_for(&mut state, LIMIT, "etcd seen unreachable", |s| !s.reachable).await;
    assert_eq!(discovery.preserving(), Some(Preserving::Unreachable));
    // What an operator sees: the registry's view and the gauges.
    assert!(!registry.discoveries()[0].state().reachable);
    let gauges = discovery_gauges(&snapshotter);
    assert_eq!((gauges["reachable"], gauges["offered"]), (0.0, 3.0));
    assert_eq!(ids(&discovery.current()), ["a", "b", "c"]);
    // The balancer still serves all three.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.insert(balancer.ready().await.unwrap().call(()).await.unwrap());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // A status change while etcd is down waits for it: pending at once,
    // though the registration's task looks only after its backoff (found
    // by a user trial: `lease()` and `registered()` said it had landed).
    regs[1].set_status(Status::Down);
    assert_eq!(regs[1].handle().lease(), None);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), regs[1].handle().registered())
            .await
            .is_err(),
        "registered() waits for the write"
    );
    assert_eq!(
        discovery.current().len(),
        3,
        "nothing changes while etcd is down"
    );

    etcd.restart().await;
    wait_for(&mut state, LIMIT, "resynced", |s| s.reachable).await;
    assert_eq!(discovery_gauges(&snapshotter)["reachable"], 1.0);
    wait_for(
        &mut instances,
        LIMIT,
        "b's DOWN lands after the restart",
        |i| ids(i) == ["a", "c"],
    )
    .await;
    assert_eq!(discovery.preserving(), None);
    for reg in &regs {
        tokio::time::timeout(LIMIT, reg.handle().registered())
            .await
            .unwrap()
            .unwrap();
    }
    eprintln!("etcd outage and resync took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_registration_started_while_etcd_is_down_registers_once_it_is_back() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let client = etcd.client().await;
    etcd.kill();
    let me = Registration::builder("ratings", "early", "early:80")
        .ttl(Duration::from_secs(10))
        .renew_every(Duration::from_millis(500))
        .backoff(fast_backoff())
        .start(client.clone())
        .unwrap();
    let handle = me.handle();
    // It keeps trying (with backoff) while etcd is down...
    let early = tokio::time::timeout(Duration::from_millis(500), handle.registered()).await;
    assert!(early.is_err(), "registered with etcd down: {early:?}");
    // ...and registers once etcd is back.
    etcd.restart().await;
    let lease = tokio::time::timeout(LIMIT, handle.registered())
        .await
        .expect("registered after the restart")
        .unwrap();
    let mut kv = etcd.client().await;
    let got = kv.get(handle.key(), None).await.unwrap();
    assert_eq!(got.kvs()[0].lease(), lease);
    me.shutdown().await.unwrap();
    let got = kv.get(handle.key(), None).await.unwrap();
    assert!(got.kvs().is_empty(), "shutdown removed it");
}

/// Three clients, each on a runtime of its own (as in a process of its
/// own), through an etcd outage: each keeps serving its last known set,
/// and each resynchronises after the restart.
#[test]
fn three_clients_keep_their_sets_through_an_outage_and_resync() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let Some(mut etcd) = main.block_on(Etcd::start()) else {
        return;
    };
    let endpoint = etcd.endpoint.clone();
    let regs: Vec<Registration> = main.block_on(async {
        let client = connect(&endpoint).await;
        ["a", "b", "c"]
            .iter()
            .map(|id| {
                Registration::builder("ratings", *id, format!("{id}:80"))
                    .ttl(Duration::from_secs(30))
                    .renew_every(Duration::from_millis(500))
                    .backoff(fast_backoff())
                    .start(client.clone())
                    .unwrap()
            })
            .collect()
    });
    let clients: Vec<(tokio::runtime::Runtime, Discovery)> = (0..3)
        .map(|_| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let discovery = runtime.block_on(async {
                let client = connect(&endpoint).await;
                Discovery::builder("ratings")
                    .backoff(fast_backoff())
                    .start(client)
                    .unwrap()
            });
            (runtime, discovery)
        })
        .collect();
    main.block_on(async {
        for (_, discovery) in &clients {
            let mut instances = discovery.instances();
            wait_for(&mut instances, LIMIT, "three offered", |i| i.len() == 3).await;
        }
        etcd.kill();
        for (_, discovery) in &clients {
            let mut state = discovery.watch_state();
            wait_for(&mut state, LIMIT, "etcd seen unreachable", |s| !s.reachable).await;
            assert_eq!(discovery.preserving(), Some(Preserving::Unreachable));
            assert_eq!(ids(&discovery.current()), ["a", "b", "c"]);
        }
        regs[1].set_status(Status::Down);
        etcd.restart().await;
        for (_, discovery) in &clients {
            let mut instances = discovery.instances();
            wait_for(
                &mut instances,
                LIMIT,
                "b's DOWN seen after the restart",
                |i| ids(i) == ["a", "c"],
            )
            .await;
            assert_eq!(discovery.preserving(), None);
        }
    });
    drop(clients);
}

/// With etcd's authentication on, a user whose roles grant the module
/// docs' prefixes registers, discovers and reads properties, and cannot
/// write properties: the connection options (user and password) pass
/// through, and the roles restrict who steers the fleet.
#[tokio::test]
async fn roles_restrict_who_writes_the_prefixes() {
    use etcd_client::Permission;
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut admin = etcd.client().await;
    admin.role_add("ratings-instance").await.unwrap();
    let own = Permission::read_write("/services/ratings/").with_prefix();
    admin
        .role_grant_permission("ratings-instance", own)
        .await
        .unwrap();
    admin.role_add("shop-reader").await.unwrap();
    for prefix in ["/services/", "/rampart/shop/"] {
        let read = Permission::read(prefix).with_prefix();
        admin
            .role_grant_permission("shop-reader", read)
            .await
            .unwrap();
    }
    admin.user_add("ratings", "secret", None).await.unwrap();
    for role in ["ratings-instance", "shop-reader"] {
        admin.user_grant_role("ratings", role).await.unwrap();
    }
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let options = etcd_client::ConnectOptions::new().with_user("root", "rootpw");
    let mut root = etcd_client::Client::connect([etcd.endpoint.as_str()], Some(options))
        .await
        .unwrap();
    root.put("/rampart/shop/ratings/timeout", "250ms", None)
        .await
        .unwrap();

    let options = etcd_client::ConnectOptions::new().with_user("ratings", "secret");
    let user = etcd_client::Client::connect([etcd.endpoint.as_str()], Some(options))
        .await
        .unwrap();
    let me = Registration::builder("ratings", "r1", "r1:80")
        .start(user.clone())
        .unwrap();
    tokio::time::timeout(LIMIT, me.handle().registered())
        .await
        .unwrap()
        .unwrap();
    let discovery = Discovery::builder("ratings").start(user.clone()).unwrap();
    let mut instances = discovery.instances();
    wait_for(&mut instances, LIMIT, "r1 offered", |i| ids(i) == ["r1"]).await;
    let mut watcher = PropertyWatcher::builder("/rampart/shop")
        .start(user.clone())
        .unwrap();
    assert_eq!(
        next(&mut watcher).await,
        PropertyEvent::Replace(vec![prop("ratings", "timeout", "250ms")])
    );
    let mut kv = user.clone();
    let denied = kv
        .put("/rampart/shop/ratings/force_open", "true", None)
        .await;
    let denied = denied.expect_err("an instance cannot steer the fleet");
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    me.shutdown().await.unwrap();
}

// ===== properties =====

fn prop(component: &str, name: &str, value: &str) -> Property {
    Property {
        component: component.into(),
        name: name.into(),
        value: value.into(),
    }
}

async fn next(watcher: &mut PropertyWatcher) -> PropertyEvent {
    tokio::time::timeout(LIMIT, watcher.next())
        .await
        .expect("an event within the limit")
        .expect("the watcher runs")
}

#[tokio::test]
async fn properties_full_read_then_sets_deletes_and_invalid_ones() {
    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let client = connect(&endpoint).await;
    let prefix = unique("rampart/shop");
    let mut kv = client.clone();
    kv.put(format!("{prefix}/ratings/force_open"), "true", None)
        .await
        .unwrap();
    kv.put(format!("{prefix}/ratings/timeout"), " 250ms\n", None)
        .await
        .unwrap();
    kv.put(format!("{prefix}/no-property"), "1", None)
        .await
        .unwrap();

    let mut watcher = PropertyWatcher::builder(&prefix)
        .start(client.clone())
        .unwrap();
    let PropertyEvent::Invalid { key, error } = next(&mut watcher).await else {
        panic!("the bad key first")
    };
    assert!(key.ends_with("/no-property"), "{key}");
    assert!(error.contains("<component>/<property>"), "{error}");
    assert_eq!(
        next(&mut watcher).await,
        PropertyEvent::Replace(vec![
            prop("ratings", "force_open", "true"),
            prop("ratings", "timeout", "250ms"),
        ])
    );

    kv.put(format!("{prefix}/search/max_concurrent"), "20", None)
        .await
        .unwrap();
    assert_eq!(
        next(&mut watcher).await,
        PropertyEvent::Set(prop("search", "max_concurrent", "20"))
    );
    kv.delete(format!("{prefix}/ratings/force_open"), None)
        .await
        .unwrap();
    assert_eq!(
        next(&mut watcher).await,
        PropertyEvent::Delete {
            component: "ratings".into(),
            name: "force_open".into()
        }
    );
    // A value that is not UTF-8 is reported, not applied.
    kv.put(
        format!("{prefix}/search/max_concurrent"),
        vec![0xff, 0xfe],
        None,
    )
    .await
    .unwrap();
    let PropertyEvent::Invalid { key, error } = next(&mut watcher).await else {
        panic!("an invalid value")
    };
    assert!(key.ends_with("/search/max_concurrent"), "{key}");
    assert!(error.contains("not UTF-8"), "{error}");
    // Nothing else was sent for it.
    kv.put(format!("{prefix}/search/timeout"), "1s", None)
        .await
        .unwrap();
    assert_eq!(
        next(&mut watcher).await,
        PropertyEvent::Set(prop("search", "timeout", "1s"))
    );
}

/// etcd killed under a property watcher: nothing destructive is sent, and
/// the restart brings a fresh full read (with a bad value's last good one).
#[tokio::test]
async fn properties_keep_their_values_while_etcd_is_down_and_resync() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let client = etcd.client().await;
    let prefix = "/rampart/shop";
    let mut kv = client.clone();
    kv.put(format!("{prefix}/ratings/force_open"), "true", None)
        .await
        .unwrap();
    kv.put(format!("{prefix}/ratings/timeout"), "250ms", None)
        .await
        .unwrap();
    let mut watcher = PropertyWatcher::builder(prefix)
        .backoff(fast_backoff())
        .start(client.clone())
        .unwrap();
    let full = PropertyEvent::Replace(vec![
        prop("ratings", "force_open", "true"),
        prop("ratings", "timeout", "250ms"),
    ]);
    assert_eq!(next(&mut watcher).await, full);
    // A bad write: reported, and it changes nothing, even after a resync.
    kv.put(format!("{prefix}/ratings/timeout"), vec![0xc3], None)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut watcher).await,
        PropertyEvent::Invalid { .. }
    ));

    etcd.kill();
    assert!(
        matches!(next(&mut watcher).await, PropertyEvent::Unreachable { .. }),
        "an outage is reported"
    );
    // Nothing else while etcd is down: no deletion, no empty replace.
    let quiet = tokio::time::timeout(Duration::from_millis(700), watcher.next()).await;
    assert!(quiet.is_err(), "sent {quiet:?} while etcd was down");

    etcd.restart().await;
    // The fresh read reports the bad value again, then replaces
    // everything, the bad value by its last good one.
    assert!(matches!(
        next(&mut watcher).await,
        PropertyEvent::Invalid { .. }
    ));
    assert_eq!(next(&mut watcher).await, full);
    // And the watch goes on.
    let mut kv = etcd.client().await;
    kv.put(format!("{prefix}/ratings/force_open"), "false", None)
        .await
        .unwrap();
    assert_eq!(
        next(&mut watcher).await,
        PropertyEvent::Set(prop("ratings", "force_open", "false"))
    );
}

// ===== fleet control: properties applied by EtcdSource =====

/// Polls `ok` every 5 ms for up to `limit`; the time it took.
async fn until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Found by a user trial: a value etcd's watch brought that a component
/// refused was listed but not logged (only a full read's were), and a key
/// refused and then deleted stayed listed by `errors()`.
#[tokio::test]
async fn a_refused_write_is_logged_and_a_deleted_key_is_no_longer_listed() {
    use rampart::circuit_breaker::CircuitBreakerLayer;
    use rampart::config::EtcdSource;

    let Some((endpoint, _etcd)) = support::shared().await else {
        return;
    };
    let (capture, _guard) = capture::Capture::install();
    let mut kv = connect(&endpoint).await;
    let prefix = unique("rampart");
    let registry = Registry::new();
    let breaker = CircuitBreakerLayer::builder("Ratings")
        .registry(&registry)
        .build()
        .unwrap();
    let watch =
        EtcdSource::watch_with_backoff(kv.clone(), &prefix, &registry, fast_backoff()).unwrap();
    until(LIMIT, "the first full read", || watch.updates() >= 1).await;

    for (key, value) in [("failure_rate", "1.5"), ("bogus", "1")] {
        kv.put(format!("{prefix}/Ratings/{key}"), value, None)
            .await
            .unwrap();
    }
    until(LIMIT, "both refused", || watch.errors().len() == 2).await;
    let logged = capture.named("property_rejected");
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        logged.iter().all(|e| e.get("source") == Some("etcd")),
        "{logged:?}"
    );
    assert_eq!(
        breaker.handle().options().failure_rate,
        Some(0.5),
        "unchanged"
    );

    for key in ["failure_rate", "bogus"] {
        kv.delete(format!("{prefix}/Ratings/{key}"), None)
            .await
            .unwrap();
    }
    until(LIMIT, "none listed once deleted", || {
        watch.errors().is_empty()
    })
    .await;
}

/// Three processes (a runtime and a registry each) watch one prefix: one
/// key forces a breaker open in all of them within a second and a second
/// key changes a timeout live; a bad value is reported and changes
/// nothing; etcd going away leaves each with its values, and once it is
/// back, deleting the key returns every breaker to normal.
#[test]
fn one_key_forces_a_breaker_open_fleet_wide_within_a_second() {
    use rampart::circuit_breaker::State;
    use rampart::config::{EtcdSource, EtcdWatch};
    use rampart::registry::Registry;
    use rampart::Command;

    let main = tokio::runtime::Runtime::new().unwrap();
    let Some(mut etcd) = main.block_on(Etcd::start()) else {
        return;
    };
    let endpoint = etcd.endpoint.clone();
    let prefix = "/rampart/shop";
    let fleet: Vec<(_, _, EtcdWatch)> = (0..3)
        .map(|_| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let (command, watch) = runtime.block_on(async {
                let registry = Registry::new();
                let command = Command::builder("Bookmarks")
                    .timeout(Duration::from_secs(1))
                    .registry(&registry)
                    .build()
                    .unwrap();
                let client = connect(&endpoint).await;
                let watch =
                    EtcdSource::watch_with_backoff(client, prefix, &registry, fast_backoff())
                        .unwrap();
                (command, watch)
            });
            (runtime, command, watch)
        })
        .collect();

    main.block_on(async {
        let mut kv = etcd.client().await;
        for (_, _, watch) in &fleet {
            until(LIMIT, "the first full read", || watch.updates() >= 1).await;
        }

        let written = std::time::Instant::now();
        kv.put(format!("{prefix}/Bookmarks/force_open"), "true", None)
            .await
            .unwrap();
        for (_, command, _) in &fleet {
            until(LIMIT, "forced open", || {
                command.breaker().state() == State::ForcedOpen
            })
            .await;
        }
        let landed = written.elapsed();
        assert!(
            landed < Duration::from_secs(1),
            "forced open everywhere after {landed:?}"
        );

        kv.put(format!("{prefix}/Bookmarks/timeout"), "250ms", None)
            .await
            .unwrap();
        for (_, command, _) in &fleet {
            until(LIMIT, "timeout changed", || {
                command.timeout() == Duration::from_millis(250)
            })
            .await;
        }

        // A bad value: reported by every process, and nothing changes.
        kv.put(format!("{prefix}/Bookmarks/force_open"), "maybe", None)
            .await
            .unwrap();
        for (_, command, watch) in &fleet {
            until(LIMIT, "the bad value reported", || {
                watch.errors().iter().any(|e| e.names("force_open"))
            })
            .await;
            assert_eq!(command.breaker().state(), State::ForcedOpen);
        }

        // etcd goes away: every process keeps what it had.
        etcd.kill();
        for (_, command, watch) in &fleet {
            until(LIMIT, "etcd seen unreachable", || !watch.is_reachable()).await;
            assert_eq!(command.breaker().state(), State::ForcedOpen);
            assert_eq!(command.timeout(), Duration::from_millis(250));
        }

        // Back: a full read again, then the fleet follows the next change.
        etcd.restart().await;
        for (_, _, watch) in &fleet {
            until(LIMIT, "etcd reachable again", || watch.is_reachable()).await;
        }
        let mut kv = etcd.client().await;
        kv.delete(format!("{prefix}/Bookmarks/force_open"), None)
            .await
            .unwrap();
        kv.delete(format!("{prefix}/Bookmarks/timeout"), None)
            .await
            .unwrap();
        for (_, command, watch) in &fleet {
            until(LIMIT, "back to normal", || {
                command.breaker().state() == State::Closed
                    && command.timeout() == Duration::from_secs(1)
            })
            .await;
            assert!(watch.errors().is_empty(), "{:?}", watch.errors());
        }
    });
    drop(fleet);
}
