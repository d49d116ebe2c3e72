//! An instance as registered in etcd: its key and its JSON value.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The default prefix under which services register:
/// `/services/<service>/<instance id>`.
pub const DEFAULT_PREFIX: &str = "/services";

/// An instance's status, Eureka's `InstanceStatus`: only [`Up`](Status::Up)
/// instances receive traffic.
///
/// Written in etcd as Eureka spells it: `"UP"`, `"DOWN"`, `"STARTING"`,
/// `"OUT_OF_SERVICE"`, `"UNKNOWN"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Ready to receive traffic.
    #[default]
    Up,
    /// Running but failing its own health checks: no traffic.
    Down,
    /// Starting up (warming caches, say): no traffic yet.
    Starting,
    /// Taken out of rotation on purpose by an operator: no traffic.
    OutOfService,
    /// Not known: no traffic.
    Unknown,
}

impl Status {
    /// The name written in etcd, e.g. `"OUT_OF_SERVICE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
            Status::Starting => "STARTING",
            Status::OutOfService => "OUT_OF_SERVICE",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered instance of a service, as read from etcd.
///
/// The key `<prefix>/<service>/<id>` names it; the value is this struct as
/// JSON, without the id:
///
/// ```json
/// {"address":"10.0.0.7:8080","status":"UP","zone":"eu-west-1a","metadata":{"version":"1.4.2"}}
/// ```
///
/// `zone` and `metadata` may be left out. As a balancer key (see
/// [`Discovery::endpoints`](super::Discovery::endpoints)) an instance is
/// compared whole: a change of address, zone or metadata replaces its
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    /// The instance's id: the last segment of its key.
    #[serde(skip)]
    pub id: String,
    /// Where to reach it, e.g. `10.0.0.7:8080` or a URL: whatever the
    /// endpoint factory understands.
    pub address: String,
    /// Its status; only `UP` instances are offered to a balancer.
    pub status: Status,
    /// Its availability zone, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Free-form metadata (Eureka's `metadata`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Instance {
    /// Decodes the value at `key` under `dir` (`<prefix>/<service>/`).
    pub(crate) fn decode(dir: &str, key: &[u8], value: &[u8]) -> Result<Instance, String> {
        let id = id_of(dir, key)?;
        let mut instance: Instance =
            serde_json::from_slice(value).map_err(|e| format!("value is not an instance: {e}"))?;
        instance.id = id.to_owned();
        Ok(instance)
    }

    pub(crate) fn encode(&self) -> String {
        // Serialising a struct of strings and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The instance id in `key`, which must be `dir` and one more segment.
pub(crate) fn id_of<'k>(dir: &str, key: &'k [u8]) -> Result<&'k str, String> {
    let key = std::str::from_utf8(key).map_err(|_| "key is not UTF-8".to_owned())?;
    match key.strip_prefix(dir) {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id),
        _ => Err(format!("key {key:?} is not {dir}<id>")),
    }
}
