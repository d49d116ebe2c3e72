//! Every component built, listed without wiring: for dashboards, streams,
//! admin endpoints and live configuration.
//!
//! Each breaker, bulkhead, pool, fallback, limit, balancer, rate limit and
//! command registers itself when built, and each
//! [discovery](crate::discovery::Discovery) and
//! [registration](crate::discovery::Registration) when started, in the
//! process-wide [`Registry::global`] unless its builder was given another
//! with `.registry(&registry)`. The registry holds weak references only: a
//! component whose layers, services and handles are all dropped leaves it
//! (a discovery or a registration, when its task ends), and holding a
//! registry keeps nothing alive.
//!
//! Reading the registry never touches a call's path: a call neither reads
//! nor writes it. Registration takes a lock once, at build time; listing
//! takes it once per read and returns handles, whose reads are the same
//! atomic loads the handles always do.
//!
//! ```
//! use rampart::registry::Registry;
//! use rampart::Command;
//!
//! let registry = Registry::new(); // or leave it out: Registry::global()
//! let command = Command::builder("RatingsGet").registry(&registry).build()?;
//! let listed = registry.commands();
//! assert_eq!(listed.len(), 1);
//! assert_eq!(listed[0].name(), "RatingsGet");
//! assert_eq!(registry.breakers()[0].name(), "RatingsGet");
//!
//! // No service was built from it: once the layer and the handles listed
//! // above are dropped, it leaves the registry.
//! drop((command, listed));
//! assert!(registry.commands().is_empty());
//! # Ok::<(), rampart::ConfigError>(())
//! ```

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

pub(crate) type Erased = dyn Any + Send + Sync;

/// A list of the components built in a process (or in a part of it).
///
/// Cloning a `Registry` gives another handle to the same list.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Default)]
struct Entries {
    components: Vec<Weak<Erased>>,
    commands: Vec<CommandEntry>,
    /// Balancers are generic over their keys and services: listed by the
    /// view they all share rather than by concrete type.
    #[cfg(feature = "balance")]
    balancers: Vec<Weak<dyn crate::balance::Report>>,
    /// Keyed breakers are generic over their keys: listed by their
    /// shared view, which lists each key's breaker.
    #[cfg(feature = "circuit-breaker")]
    keyed_breakers: Vec<Weak<dyn crate::circuit_breaker::keyed::Report>>,
    /// Rate limits are generic over their keys: listed by their shared view.
    #[cfg(feature = "rate-limit")]
    rate_limits: Vec<Weak<dyn crate::rate_limit::Report>>,
    /// Components whose options can change while they run.
    live: Vec<Weak<dyn crate::config::Configurable>>,
    /// What each source said of each (component name, property): given
    /// to components built later, and fallen back on when a higher layer
    /// clears.
    remembered: Remembered,
}

/// Each source's value of a (component name, property), by source.
pub(crate) type Remembered =
    std::collections::BTreeMap<(String, &'static str), [Option<String>; 2]>;

/// A command is alive while its breaker is: services built from it hold
/// the breaker, not the layer.
#[derive(Clone)]
struct CommandEntry {
    name: Arc<str>,
    group: Arc<str>,
    /// The command's timeout, whose deadline can change live.
    timeout: Weak<Erased>,
    breaker: Weak<Erased>,
    isolation: Weak<Erased>,
    fallback: Weak<Erased>,
    /// The command's cache, if it has one.
    cache: Option<Weak<Erased>>,
}

impl Registry {
    /// An empty registry of its own, for a part of a process (or a test)
    /// that should not share the global list.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The process-wide registry every builder uses unless told otherwise.
    pub fn global() -> Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new).clone()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Nothing here can be left half-written by a panic: a poisoned
        // lock still holds a consistent list.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `component`; dropped components are swept out on the way.
    pub(crate) fn register<T: Send + Sync + 'static>(&self, component: &Arc<T>) {
        let erased: Arc<Erased> = component.clone();
        let mut entries = self.entries();
        entries.components.retain(|c| c.strong_count() > 0);
        entries.components.push(Arc::downgrade(&erased));
    }

    /// Runs `f` on the live components (those it adds are listed) and
    /// what the sources said, under the registry's lock, so that a
    /// component being built cannot miss a change made meanwhile.
    pub(crate) fn with_live<R>(
        &self,
        f: impl FnOnce(&mut Vec<Arc<dyn crate::config::Configurable>>, &mut Remembered) -> R,
    ) -> R {
        // A change `f` makes may tell a breaker's listeners, which may
        // change options again: they are told once the lock is let go.
        crate::internal::notify::outside_locks(|| {
            let mut entries = self.entries();
            entries.live.retain(|c| c.strong_count() > 0);
            let mut live: Vec<_> = entries.live.iter().filter_map(Weak::upgrade).collect();
            let known = live.len();
            let result = f(&mut live, &mut entries.remembered);
            for added in &live[known..] {
                entries.live.push(Arc::downgrade(added));
            }
            // The lock first: `live` may hold the last owner of a user's
            // values (a breaker's listeners) if its handles went meanwhile.
            drop(entries);
            drop(live);
            result
        })
    }

    /// Lists `component`, whose options can change while it runs.
    pub(crate) fn register_configurable<T: crate::config::Configurable + 'static>(
        &self,
        component: &Arc<T>,
    ) {
        self.register(component);
        self.register_live(component.clone());
    }

    /// Lists a balancer.
    #[cfg(feature = "balance")]
    pub(crate) fn register_balancer(&self, balancer: &Arc<dyn crate::balance::Report>) {
        let mut entries = self.entries();
        entries.balancers.retain(|b| b.strong_count() > 0);
        entries.balancers.push(Arc::downgrade(balancer));
    }

    /// Lists a keyed breaker layer (its keys' breakers are listed when
    /// read, not one by one as they come and go).
    #[cfg(feature = "circuit-breaker")]
    pub(crate) fn register_keyed_breakers(
        &self,
        keyed: &Arc<dyn crate::circuit_breaker::keyed::Report>,
    ) {
        let mut entries = self.entries();
        entries.keyed_breakers.retain(|k| k.strong_count() > 0);
        entries.keyed_breakers.push(Arc::downgrade(keyed));
    }

    /// Lists a rate limit.
    #[cfg(feature = "rate-limit")]
    pub(crate) fn register_rate_limit(&self, limit: &Arc<dyn crate::rate_limit::Report>) {
        let mut entries = self.entries();
        entries.rate_limits.retain(|l| l.strong_count() > 0);
        entries.rate_limits.push(Arc::downgrade(limit));
    }

    /// Lists a command made of already registered parts.
    pub(crate) fn register_command<B, I, F>(&self, command: CommandParts<'_, B, I, F>)
    where
        B: Send + Sync + 'static,
        I: Send + Sync + 'static,
        F: Send + Sync + 'static,
    {
        let erase = |c: Arc<Erased>| Arc::downgrade(&c);
        let mut entries = self.entries();
        entries.commands.retain(|c| c.breaker.strong_count() > 0);
        entries.commands.push(CommandEntry {
            name: command.name.into(),
            group: command.group.into(),
            timeout: Arc::downgrade(&command.timeout),
            breaker: erase(command.breaker.clone()),
            isolation: erase(command.isolation.clone()),
            fallback: erase(command.fallback.clone()),
            cache: command.cache.as_ref().map(Arc::downgrade),
        });
    }

    /// Every live component of type `T`, in the order they were built.
    fn live<T: Send + Sync + 'static>(&self) -> Vec<Arc<T>> {
        // Upgraded under the lock, sorted after it: a component of another
        // type upgraded here may be the last owner of a user's values.
        let all: Vec<_> = (self.entries().components.iter())
            .filter_map(Weak::upgrade)
            .collect();
        all.into_iter()
            .filter_map(|c| c.downcast::<T>().ok())
            .collect()
    }

    /// Every circuit breaker built and still in use, those inside
    /// commands included (see [`CommandInfo::breaker`]), then every key's
    /// breaker of each [keyed layer](crate::circuit_breaker::KeyedCircuitBreakerLayer)
    /// still in use, by name within each layer.
    #[cfg(feature = "circuit-breaker")]
    pub fn breakers(&self) -> Vec<crate::circuit_breaker::CircuitBreakerHandle> {
        let mut breakers: Vec<_> = self
            .live::<crate::circuit_breaker::Breaker>()
            .into_iter()
            .map(crate::circuit_breaker::CircuitBreakerHandle::new)
            .collect();
        // Upgraded under the lock, read after it: a keyed layer lists its
        // keys under its map's own locks.
        let keyed: Vec<_> = self
            .entries()
            .keyed_breakers
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for layer in keyed {
            breakers.extend(layer.breakers());
        }
        breakers
    }

    /// Every semaphore bulkhead built and still in use.
    #[cfg(feature = "bulkhead")]
    pub fn bulkheads(&self) -> Vec<crate::bulkhead::BulkheadHandle> {
        self.live::<crate::bulkhead::Shared>()
            .into_iter()
            .map(crate::bulkhead::BulkheadHandle::new)
            .collect()
    }

    /// Every pool built and still in use.
    #[cfg(feature = "bulkhead")]
    pub fn pools(&self) -> Vec<crate::bulkhead::pool::PoolHandle> {
        self.live::<crate::bulkhead::pool::Shared>()
            .into_iter()
            .map(crate::bulkhead::pool::PoolHandle::new)
            .collect()
    }

    /// Every adaptive limit built and still in use.
    #[cfg(feature = "limit")]
    pub fn limits(&self) -> Vec<crate::limit::LimitHandle> {
        self.live::<crate::limit::Shared>()
            .into_iter()
            .map(crate::limit::LimitHandle::new)
            .collect()
    }

    /// Every fallback layer built and still in use.
    #[cfg(feature = "fallback")]
    pub fn fallbacks(&self) -> Vec<crate::fallback::FallbackHandle> {
        self.live::<crate::fallback::Stats>()
            .into_iter()
            .map(crate::fallback::FallbackHandle::new)
            .collect()
    }

    /// Every request collapser built and still in use.
    #[cfg(feature = "collapse")]
    pub fn collapsers(&self) -> Vec<crate::collapse::CollapseHandle> {
        self.live::<crate::collapse::Stats>()
            .into_iter()
            .map(crate::collapse::CollapseHandle::new)
            .collect()
    }

    /// Every load balancer built and still in use.
    #[cfg(feature = "balance")]
    pub fn balancers(&self) -> Vec<crate::balance::BalanceHandle> {
        self.entries()
            .balancers
            .iter()
            .filter_map(Weak::upgrade)
            .map(crate::balance::BalanceHandle::new)
            .collect()
    }

    /// Every rate limit built and still in use.
    #[cfg(feature = "rate-limit")]
    pub fn rate_limits(&self) -> Vec<crate::rate_limit::RateLimitHandle> {
        self.entries()
            .rate_limits
            .iter()
            .filter_map(Weak::upgrade)
            .map(crate::rate_limit::RateLimitHandle::new)
            .collect()
    }

    /// Every [`Discovery`](crate::discovery::Discovery) running, in the
    /// order they were started: while its task runs (as long as the
    /// `Discovery` or a balancer fed by it is alive).
    #[cfg(feature = "etcd")]
    pub fn discoveries(&self) -> Vec<crate::discovery::DiscoveryHandle> {
        self.live::<crate::discovery::Listed>()
            .into_iter()
            .filter_map(crate::discovery::DiscoveryHandle::new)
            .collect()
    }

    /// Every [`Registration`](crate::discovery::Registration) of this
    /// process still registering or registered (not shut down or dropped),
    /// in the order they were started: for an admin endpoint that takes
    /// an instance out of service
    /// ([`set_status`](crate::discovery::RegistrationHandle::set_status)).
    #[cfg(feature = "etcd")]
    pub fn registrations(&self) -> Vec<crate::discovery::RegistrationHandle> {
        self.live::<crate::discovery::RegistrationHandle>()
            .into_iter()
            .filter(|handle| handle.running())
            .map(|handle| (*handle).clone())
            .collect()
    }

    /// Every command built whose breaker is still in use.
    #[cfg(feature = "command")]
    pub fn commands(&self) -> Vec<CommandInfo> {
        use crate::bulkhead::pool::PoolHandle;
        use crate::bulkhead::BulkheadHandle;
        // Copied out first: a part upgraded here and then left unused may
        // be the last owner of a user's values, dropped after the lock.
        let commands = self.entries().commands.clone();
        commands
            .iter()
            .filter_map(|c| {
                let breaker = c.breaker.upgrade()?.downcast().ok()?;
                let isolation = c.isolation.upgrade()?;
                let isolation = match isolation.downcast() {
                    Ok(bulkhead) => Isolation::Semaphore(BulkheadHandle::new(bulkhead)),
                    Err(other) => Isolation::Pool(PoolHandle::new(other.downcast().ok()?)),
                };
                Some(CommandInfo {
                    name: c.name.clone(),
                    group: c.group.clone(),
                    timeout: c.timeout.upgrade()?.downcast().ok()?,
                    breaker: crate::circuit_breaker::CircuitBreakerHandle::new(breaker),
                    isolation,
                    fallback: crate::fallback::FallbackHandle::new(
                        c.fallback.upgrade()?.downcast().ok()?,
                    ),
                    cache: c.cache.as_ref().and_then(Weak::upgrade),
                })
            })
            .collect()
    }
}

/// What a command registers: its parts, each already registered alone.
pub(crate) struct CommandParts<'a, B, I, F> {
    pub(crate) name: &'a str,
    pub(crate) group: &'a str,
    /// The command's timeout layer's shared part.
    pub(crate) timeout: Arc<Erased>,
    pub(crate) breaker: &'a Arc<B>,
    pub(crate) isolation: &'a Arc<I>,
    pub(crate) fallback: &'a Arc<F>,
    /// The command's cache's counts, if it has a cache.
    pub(crate) cache: Option<Arc<Erased>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries();
        f.debug_struct("Registry")
            .field(
                "components",
                &entries
                    .components
                    .iter()
                    .filter(|c| c.strong_count() > 0)
                    .count(),
            )
            .field(
                "commands",
                &entries
                    .commands
                    .iter()
                    .filter(|c| c.breaker.strong_count() > 0)
                    .count(),
            )
            .finish()
    }
}

/// A command as listed by [`Registry::commands`]: its names, its timeout
/// and handles to its parts.
#[cfg(feature = "command")]
#[derive(Debug, Clone)]
pub struct CommandInfo {
    name: Arc<str>,
    group: Arc<str>,
    timeout: Arc<crate::timeout::TimeoutShared>,
    breaker: crate::circuit_breaker::CircuitBreakerHandle,
    isolation: Isolation,
    fallback: crate::fallback::FallbackHandle,
    cache: Option<Arc<Erased>>,
}

/// How a listed command isolates its calls.
#[cfg(feature = "command")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Isolation {
    /// A semaphore bulkhead (Hystrix's `SEMAPHORE`).
    Semaphore(crate::bulkhead::BulkheadHandle),
    /// A pool of threads of its own (Hystrix's `THREAD`).
    Pool(crate::bulkhead::pool::PoolHandle),
}

#[cfg(feature = "command")]
impl CommandInfo {
    /// The command's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command's group (its name unless set).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The per-call deadline now (as built, or as changed live).
    pub fn timeout(&self) -> Duration {
        self.timeout.timeout()
    }

    /// The command's circuit breaker (also listed by [`Registry::breakers`]).
    pub fn breaker(&self) -> &crate::circuit_breaker::CircuitBreakerHandle {
        &self.breaker
    }

    /// The command's bulkhead or pool.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// What the command's fallback did.
    pub fn fallback(&self) -> &crate::fallback::FallbackHandle {
        &self.fallback
    }

    /// Whether the command has a [cache](crate::command::CommandBuilder::cache).
    pub fn has_cache(&self) -> bool {
        self.cache.is_some()
    }

    /// Calls its cache answered so far; 0 without a cache.
    pub fn cache_hits(&self) -> u64 {
        #[cfg(feature = "cache")]
        if let Some(stats) = self
            .cache
            .as_ref()
            .and_then(|c| c.downcast_ref::<crate::cache::Stats>())
        {
            return stats.hits();
        }
        0
    }
}
