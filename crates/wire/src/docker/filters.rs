//! The `filters` query parameter of Docker's list routes: a JSON object from a key to its
//! values, `{"name":{"web":true}}` (or the older `{"name":["web"]}`). Values of one key are
//! alternatives (any may match), except `label`, where every value must match; different
//! keys must all match.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Filters `GET /services` accepts.
pub const SERVICE_FILTERS: &[&str] = &["id", "name", "label", "mode"];
/// Filters `GET /tasks` accepts (`label` matches the service's labels).
pub const TASK_FILTERS: &[&str] = &[
    "service",
    "node",
    "desired-state",
    "_up-to-date",
    "id",
    "name",
    "label",
];
/// Filters `GET /nodes` accepts.
pub const NODE_FILTERS: &[&str] = &["id", "name", "role", "membership", "label", "node.label"];

/// A `filters` parameter that could not be used; HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filters: {0}")]
    Malformed(String),
    /// A key the resource has no filter for (Docker's words).
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
    #[error("invalid filter '{key}={value}'")]
    BadValue { key: String, value: String },
}

/// Parsed filters: each key with its set of values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    map: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    /// Parse the parameter's (URL-decoded) value; an empty one means no filter.
    pub fn parse(text: &str) -> Result<Filters, FilterError> {
        if text.trim().is_empty() {
            return Ok(Filters::default());
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FilterError::Malformed(format!("not JSON ({e})")))?;
        let Value::Object(obj) = value else {
            return Err(FilterError::Malformed(
                "expected a JSON object of filter names".into(),
            ));
        };
        let mut map = BTreeMap::new();
        for (key, values) in obj {
            let set: BTreeSet<String> = match values {
                // {"name":{"web":true}}; a value mapped to false is not asked for.
                Value::Object(vs) => {
                    let mut set = BTreeSet::new();
                    for (v, on) in vs {
                        match on {
                            Value::Bool(true) => {
                                set.insert(v);
                            }
                            Value::Bool(false) => {}
                            _ => {
                                return Err(FilterError::Malformed(format!(
                                    "filter {key:?}: value {v:?} must map to true"
                                )))
                            }
                        }
                    }
                    set
                }
                // The older {"name":["web"]}.
                Value::Array(vs) => vs
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(FilterError::Malformed(format!(
                            "filter {key:?}: value {other} is not a string"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(FilterError::Malformed(format!(
                        "filter {key:?}: expected an object or a list of values, got {other}"
                    )))
                }
            };
            map.insert(key, set);
        }
        Ok(Filters { map })
    }

    /// Filters from `(key, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Filters {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k.to_string()).or_default().insert(v.to_string());
        }
        Filters { map }
    }

    /// Refuse a key not in `accepted`, naming it.
    pub fn check(&self, accepted: &[&str]) -> Result<(), FilterError> {
        match self.map.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(FilterError::UnknownKey(k.clone())),
            None => Ok(()),
        }
    }

    /// Refuse a value of `key` outside `allowed` (`mode`, `role`, `desired-state`...).
    pub fn check_values(&self, key: &str, allowed: &[&str]) -> Result<(), FilterError> {
        match self
            .values(key)
            .find(|v| !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)))
        {
            Some(v) => Err(FilterError::BadValue {
                key: key.into(),
                value: v.into(),
            }),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The values asked for `key` (none when it is not filtered on).
    pub fn values<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> {
        self.map.get(key).into_iter().flatten().map(String::as_str)
    }

    /// Whether `candidate` equals one of `key`'s values; true when `key` is not filtered.
    pub fn matches_exact(&self, key: &str, candidate: &str) -> bool {
        self.map.get(key).is_none_or(|vs| vs.contains(candidate))
    }

    /// Whether one of `candidates` (an object's ID and name, say) starts with one of `key`'s
    /// values, as `id` and `name` match; true when `key` is not filtered.
    pub fn matches_prefix(&self, key: &str, candidates: &[&str]) -> bool {
        self.map.get(key).is_none_or(|vs| {
            vs.iter()
                .any(|v| candidates.iter().any(|c| c.starts_with(v.as_str())))
        })
    }

    /// Whether `labels` satisfy every `key` value, `k` (present) or `k=v` (equal); true
    /// when `key` is not filtered.
    pub fn matches_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.values(key).all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(f),
        })
    }

    /// Whether `flag` is asked for as `true` or `1` (`_up-to-date`); false when `key` is not
    /// filtered.
    pub fn is_true(&self, key: &str) -> bool {
        self.values(key)
            .any(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }
}
