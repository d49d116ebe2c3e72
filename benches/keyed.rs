//! What state per key costs per call: the keyed circuit breaker's look-up
//! and the rate limiter, at 10, 1000 and 100 000 keys, next to a single
//! breaker and a rate limit for all calls.
//!
//! One call is `poll_ready`, `call`, and the response future polled to
//! completion, driven by hand on a no-op waker (as in
//! `benches/circuit_breaker.rs`); nothing is ever pending.
//!
//! Groups:
//! - `single`: `bare` (the no-op service), `breaker` (one closed
//!   `CircuitBreaker`), `rate_limit` (one limit for all calls, never
//!   reached: see below), `rate_limit_rejected` (one call per hour,
//!   spent: every call is refused);
//! - `keys_10`, `keys_1000`, `keys_100000`: each call takes the next key
//!   in turn (0, 1, … n − 1, 0, …), every key held already (each was
//!   called once before timing); `bare` is the no-op service behind the
//!   same key counter, `keyed_lookup` the look-up alone (the keyed
//!   handle's `get`: hash, shard read lock, probe, and the breaker's `Arc`
//!   cloned and dropped), `keyed_breaker` a whole call through a
//!   `KeyedCircuitBreakerLayer` (closed breakers; `max_keys` = n),
//!   `keyed_rate_limit` a `RateLimitLayer` per key.
//!
//! The rate limits let one call per second through with a burst of
//! 20 000 000: no call is refused and no key's allowance is ever full
//! again, so every key stays held (a faster rate would let the sweeps
//! forget keys between calls, and the bench would time re-inserts).
//!
//! Every case reads `tokio::time::Instant` (the breaker to time the call,
//! the rate limiter for GCRA); the bench build enables tokio's `test-util`
//! (a dev-dependency feature), which adds one relaxed atomic load to each
//! clock read. No metrics recorder is installed.
//!
//! After criterion, `main` counts allocations per call (10 000 calls after
//! a warm-up, outside timing) and measures the memory each key takes (the
//! bytes allocated and not freed while n keys are made, over n), then
//! prints the tables.
//!
//! Run: `cargo bench --bench keyed --features rate-limit`.

mod support;

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion};
use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::rate_limit::RateLimitLayer;
use rampart::registry::Registry;
use rampart::BoxError;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::Duration;
use support::{allocs, allocs_per_call, cell, drive, live_bytes, noop, time_calls, Estimates};
use tower::{service_fn, Layer, Service};

const KEYS: [u64; 3] = [10, 1000, 100_000];
const BARE: &str = "bare";
const BREAKER: &str = "breaker";
const RATE_LIMIT: &str = "rate_limit";
const REJECTED: &str = "rate_limit_rejected";
const KEYED_LOOKUP: &str = "keyed_lookup";
const KEYED_BREAKER: &str = "keyed_breaker";
const KEYED_RATE_LIMIT: &str = "keyed_rate_limit";
const SINGLE: &str = "single";

/// The no-op service, taking a key.
fn keyed_noop(
) -> impl Service<u64, Response = (), Error = BoxError, Future = Ready<Result<(), BoxError>>> + Clone
{
    service_fn(|_: u64| ready(Ok::<_, BoxError>(())))
}

/// Calls `inner` with keys 0, 1, … n − 1 in turn.
struct Cycle<S> {
    inner: S,
    n: u64,
    next: u64,
}

impl<S> Cycle<S> {
    fn new(inner: S, n: u64) -> Self {
        Cycle { inner, n, next: 0 }
    }
}

impl<S: Service<u64>> Service<()> for Cycle<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, _: ()) -> S::Future {
        let key = self.next;
        self.next = if key + 1 == self.n { 0 } else { key + 1 };
        self.inner.call(key)
    }
}

/// `svc` after one call with every key: every key is held.
fn filled<S: Service<u64, Error = BoxError>>(mut svc: Cycle<S>) -> Cycle<S> {
    for _ in 0..svc.n {
        drive(&mut svc).expect("every call succeeds");
    }
    svc
}

fn keyed_breaker_layer(
    n: u64,
) -> rampart::circuit_breaker::KeyedCircuitBreakerLayer<u64, impl Fn(&u64) -> u64 + Clone> {
    CircuitBreakerLayer::builder(format!("bench-keyed-{n}"))
        .registry(&Registry::new())
        .keyed(|key: &u64| *key)
        .max_keys(n as usize)
        .build()
        .unwrap()
}

fn keyed_breaker(n: u64) -> impl Service<(), Response = (), Error = BoxError> {
    filled(Cycle::new(keyed_breaker_layer(n).layer(keyed_noop()), n))
}

/// The keyed breaker's look-up alone, as a service: `get` for the next key.
fn keyed_lookup(n: u64) -> impl Service<(), Response = (), Error = BoxError> {
    let layer = keyed_breaker_layer(n);
    // Every key made; the handle keeps the map (and so the breakers).
    drop(filled(Cycle::new(layer.layer(keyed_noop()), n)));
    let handle = layer.handle();
    Cycle::new(
        service_fn(move |key: u64| {
            let found = handle.get(&key).is_some();
            ready(if found {
                Ok(())
            } else {
                Err::<(), BoxError>("no such key".into())
            })
        }),
        n,
    )
}

fn keyed_rate_limit(n: u64) -> impl Service<(), Response = (), Error = BoxError> {
    let layer = RateLimitLayer::builder(format!("bench-keyed-{n}"))
        .rate(1, Duration::from_secs(1))
        .burst(20_000_000)
        .key(|key: &u64| *key)
        .max_keys(n as usize)
        .registry(&Registry::new())
        .build()
        .unwrap();
    filled(Cycle::new(layer.layer(keyed_noop()), n))
}

/// What a group does with each contender: time it, or count its
/// allocations.
trait Contenders {
    fn one<S: Service<(), Error = BoxError>>(&mut self, name: &'static str, svc: S, ok: bool);
}

fn single(c: &mut impl Contenders) {
    let registry = Registry::new();
    c.one(BARE, noop(), true);
    let breaker = CircuitBreakerLayer::builder("bench-single")
        .registry(&registry)
        .build()
        .unwrap();
    c.one(BREAKER, breaker.layer(noop()), true);
    let limit = RateLimitLayer::builder("bench-single")
        .rate(1, Duration::from_secs(1))
        .burst(20_000_000)
        .registry(&registry)
        .build()
        .unwrap();
    c.one(RATE_LIMIT, limit.layer(noop()), true);
    let spent = RateLimitLayer::builder("bench-spent")
        .rate(1, Duration::from_secs(3600))
        .registry(&registry)
        .build()
        .unwrap();
    let mut spent = spent.layer(noop());
    drive(&mut spent).unwrap();
    c.one(REJECTED, spent, false);
}

fn per_key(n: u64, c: &mut impl Contenders) {
    c.one(BARE, Cycle::new(keyed_noop(), n), true);
    c.one(KEYED_LOOKUP, keyed_lookup(n), true);
    c.one(KEYED_BREAKER, keyed_breaker(n), true);
    c.one(KEYED_RATE_LIMIT, keyed_rate_limit(n), true);
}

fn group(n: u64) -> String {
    format!("keys_{n}")
}

fn check<S: Service<(), Error = BoxError>>(name: &str, svc: &mut S, ok: bool) {
    assert_eq!(drive(svc).is_ok(), ok, "{name}");
}

// ===== timing =====

impl Contenders for BenchmarkGroup<'_, WallTime> {
    fn one<S: Service<(), Error = BoxError>>(&mut self, name: &'static str, mut svc: S, ok: bool) {
        check(name, &mut svc, ok);
        time_calls(self, name, svc);
    }
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group(SINGLE);
    single(&mut g);
    g.finish();
    for n in KEYS {
        let mut g = c.benchmark_group(group(n));
        per_key(n, &mut g);
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = support::config(Duration::from_millis(700), Duration::from_millis(2000));
    targets = keyed
}

// ===== allocations and memory =====

struct Counting {
    group: String,
    rows: Vec<(String, &'static str, f64)>,
}

impl Contenders for Counting {
    fn one<S: Service<(), Error = BoxError>>(&mut self, name: &'static str, mut svc: S, ok: bool) {
        check(name, &mut svc, ok);
        self.rows
            .push((self.group.clone(), name, allocs_per_call(svc)));
    }
}

fn count_allocations() -> Vec<(String, &'static str, f64)> {
    let mut c = Counting {
        group: SINGLE.into(),
        rows: Vec::new(),
    };
    single(&mut c);
    for n in KEYS {
        c.group = group(n);
        per_key(n, &mut c);
    }
    c.rows
}

/// Bytes each key takes: live bytes after making `n` keys, less before,
/// over `n`.
fn bytes_per_key<S>(n: u64, make: impl FnOnce(u64) -> S) -> f64 {
    let before = live_bytes();
    let svc = make(n);
    let after = live_bytes();
    drop(svc);
    after.saturating_sub(before) as f64 / n as f64
}

// ===== the tables =====

fn print_tables(estimates: &Estimates, allocations: &[(String, &str, f64)]) {
    let mean = |g: &str, name: &str| estimates.mean(g, name);
    let row = |g: &str, name: &str, base: Option<f64>| {
        let ns = mean(g, name);
        let over = ns.zip(base).map(|(t, b)| t - b);
        println!(
            "| {g} | {name} | {} | {} | {} |",
            cell(ns, 1, ""),
            cell(over, 1, ""),
            cell(allocs(allocations, g.to_string(), name), 2, ""),
        );
    };
    println!();
    println!("Mean time per call (criterion mean; poll_ready + call + response polled), overhead over the bare service of the same group, allocations per call (10 000 calls after 100, outside timing).");
    println!();
    println!("| group | contender | ns/call | over bare (ns) | allocs/call |");
    println!("|---|---|---:|---:|---:|");
    let bare = mean(SINGLE, BARE);
    for name in [BARE, BREAKER, RATE_LIMIT, REJECTED] {
        row(SINGLE, name, bare);
    }
    for n in KEYS {
        let g = group(n);
        let bare = mean(&g, BARE);
        for name in [BARE, KEYED_LOOKUP, KEYED_BREAKER, KEYED_RATE_LIMIT] {
            row(&g, name, bare);
        }
    }
    println!();
    println!("Memory per key held (bytes allocated and not freed while n keys are made, over n):");
    println!();
    println!("| keys | keyed_breaker (B/key) | keyed_rate_limit (B/key) |");
    println!("|---:|---:|---:|");
    for n in KEYS {
        println!(
            "| {n} | {:.0} | {:.0} |",
            bytes_per_key(n, keyed_breaker),
            bytes_per_key(n, keyed_rate_limit)
        );
    }
}

fn main() {
    // The breakers and the rate limiter read the tokio clock: stay in a
    // runtime's context for the whole run (nothing is spawned on it).
    let runtime = support::runtime();
    let _runtime = runtime.enter();
    support::run(benches, |estimates| {
        print_tables(estimates, &count_allocations())
    });
}
