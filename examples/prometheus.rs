//! rampart's metrics, live in Prometheus.
//!
//! ```text
//! cargo run --example prometheus
//! curl -s http://127.0.0.1:9898/metrics | grep rampart_
//! ```
//!
//! Installs `metrics-exporter-prometheus`' recorder, serving the Prometheus
//! text format on `http://127.0.0.1:9898/metrics`, then sends traffic
//! through three [`rampart::Command`]s over in-process dependencies (no
//! network besides the scrape endpoint):
//!
//! | command           | dependency                                   | what to look at |
//! |-------------------|----------------------------------------------|-----------------|
//! | `ratings`         | healthy, answers in 2–20 ms                  | `rampart_events_total{event="success"}`, `rampart_call_duration_seconds` |
//! | `recommendations` | always fails                                 | `rampart_circuit_breaker_state` 1 (open), `short_circuited` and `fallback_success` events, a failed probe every 5 s in `rampart_circuit_breaker_transitions_total` |
//! | `catalog`         | a balancer over 3 instances, `catalog-2` refuses every call | `rampart_events_total{layer="balance",event="retry"}`, `rampart_endpoint_selected_total`, `rampart_endpoint_ejections_total`; the command's breaker stays closed |
//!
//! Environment:
//!
//! - `RAMPART_PROMETHEUS_PORT`: the scrape endpoint's port on 127.0.0.1
//!   (default 9898);
//! - `RAMPART_PROMETHEUS_SECONDS`: how long to run (default 60).
//!
//! To see it in Prometheus, scrape it (`.ci/prometheus-check` does this with
//! a throwaway config), e.g. with
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: rampart
//!     scrape_interval: 1s
//!     static_configs: [{ targets: ["127.0.0.1:9898"] }]
//! ```
//!
//! and query `rampart_circuit_breaker_state`,
//! `rate(rampart_events_total[1m])`, or
//! `histogram_quantile(0.99, rate(rampart_call_duration_seconds_bucket[1m]))`.
//! The metric list is in the README's "Metrics" section.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::{BoxError, Command};
use rand::Rng;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// Calls per second to each command.
const CALLS_PER_SECOND: u32 = 20;

/// A `u64` from the environment, or `default` when unset.
fn env_or(name: &str, default: u64) -> Result<u64, BoxError> {
    match std::env::var(name) {
        Ok(value) => Ok(value
            .parse()
            .map_err(|e| format!("{name}={value:?}: {e}"))?),
        Err(_) => Ok(default),
    }
}

/// A dependency that answers after a few milliseconds.
async fn healthy(_: ()) -> Result<&'static str, BoxError> {
    let ms = rand::rng().random_range(2..20);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok("4.5 stars")
}

/// A dependency that is down.
async fn failing(_: ()) -> Result<&'static str, BoxError> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Err("recommendations service unavailable".into())
}

/// A balancer's endpoint key; its `Debug` form is the `endpoint` label.
#[derive(PartialEq)]
struct Instance(u32);

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "catalog-{}", self.0)
    }
}

/// Runs a call on its own task. Only the metrics matter here: the fallback
/// answers for `recommendations`, the retries for `catalog`, so no call
/// should fail.
fn spawn<T>(call: impl Future<Output = Result<T, BoxError>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = call.await {
            eprintln!("call failed: {e}");
        }
    });
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let port = u16::try_from(env_or("RAMPART_PROMETHEUS_PORT", 9898)?)?;
    let run_for = Duration::from_secs(env_or("RAMPART_PROMETHEUS_SECONDS", 60)?);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    // First the recorder: rampart takes its metric handles from the recorder
    // installed when a layer is built, so layers built before this line
    // would report nowhere. The `_seconds` histograms get buckets, so that
    // Prometheus sees real histograms (`histogram_quantile` works on them)
    // rather than client-side summaries.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
        )?
        .install()?;

    // A healthy dependency: every call a success.
    let mut ratings = ServiceBuilder::new()
        .layer(
            Command::builder("ratings")
                .timeout(Duration::from_millis(250))
                .build()?,
        )
        .service(service_fn(healthy));

    // A failing dependency: after 20 calls (one second) the breaker opens;
    // every 5 s one probe goes through, fails, and opens it again. The
    // fallback answers every call meanwhile.
    let recommendations_command = Command::builder("recommendations")
        .timeout(Duration::from_millis(250))
        .breaker(|b| {
            b.min_calls(20)
                .failure_rate(0.5)
                .open_for(Duration::from_secs(5))
        })
        .fallback_sync(|_cause| Ok("popular titles"))
        .build()?;
    let breaker = recommendations_command.breaker();
    let mut recommendations = ServiceBuilder::new()
        .layer(recommendations_command)
        .service(service_fn(failing));

    // A balanced dependency: three instances taken in turn, `catalog-2`
    // refusing connections. Its calls are retried on another instance, so
    // every call succeeds; after 5 refusals in a row it is ejected for 5 s,
    // then 10 s, then 20 s while the probe after each ejection is refused.
    // (Round robin so that it keeps its share until ejected; the default
    // rule, power of two choices, would steer away from it at once.)
    let instance = |n: u32| {
        Endpoint::new(
            Instance(n),
            service_fn(move |_: ()| async move {
                if n == 2 {
                    return Err::<&str, BoxError>(
                        io::Error::from(io::ErrorKind::ConnectionRefused).into(),
                    );
                }
                healthy(()).await
            }),
        )
    };
    let balance = Balance::builder("catalog")
        .rule(RoundRobin::new())
        .eject_for(Duration::from_secs(5), Duration::from_secs(20))
        .build(Endpoints::fixed((1..=3).map(instance)))?;
    let mut catalog = ServiceBuilder::new()
        .layer(Command::builder("catalog").build()?)
        .service(balance);

    println!(
        "metrics: http://{addr}/metrics (for {}s)",
        run_for.as_secs()
    );

    // Each tick, one call to each command, each on its own task.
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / CALLS_PER_SECOND);
    let mut next_report = Duration::from_secs(5);
    while started.elapsed() < run_for {
        ticks.tick().await;
        spawn(ratings.ready().await?.call(()));
        spawn(recommendations.ready().await?.call(()));
        spawn(catalog.ready().await?.call(()));
        if started.elapsed() >= next_report {
            println!(
                "{:>3}s  recommendations' breaker: {:?}",
                next_report.as_secs(),
                breaker.state()
            );
            next_report += Duration::from_secs(5);
        }
    }
    Ok(())
}
