//! One rampart layer dropped into an existing tower stack.
//!
//! ```text
//! cargo run --example tower_stack
//! ```
//!
//! The stack is built from tower's own layers around an in-process
//! "inventory" service (a `service_fn`; no network), with a rampart
//! [`CircuitBreakerLayer`] added in the middle:
//!
//! ```text
//!  caller → MapRequest → Buffer → ConcurrencyLimit → CircuitBreaker (rampart)
//!         → Timeout (tower) → MapResponse → inventory
//! ```
//!
//! What it shows:
//!
//! - it composes: rampart's error type is `tower::BoxError`, like every tower
//!   layer's, so nothing converts errors between the layers, and `Buffer` and
//!   `ConcurrencyLimit` above the breaker work as usual (at most two lookups
//!   run at once);
//! - the inventory's own error reaches the caller untouched
//!   ([`ErrorKind::Inner`]) and counts as a failure;
//! - a timeout raised by `tower::timeout` beneath the breaker is recognised by
//!   [`ErrorKind::of`] as [`ErrorKind::Timeout`], even after passing through
//!   the breaker and the buffer, and the breaker tallies it as a timeout
//!   (`handle.counts().timeouts`);
//! - enough of them trip the breaker, and the next call is short-circuited
//!   ([`ErrorKind::CircuitOpen`]) without reaching the inventory.
//!
//! It ends by itself in well under a second.

use futures::future::join_all;
use rampart::circuit_breaker::{CircuitBreakerLayer, StateChange, TransitionReason};
use rampart::{BoxError, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

// rampart's error type is tower's: the same type, not a look-alike.
const _: fn(rampart::BoxError) -> tower::BoxError = |e| e;

/// What the inventory has seen.
#[derive(Default)]
struct Stats {
    received: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a lookup as running until it ends or is cancelled (by a timeout).
struct Running(Arc<Stats>);

impl Running {
    fn start(stats: Arc<Stats>) -> Running {
        stats.received.fetch_add(1, Ordering::Relaxed);
        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Running(stats)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The dependency: "slow-*" items hang, "missing-*" items are an error, the
/// rest are in stock after 20 ms.
async fn lookup(item: String, stats: Arc<Stats>) -> Result<u32, BoxError> {
    let _running = Running::start(stats);
    if item.starts_with("slow-") {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    if item.starts_with("missing-") {
        return Err(format!("no such item: {item}").into());
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(item.len() as u32)
}

/// One lookup through the whole stack, reported in one line.
async fn report<S>(service: &mut S, item: &'static str)
where
    S: Service<&'static str, Response = String, Error = BoxError>,
{
    match service.ready().await {
        Ok(ready) => match ready.call(item).await {
            Ok(stock) => println!("   {item:<12} ok: {stock}"),
            Err(e) => println!(
                "   {item:<12} error: {:<27} ErrorKind::{:?}{}",
                e.to_string(),
                ErrorKind::of(&e),
                // The very error tower's timeout raised, through two layers.
                if e.is::<tower::timeout::error::Elapsed>() {
                    " (a tower::timeout::error::Elapsed)"
                } else {
                    ""
                }
            ),
        },
        Err(e) => println!("   {item:<12} not ready: {e}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let stats = Arc::new(Stats::default());

    // The one rampart layer. Default classifier: every `Err` is a failure
    // (timeouts tallied apart). Trips at 50% of at least 4 calls.
    let breaker = CircuitBreakerLayer::builder("inventory")
        .min_calls(4)
        .failure_rate(0.5)
        .open_for(Duration::from_secs(30))
        .on_state_change(|change: &StateChange| {
            if let TransitionReason::FailureRate { rate } = change.reason {
                println!(
                    "   >> breaker {}: {} -> {} at a failure rate of {:.0}%",
                    change.name,
                    change.from,
                    change.to,
                    rate * 100.0
                );
            }
        })
        .build()?;
    let handle = breaker.handle();

    // An ordinary tower stack; the breaker goes in with one `.layer(...)`.
    // It sits above the timeout so that it sees (and counts) timeouts.
    let inventory = stats.clone();
    let mut stack = ServiceBuilder::new()
        .map_request(|item: &'static str| item.trim().to_ascii_lowercase()) // tower::util::MapRequestLayer
        .buffer(8) // tower::buffer::BufferLayer
        .concurrency_limit(2) // tower::limit::ConcurrencyLimitLayer
        .layer(breaker) // rampart::circuit_breaker::CircuitBreakerLayer
        .timeout(Duration::from_millis(100)) // tower::timeout::TimeoutLayer
        .map_response(|stock: u32| format!("{stock} in stock")) // tower::util::MapResponseLayer
        .service_fn(move |item: String| lookup(item, inventory.clone()));

    println!("1. four lookups at once, through Buffer and ConcurrencyLimit(2)");
    let items = ["apple", "pear", "fig", "plum"];
    let lookups = items.map(|item| stack.clone().oneshot(item));
    for (item, result) in items.iter().zip(join_all(lookups).await) {
        println!("   {item:<12} ok: {}", result?);
    }
    println!(
        "   at most {} ran at once",
        stats.max_in_flight.load(Ordering::Relaxed)
    );

    println!("2. the inventory's own error");
    report(&mut stack, "missing-kiwi").await;

    println!("3. hung lookups, cut short by tower's timeout, until the breaker opens");
    while !handle.state().rejects() {
        report(&mut stack, "slow-mango").await;
    }
    let counts = handle.counts();
    println!(
        "   breaker counts: successes {}, failures {}, timeouts {} (failure rate {:.0}%)",
        counts.successes,
        counts.failures,
        counts.timeouts,
        counts.failure_rate() * 100.0
    );

    println!("4. the breaker is open");
    let before = stats.received.load(Ordering::Relaxed);
    report(&mut stack, "apple").await;
    println!(
        "   inventory lookups: {before} before, {} after; short-circuited {}",
        stats.received.load(Ordering::Relaxed),
        handle.counts().short_circuited
    );
    Ok(())
}
