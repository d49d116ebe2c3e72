//! Options for a limiter, and the builder that validates them.

use super::algorithm::{Algorithm, Vegas};
use super::classify::DefaultClassifier;
use super::layer::LimitLayer;
use super::partition::{PartitionBy, Unpartitioned};
use super::state::{Shared, WindowOptions, UNKNOWN};
use crate::error::{ConfigError, Validator};
use crate::internal::shard::Lanes;
use std::sync::Arc;
use std::time::Duration;

/// Default shortest window (Netflix's `WindowedLimit`: 1 s).
pub const DEFAULT_MIN_WINDOW: Duration = Duration::from_secs(1);
/// Default longest window (Netflix's: 1 s).
pub const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(1);
/// Default fewest timed calls for a window to count (Netflix's: 10).
pub const DEFAULT_MIN_SAMPLES: usize = 10;
/// Default shortest RTT taken as a sample (Netflix's: 100 µs).
pub const DEFAULT_MIN_RTT: Duration = Duration::from_micros(100);

const SHORTEST_WINDOW: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(3600);
const MAX_SAMPLES: usize = 1 << 20;

/// Builds a [`LimitLayer`]; every option is checked by
/// [`build`](Builder::build).
///
/// By default: [`Vegas`] with Netflix's defaults, one-second windows of at
/// least 10 timed calls, immediate rejection, no partitions,
/// [`DefaultClassifier`].
pub struct Builder<P = Unpartitioned, C = DefaultClassifier> {
    name: String,
    algorithm: Box<dyn Algorithm>,
    window: WindowOptions,
    max_wait: Option<Duration>,
    max_waiting: Option<usize>,
    partitions: Vec<(String, f64)>,
    partitioned: bool,
    partitioner: P,
    classify: C,
    registry: Option<crate::registry::Registry>,
}

impl<P, C> std::fmt::Debug for Builder<P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("window", &self.window)
            .field("max_wait", &self.max_wait)
            .field("max_waiting", &self.max_waiting)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new(name: String) -> Self {
        Builder {
            name,
            algorithm: Box::new(Vegas::new()),
            window: WindowOptions {
                min_window: DEFAULT_MIN_WINDOW,
                max_window: DEFAULT_MAX_WINDOW,
                min_samples: DEFAULT_MIN_SAMPLES,
                min_rtt: DEFAULT_MIN_RTT,
            },
            max_wait: None,
            max_waiting: None,
            partitions: Vec::new(),
            partitioned: false,
            partitioner: Unpartitioned,
            classify: DefaultClassifier,
            registry: None,
        }
    }
}

impl<P, C> Builder<P, C> {
    /// The algorithm that moves the limit: [`Vegas`](super::Vegas) (the
    /// default, as in Netflix's limiters), [`Gradient2`](super::Gradient2),
    /// [`Aimd`](super::Aimd), [`Fixed`](super::Fixed), or one of your own.
    pub fn algorithm(mut self, algorithm: impl Algorithm) -> Self {
        self.algorithm = Box::new(algorithm);
        self
    }

    /// The shortest sample window. A window lasts twice its lowest RTT,
    /// kept between `min_window` and [`max_window`](Self::max_window).
    /// Default 1 s; from 100 ms (Netflix's floor) to an hour.
    ///
    /// Shorter windows let the limit move sooner: [`Gradient2`] grows by
    /// 0.8 a window, so from 20 to 50 takes 38 windows.
    ///
    /// [`Gradient2`]: super::Gradient2
    pub fn min_window(mut self, window: Duration) -> Self {
        self.window.min_window = window;
        self
    }

    /// The longest sample window. Default 1 s; from `min_window` to an
    /// hour.
    pub fn max_window(mut self, window: Duration) -> Self {
        self.window.max_window = window;
        self
    }

    /// A window with fewer timed calls than this says nothing and is
    /// dropped. Default 10; from 10 (Netflix's floor) to 2^20.
    pub fn min_samples(mut self, samples: usize) -> Self {
        self.window.min_samples = samples;
        self
    }

    /// Calls answered faster than this are no sample (answers from a cache,
    /// health checks). Default 100 µs; up to 1 s.
    pub fn min_rtt(mut self, rtt: Duration) -> Self {
        self.window.min_rtt = rtt;
        self
    }

    /// Lets a call wait this long for a permit before it is rejected (in
    /// `poll_ready`, as the bulkhead's wait: the caller's readiness
    /// reflects it). Netflix's `BlockingLimiter`.
    ///
    /// Off by default (a call over the limit is rejected at once); valid
    /// from 1 µs to an hour. Not with partitions: a partitioned limiter
    /// decides in `call`, where the request's key is known, and rejects at
    /// once.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// How many calls may wait for a permit at once; the next is rejected
    /// at once. Needs `max_wait`.
    ///
    /// Default: as many as the algorithm's initial limit; valid from 1.
    pub fn max_waiting(mut self, max_waiting: usize) -> Self {
        self.max_waiting = Some(max_waiting);
        self
    }

    /// Guarantees `share` of the limit (in (0, 1]) to the calls of the
    /// partition `name` (Netflix's partitioned limiter): while the whole
    /// limit is in use, a call of a partition holding fewer than
    /// `max(1, ⌈limit·share⌉)` permits is still admitted, and one of a
    /// partition holding its share is rejected with
    /// [`PartitionLimitExceeded`](super::PartitionLimitExceeded). Under the
    /// limit, any call is admitted: a partition may use what the others
    /// leave, the part of the limit guaranteed to no one included.
    ///
    /// So a noisy partition cannot take another's share: when the other
    /// comes back, its calls get in at once (the calls in flight then pass
    /// the limit, by at most the shares of the partitions below theirs, and
    /// fall back under it as the noisy partition's extra calls end, since
    /// it cannot replace them while it is over its share).
    ///
    /// Shares add up to at most 1. Calls whose key names no declared
    /// partition form the partition `unknown`, which has no share: they
    /// get in only under the limit, and are rejected with
    /// [`LimitExceeded`](super::LimitExceeded). Needs
    /// [`partition_by`](Self::partition_by).
    pub fn partition(mut self, name: impl Into<String>, share: f64) -> Self {
        self.partitions.push((name.into(), share));
        self
    }

    /// Tells each request's partition: `key` answers the partition's name,
    /// borrowed from the request (a header, a path segment) or a
    /// `&'static str`; `None` or an undeclared name is the partition
    /// `unknown`.
    ///
    /// ```
    /// use rampart::limit::{Gradient2, LimitLayer};
    ///
    /// let layer = LimitLayer::builder("api")
    ///     .algorithm(Gradient2::new())
    ///     .partition("gold", 0.5)
    ///     .partition("silver", 0.3)
    ///     .partition_by(|request: &http::Request<String>| {
    ///         request.headers().get("x-tenant-tier").and_then(|v| v.to_str().ok())
    ///     })
    ///     .build()?;
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    pub fn partition_by<Req, F>(self, key: F) -> Builder<PartitionBy<F>, C>
    where
        F: for<'a> Fn(&'a Req) -> Option<&'a str>,
    {
        Builder {
            name: self.name,
            algorithm: self.algorithm,
            window: self.window,
            max_wait: self.max_wait,
            max_waiting: self.max_waiting,
            partitions: self.partitions,
            partitioned: true,
            partitioner: PartitionBy { key },
            classify: self.classify,
            registry: self.registry,
        }
    }

    /// How a call's result counts: a sample, a drop, or nothing (see
    /// [`Classify`](super::Classify)). Default: [`DefaultClassifier`]; for HTTP responses,
    /// [`HttpClassifier`](super::HttpClassifier) (a 503 or 429 is a drop).
    pub fn classify<C2>(self, classify: C2) -> Builder<P, C2> {
        Builder {
            name: self.name,
            algorithm: self.algorithm,
            window: self.window,
            max_wait: self.max_wait,
            max_waiting: self.max_waiting,
            partitions: self.partitions,
            partitioned: self.partitioned,
            partitioner: self.partitioner,
            classify,
            registry: self.registry,
        }
    }

    /// The [`Registry`](crate::registry::Registry) to list this limiter in.
    /// Default: [`Registry::global`](crate::registry::Registry::global).
    pub fn registry(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Checks every option and builds the layer. Every service built from
    /// the layer, or from its clones, shares one limit.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing each option outside its valid range,
    /// the algorithm's own included.
    pub fn build(self) -> Result<LimitLayer<P, C>, ConfigError> {
        let mut v = Validator::new(format!("limit {:?}", self.name));
        v.check(!self.name.is_empty(), "name", || "must not be empty".into());
        v.absorb(self.algorithm.validate());
        let w = self.window;
        v.check(
            w.min_window >= SHORTEST_WINDOW && w.min_window <= LONGEST,
            "min_window",
            || format!("must be from 100 ms to an hour, got {:?}", w.min_window),
        );
        v.check(
            w.max_window >= w.min_window && w.max_window <= LONGEST,
            "max_window",
            || {
                format!(
                    "must be from min_window ({:?}) to an hour, got {:?}",
                    w.min_window, w.max_window
                )
            },
        );
        v.check(
            (DEFAULT_MIN_SAMPLES..=MAX_SAMPLES).contains(&w.min_samples),
            "min_samples",
            || format!("must be from 10 to {MAX_SAMPLES}, got {}", w.min_samples),
        );
        v.check(w.min_rtt <= Duration::from_secs(1), "min_rtt", || {
            format!("must be at most 1 s, got {:?}", w.min_rtt)
        });
        if let Some(wait) = self.max_wait {
            v.check(
                wait >= Duration::from_micros(1) && wait <= LONGEST,
                "max_wait",
                || format!("must be from 1 µs to an hour, got {wait:?}"),
            );
            v.check(!self.partitioned, "max_wait", || {
                "cannot be used with partitions: a partitioned limit decides in `call` and rejects at once".into()
            });
        }
        if let Some(n) = self.max_waiting {
            v.check(n >= 1, "max_waiting", || "must be at least 1, got 0".into());
            v.check(self.max_wait.is_some(), "max_waiting", || {
                "needs max_wait: without it a call over the limit is rejected at once".into()
            });
        }
        self.check_partitions(&mut v);
        v.finish()?;
        let max_waiting = self
            .max_waiting
            .unwrap_or_else(|| self.algorithm.initial_limit().max(1));
        let shared = Arc::new(Shared::new(
            self.name.into(),
            self.algorithm,
            self.window,
            self.max_wait,
            max_waiting,
            &self.partitions,
        ));
        self.registry
            .unwrap_or_else(crate::registry::Registry::global)
            .register(&shared);
        Ok(LimitLayer::new(
            Arc::new(Lanes::new(shared)),
            self.partitioner,
            self.classify,
        ))
    }

    fn check_partitions(&self, v: &mut Validator) {
        v.check(
            self.partitions.is_empty() || self.partitioned,
            "partition",
            || "needs partition_by, to tell each request's partition".into(),
        );
        v.check(
            !self.partitioned || !self.partitions.is_empty(),
            "partition_by",
            || "needs at least one partition".into(),
        );
        for (i, (name, share)) in self.partitions.iter().enumerate() {
            v.check(!name.is_empty(), "partition", || {
                "a partition's name must not be empty".into()
            });
            v.check(name != UNKNOWN, "partition", || {
                format!("{UNKNOWN:?} is the name of the calls of no declared partition")
            });
            v.check(
                !self.partitions[..i].iter().any(|(n, _)| n == name),
                "partition",
                || format!("{name:?} is declared twice"),
            );
            v.check(*share > 0.0 && *share <= 1.0, "partition", || {
                format!("{name:?}'s share must be in (0, 1], got {share}")
            });
        }
        let total: f64 = self.partitions.iter().map(|(_, s)| s).sum();
        // A little slack for shares such as 0.7 + 0.2 + 0.1.
        v.check(total <= 1.0 + 1e-9, "partition", || {
            format!("shares must add up to at most 1, got {total}")
        });
    }
}
