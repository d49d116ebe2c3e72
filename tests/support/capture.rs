//! A `tracing` subscriber that keeps every event from rampart's targets,
//! with its target, level and fields, for tests to read
//! (`tests/tracing_events.rs`, `tests/etcd.rs`). Each test includes this
//! file with `#[path = "support/capture.rs"] mod capture;`.

#![allow(dead_code)] // each test uses part of it

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event as a subscriber saw it; string fields without quotes.
#[derive(Debug, Clone)]
pub struct Captured {
    pub target: String,
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// Asserts the three fields every rampart event has, and its target
    /// and level.
    pub fn assert_common(&self, target: &str, layer: &str, name: &str, level: Level) {
        assert_eq!(self.target, target, "{self:?}");
        assert_eq!(self.get("layer"), Some(layer), "{self:?}");
        assert_eq!(self.get("name"), Some(name), "{self:?}");
        assert_eq!(self.level, level, "{self:?}");
        assert!(self.get("message").is_some(), "{self:?}");
    }
}

/// Every event from rampart's targets, in order.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    /// Starts capturing on this thread (a current-thread runtime's tasks
    /// all run here) until the guard is dropped.
    pub fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let guard = tracing::subscriber::set_default(capture.clone());
        (capture, guard)
    }

    /// The events whose `event` field is `event`.
    pub fn named(&self, event: &str) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.get("event") == Some(event))
            .cloned()
            .collect()
    }

    /// The one event whose `event` field is `event`.
    pub fn one(&self, event: &str) -> Captured {
        let mut found = self.named(event);
        assert_eq!(found.len(), 1, "one {event} event: {found:?}");
        found.remove(0)
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let target = event.metadata().target();
        if !target.starts_with("rampart") {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Captured {
            target: target.to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
