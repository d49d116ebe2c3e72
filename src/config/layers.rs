//! The layers of one component's live options: the built value, then what
//! the file, etcd and handles say, the highest set layer winning.

use crate::error::{ConfigError, Validator};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Who set a value, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Layer {
    File = 0,
    Etcd = 1,
    Handle = 2,
}

impl Layer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Layer::File => "file",
            Layer::Etcd => "etcd",
            Layer::Handle => "handle",
        }
    }
}

/// Each layer's value of one property, indexed by [`Layer`].
type Values = [Option<String>; 3];

/// What a component was built with, what each layer says, and the options
/// in force. Taken only to change options, never by a call.
#[derive(Debug)]
pub(crate) struct Layers<O> {
    inner: Mutex<Inner<O>>,
    /// A check against the other layers of the command this component is
    /// part of, run after the builder's own on every change.
    across: OnceLock<AcrossCheck<O>>,
}

struct AcrossCheck<O>(Across<O>);

impl<O> fmt::Debug for AcrossCheck<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcrossCheck")
    }
}

/// A check of a component's options against another component's options
/// in force, which it reads without a lock (so that two components
/// checking each other cannot wait for each other).
pub(crate) type Across<O> = Box<dyn Fn(&O) -> Result<(), ConfigError> + Send + Sync>;

#[derive(Debug)]
struct Inner<O> {
    built: O,
    layers: BTreeMap<&'static str, Values>,
}

/// How a component reads one property's value into its options: `Err`
/// says why the text is no value of the property's type.
pub(crate) type Set<O> = fn(&mut O, &'static str, &str) -> Result<(), String>;

impl<O: Clone> Layers<O> {
    pub(crate) fn new(built: O) -> Self {
        Layers {
            inner: Mutex::new(Inner {
                built,
                layers: BTreeMap::new(),
            }),
            across: OnceLock::new(),
        }
    }

    /// Makes every later change pass `check` too (once; a second is
    /// ignored): the command's checks across its layers, run again live.
    pub(crate) fn check_across(&self, check: Across<O>) {
        let _ = self.across.set(AcrossCheck(check));
    }

    /// Sets (or clears, with `None`) what `layer` says of each property, and
    /// works out the options that follows: every property's highest layer
    /// read over the built options, then `validate` (the builder's own
    /// checks). On success, `commit` gets the old and new options, still
    /// under the lock so that changes land in the order they were made;
    /// with `dry`, nothing is kept. On error nothing changes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn change(
        &self,
        component: &str,
        layer: Layer,
        changes: &[(&'static str, Option<&str>)],
        dry: bool,
        set: Set<O>,
        validate: impl Fn(&O) -> Result<(), ConfigError>,
        commit: impl FnOnce(&O, &O),
    ) -> Result<(), ConfigError> {
        // `commit` may change a breaker's state, whose listeners may change
        // options again: they are told once the lock is let go.
        let result = crate::internal::notify::outside_locks(|| {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let mut layers = inner.layers.clone();
            for &(property, value) in changes {
                let values = layers.entry(property).or_default();
                values[layer as usize] = value.map(str::to_owned);
                if values.iter().all(Option::is_none) {
                    layers.remove(property);
                }
            }
            let options = Self::read(&inner.built, &layers, Layer::Handle, set, component)?;
            let check = |options: &O| {
                validate(options)?;
                match self.across.get() {
                    Some(AcrossCheck(across)) => across(options),
                    None => Ok(()),
                }
            };
            check(&options)?;
            // A value a higher layer hides is checked as if it were in
            // force: accepted now, it would be refused only when the layer
            // above is cleared, and that clear would then be refused.
            let hidden = changes.iter().any(|&(property, value)| {
                value.is_some()
                    && layers.get(property).is_some_and(|values| {
                        values[layer as usize + 1..].iter().any(Option::is_some)
                    })
            });
            if hidden {
                check(&Self::read(&inner.built, &layers, layer, set, component)?)?;
            }
            if !dry {
                commit(&Self::in_force(&inner, set, component), &options);
                inner.layers = layers;
            }
            Ok(())
        });
        // A handle's override that cannot be dropped (what is left under it
        // breaks a rule) stays; the clear methods return nothing, so say so.
        if let Err(error) = &result {
            if layer == Layer::Handle && changes.iter().all(|(_, value)| value.is_none()) {
                crate::config::rejected(
                    Layer::Handle,
                    component,
                    error,
                    "a handle's override was not dropped: the value under it breaks a rule; \
                     the override stays",
                );
            }
        }
        result
    }

    /// Runs `f` with the options in force, under the lock a change takes
    /// (so none lands meanwhile); what `f` tells, such as a breaker's state
    /// change, is told once the lock is let go.
    pub(crate) fn with_in_force<R>(
        &self,
        set: Set<O>,
        component: &str,
        f: impl FnOnce(&O) -> R,
    ) -> R {
        crate::internal::notify::outside_locks(|| {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&Self::in_force(&inner, set, component))
        })
    }

    fn in_force(inner: &Inner<O>, set: Set<O>, component: &str) -> O {
        // Each value kept was checked when it was set.
        Self::read(&inner.built, &inner.layers, Layer::Handle, set, component)
            .unwrap_or_else(|_| inner.built.clone())
    }

    /// The options `layers` make of `built`, each property's value from the
    /// highest layer up to `top` that has one; an error names every value
    /// that `set` refuses.
    fn read(
        built: &O,
        layers: &BTreeMap<&'static str, Values>,
        top: Layer,
        set: Set<O>,
        component: &str,
    ) -> Result<O, ConfigError> {
        let mut options = built.clone();
        let mut v = Validator::new(component.to_owned());
        for (name, values) in layers {
            if let Some(text) = values[..=top as usize].iter().rev().flatten().next() {
                if let Err(why) = set(&mut options, name, text) {
                    v.check(false, name, || why);
                }
            }
        }
        v.finish().map(|()| options)
    }

    /// The properties `layer` sets.
    pub(crate) fn set_by(&self, layer: Layer) -> Vec<&'static str> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .layers
            .iter()
            .filter(|(_, values)| values[layer as usize].is_some())
            .map(|(name, _)| *name)
            .collect()
    }
}
