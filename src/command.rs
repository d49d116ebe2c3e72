//! A Hystrix-style command: one builder, validated as a whole, that puts a
//! timeout, a bulkhead (or a pool), a circuit breaker and a fallback around
//! a dependency, in the order that gives Hystrix's accounting.
//!
//! ```text
//!  caller → Fallback → CircuitBreaker → Bulkhead → Timeout → CatchPanic → dependency
//!                                      (or: Timeout → Pool → CatchPanic → dependency)
//! ```
//!
//! With [`retry`](CommandBuilder::retry), a retry layer goes between the
//! fallback and the breaker.
//!
//! - the breaker's short-circuits skip the call and are not counted as
//!   failures (and still get the fallback);
//! - a full bulkhead or pool, a timeout, or a failed call are counted by the
//!   breaker as failures (tallied as rejected, timeout, failure);
//! - the fallback sees every one of them, with its cause.
//!
//! With a pool, the timeout runs on the caller's side of the pool, so a call
//! that blocks its pool thread is still answered at its deadline.
//!
//! A dependency that panics counts as failing; with
//! [`contain_panics`](CommandBuilder::contain_panics) the panic becomes a
//! [`Panicked`](crate::catch_panic::Panicked) error that the fallback
//! serves, instead of unwinding to the caller.
//!
//! The fallback runs on errors. A response that the breaker's classifier
//! calls a failure (say an HTTP 500) still counts against the breaker but
//! reaches the caller as it is; to serve the fallback for it too, say so
//! with [`fail_on`](CommandBuilder::fail_on), which turns such responses
//! into errors beneath the timeout.
//! Plain `fn` items make good fallbacks: `fn popular_titles(cause: &Cause)
//! -> Result<Titles, BoxError>` needs no type annotations.
//!
//! # Example
//!
//! ```
//! use rampart::{Command, ErrorKind};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), rampart::BoxError> {
//! let playlist = Command::builder("PlaylistGet")
//!     .group("Playlist")
//!     .timeout(Duration::from_secs(1))
//!     .bulkhead(10)
//!     .breaker(|b| b.failure_rate(0.5).min_calls(20))
//!     .fallback(|_cause| async { Ok(vec!["popular titles".to_string()]) })
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(playlist)
//!     .service(service_fn(|_: ()| async { Err::<Vec<String>, _>("connection refused") }));
//! assert_eq!(svc.ready().await?.call(()).await?, ["popular titles"]);
//! # Ok(())
//! # }
//! ```

use crate::bulkhead::pool::{Pool, PoolHandle, PoolLayer};
use crate::bulkhead::{Bulkhead, BulkheadHandle, BulkheadLayer};
use crate::catch_panic::{CatchPanic, CatchPanicLayer};
use crate::circuit_breaker::{
    Breaker, Builder as BreakerBuilder, CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer,
    DefaultClassifier,
};
use crate::error::{ConfigError, Validator};
use crate::fallback::{
    stats_for, AsyncFallback, Cause, FailOnLayer, Fallback, FallbackHandle, FallbackLayer,
    NoFallback, SyncFallback,
};
use crate::registry::{CommandParts, Registry};
use crate::timeout::{Timeout, TimeoutLayer, TimeoutShared, DEFAULT_TIMEOUT};
use crate::BoxError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::{Identity, Layer};

/// Entry point of the Hystrix-style facade: [`Command::builder`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Command;

impl Command {
    /// Starts a command named `name` with Hystrix's defaults: a 1 s timeout,
    /// at most 10 concurrent calls, a breaker tripping at 50 % of at least
    /// 20 calls in 10 s and open for 5 s, and no fallback.
    pub fn builder(name: impl Into<String>) -> CommandBuilder {
        let name = name.into();
        CommandBuilder {
            breaker: CircuitBreakerLayer::builder(name.clone()),
            group: None,
            timeout: DEFAULT_TIMEOUT,
            isolation: Semaphore {
                max_concurrent: crate::bulkhead::DEFAULT_MAX_CONCURRENT,
            },
            fallback: NoFallback,
            fallback_max_concurrent: Some(crate::fallback::DEFAULT_MAX_CONCURRENT),
            contain_panics: false,
            registry: None,
            retry: Identity::new(),
            fail_on: Identity::new(),
            cache: Identity::new(),
            cache_stats: None,
            name,
        }
    }
}

/// Semaphore isolation: a [`Bulkhead`] of `max_concurrent` slots.
#[derive(Debug, Clone, Copy)]
pub struct Semaphore {
    max_concurrent: usize,
}

/// Pool isolation: a [`Pool`] of `size` threads and `queue` places.
#[derive(Debug, Clone, Copy)]
pub struct Threads {
    size: usize,
    queue: usize,
}

/// Builds a [`CommandLayer`]. See the [module docs](self).
pub struct CommandBuilder<
    FB = NoFallback,
    I = Semaphore,
    C = DefaultClassifier,
    R = Identity,
    FO = Identity,
    K = Identity,
> {
    name: String,
    group: Option<String>,
    timeout: Duration,
    isolation: I,
    breaker: BreakerBuilder<C>,
    fallback: FB,
    fallback_max_concurrent: Option<usize>,
    contain_panics: bool,
    registry: Option<Registry>,
    retry: R,
    fail_on: FO,
    cache: K,
    /// The cache's counts, for the stream (`rollingCountResponsesFromCache`).
    cache_stats: Option<CacheStats>,
}

/// A command's cache as the registry and the stream see it.
#[cfg(feature = "cache")]
type CacheStats = std::sync::Arc<crate::cache::Stats>;
#[cfg(not(feature = "cache"))]
type CacheStats = std::convert::Infallible;

#[cfg(feature = "cache")]
fn erase_cache(stats: CacheStats) -> std::sync::Arc<crate::registry::Erased> {
    stats
}
#[cfg(not(feature = "cache"))]
fn erase_cache(stats: CacheStats) -> std::sync::Arc<crate::registry::Erased> {
    match stats {}
}

impl<FB, I, C, R, FO, K> CommandBuilder<FB, I, C, R, FO, K> {
    /// Turns a panic in the dependency (its `call` or its future) or in the
    /// fallback into an error instead of letting it unwind to the caller.
    /// The dependency's becomes
    /// [`Panicked`](crate::catch_panic::Panicked), of
    /// [`ErrorKind::Panicked`](crate::ErrorKind::Panicked): the breaker
    /// counts it as a failure and the fallback serves it, as Hystrix does
    /// with any exception. The fallback's becomes a
    /// [`FallbackFailed`](crate::fallback::FallbackFailed) whose
    /// [`fallback_error`](crate::fallback::FallbackFailed::fallback_error)
    /// is a `Panicked` ([`in_fallback`](crate::catch_panic::Panicked::in_fallback));
    /// its `ErrorKind` is the call's, why the fallback ran. Default: off; a
    /// panic still counts as a failure and frees every slot, but unwinds to
    /// the caller. On a [pool](Self::pool) the dependency runs on a pool
    /// thread, so its panic comes back as `Panicked` whatever this says.
    pub fn contain_panics(mut self) -> Self {
        self.contain_panics = true;
        self
    }

    /// The [`Registry`] to list the command and its parts in (where the
    /// stream and dashboards find them). Default: [`Registry::global`].
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The group the command belongs to on dashboards (Hystrix's group
    /// key); by default the command's name. Also names its pool. Must not
    /// be empty.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The deadline of each call. Default 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Semaphore isolation: at most `max_concurrent` calls at once, the
    /// next rejected at once. The default, with 10.
    pub fn bulkhead(self, max_concurrent: usize) -> CommandBuilder<FB, Semaphore, C, R, FO, K> {
        self.isolate(Semaphore { max_concurrent })
    }

    /// Pool isolation: calls run on `size` threads of their own, with
    /// `queue` more waiting; for clients that may block their thread. The
    /// pool is named after the group, which then must not contain a NUL
    /// byte (see [`PoolLayer::builder`]).
    pub fn pool(self, size: usize, queue: usize) -> CommandBuilder<FB, Threads, C, R, FO, K> {
        self.isolate(Threads { size, queue })
    }

    /// Configures the circuit breaker, starting from Hystrix's defaults:
    /// `.breaker(|b| b.failure_rate(0.5).min_calls(20))`. Its classifier,
    /// if set, sees `Result<Response, BoxError>`.
    pub fn breaker<C2>(
        self,
        configure: impl FnOnce(BreakerBuilder<C>) -> BreakerBuilder<C2>,
    ) -> CommandBuilder<FB, I, C2, R, FO, K> {
        self.rebuild(|fb, i, breaker, r, fo| (fb, i, configure(breaker), r, fo))
    }

    /// The breaker's classifier, typed for a command: it sees
    /// `&Result<Response, BoxError>` (every layer beneath boxes the
    /// dependency's error). Same as `.breaker(|b| b.classify(f))`, but a
    /// closure over the wrong result type fails to compile here, naming
    /// the expected signature, instead of at `.ready()`.
    ///
    /// ```
    /// use rampart::circuit_breaker::Outcome;
    /// use rampart::{BoxError, Command};
    ///
    /// let command = Command::builder("ratings")
    ///     .classify(|result: &Result<http::Response<String>, BoxError>| match result {
    ///         Ok(response) if response.status().is_server_error() => Outcome::Failure,
    ///         Ok(response) if response.status().is_client_error() => Outcome::Ignored,
    ///         Ok(_) => Outcome::Success,
    ///         Err(_) => Outcome::Failure,
    ///     })
    ///     .build()?;
    /// # let _ = command;
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    pub fn classify<Res, F>(self, classify: F) -> CommandBuilder<FB, I, F, R, FO, K>
    where
        F: Fn(&Result<Res, BoxError>) -> crate::circuit_breaker::Outcome,
    {
        self.breaker(|b| b.classify(classify))
    }

    /// An async fallback, told the [`Cause`]: `|cause| async { Ok(..) }`.
    pub fn fallback<F, Fut, Res>(
        self,
        fallback: F,
    ) -> CommandBuilder<AsyncFallback<F>, I, C, R, FO, K>
    where
        F: Fn(&Cause) -> Fut,
        Fut: Future<Output = Result<Res, BoxError>>,
    {
        self.with_fallback(AsyncFallback(fallback))
    }

    /// A sync fallback, told the [`Cause`]: `|cause| Ok(..)`.
    pub fn fallback_sync<F, Res>(
        self,
        fallback: F,
    ) -> CommandBuilder<SyncFallback<F>, I, C, R, FO, K>
    where
        F: Fn(&Cause) -> Result<Res, BoxError>,
    {
        self.with_fallback(SyncFallback(fallback))
    }

    /// At most this many fallbacks at once (default 10; `None`: no cap).
    pub fn fallback_max_concurrent(mut self, max: impl Into<Option<usize>>) -> Self {
        self.fallback_max_concurrent = max.into();
        self
    }

    /// Retries failed calls with `retry`, placed between the fallback and
    /// the breaker:
    ///
    /// ```text
    ///  caller → Fallback → Retry → CircuitBreaker → Bulkhead → Timeout → dependency
    /// ```
    ///
    /// so the breaker counts every attempt, a short-circuit ends the call
    /// at once (the retry layer does not retry it, by default), the
    /// timeout bounds each attempt (not the whole call), and the fallback
    /// serves only when retries are spent. The retry's policy sees
    /// `Result<Response, BoxError>`. Needs feature `retry`.
    ///
    /// ```
    /// use rampart::retry::RetryLayer;
    /// use rampart::Command;
    ///
    /// let command = Command::builder("ratings")
    ///     .retry(RetryLayer::builder("ratings").max_attempts(2).build()?)
    ///     .fallback_sync(|_cause| Ok("no ratings"))
    ///     .build()?;
    /// # let _ = command;
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    #[cfg(feature = "retry")]
    pub fn retry<P>(
        self,
        retry: crate::retry::RetryLayer<P>,
    ) -> CommandBuilder<FB, I, C, crate::retry::RetryLayer<P>, FO, K> {
        self.rebuild(|fb, i, breaker, _, fo| (fb, i, breaker, retry, fo))
    }

    /// Counts the responses `predicate` is true of as failed calls: they
    /// become [`FailedResponse`](crate::fallback::FailedResponse) errors
    /// beneath the timeout, so the breaker counts them, a retry
    /// [policy](crate::retry::Policy) sees an error, and the fallback
    /// serves them (reading the response back with
    /// [`FailedResponse::of`](crate::fallback::FailedResponse::of) if it
    /// wants it). Without it, a response a classifier calls a failure
    /// counts against the breaker but reaches the caller as it is.
    ///
    /// ```
    /// use rampart::fallback::FailedResponse;
    /// use rampart::Command;
    /// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), rampart::BoxError> {
    /// let command = Command::builder("ratings")
    ///     .fail_on(|response: &http::Response<&str>| response.status().is_server_error())
    ///     .fallback_sync(|cause| {
    ///         let status = FailedResponse::<http::Response<&str>>::of(cause.error()).map(|r| r.status());
    ///         assert_eq!(status, Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    ///         Ok(http::Response::new("no ratings"))
    ///     })
    ///     .build()?;
    /// let mut svc = ServiceBuilder::new().layer(command).service(service_fn(|_: ()| async {
    ///     Ok::<_, rampart::BoxError>(http::Response::builder().status(500).body("oops").unwrap())
    /// }));
    /// assert_eq!(*svc.ready().await?.call(()).await?.body(), "no ratings");
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail_on<Res, P>(self, predicate: P) -> CommandBuilder<FB, I, C, R, FailOnLayer<P>, K>
    where
        P: Fn(&Res) -> bool,
    {
        self.rebuild(|fb, i, breaker, r, _| (fb, i, breaker, r, FailOnLayer::new(predicate)))
    }

    fn isolate<I2>(self, isolation: I2) -> CommandBuilder<FB, I2, C, R, FO, K> {
        self.rebuild(|fb, _, breaker, r, fo| (fb, isolation, breaker, r, fo))
    }

    fn with_fallback<FB2>(self, fallback: FB2) -> CommandBuilder<FB2, I, C, R, FO, K> {
        self.rebuild(|_, i, breaker, r, fo| (fallback, i, breaker, r, fo))
    }

    /// The same builder with its typed parts (fallback, isolation, breaker,
    /// retry, fail-on) replaced by `parts`: the one place that lists every
    /// field, for the methods that change a type parameter.
    #[allow(clippy::type_complexity)]
    fn rebuild<FB2, I2, C2, R2, FO2>(
        self,
        parts: impl FnOnce(FB, I, BreakerBuilder<C>, R, FO) -> (FB2, I2, BreakerBuilder<C2>, R2, FO2),
    ) -> CommandBuilder<FB2, I2, C2, R2, FO2, K> {
        let (fallback, isolation, breaker, retry, fail_on) = parts(
            self.fallback,
            self.isolation,
            self.breaker,
            self.retry,
            self.fail_on,
        );
        CommandBuilder {
            name: self.name,
            group: self.group,
            timeout: self.timeout,
            isolation,
            breaker,
            fallback,
            fallback_max_concurrent: self.fallback_max_concurrent,
            contain_panics: self.contain_panics,
            registry: self.registry,
            retry,
            fail_on,
            cache: self.cache,
            cache_stats: self.cache_stats,
        }
    }

    /// Answers repeated calls from `cache` (Hystrix's request cache),
    /// placed beneath the fallback and above the retries and the breaker:
    ///
    /// ```text
    ///  caller → Fallback → Cache → (Retry) → CircuitBreaker → Bulkhead → Timeout → dependency
    /// ```
    ///
    /// so a hit reaches neither the breaker nor the bulkhead and counts
    /// nothing toward the error percentage, and a fallback's answer is
    /// never cached. The stream counts hits as the command's
    /// `rollingCountResponsesFromCache`, and says
    /// `propertyValue_requestCacheEnabled: true`. Its key function sees
    /// the command's request. Needs feature `cache`.
    ///
    /// ```
    /// use rampart::cache::CacheLayer;
    /// use rampart::Command;
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), rampart::BoxError> {
    /// let command = Command::builder("RatingsGet")
    ///     .cache(CacheLayer::builder("RatingsGet", |title: &u32| *title).ttl(Duration::from_secs(5)).build()?)
    ///     .fallback_sync(|_cause| Ok(0u8))
    ///     .build()?;
    /// let ratings = command.layer(service_fn(|title: u32| async move { Ok::<_, rampart::BoxError>((title % 5) as u8) }));
    /// assert_eq!(ratings.clone().oneshot(7).await?, 2);
    /// assert_eq!(ratings.clone().oneshot(7).await?, 2); // from the cache: the breaker saw one call
    /// assert_eq!(command.breaker().rolling_counts().successes, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "cache")]
    pub fn cache<F, Key, Res>(
        self,
        cache: crate::cache::CacheLayer<F, Key, Res>,
    ) -> CommandBuilder<FB, I, C, R, FO, crate::cache::CacheLayer<F, Key, Res>> {
        CommandBuilder {
            cache_stats: Some(cache.stats().clone()),
            cache,
            name: self.name,
            group: self.group,
            timeout: self.timeout,
            isolation: self.isolation,
            breaker: self.breaker,
            fallback: self.fallback,
            fallback_max_concurrent: self.fallback_max_concurrent,
            contain_panics: self.contain_panics,
            registry: self.registry,
            retry: self.retry,
            fail_on: self.fail_on,
        }
    }

    /// Checks the options that span layers; the layers check their own.
    fn check_across(&self, v: &mut Validator, window: Option<Windowed>) {
        // The group names the thread pool and the stream's grouping; an
        // empty one would otherwise be blamed on the pool's name.
        if let Some(group) = &self.group {
            v.check(!group.is_empty(), "group", || "must not be empty".into());
        }
        check_timing(
            v,
            None,
            self.timeout,
            self.breaker.slow_call_bound(),
            window,
        );
    }
}

/// A breaker's time window, fixed when it is built.
#[derive(Debug, Clone, Copy)]
struct Windowed {
    length: Duration,
    default: bool,
}

impl Windowed {
    /// `None` for a count window.
    fn of<C>(breaker: &BreakerBuilder<C>) -> Option<Windowed> {
        Some(Windowed {
            length: breaker.window_length()?,
            default: breaker.window_is_default(),
        })
    }
}

/// The checks between a command's timeout and its breaker: at build time,
/// and again on every live change of either (each reads the other's value
/// in force). A violation names `changed`, the property changed live, or
/// else the builder option at fault (`slow_call`, `window`).
fn check_timing(
    v: &mut Validator,
    changed: Option<&'static str>,
    timeout: Duration,
    slow_call_bound: Option<Duration>,
    window: Option<Windowed>,
) {
    if let Some(bound) = slow_call_bound {
        v.check(bound < timeout, changed.unwrap_or("slow_call"), || {
            format!(
                "the breaker's slow-call bound of {bound:?} must be shorter than the \
                 timeout ({timeout:?}): no call can take longer, so no call would ever be slow"
            )
        });
    }
    if let Some(Windowed { length, default }) = window {
        v.check(length >= timeout, changed.unwrap_or("window"), || {
            let which = if default {
                "the breaker's default window of"
            } else {
                "the breaker's window of"
            };
            format!(
                "{which} {length:?} must be at least the timeout ({timeout:?}): \
                 a timed-out call would be counted after its window had passed; \
                 lengthen it with `.breaker(|b| b.window(Window::time(length, buckets)))` \
                 (a window is built, not changed live)"
            )
        });
    }
}

/// Runs the checks between a command's timeout and its breaker again on
/// every live change of either. Each holds the other weakly: neither
/// keeps the other alive.
fn check_timing_live(
    name: &str,
    timeout: &Arc<TimeoutShared>,
    breaker: &Arc<Breaker>,
    window: Option<Windowed>,
) {
    let component = format!("command {name:?}");
    breaker.check_across({
        let (component, timeout) = (component.clone(), Arc::downgrade(timeout));
        move |options| {
            let Some(timeout) = timeout.upgrade() else {
                return Ok(());
            };
            let mut v = Validator::new(component.clone());
            let bound = options.slow_call.map(|(bound, _)| bound);
            check_timing(
                &mut v,
                Some("slow_call_duration"),
                timeout.timeout(),
                bound,
                window,
            );
            v.finish()
        }
    });
    timeout.check_across({
        let breaker = Arc::downgrade(breaker);
        move |timeout| {
            let Some(breaker) = breaker.upgrade() else {
                return Ok(());
            };
            let bound = breaker.live().slow_call_bound().map(Duration::from_micros);
            let mut v = Validator::new(component.clone());
            check_timing(&mut v, Some("timeout"), timeout, bound, window);
            v.finish()
        }
    });
}

/// Builds each layer, gathering every violation, cross-layer ones included.
macro_rules! build_command {
    ($isolation:ident, $layer:ty, $option:literal, |$this:ident, $group:ident, $registry:ident| $build_isolation:expr) => {
        impl<FB, C, R, FO, K> CommandBuilder<FB, $isolation, C, R, FO, K> {
            /// Checks every option, across layers too, and builds the layer.
            ///
            /// # Errors
            ///
            /// A [`ConfigError`] listing every invalid option, including
            /// contradictions between layers: a slow-call bound not shorter
            /// than the timeout, or a window shorter than the timeout.
            pub fn build(self) -> Result<CommandLayer<FB, $layer, C, R, FO, K>, ConfigError> {
                let mut v = Validator::new(format!("command {:?}", self.name));
                // Fixed at build: checked now, and again on live changes.
                let window = Windowed::of(&self.breaker);
                self.check_across(&mut v, window);
                let registry = self.registry.clone().unwrap_or_else(Registry::global);
                let $registry = &registry;
                let $this = &self;
                let $group = self.group.clone().unwrap_or_else(|| self.name.clone());
                let isolation = v.absorb_as($build_isolation, $option);
                let timeout = v.absorb(
                    TimeoutLayer::builder(self.name.clone())
                        .timeout(self.timeout)
                        .registry(&registry)
                        .build(),
                );
                let breaker = v.absorb(self.breaker.registry(&registry).build());
                // The fallback's windows line up with the breaker's, so the
                // stream can tell the dependency's time from the total.
                let fallback = v.absorb_as(
                    stats_for(
                        &self.name,
                        self.fallback_max_concurrent,
                        Some(&registry),
                        breaker.as_ref().map(|b| b.shared().rolling_shape()),
                    ),
                    "fallback_max_concurrent",
                );
                v.finish()?;
                match (isolation, timeout, fallback, breaker) {
                    (Some(isolation), Some(timeout), Some(stats), Some(breaker)) => {
                        // Its fallback's windows take each failed call's
                        // time from it, and the timeout beneath reads the
                        // start anyway: timing every call costs nothing.
                        breaker.shared().time_every_call();
                        check_timing_live(&self.name, timeout.shared(), breaker.shared(), window);
                        registry.register_command(CommandParts {
                            name: &self.name,
                            group: &$group,
                            timeout: timeout.shared().clone(),
                            breaker: breaker.shared(),
                            isolation: isolation.shared(),
                            fallback: &stats,
                            cache: self.cache_stats.clone().map(erase_cache),
                        });
                        Ok(CommandLayer {
                            name: self.name,
                            group: $group,
                            fallback: FallbackLayer::from_parts(
                                self.fallback,
                                stats,
                                self.contain_panics,
                            ),
                            breaker,
                            isolation,
                            timeout,
                            catch_panic: CatchPanicLayer::contain(self.contain_panics),
                            retry: self.retry,
                            fail_on: self.fail_on,
                            cache: self.cache,
                        })
                    }
                    _ => unreachable!("a part that failed to build left a violation"),
                }
            }
        }
    };
}

build_command!(
    Semaphore,
    BulkheadLayer,
    "bulkhead",
    |this, _group, registry| {
        BulkheadLayer::builder(this.name.clone())
            .registry(registry)
            .max_concurrent(this.isolation.max_concurrent)
            .build()
    }
);
build_command!(Threads, PoolLayer, "pool", |this, group, registry| {
    PoolLayer::builder(group.clone())
        .registry(registry)
        .size(this.isolation.size)
        .queue(this.isolation.queue)
        .build()
});

impl<FB, I: fmt::Debug, C, R, FO, K> fmt::Debug for CommandBuilder<FB, I, C, R, FO, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandBuilder")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("timeout", &self.timeout)
            .field("isolation", &self.isolation)
            .field("breaker", &self.breaker)
            .field("fallback_max_concurrent", &self.fallback_max_concurrent)
            .finish_non_exhaustive()
    }
}

/// The assembled command: a tower [`Layer`] wrapping a dependency in a
/// fallback, a circuit breaker, a bulkhead (`L = BulkheadLayer`) or a pool
/// (`L = PoolLayer`), and a timeout; with a retry layer `R` between the
/// fallback and the breaker if [one was given](CommandBuilder::retry).
///
/// All services built from one `CommandLayer` (or its clones) share its
/// breaker, bulkhead or pool, fallback cap and retry budget.
pub struct CommandLayer<FB, L, C, R = Identity, FO = Identity, K = Identity> {
    name: String,
    group: String,
    fallback: FallbackLayer<FB>,
    breaker: CircuitBreakerLayer<C>,
    isolation: L,
    timeout: TimeoutLayer,
    catch_panic: CatchPanicLayer,
    retry: R,
    fail_on: FO,
    cache: K,
}

// By hand: the fallback is shared, so it need not be `Clone`.
impl<FB, L: Clone, C: Clone, R: Clone, FO: Clone, K: Clone> Clone
    for CommandLayer<FB, L, C, R, FO, K>
{
    fn clone(&self) -> Self {
        CommandLayer {
            name: self.name.clone(),
            group: self.group.clone(),
            fallback: self.fallback.clone(),
            breaker: self.breaker.clone(),
            isolation: self.isolation.clone(),
            timeout: self.timeout.clone(),
            catch_panic: self.catch_panic,
            retry: self.retry.clone(),
            fail_on: self.fail_on.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<FB, L, C, R, FO, K> CommandLayer<FB, L, C, R, FO, K> {
    /// The command's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command's group (its name unless set).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The command's circuit breaker.
    pub fn breaker(&self) -> CircuitBreakerHandle {
        self.breaker.handle()
    }

    /// What the command's fallback did.
    pub fn fallback(&self) -> FallbackHandle {
        self.fallback.handle()
    }

    /// The per-call deadline now (as built, or as changed live).
    pub fn timeout(&self) -> Duration {
        self.timeout.timeout()
    }

    /// Changes the per-call deadline from the next call on; calls running
    /// keep theirs. Checked as the timeout's builder checks it (1 ms to a
    /// year), and against the breaker's slow-call bound in force (the
    /// timeout must be longer) and its window (at least the timeout), as
    /// the command's builder checks them. Wins over what a
    /// [source](crate::config::Source) says until
    /// [`clear_timeout_override`](Self::clear_timeout_override). The
    /// breaker, bulkhead and fallback have their live setters on their
    /// handles ([`breaker`](Self::breaker), ...).
    ///
    /// ```
    /// use rampart::Command;
    /// use std::time::Duration;
    ///
    /// let command = Command::builder("RatingsGet").build()?;
    /// command.set_timeout(Duration::from_millis(300))?;
    /// assert_eq!(command.timeout(), Duration::from_millis(300));
    /// command.breaker().set_failure_rate(0.25)?;
    /// command.clear_timeout_override();
    /// assert_eq!(command.timeout(), Duration::from_secs(1));
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `timeout`; the old deadline stays.
    pub fn set_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.timeout.set_timeout(timeout)
    }

    /// Drops the deadline [`set_timeout`](Self::set_timeout) set.
    pub fn clear_timeout_override(&self) {
        self.timeout.clear_timeout_override();
    }
}

impl<FB, C, R, FO, K> CommandLayer<FB, BulkheadLayer, C, R, FO, K> {
    /// The command's bulkhead.
    pub fn bulkhead(&self) -> BulkheadHandle {
        self.isolation.handle()
    }
}

impl<FB, C, R, FO, K> CommandLayer<FB, PoolLayer, C, R, FO, K> {
    /// The command's pool.
    pub fn pool(&self) -> PoolHandle {
        self.isolation.handle()
    }
}

impl<S, FB, C: Clone, R, FO, K> Layer<S> for CommandLayer<FB, BulkheadLayer, C, R, FO, K>
where
    FO: Layer<CatchPanic<S>>,
    R: Layer<CircuitBreaker<Bulkhead<Timeout<FO::Service>>, C>>,
    K: Layer<R::Service>,
{
    type Service = Fallback<K::Service, FB>;

    fn layer(&self, inner: S) -> Self::Service {
        let failing = self.fail_on.layer(self.catch_panic.layer(inner));
        let timed = self.timeout.layer(failing);
        let isolated = self.isolation.layer(timed);
        let retried = self.retry.layer(self.breaker.layer(isolated));
        self.fallback.layer(self.cache.layer(retried))
    }
}

impl<S, FB, C: Clone, R, FO, K> Layer<S> for CommandLayer<FB, PoolLayer, C, R, FO, K>
where
    FO: Layer<CatchPanic<S>>,
    R: Layer<CircuitBreaker<Timeout<Pool<FO::Service>>, C>>,
    K: Layer<R::Service>,
{
    type Service = Fallback<K::Service, FB>;

    fn layer(&self, inner: S) -> Self::Service {
        let failing = self.fail_on.layer(self.catch_panic.layer(inner));
        let isolated = self.isolation.layer(failing);
        let timed = self.timeout.layer(isolated);
        let retried = self.retry.layer(self.breaker.layer(timed));
        self.fallback.layer(self.cache.layer(retried))
    }
}

impl<FB, L, C, R, FO, K> fmt::Debug for CommandLayer<FB, L, C, R, FO, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandLayer")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("timeout", &self.timeout.timeout())
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
