//! Options for a rate limit, and the builder that validates them.

use super::layer::{RateLimitLayer, Unkeyed};
use super::state::{Settings, Shared};
use crate::error::{ConfigError, Validator};
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Default bound on the keys a limit per key holds state for. A key's
/// state is one 8-byte word beside the key in a hash map: 22 to 32 bytes a
/// key with `u64` keys (measured by `benches/keyed.rs`), plus a `String`
/// key's own allocation; 100 000 keys take a few MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);
const MAX_WAIT: Duration = Duration::from_secs(3600);
const MAX_KEYS: usize = 1 << 26;

/// Builds a [`RateLimitLayer`]; every option is checked by
/// [`build`](Builder::build).
///
/// [`rate`](Builder::rate) must be set; everything else has a default: a
/// burst of the whole rate, one limit for all calls, no waiting.
///
/// `K` and `F` are the key type and the function that takes it from a
/// request, set by [`key`](Builder::key); without one, every call shares
/// one limit.
#[derive(Debug, Clone)]
pub struct Builder<K = (), F = Unkeyed> {
    name: String,
    rate: Option<(u32, Duration)>,
    burst: Option<u32>,
    max_wait: Option<Duration>,
    key: F,
    keyed: bool,
    max_keys: Option<usize>,
    registry: Option<crate::registry::Registry>,
    _key: PhantomData<fn() -> K>,
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            rate: None,
            burst: None,
            max_wait: None,
            key: Unkeyed,
            keyed: false,
            max_keys: None,
            registry: None,
            _key: PhantomData,
        }
    }
}

impl<K, F> Builder<K, F> {
    /// At most `calls` calls per `period` in the long run: one permit comes
    /// back every `period / calls` (GCRA's emission interval; resilience4j's
    /// `limitForPeriod` and `limitRefreshPeriod`, spread over the period
    /// rather than refilled at once).
    ///
    /// Required. `calls` from 1; `period` from 1 µs to a year; `period /
    /// calls` at least 1 ns.
    pub fn rate(mut self, calls: u32, period: Duration) -> Self {
        self.rate = Some((calls, period));
        self
    }

    /// How many calls may go through at once after a quiet spell (GCRA's
    /// burst, a token bucket's size).
    ///
    /// Default: `calls` of [`rate`](Self::rate), so a whole period's calls
    /// may come together, as with resilience4j and governor's `Quota`.
    /// `1` spaces every call `period / calls` apart. Valid from 1, and a
    /// full burst must come back within a year (`period / calls × burst`).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// A call over the limit waits for its permit if it comes within
    /// `max_wait`, and is rejected at once if not (resilience4j's
    /// `timeoutDuration`). The wait happens in the response future; the
    /// calls waiting are not queued in order: whichever looks first when
    /// a permit comes back takes it.
    ///
    /// Off by default (over the limit is rejected at once); valid from
    /// 1 µs to an hour. Waiting needs a tokio runtime with time enabled.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// One limit per key taken from each request (a tenant, a client
    /// address, a route), all with the same rate and burst, instead of
    /// one for all calls. Keys are compared with `Eq` and hashed.
    ///
    /// ```
    /// use rampart::rate_limit::RateLimitLayer;
    /// use std::time::Duration;
    ///
    /// let per_tenant = RateLimitLayer::builder("api")
    ///     .rate(10, Duration::from_secs(1))
    ///     .key(|req: &http::Request<()>| {
    ///         req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    ///     })
    ///     .build()?;
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    ///
    /// The closure's argument needs its type written out (`|req:
    /// &Request<Body>|`): it names the request type the layer is for.
    pub fn key<Req, K2, F2>(self, key: F2) -> Builder<K2, F2>
    where
        F2: Fn(&Req) -> K2,
    {
        Builder {
            name: self.name,
            rate: self.rate,
            burst: self.burst,
            max_wait: self.max_wait,
            key,
            keyed: true,
            max_keys: self.max_keys,
            registry: self.registry,
            _key: PhantomData,
        }
    }

    /// The most keys a limit per key holds state for.
    ///
    /// A key whose allowance is full again is forgotten without loss (its
    /// next call finds what a new key would); past the bound, the keys
    /// nearest to a full allowance are forgotten first, down to 7/8 of the
    /// bound, each then let through as if new. See the
    /// [module docs](super#memory-per-key) for when this runs.
    ///
    /// Default 100 000 ([`DEFAULT_MAX_KEYS`]); valid from 1 to 2^26;
    /// needs [`key`](Self::key).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// The [`Registry`](crate::registry::Registry) to list this component
    /// in. Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Checks every option and builds the layer. Every service built from
    /// the layer, or from its clones, shares one limit (or one set of
    /// limits per key).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range.
    pub fn build(self) -> Result<RateLimitLayer<K, F>, ConfigError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
    {
        let mut v = Validator::new(format!("rate limit {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        v.check(self.rate.is_some(), "rate", || {
            "must be set: how many calls per how long".into()
        });
        let (calls, period) = self.rate.unwrap_or((1, Duration::from_secs(1)));
        v.check(calls >= 1, "rate", || {
            "calls must be at least 1, got 0".into()
        });
        v.check(
            period >= Duration::from_micros(1) && period <= MAX_PERIOD,
            "rate",
            || format!("period must be from 1 µs to a year, got {period:?}"),
        );
        let interval = period.checked_div(calls).unwrap_or_default();
        v.check(
            calls == 0 || interval >= Duration::from_nanos(1),
            "rate",
            || format!("{calls} calls per {period:?} is more than one per nanosecond"),
        );
        // Unset, the burst is the rate's calls: checked there, not named
        // again as a burst the user never set.
        let burst = self.burst.unwrap_or(calls.max(1));
        v.check(burst >= 1, "burst", || "must be at least 1, got 0".into());
        v.check(
            calls == 0 || interval.checked_mul(burst).is_some_and(|d| d <= MAX_PERIOD),
            "burst",
            || format!("a full burst of {burst} must come back within a year, at {interval:?} per call"),
        );
        if let Some(wait) = self.max_wait {
            v.check(
                wait >= Duration::from_micros(1) && wait <= MAX_WAIT,
                "max_wait",
                || format!("must be from 1 µs to an hour, got {wait:?}"),
            );
        }
        if let Some(max_keys) = self.max_keys {
            v.check((1..=MAX_KEYS).contains(&max_keys), "max_keys", || {
                format!("must be from 1 to {MAX_KEYS}, got {max_keys}")
            });
            v.check(self.keyed, "max_keys", || {
                "needs key: without it every call shares one limit".into()
            });
        }
        v.finish()?;
        let settings = Settings {
            calls,
            period,
            burst,
            max_wait: self.max_wait,
            max_keys: self
                .keyed
                .then(|| self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)),
        };
        let shared = Arc::new(Shared::<K>::new(self.name.into(), settings));
        let report: Arc<dyn super::state::Report> = shared.clone();
        self.registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register_rate_limit(&report);
        Ok(RateLimitLayer::from_parts(shared, self.key))
    }
}
