//! The registry lists every component built, keeps none alive, and is
//! never read by a call.

#[path = "support/capture.rs"]
mod capture;

use rampart::bulkhead::pool::PoolLayer;
use rampart::bulkhead::BulkheadLayer;
use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::fallback::FallbackLayer;
use rampart::registry::{Isolation, Registry};
use rampart::{BoxError, Command};
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

fn dependency() -> impl Service<(), Response = (), Error = BoxError, Future: Send + 'static> + Clone
{
    service_fn(|_: ()| async { Ok::<_, BoxError>(()) })
}

#[tokio::test]
async fn lists_each_kind_of_component_by_name() {
    let registry = Registry::new();
    let breaker = CircuitBreakerLayer::builder("b")
        .registry(&registry)
        .build()
        .unwrap();
    let bulkhead = BulkheadLayer::builder("h")
        .registry(&registry)
        .build()
        .unwrap();
    let pool = PoolLayer::builder("p")
        .size(1)
        .registry(&registry)
        .build()
        .unwrap();
    let fallback = FallbackLayer::builder("f")
        .registry(&registry)
        .fallback_sync(|_| Ok(()))
        .build()
        .unwrap();
    let names = |v: Vec<String>| v;
    assert_eq!(
        names(
            registry
                .breakers()
                .iter()
                .map(|h| h.name().to_owned())
                .collect()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            registry
                .bulkheads()
                .iter()
                .map(|h| h.name().to_owned())
                .collect()
        ),
        ["h"]
    );
    assert_eq!(
        names(
            registry
                .pools()
                .iter()
                .map(|h| h.name().to_owned())
                .collect()
        ),
        ["p"]
    );
    assert_eq!(
        names(
            registry
                .fallbacks()
                .iter()
                .map(|h| h.name().to_owned())
                .collect()
        ),
        ["f"]
    );
    assert!(registry.commands().is_empty());
    drop((breaker, bulkhead, pool, fallback));
    assert!(registry.breakers().is_empty() && registry.bulkheads().is_empty());
    assert!(registry.pools().is_empty() && registry.fallbacks().is_empty());
}

#[tokio::test]
async fn a_command_stays_listed_while_a_service_built_from_it_lives() {
    let registry = Registry::new();
    let command = Command::builder("RatingsGet")
        .group("Ratings")
        .timeout(Duration::from_millis(300))
        .pool(2, 1)
        .registry(&registry)
        .build()
        .unwrap();
    let mut svc = command.layer(dependency());
    drop(command);

    let listed = registry.commands();
    assert_eq!(listed.len(), 1);
    let info = &listed[0];
    assert_eq!((info.name(), info.group()), ("RatingsGet", "Ratings"));
    assert_eq!(info.timeout(), Duration::from_millis(300));
    assert!(
        matches!(info.isolation(), Isolation::Pool(p) if p.name() == "Ratings" && p.size() == 2)
    );
    // Its parts are listed on their own too, in the same registry.
    assert_eq!(registry.breakers().len(), 1);
    assert_eq!(registry.pools().len(), 1);
    assert_eq!(registry.fallbacks().len(), 1);

    svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(
        info.breaker().counts().successes,
        1,
        "the handle reads the live breaker"
    );
    drop((svc, listed));
    assert!(registry.commands().is_empty());
    assert!(registry.breakers().is_empty());
}

#[test]
fn components_built_without_a_registry_are_listed_globally() {
    let name = "registry-test-global-breaker";
    let _breaker = CircuitBreakerLayer::builder(name).build().unwrap();
    assert!(Registry::global()
        .breakers()
        .iter()
        .any(|b| b.name() == name));
    assert!(!Registry::new().breakers().iter().any(|b| b.name() == name));
}

/// Found by a user trial: two commands with one name in one registry
/// were both taken silently. Hystrix keeps one breaker per command key;
/// two here are two states under one name, so it is said.
#[test]
fn a_second_breaker_under_a_listed_name_is_warned_of() {
    let (capture, _guard) = capture::Capture::install();
    let registry = Registry::new();
    let first = Command::builder("Ratings")
        .registry(&registry)
        .build()
        .unwrap();
    let _other_kind = BulkheadLayer::builder("Ratings")
        .registry(&registry)
        .build()
        .unwrap();
    assert!(
        capture.named("duplicate_name").is_empty(),
        "one breaker so far"
    );
    let _second = Command::builder("Ratings")
        .registry(&registry)
        .build()
        .unwrap();
    let warned = capture.one("duplicate_name");
    assert_eq!(warned.get("name"), Some("Ratings"));
    // Built once and cloned, it is one breaker: nothing to say.
    let _clone = first.clone();
    assert_eq!(capture.named("duplicate_name").len(), 1);
}
