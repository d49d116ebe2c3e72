//! Steering a chaos layer at run time: the game day's switch.

use super::faults::Faults;
use super::state::Shared;
use crate::error::Validator;
use crate::metrics::TARGET_CHAOS;
use crate::ConfigError;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A cloneable handle to one chaos layer: turn it on for a game day,
/// re-tune it while it runs, turn it off. Services built from the layer
/// see a change at their next call; calls in flight keep what they drew.
///
/// ```
/// use rampart::chaos::{ChaosLayer, Delay, Faults};
/// use std::time::Duration;
///
/// let layer = ChaosLayer::<(), ()>::builder("ratings").build()?;
/// let chaos = layer.handle();
/// assert!(!chaos.is_enabled(), "off until someone turns it on");
///
/// chaos.set_faults(Faults::new().delay(Delay::fixed(Duration::from_millis(500)), 50.0))?;
/// chaos.enable();   // Latency Monkey, for this dependency only
/// // ... watch the dashboard ...
/// chaos.disable();
/// # Ok::<(), rampart::ConfigError>(())
/// ```
pub struct ChaosHandle<Req, Res> {
    pub(crate) shared: Arc<Shared<Req, Res>>,
}

impl<Req, Res> ChaosHandle<Req, Res> {
    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Starts injecting the configured faults.
    pub fn enable(&self) {
        self.shared.enabled.store(true, Ordering::Relaxed);
        tracing::warn!(target: TARGET_CHAOS, layer = "chaos", name = %self.shared.name, event = "enabled", injected = true, "chaos: fault injection on");
    }

    /// Stops injecting: every call goes straight through again.
    pub fn disable(&self) {
        self.shared.enabled.store(false, Ordering::Relaxed);
        tracing::warn!(target: TARGET_CHAOS, layer = "chaos", name = %self.shared.name, event = "disabled", injected = true, "chaos: fault injection off");
    }

    /// Whether faults are being injected.
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::Relaxed)
    }

    /// Replaces the faults, checked as at build time; the switch and the
    /// counts are kept.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming each bad value; the faults in force stay.
    pub fn set_faults(&self, faults: Faults<Req, Res>) -> Result<(), ConfigError> {
        let mut v = Validator::new(format!("chaos {:?}", self.shared.name));
        faults.check(&mut v);
        v.finish()?;
        self.shared.faults.store(Arc::new(faults));
        Ok(())
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults<Req, Res> {
        (**self.shared.faults.load()).clone()
    }

    /// Delays injected so far.
    pub fn injected_delays(&self) -> u64 {
        self.shared.delays()
    }

    /// Aborts injected so far.
    pub fn injected_aborts(&self) -> u64 {
        self.shared.aborts()
    }
}

impl<Req, Res> Clone for ChaosHandle<Req, Res> {
    fn clone(&self) -> Self {
        ChaosHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<Req, Res> fmt::Debug for ChaosHandle<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("name", &self.shared.name)
            .field("enabled", &self.is_enabled())
            .field("faults", &*self.shared.faults.load())
            .finish()
    }
}
