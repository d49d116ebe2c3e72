//! Reading a bulkhead's occupancy.

use super::state::Shared;
use crate::config::{show_duration, show_off, Layer};
use crate::error::ConfigError;
use std::sync::Arc;
use std::time::Duration;

/// A cloneable view of one bulkhead's occupancy, for dashboards and tests.
#[derive(Debug, Clone)]
pub struct BulkheadHandle {
    shared: Arc<Shared>,
}

impl BulkheadHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        BulkheadHandle { shared }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.shared.slots.in_flight()
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.shared.slots.waiting()
    }

    /// The most calls in flight at once since the last read, for the
    /// stream's rolling max.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn take_peak(&self) -> usize {
        self.shared.slots.take_peak()
    }

    /// The most calls allowed in flight at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared.slots.max()
    }
}

/// Live options: checked as the builder checks them, effective from the
/// next call, keeping the calls that hold a slot. A handle's value wins
/// over what a [source](crate::config::Source) says until
/// [`clear_overrides`](Self::clear_overrides). See [`config`](crate::config).
///
/// ```
/// use rampart::bulkhead::BulkheadLayer;
///
/// let bulkhead = BulkheadLayer::builder("ratings").max_concurrent(10).build()?;
/// let handle = bulkhead.handle();
/// handle.set_max_concurrent(25)?;
/// assert_eq!(handle.max_concurrent(), 25);
/// assert!(handle.set_max_concurrent(0).is_err()); // as the builder
/// handle.clear_overrides();
/// assert_eq!(handle.max_concurrent(), 10);
/// # Ok::<(), rampart::ConfigError>(())
/// ```
impl BulkheadHandle {
    /// Calls let in at once, from 1 to 2^24. Lowered, the calls holding a
    /// slot above the new size keep it until they end (none is cut off);
    /// raised, callers waiting for a slot look again at once.
    ///
    /// # Errors
    ///
    /// As [`Builder::max_concurrent`](super::Builder::max_concurrent) at
    /// build time; the old value stays.
    pub fn set_max_concurrent(&self, max: usize) -> Result<(), ConfigError> {
        let text = max.to_string();
        self.shared
            .change(Layer::Handle, &[("max_concurrent", Some(&text))], false)
    }

    /// How long a call may wait for a slot, 1 µs to an hour; `None`: a
    /// full bulkhead rejects at once. Callers already waiting keep their
    /// deadline.
    ///
    /// # Errors
    ///
    /// As [`Builder::max_wait`](super::Builder::max_wait) at build time.
    pub fn set_max_wait(&self, max_wait: Option<Duration>) -> Result<(), ConfigError> {
        let text = show_off(max_wait, show_duration);
        self.shared
            .change(Layer::Handle, &[("max_wait", Some(&text))], false)
    }

    /// How long a call may wait for a slot now; `None`: not at all.
    pub fn max_wait(&self) -> Option<Duration> {
        self.shared.max_wait()
    }

    /// Drops the values this bulkhead's handles set: it takes what the
    /// sources say again, or its built values.
    pub fn clear_overrides(&self) {
        let _ = self.shared.change(
            Layer::Handle,
            &[("max_concurrent", None), ("max_wait", None)],
            false,
        );
    }
}
