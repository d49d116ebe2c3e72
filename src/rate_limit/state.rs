//! What every service built from one rate limit layer shares: governor's
//! GCRA over rampart's clock, for all calls or per key.

use crate::internal::clock::GovernorClock;
use crate::internal::keyed::{Insert, KeyedMap};
use crate::metrics::{
    debug_enabled, event_counter, named_gauge, RATE_LIMIT_KEYS, TARGET_RATE_LIMIT,
};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use metrics::{Counter, Gauge};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const LAYER: &str = "rate_limit";

type Direct = RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<Nanos>>;
type Keyed<K> = RateLimiter<K, KeyStore<K>, GovernorClock, NoOpMiddleware<Nanos>>;

/// The limit's options, validated by the builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) calls: u32,
    pub(crate) period: Duration,
    pub(crate) burst: u32,
    pub(crate) max_wait: Option<Duration>,
    /// `Some` for a limit per key.
    pub(crate) max_keys: Option<usize>,
}

impl Settings {
    /// One permit comes back every `period / calls`.
    pub(crate) fn interval(&self) -> Duration {
        self.period / self.calls
    }
}

/// One rate limit, shared by every service built from its layer.
pub(crate) struct Shared<K> {
    pub(crate) name: Arc<str>,
    pub(crate) settings: Settings,
    limiter: Limiter<K>,
    clock: GovernorClock,
    admitted: Counter,
    waited: Counter,
    rejected: Counter,
}

enum Limiter<K> {
    /// One state for every call: a compare-and-swap, no lock.
    Direct(Direct),
    /// A state per key, in a bounded map. Behind a trait object only so
    /// that the types holding a limit need not repeat governor's bounds
    /// on `K`: one indirect call, next to a hash and a map look-up.
    Keyed(Box<dyn CheckKey<K>>),
}

trait CheckKey<K>: Send + Sync {
    fn check_key(&self, key: &K) -> Result<(), Nanos>;
    fn keys(&self) -> usize;
    fn evicted(&self) -> u64;
}

/// A limit per key: governor's limiter over the store, and the store's
/// map, for counting.
struct PerKey<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    keys: Arc<KeyedMap<K, InMemoryState>>,
}

impl<K: Hash + Eq + Clone + Send + Sync> CheckKey<K> for PerKey<K> {
    #[inline]
    fn check_key(&self, key: &K) -> Result<(), Nanos> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.earliest_possible())
    }

    fn keys(&self) -> usize {
        self.keys.len()
    }

    fn evicted(&self) -> u64 {
        self.keys.evicted()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Shared<K> {
    pub(crate) fn new(name: Arc<str>, settings: Settings) -> Self {
        let interval = settings.interval();
        let quota = Quota::with_period(interval)
            .expect("validated: at least 1 ns")
            .allow_burst(std::num::NonZeroU32::new(settings.burst).expect("validated: at least 1"));
        // The clock's zero is the limiter's start (read right after, in
        // the same function): a key's state and the clock share one frame.
        let clock = GovernorClock::new();
        let limiter = match settings.max_keys {
            None => Limiter::Direct(RateLimiter::direct_with_clock(quota, clock)),
            Some(max_keys) => {
                let keys = Arc::new(KeyedMap::new(max_keys, true));
                let store = KeyStore {
                    map: keys.clone(),
                    clock,
                    interval: Nanos::from(interval).as_u64(),
                    name: name.clone(),
                    keys: named_gauge(RATE_LIMIT_KEYS, &name),
                };
                Limiter::Keyed(Box::new(PerKey {
                    limiter: RateLimiter::new(quota, store, clock),
                    keys,
                }))
            }
        };
        Shared {
            admitted: event_counter(LAYER, &name, "admitted"),
            waited: event_counter(LAYER, &name, "waited"),
            rejected: event_counter(LAYER, &name, "rejected"),
            name,
            settings,
            limiter,
            clock,
        }
    }
}

impl<K> Shared<K> {
    /// Takes a permit for `key` now, or says when the next one comes.
    #[inline]
    pub(crate) fn check(&self, key: &K) -> Result<(), NotYet> {
        let decision = match &self.limiter {
            Limiter::Direct(limiter) => limiter
                .check()
                .map_err(|not_until| not_until.earliest_possible()),
            Limiter::Keyed(limiter) => limiter.check_key(key),
        };
        match decision {
            Ok(()) => {
                self.admitted.increment(1);
                Ok(())
            }
            Err(next) => Err(NotYet(next)),
        }
    }

    /// When `not_yet`'s permit comes, on tokio's clock.
    pub(crate) fn instant(&self, not_yet: NotYet) -> Instant {
        self.clock.instant(not_yet.0)
    }

    /// A call let through after waiting (already counted as admitted).
    pub(crate) fn waited(&self) {
        self.waited.increment(1);
    }

    /// Counts and logs a rejected call; returns how long until its permit.
    #[inline]
    pub(crate) fn reject(&self, next: Instant) -> Duration {
        // Never zero: the permit was not there when the call was refused.
        let retry_after = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        self.rejected.increment(1);
        if debug_enabled() {
            rejected(&self.name, retry_after);
        }
        retry_after
    }

    /// Keys held now, for a limit per key.
    pub(crate) fn keys(&self) -> Option<usize> {
        match &self.limiter {
            Limiter::Direct(_) => None,
            Limiter::Keyed(limiter) => Some(limiter.keys()),
        }
    }

    /// Keys evicted because the bound was reached.
    pub(crate) fn evicted(&self) -> u64 {
        match &self.limiter {
            Limiter::Direct(_) => 0,
            Limiter::Keyed(limiter) => limiter.evicted(),
        }
    }
}

/// When a refused call's permit comes: a reading of the limiter's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotYet(Nanos);

#[cold]
#[inline(never)]
fn rejected(name: &str, retry_after: Duration) {
    tracing::debug!(
        target: TARGET_RATE_LIMIT,
        layer = LAYER,
        name,
        event = "rejected",
        retry_after_ms = retry_after.as_millis() as u64,
        "call rejected: rate limited"
    );
}

impl<K> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

// ===== the per-key store =====

/// governor's keyed state, in rampart's bounded map: each key's GCRA
/// state is one atomic word, updated by a compare-and-swap under the
/// map shard's read lock.
pub(crate) struct KeyStore<K> {
    map: Arc<KeyedMap<K, InMemoryState>>,
    clock: GovernorClock,
    /// Nanoseconds per permit.
    interval: u64,
    name: Arc<str>,
    keys: Gauge,
}

impl<K: Hash + Eq + Clone> StateStore for KeyStore<K> {
    type Key = K;

    #[inline]
    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let (decision, insert) = self
            .map
            .get_or_insert(key, InMemoryState::default, |state| {
                state.measure_and_replace(&NotKeyed::NonKey, &f)
            });
        match insert {
            Insert::Hit => {}
            Insert::New => self.keys.increment(1.0),
            Insert::SweepDue => self.sweep(key),
        }
        decision
    }
}

impl<K: Hash + Eq> KeyStore<K> {
    /// Forgets the keys whose allowance is full again (lossless), then,
    /// over the bound, those nearest to it.
    #[cold]
    fn sweep(&self, inserted: &K) {
        // A key whose theoretical arrival time is behind us is as good as
        // new: its next call gets the state a fresh key would. governor's
        // own `retain_recent` keeps one interval more; so does this.
        let drop_below = self.clock.now().as_u64().saturating_sub(self.interval);
        let before = self.map.evicted();
        self.map
            .sweep(inserted, |state| tat(state) <= drop_below, tat);
        let held = self.map.len();
        self.keys.set(held as f64);
        let evicted = self.map.evicted() - before;
        if evicted > 0 {
            tracing::warn!(
                target: TARGET_RATE_LIMIT,
                layer = LAYER,
                name = &*self.name,
                event = "keys_evicted",
                evicted,
                max_keys = self.map.max(),
                "rate limit over its key bound: keys nearest to a full allowance forgotten"
            );
        }
    }
}

/// A key's theoretical arrival time (ns on the limiter's clock; 0 when
/// unused), read without changing it.
fn tat(state: &InMemoryState) -> u64 {
    state
        .measure_and_replace(&NotKeyed::NonKey, |tat| {
            Err::<((), Nanos), u64>(tat.map_or(0, Nanos::as_u64))
        })
        .unwrap_err()
}

/// The handle's view of any limit, whatever its key type.
pub(crate) trait Report: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;
    fn settings(&self) -> &Settings;
    fn keys(&self) -> Option<usize>;
    fn evicted(&self) -> u64;
}

impl<K: Send + Sync> Report for Shared<K> {
    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn keys(&self) -> Option<usize> {
        Shared::keys(self)
    }

    fn evicted(&self) -> u64 {
        Shared::evicted(self)
    }
}

/// Whether a permit at `next` is worth waiting for: by `until` (the call's
/// `max_wait`) and before the caller's deadline, if one is in force. A
/// deadline that passes first refuses the call now, saying when the
/// permit comes, rather than cutting it off at the deadline after waiting
/// for nothing (as no retry or backoff starts past it).
pub(crate) fn comes_in_time(next: tokio::time::Instant, until: tokio::time::Instant) -> bool {
    next <= until
        && !crate::internal::deadline::leaves_no_time_for(
            next.saturating_duration_since(tokio::time::Instant::now()),
        )
}
