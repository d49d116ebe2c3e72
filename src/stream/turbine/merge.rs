//! The merge: every host's latest object for one `(type, name)` folded
//! into one, as Turbine 1.x does. Pure: no IO, the clock passed in.
//!
//! Turbine 1.x keeps each host's previous object and applies the
//! difference when a new one arrives (a delta), so that the aggregate is
//! always the sum of every host's latest values. Here the same sum is
//! computed directly from the latest objects at each frame: the result is
//! the same, a host that leaves is subtracted simply by forgetting its
//! object, and no running sum can drift.
//!
//! How each key is merged:
//!
//! - Numbers (whole or not) are summed over hosts: counts, gauges,
//!   `errorPercentage`, latencies and `propertyValue_*` settings alike
//!   (Turbine 1.x; the dashboard divides what it must by
//!   `reportingHosts`).
//! - Objects (the latency maps `latencyExecute`, `latencyTotal`, and
//!   count maps from a turbine below) are merged key by key, recursively.
//! - Strings, booleans and `null` are counted per value, weighted by the
//!   host's `reportingHosts`: `{"true":1,"false":2}`. A value every host
//!   agrees on is sent plain, in its own JSON type (`false`, `"closed"`),
//!   as Turbine 1.x does, so that the dashboard reads a uniform cluster
//!   as it reads one host. An input value that is already a count map (a
//!   turbine below) is summed per key, so turbines can be tiered.
//! - `reportingHosts` is the sum of the hosts' `reportingHosts` (1 for a
//!   host that does not say).
//! - `currentTime` is the newest of the hosts' (a sum of clock readings
//!   means nothing).
//! - Identity keys ([`IDENTITY`]: `type`, `name`, `group`, `threadPool`,
//!   the isolation strategy, rampart's `balancer`/`endpoint`/`zone`) name
//!   what the object is about rather than measure it: they stay one plain
//!   string, the value most hosts report. The dashboard needs `group` and
//!   `propertyValue_executionIsolationStrategy` to be plain strings.
//!
//! - The forced states ([`FORCED`]: `propertyValue_circuitBreakerForceOpen`
//!   and `…ForceClosed`) are `true` only when every host's is: the Hystrix
//!   dashboard reads any other value as forced for the whole cluster.
//!   Turbine 1.x counts them per value; rampart departs on purpose.
//!
//! A host object `{"type":…,"name":…,"deleteData":"true"}` forgets that
//! host's object; an aggregate whose last host is gone is announced once
//! as deleted.

use crate::stream::hystrix::push_event;
use serde_json::{Map, Number, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Keys kept as one plain value instead of counted per value.
pub(crate) const IDENTITY: &[&str] = &[
    "type",
    "name",
    "group",
    "threadPool",
    "propertyValue_executionIsolationStrategy",
    "propertyValue_executionIsolationThreadPoolKeyOverride",
    "balancer",
    "endpoint",
    "zone",
];

/// Forced states: true for the cluster only when every host says so.
///
/// Turbine 1.x counts these per value like any boolean, but the Hystrix
/// dashboard's template tests them for truth before it looks at
/// `isCircuitBreakerOpen`: one host forced open would show the whole
/// cluster "Forced Open" and hide how many breakers are open. Sent plain,
/// the tile shows "Open 1 Closed 1" from `isCircuitBreakerOpen`, and a
/// cluster forced everywhere still reads forced. rampart departs from
/// Turbine here on purpose.
pub(crate) const FORCED: &[&str] = &[
    "propertyValue_circuitBreakerForceOpen",
    "propertyValue_circuitBreakerForceClosed",
];

const REPORTING_HOSTS: &str = "reportingHosts";
const CURRENT_TIME: &str = "currentTime";
const DELETE_DATA: &str = "deleteData";

/// The most objects one cluster aggregates: a host sending ever new names
/// (a bug upstream) cannot grow the turbine's memory without bound.
pub(crate) const MAX_OBJECTS: usize = 10_000;

/// A host, as the merge knows it: its stream's URL.
pub(crate) type Host = Arc<str>;

/// Why an object from a host was not taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// Not a JSON object.
    NotAnObject,
    /// No string `type` or `name`.
    Unnamed,
    /// A new `(type, name)` beyond [`MAX_OBJECTS`].
    TooMany,
}

impl Skipped {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Skipped::NotAnObject => "not a JSON object",
            Skipped::Unnamed => "no string `type` and `name`",
            Skipped::TooMany => "too many objects in the cluster",
        }
    }
}

/// One cluster's objects: each host's latest, per `(type, name)`.
#[derive(Debug)]
pub(crate) struct Merger {
    /// Ordered, so frames list objects in a stable order.
    entries: BTreeMap<(String, String), Entry>,
    /// Aggregates sent at least once whose last host is gone: announced as
    /// deleted in the next frame.
    gone: Vec<(String, String)>,
    /// A host's object not renewed for this long is forgotten (the host
    /// stopped reporting it without saying so).
    expire_after: Duration,
}

#[derive(Debug, Default)]
struct Entry {
    hosts: BTreeMap<Host, Latest>,
    /// Sent in a frame: its removal must be announced.
    announced: bool,
}

#[derive(Debug)]
struct Latest {
    object: Map<String, Value>,
    at: Instant,
}

impl Merger {
    pub(crate) fn new(expire_after: Duration) -> Self {
        Merger {
            entries: BTreeMap::new(),
            gone: Vec::new(),
            expire_after,
        }
    }

    /// Takes in one object `host` sent at `now`: replaces that host's
    /// previous object of the same `(type, name)`, or forgets it on
    /// `deleteData`.
    pub(crate) fn update(
        &mut self,
        host: &Host,
        object: Value,
        now: Instant,
    ) -> Result<(), Skipped> {
        let Value::Object(object) = object else {
            return Err(Skipped::NotAnObject);
        };
        let (Some(Value::String(kind)), Some(Value::String(name))) =
            (object.get("type"), object.get("name"))
        else {
            return Err(Skipped::Unnamed);
        };
        let key = (kind.clone(), name.clone());
        if is_delete(&object) {
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.hosts.remove(host);
                if entry.hosts.is_empty() {
                    self.forget(key);
                }
            }
            return Ok(());
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_OBJECTS {
            return Err(Skipped::TooMany);
        }
        // Back before its deletion was announced: no need to announce it.
        self.gone.retain(|g| *g != key);
        let entry = self.entries.entry(key).or_default();
        entry.hosts.insert(host.clone(), Latest { object, at: now });
        Ok(())
    }

    /// Forgets everything `host` sent: it went away or stopped answering.
    pub(crate) fn remove_host(&mut self, host: &Host) {
        let mut emptied = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.hosts.remove(host).is_some() && entry.hosts.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.forget(key);
        }
    }

    /// Forgets every host (nobody watches the cluster any more).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.gone.clear();
    }

    fn forget(&mut self, key: (String, String)) {
        if let Some(entry) = self.entries.remove(&key) {
            if entry.announced {
                self.gone.push(key);
            }
        }
    }

    /// How many hosts report at least one object.
    #[cfg(test)]
    pub(crate) fn hosts(&self) -> usize {
        let hosts: BTreeSet<&Host> = self.entries.values().flat_map(|e| e.hosts.keys()).collect();
        hosts.len()
    }

    /// The merged objects now, in `(type, name)` order; objects not renewed
    /// within the expiry are forgotten first.
    pub(crate) fn merged(&mut self, now: Instant) -> Vec<Map<String, Value>> {
        self.expire(now);
        self.entries
            .values_mut()
            .map(|entry| {
                entry.announced = true;
                merge_hosts(entry.hosts.values().map(|l| &l.object))
            })
            .collect()
    }

    /// The next frame: each merged object, and each deletion not yet
    /// announced, as one `data: {json}` event; empty when there is nothing
    /// to say.
    pub(crate) fn frame(&mut self, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        for object in self.merged(now) {
            push_event(&mut out, &Value::Object(object));
        }
        for (kind, name) in self.gone.drain(..) {
            let mut deleted = Map::new();
            deleted.insert("type".into(), Value::String(kind));
            deleted.insert("name".into(), Value::String(name));
            deleted.insert(DELETE_DATA.into(), Value::String("true".into()));
            push_event(&mut out, &Value::Object(deleted));
        }
        out
    }

    fn expire(&mut self, now: Instant) {
        let expire_after = self.expire_after;
        let mut emptied = Vec::new();
        for (key, entry) in &mut self.entries {
            entry
                .hosts
                .retain(|_, latest| now.saturating_duration_since(latest.at) < expire_after);
            if entry.hosts.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.forget(key);
        }
    }
}

fn is_delete(object: &Map<String, Value>) -> bool {
    match object.get(DELETE_DATA) {
        Some(Value::String(s)) => s == "true",
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

/// How many hosts one object speaks for: its `reportingHosts` (an
/// aggregate from a turbine below speaks for several), 1 if it does not
/// say or says something odd.
fn weight(object: &Map<String, Value>) -> u64 {
    object
        .get(REPORTING_HOSTS)
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Folds the hosts' latest objects of one `(type, name)` into one.
pub(crate) fn merge_hosts<'a>(
    objects: impl Iterator<Item = &'a Map<String, Value>>,
) -> Map<String, Value> {
    let objects: Vec<(&Map<String, Value>, u64)> = objects.map(|o| (o, weight(o))).collect();
    let keys: BTreeSet<&String> = objects.iter().flat_map(|(o, _)| o.keys()).collect();
    let mut out = Map::new();
    for key in keys {
        let values: Vec<(&Value, u64)> = objects
            .iter()
            .filter_map(|(o, w)| o.get(key).map(|v| (v, *w)))
            .collect();
        let merged = match key.as_str() {
            DELETE_DATA => continue,
            REPORTING_HOSTS => Value::from(objects.iter().map(|(_, w)| w).sum::<u64>()),
            CURRENT_TIME => newest(&values),
            k if IDENTITY.contains(&k) => most_common(&values),
            k if FORCED.contains(&k) => {
                Value::Bool(values.iter().all(|(v, _)| **v == Value::Bool(true)))
            }
            _ => merge_values(&values),
        };
        out.insert(key.clone(), merged);
    }
    out
}

/// The largest number among `values` (a clock reading), or the first
/// value if none is a number.
fn newest(values: &[(&Value, u64)]) -> Value {
    values
        .iter()
        .filter_map(|(v, _)| v.as_u64())
        .max()
        .map_or_else(|| values[0].0.clone(), Value::from)
}

/// The value the most hosts report, counting each host by its weight;
/// among equals, the first host's (hosts are in a stable order).
fn most_common(values: &[(&Value, u64)]) -> Value {
    let mut tally: Vec<(&Value, u64)> = Vec::new();
    for &(value, weight) in values {
        match tally.iter_mut().find(|(v, _)| *v == value) {
            Some((_, n)) => *n += weight,
            None => tally.push((value, weight)),
        }
    }
    let mut best = tally[0];
    for &candidate in &tally[1..] {
        if candidate.1 > best.1 {
            best = candidate;
        }
    }
    best.0.clone()
}

/// Merges one key's values from every host that sent it: numbers summed,
/// objects merged key by key, anything else counted per value.
pub(crate) fn merge_values(values: &[(&Value, u64)]) -> Value {
    if values.iter().all(|(v, _)| v.is_number()) {
        return sum(values.iter().filter_map(|(v, _)| v.as_number()));
    }
    // Count maps and latency maps merge key by key; a plain value joins
    // them as a count of its own, `{value: weight}`.
    let mut parts: BTreeMap<String, Vec<(Value, u64)>> = BTreeMap::new();
    // The plain values seen, to send one back as it came when every host
    // agrees on it.
    let mut plain: Vec<(String, &Value)> = Vec::new();
    for &(value, weight) in values {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    parts
                        .entry(k.clone())
                        .or_default()
                        .push((v.clone(), weight));
                }
            }
            other => {
                let label = label(other);
                if !plain.iter().any(|(l, _)| *l == label) {
                    plain.push((label.clone(), other));
                }
                parts
                    .entry(label)
                    .or_default()
                    .push((Value::from(weight), weight));
            }
        }
    }
    let mut out = Map::new();
    for (k, vs) in parts {
        let refs: Vec<(&Value, u64)> = vs.iter().map(|(v, w)| (v, *w)).collect();
        out.insert(k, merge_values(&refs));
    }
    if !plain.is_empty() && out.len() == 1 {
        if let Some((_, value)) = plain.iter().find(|(l, _)| out.contains_key(l)) {
            return (*value).clone();
        }
    }
    Value::Object(out)
}

/// How a plain value is named in a count map: a string as itself,
/// anything else as its JSON text (`true`, `null`, `1.5`).
fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The sum of JSON numbers: whole if they all are, else a float. Whole
/// sums are exact (in `i128`) and kept in range of JSON's integers.
fn sum<'a>(numbers: impl Iterator<Item = &'a Number>) -> Value {
    let mut whole: i128 = 0;
    let mut fraction: Option<f64> = None;
    for n in numbers {
        if let Some(i) = n.as_i64() {
            whole += i128::from(i);
        } else if let Some(u) = n.as_u64() {
            whole += i128::from(u);
        } else {
            *fraction.get_or_insert(0.0) += n.as_f64().unwrap_or(0.0);
        }
    }
    if let Some(f) = fraction {
        let total = f + whole as f64;
        // Finite inputs can only overflow to infinity: send the largest
        // finite number rather than an invalid one.
        return Number::from_f64(total)
            .or_else(|| Number::from_f64(f64::MAX.copysign(total)))
            .map_or(Value::from(0), Value::Number);
    }
    if let Ok(i) = i64::try_from(whole) {
        Value::from(i)
    } else if let Ok(u) = u64::try_from(whole) {
        Value::from(u)
    } else if whole > 0 {
        Value::from(u64::MAX)
    } else {
        Value::from(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(name: &str) -> Host {
        Arc::from(name)
    }

    fn command(name: &str, requests: u64, open: bool) -> Value {
        json!({
            "type": "HystrixCommand",
            "name": name,
            "group": "users",
            "currentTime": 1000 + requests,
            "isCircuitBreakerOpen": open,
            "requestCount": requests,
            "errorPercentage": 10,
            "latencyExecute": {"50": 3, "99": 10},
            "latencyExecute_mean": 4,
            "propertyValue_circuitBreakerRequestVolumeThreshold": 20,
            "propertyValue_executionIsolationStrategy": "SEMAPHORE",
            "rampartCircuitState": if open { "forced_open" } else { "closed" },
            "propertyValue_circuitBreakerForceOpen": open,
            "propertyValue_circuitBreakerForceClosed": false,
            "threadPool": "users",
            "reportingHosts": 1
        })
    }

    fn only(merger: &mut Merger, now: Instant) -> Map<String, Value> {
        let mut merged = merger.merged(now);
        assert_eq!(merged.len(), 1, "one aggregate expected: {merged:?}");
        merged.remove(0)
    }

    fn merger() -> Merger {
        Merger::new(Duration::from_secs(30))
    }

    #[test]
    fn one_host_passes_through_unchanged() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        let merged = only(&mut m, now);
        assert_eq!(Value::Object(merged), command("GetUser", 3, false));
    }

    #[test]
    fn numbers_are_summed_including_properties_and_latency_maps() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, false), now)
            .unwrap();
        let merged = only(&mut m, now);
        assert_eq!(merged["requestCount"], json!(8));
        assert_eq!(merged["errorPercentage"], json!(20));
        assert_eq!(merged["latencyExecute"], json!({"50": 6, "99": 20}));
        assert_eq!(merged["latencyExecute_mean"], json!(8));
        assert_eq!(
            merged["propertyValue_circuitBreakerRequestVolumeThreshold"],
            json!(40)
        );
        assert_eq!(merged["reportingHosts"], json!(2));
        // The newest clock reading, not a sum.
        assert_eq!(merged["currentTime"], json!(1005));
    }

    #[test]
    fn a_new_object_replaces_the_hosts_previous_one() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, false), now)
            .unwrap();
        m.update(&host("a"), command("GetUser", 10, false), now)
            .unwrap();
        assert_eq!(only(&mut m, now)["requestCount"], json!(15));
    }

    #[test]
    fn agreeing_hosts_keep_a_plain_value_of_its_own_type() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, false), now)
            .unwrap();
        let merged = only(&mut m, now);
        assert_eq!(merged["isCircuitBreakerOpen"], json!(false));
        assert_eq!(merged["rampartCircuitState"], json!("closed"));
    }

    #[test]
    fn differing_strings_and_booleans_are_counted_per_value() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, true), now)
            .unwrap();
        m.update(&host("c"), command("GetUser", 1, false), now)
            .unwrap();
        let merged = only(&mut m, now);
        assert_eq!(
            merged["isCircuitBreakerOpen"],
            json!({"true": 1, "false": 2})
        );
        assert_eq!(
            merged["rampartCircuitState"],
            json!({"closed": 2, "forced_open": 1})
        );
        // Forced on one host of three: not forced for the cluster.
        assert_eq!(
            merged["propertyValue_circuitBreakerForceOpen"],
            json!(false)
        );
    }

    #[test]
    fn a_cluster_is_forced_only_when_every_host_is() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, true), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, true), now)
            .unwrap();
        let merged = only(&mut m, now);
        assert_eq!(merged["propertyValue_circuitBreakerForceOpen"], json!(true));
        assert_eq!(
            merged["propertyValue_circuitBreakerForceClosed"],
            json!(false)
        );
    }

    #[test]
    fn identity_keys_stay_plain_strings() {
        let now = Instant::now();
        let mut m = merger();
        let mut odd = command("GetUser", 5, false);
        odd["group"] = json!("other");
        odd["propertyValue_executionIsolationStrategy"] = json!("THREAD");
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), odd, now).unwrap();
        m.update(&host("c"), command("GetUser", 1, false), now)
            .unwrap();
        let merged = only(&mut m, now);
        assert_eq!(merged["type"], json!("HystrixCommand"));
        assert_eq!(merged["name"], json!("GetUser"));
        // The value most hosts report.
        assert_eq!(merged["group"], json!("users"));
        assert_eq!(
            merged["propertyValue_executionIsolationStrategy"],
            json!("SEMAPHORE")
        );
        assert_eq!(merged["threadPool"], json!("users"));
    }

    #[test]
    fn a_host_that_leaves_is_subtracted() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, true), now)
            .unwrap();
        assert_eq!(m.hosts(), 2);
        m.remove_host(&host("b"));
        let merged = only(&mut m, now);
        assert_eq!(merged["requestCount"], json!(3));
        assert_eq!(merged["reportingHosts"], json!(1));
        assert_eq!(merged["isCircuitBreakerOpen"], json!(false));
        assert_eq!(m.hosts(), 1);
    }

    #[test]
    fn delete_data_forgets_the_hosts_object_and_the_last_one_is_announced() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("b"), command("GetUser", 5, false), now)
            .unwrap();
        assert!(!m.frame(now).is_empty());
        let delete = json!({"type": "HystrixCommand", "name": "GetUser", "deleteData": "true"});
        m.update(&host("b"), delete.clone(), now).unwrap();
        assert_eq!(only(&mut m, now)["requestCount"], json!(3));
        m.update(&host("a"), delete, now).unwrap();
        let frame = String::from_utf8(m.frame(now)).unwrap();
        let event = frame
            .strip_prefix("data: ")
            .and_then(|f| f.strip_suffix("\n\n"));
        assert_eq!(
            serde_json::from_str::<Value>(event.unwrap()).unwrap(),
            json!({"type": "HystrixCommand", "name": "GetUser", "deleteData": "true"})
        );
        // Said once.
        assert!(m.frame(now).is_empty());
    }

    #[test]
    fn an_aggregate_never_sent_is_not_announced_as_deleted() {
        let now = Instant::now();
        let mut m = merger();
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.remove_host(&host("a"));
        assert!(m.frame(now).is_empty());
    }

    #[test]
    fn objects_not_renewed_expire() {
        let start = Instant::now();
        let mut m = Merger::new(Duration::from_secs(10));
        m.update(&host("a"), command("GetUser", 3, false), start)
            .unwrap();
        m.update(
            &host("b"),
            command("GetUser", 5, false),
            start + Duration::from_secs(8),
        )
        .unwrap();
        let merged = only(&mut m, start + Duration::from_secs(9));
        assert_eq!(merged["requestCount"], json!(8));
        let merged = only(&mut m, start + Duration::from_secs(11));
        assert_eq!(merged["requestCount"], json!(5));
        assert!(m.merged(start + Duration::from_secs(20)).is_empty());
    }

    #[test]
    fn tiers_sum_counts_and_weigh_plain_values_by_reporting_hosts() {
        let now = Instant::now();
        // Turbine A: two hosts, both closed (so a plain `false`); turbine
        // B: two hosts, one open (a count map).
        let mut lower_a = merger();
        lower_a
            .update(&host("a1"), command("GetUser", 1, false), now)
            .unwrap();
        lower_a
            .update(&host("a2"), command("GetUser", 2, false), now)
            .unwrap();
        let mut lower_b = merger();
        lower_b
            .update(&host("b1"), command("GetUser", 3, true), now)
            .unwrap();
        lower_b
            .update(&host("b2"), command("GetUser", 4, false), now)
            .unwrap();
        let mut upper = merger();
        upper
            .update(&host("A"), Value::Object(only(&mut lower_a, now)), now)
            .unwrap();
        upper
            .update(&host("B"), Value::Object(only(&mut lower_b, now)), now)
            .unwrap();
        let merged = only(&mut upper, now);
        assert_eq!(merged["reportingHosts"], json!(4));
        assert_eq!(merged["requestCount"], json!(10));
        assert_eq!(
            merged["isCircuitBreakerOpen"],
            json!({"true": 1, "false": 3})
        );
        assert_eq!(merged["latencyExecute"], json!({"50": 12, "99": 40}));
        assert_eq!(merged["group"], json!("users"));
    }

    #[test]
    fn malformed_objects_are_skipped() {
        let now = Instant::now();
        let mut m = merger();
        let a = host("a");
        assert_eq!(m.update(&a, json!([1, 2]), now), Err(Skipped::NotAnObject));
        assert_eq!(
            m.update(&a, json!({"name": "x"}), now),
            Err(Skipped::Unnamed)
        );
        assert_eq!(
            m.update(&a, json!({"type": 1, "name": "x"}), now),
            Err(Skipped::Unnamed)
        );
        assert!(m.merged(now).is_empty());
    }

    #[test]
    fn odd_values_never_panic() {
        let now = Instant::now();
        let mut m = merger();
        let mut a = command("GetUser", 3, false);
        a["requestCount"] = json!("lots");
        a["latencyExecute"] = json!(7);
        a["weird"] = json!([1, {"x": null}]);
        a["reportingHosts"] = json!(-3);
        a["big"] = json!(u64::MAX);
        a["half"] = json!(0.5);
        let mut b = command("GetUser", 5, false);
        b["weird"] = json!(null);
        b["big"] = json!(u64::MAX);
        b["half"] = json!(1);
        m.update(&host("a"), a, now).unwrap();
        m.update(&host("b"), b, now).unwrap();
        let merged = only(&mut m, now);
        assert_eq!(merged["requestCount"], json!({"lots": 1, "5": 1}));
        assert_eq!(merged["latencyExecute"], json!({"7": 1, "50": 3, "99": 10}));
        assert_eq!(merged["reportingHosts"], json!(2));
        assert_eq!(merged["big"], json!(u64::MAX));
        assert_eq!(merged["half"], json!(1.5));
        assert!(merged["weird"].is_object());
    }

    #[test]
    fn the_number_of_objects_is_bounded() {
        let now = Instant::now();
        let mut m = merger();
        let a = host("a");
        for i in 0..MAX_OBJECTS {
            m.update(&a, command(&format!("c{i}"), 1, false), now)
                .unwrap();
        }
        assert_eq!(
            m.update(&a, command("one-too-many", 1, false), now),
            Err(Skipped::TooMany)
        );
        // A known one is still renewed.
        m.update(&a, command("c0", 2, false), now).unwrap();
    }

    #[test]
    fn frames_are_data_events() {
        let now = Instant::now();
        let mut m = merger();
        assert!(m.frame(now).is_empty());
        m.update(&host("a"), command("GetUser", 3, false), now)
            .unwrap();
        m.update(&host("a"), command("GetOrder", 3, false), now)
            .unwrap();
        let frame = String::from_utf8(m.frame(now)).unwrap();
        let events: Vec<&str> = frame.split_terminator("\n\n").collect();
        assert_eq!(events.len(), 2);
        for event in events {
            let json = event.strip_prefix("data: ").unwrap();
            let value: Value = serde_json::from_str(json).unwrap();
            assert_eq!(value["type"], json!("HystrixCommand"));
        }
    }
}
