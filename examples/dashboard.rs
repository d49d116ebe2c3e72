//! See it live: rampart's dashboard page over a few commands and a
//! balancer whose dependencies misbehave in turn.
//!
//! ```text
//! cargo run --example dashboard
//! ```
//!
//! then open the printed address (`http://127.0.0.1:9000/` unless that port
//! is taken) in a browser. The Hystrix dashboard, or Turbine, can read the
//! same process at `…/hystrix.stream`.
//!
//! Every second, 40 calls go to each of four dependencies, in-process
//! services that answer in a few milliseconds, each behind its own
//! [`rampart::Command`]. Every 90 s the same incidents come round:
//!
//! | time in the cycle | incident                                                   |
//! |-------------------|------------------------------------------------------------|
//! | 15–45 s           | `recommendations` fails 80 % of its calls: its breaker opens, probes every 3 s, closes once it is healthy |
//! | 50–70 s           | `ratings` takes 400 ms, over its 250 ms timeout: timeouts, then a full bulkhead, then an open breaker |
//! | 30–60 s           | instance `b2` of the `bookmarks` balancer refuses calls: it is ejected, probed, ejected again, back in |
//!
//! `search` runs on a pool of its own and stays healthy throughout. Stop
//! with Ctrl-C.

use rampart::balance::rule::RoundRobin;
use rampart::balance::{Balance, Endpoint, Endpoints};
use rampart::circuit_breaker::{Builder as BreakerBuilder, Window};
use rampart::stream::{HystrixStream, Server};
use rampart::{BoxError, Command};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// Calls a second to each dependency.
const CALLS_PER_SECOND: u64 = 40;
/// The incidents repeat with this period.
const CYCLE: Duration = Duration::from_secs(90);
const RECOMMENDATIONS_FAILING: Range<u64> = 15..45;
const RATINGS_SLOW: Range<u64> = 50..70;
const B2_DOWN: Range<u64> = 30..60;

/// Where in the cycle we are, in whole seconds.
fn second_of_cycle(started: Instant) -> u64 {
    started.elapsed().as_secs() % CYCLE.as_secs()
}

/// A short window and open time, so the breakers react within a cycle.
fn trip_rule<C>(breaker: BreakerBuilder<C>) -> BreakerBuilder<C> {
    breaker
        .window(Window::time(Duration::from_secs(5), 5))
        .min_calls(20)
        .failure_rate(0.5)
        .open_for(Duration::from_secs(3))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    // Each call picks its own fate from a counter: no randomness needed.
    let calls = Arc::new(AtomicU64::new(0));

    let recommendations = Command::builder("RecommendationsGet")
        .group("Recommendations")
        .timeout(Duration::from_millis(300))
        .bulkhead(10)
        .breaker(trip_rule)
        .fallback_sync(|_| Ok("popular titles"))
        .build()?;
    let ratings = Command::builder("RatingsGet")
        .group("Ratings")
        .timeout(Duration::from_millis(250))
        .bulkhead(6)
        .breaker(trip_rule)
        .fallback_sync(|_| Ok("no ratings"))
        .build()?;
    let search = Command::builder("SearchGet")
        .group("Search")
        .timeout(Duration::from_millis(300))
        .pool(4, 8)
        .breaker(trip_rule)
        .build()?;
    let bookmarks = Command::builder("BookmarksGet")
        .group("Bookmarks")
        .timeout(Duration::from_millis(300))
        .bulkhead(10)
        .breaker(trip_rule)
        .fallback_sync(|_| Ok("no bookmarks"))
        .build()?;

    let recommendations = ServiceBuilder::new().layer(recommendations).service_fn({
        let calls = calls.clone();
        move |()| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                sleep(Duration::from_millis(5 + n % 7)).await;
                let failing = RECOMMENDATIONS_FAILING.contains(&second_of_cycle(started));
                if failing && n % 5 != 0 {
                    return Err::<&str, BoxError>("500 internal server error".into());
                }
                Ok("personal picks")
            }
        }
    });
    let ratings = ServiceBuilder::new().layer(ratings).service_fn({
        let calls = calls.clone();
        move |()| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                let slow = RATINGS_SLOW.contains(&second_of_cycle(started));
                sleep(Duration::from_millis(if slow { 400 } else { 3 + n % 9 })).await;
                Ok::<_, BoxError>("4.5 stars")
            }
        }
    });
    let search = ServiceBuilder::new().layer(search).service_fn({
        let calls = calls.clone();
        move |()| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                sleep(Duration::from_millis(20 + n % 30)).await;
                Ok::<_, BoxError>("results")
            }
        }
    });
    // Three instances behind a balancer, itself behind a command (Ribbon
    // inside Hystrix): b2 refuses calls for a while, and is ejected. Round
    // robin (Ribbon's default) keeps sending b2 its share until then;
    // rampart's default, P2C on latency, would mostly step around it.
    let instances = ["b1", "b2", "b3"].map(|name| {
        let calls = calls.clone();
        let service = service_fn(move |()| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if name == "b2" && B2_DOWN.contains(&second_of_cycle(started)) {
                    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                    return Err::<&str, BoxError>(refused.into());
                }
                sleep(Duration::from_millis(4 + n % 11)).await;
                Ok("continue watching")
            }
        });
        Endpoint::new(name, service)
    });
    let balance = Balance::builder("bookmarks")
        .rule(RoundRobin::new())
        .eject_after(3)
        .eject_for(Duration::from_secs(4), Duration::from_secs(16))
        .build(Endpoints::fixed(instances))?;
    let bookmarks = ServiceBuilder::new().layer(bookmarks).service(balance);

    tokio::spawn(drive(recommendations));
    tokio::spawn(drive(ratings));
    tokio::spawn(drive(search));
    tokio::spawn(drive(bookmarks));

    let stream = HystrixStream::new();
    let serving = match Server::new(stream.clone()).port(9000).start().await {
        Ok(serving) => serving,
        Err(_) => Server::new(stream).start().await?, // 9000 taken: any port
    };
    println!("rampart dashboard: open {}", serving.url("/"));
    println!("(the raw stream: {})", serving.url("/hystrix.stream"));
    println!("incidents every {} s; Ctrl-C to stop", CYCLE.as_secs());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Calls `service` `CALLS_PER_SECOND` times a second, each call on its own
/// task so that slow calls pile up as they would in a server.
async fn drive<S>(service: S)
where
    S: Service<(), Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
{
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / CALLS_PER_SECOND));
    loop {
        tick.tick().await;
        let mut service = service.clone();
        tokio::spawn(async move {
            if let Ok(ready) = service.ready().await {
                let _ = ready.call(()).await;
            }
        });
    }
}
