//! The timeout layer.

use super::config::{validate, Builder};
use super::service::Timeout;
use crate::config::{parse_duration, show_duration, Configurable, Kind, Layer, Layers};
use crate::error::ConfigError;
use crate::internal::clock::{micros, Clock};
use crate::internal::sync::{AtomicU64, Ordering};
use crate::metrics::{event_counter, TARGET_TIMEOUT};
use metrics::Counter;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer as TowerLayer;

/// The `layer` label and field of the timeout's metrics and events.
pub(super) const LAYER: &str = "timeout";

/// Wraps services in a [`Timeout`].
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    shared: Arc<Shared>,
    clock: Clock,
    timed_out: Counter,
}

/// What every service of one timeout layer shares: its name and its
/// deadline, which can change live.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    /// The deadline each call gets, in µs: one load per call.
    timeout: AtomicU64,
    layers: Layers<Duration>,
}

impl Shared {
    #[inline]
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_micros(self.timeout.load(Ordering::Relaxed))
    }

    /// Makes every later change pass `check` too: a command's checks
    /// across its layers, run again live.
    pub(crate) fn check_across(
        &self,
        check: impl Fn(Duration) -> Result<(), ConfigError> + Send + Sync + 'static,
    ) {
        self.layers
            .check_across(Box::new(move |timeout: &Duration| check(*timeout)));
    }

    fn change(&self, layer: Layer, value: Option<&str>, dry: bool) -> Result<(), ConfigError> {
        let component = format!("timeout {:?}", self.name);
        self.layers.change(
            &component,
            layer,
            &[("timeout", value)],
            dry,
            |timeout, _, text| {
                *timeout = parse_duration(text)?;
                Ok(())
            },
            |timeout| validate(&self.name, *timeout),
            |old, new| {
                self.timeout.store(micros(*new), Ordering::Relaxed);
                if old != new {
                    changed(&self.name, layer, *old, *new);
                }
            },
        )
    }
}

#[cold]
fn changed(name: &str, layer: Layer, from: Duration, to: Duration) {
    crate::config::property_changed!(
        TARGET_TIMEOUT,
        LAYER,
        name,
        layer,
        "timeout",
        show_duration(from),
        show_duration(to)
    );
}

impl Configurable for Shared {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Timeout
    }

    fn set(
        &self,
        layer: Layer,
        _property: &'static str,
        value: Option<&str>,
        dry: bool,
    ) -> Result<(), ConfigError> {
        self.change(layer, value, dry)
    }
}

impl TimeoutLayer {
    /// Starts a timeout named `name` with Hystrix's default of 1 s.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }

    pub(crate) fn new(name: &str, timeout: Duration) -> Self {
        TimeoutLayer {
            shared: Arc::new(Shared {
                name: name.into(),
                timeout: AtomicU64::new(micros(timeout)),
                layers: Layers::new(timeout),
            }),
            clock: Clock::new(),
            timed_out: event_counter(LAYER, name, "timeout"),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The deadline each call gets now (as built, or as changed live).
    pub fn timeout(&self) -> Duration {
        self.shared.timeout()
    }

    /// Changes the deadline of every call from the next one on, from 1 ms
    /// to a year; calls already running keep theirs. Shared by every
    /// service of this layer and its clones. It wins over what a
    /// [source](crate::config::Source) says until
    /// [`clear_timeout_override`](Self::clear_timeout_override).
    ///
    /// ```
    /// use rampart::timeout::TimeoutLayer;
    /// use std::time::Duration;
    ///
    /// let timeout = TimeoutLayer::builder("ratings").build()?;
    /// timeout.set_timeout(Duration::from_millis(250))?;
    /// assert_eq!(timeout.timeout(), Duration::from_millis(250));
    /// assert!(timeout.set_timeout(Duration::ZERO).is_err()); // as the builder
    /// timeout.clear_timeout_override();
    /// assert_eq!(timeout.timeout(), Duration::from_secs(1));
    /// # Ok::<(), rampart::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Builder::timeout`] at build time; the old deadline stays.
    pub fn set_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.shared
            .change(Layer::Handle, Some(&show_duration(timeout)), false)
    }

    /// Drops the value [`set_timeout`](Self::set_timeout) set: the
    /// deadline is what the sources say again, or as built.
    pub fn clear_timeout_override(&self) {
        let _ = self.shared.change(Layer::Handle, None, false);
    }
}

impl<S> TowerLayer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(
            inner,
            self.shared.clone(),
            self.clock,
            self.timed_out.clone(),
        )
    }
}
