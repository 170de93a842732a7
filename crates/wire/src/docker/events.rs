//! `GET /events`, what `docker events` reads: one JSON message per line, each a change to
//! a cluster object (`Type` `service`, `node`...; `Action` `create`, `update` or `remove`;
//! `scope` `swarm`), and the `since`, `until` and `filters` parameters that choose them, as
//! the Docker Engine reads them.

use super::filters::{FilterError, Filters};
use super::DockerError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Filters `GET /events` accepts (Docker's keys; those of objects shoal has no events for
/// match nothing, as they match no event of another type in Docker).
pub const EVENT_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "task",
    "type",
    "volume",
];

/// One event, as moby's `events.Message` encodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The object's type: `service`, `node`, `network`, `secret`, `config`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `create`, `update` or `remove`.
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// `swarm`: every event shoal sends is about the cluster.
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// The object an event is about: its ID and attributes (`name`, and for an update what
/// changed: `replicas.old`/`replicas.new`, `state.old`/`state.new`...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl EventMessage {
    /// A cluster event at `time_nano`.
    pub fn swarm(
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
        time_nano: i64,
    ) -> EventMessage {
        EventMessage {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "swarm".into(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }

    /// Whether the event passes `filters`, as the Docker Engine decides: `type`, `event`
    /// and `scope` match exactly; an object key (`service`, `node`, `network`...) matches
    /// an event of that type whose ID or name starts with one of its values, and no event
    /// of another type; every `label` must be among the attributes.
    pub fn matches(&self, filters: &Filters) -> bool {
        let name = self.actor.attributes.get("name").map_or("", String::as_str);
        let object_keys = EVENT_FILTERS
            .iter()
            .filter(|k| !matches!(**k, "event" | "label" | "scope" | "type"));
        filters.matches_exact("type", &self.kind)
            && filters.matches_exact("event", &self.action)
            && filters.matches_exact("scope", &self.scope)
            && filters.matches_labels("label", &self.actor.attributes)
            && object_keys.into_iter().all(|key| {
                !filters.contains(key)
                    || (*key == self.kind && filters.matches_prefix(key, &[&self.actor.id, name]))
            })
    }
}

/// The `filters` of `GET /events`, refusing a key Docker does not know.
pub fn event_filters(text: &str) -> Result<Filters, FilterError> {
    let filters = Filters::parse(text)?;
    filters.check(EVENT_FILTERS)?;
    Ok(filters)
}

/// A `since` or `until` parameter as the docker CLI sends it (Unix seconds, with an
/// optional fraction: `1700000000.123456789`), in Unix nanoseconds; `None` when empty.
pub fn event_time(param: &str, text: &str) -> Result<Option<i64>, DockerError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || DockerError::Invalid {
        field: param.into(),
        reason: format!("{text:?} is not a Unix timestamp (seconds[.nanoseconds])"),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) || frac.len() > 9 {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, action: &str, id: &str, name: &str) -> EventMessage {
        let attributes = BTreeMap::from([("name".to_owned(), name.to_owned())]);
        EventMessage::swarm(kind, action, id, attributes, 1_700_000_000_123_456_789)
    }

    #[test]
    fn an_event_encodes_as_moby_does() {
        let json = serde_json::to_value(event("service", "create", "abc", "web")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Type": "service", "Action": "create",
                "Actor": {"ID": "abc", "Attributes": {"name": "web"}},
                "scope": "swarm", "time": 1_700_000_000_i64, "timeNano": 1_700_000_000_123_456_789_i64
            })
        );
    }

    #[test]
    fn filters_match_as_the_docker_engine_does() {
        let web = event("service", "update", "abc123", "web");
        let node = event("node", "update", "n1", "host-1");
        let f = |pairs: &[(&str, &str)]| Filters::from_pairs(pairs.iter().copied());
        assert!(web.matches(&Filters::default()));
        assert!(web.matches(&f(&[("type", "service")])));
        assert!(!node.matches(&f(&[("type", "service")])));
        assert!(web.matches(&f(&[("event", "update"), ("scope", "swarm")])));
        assert!(!web.matches(&f(&[("event", "create")])));
        assert!(!web.matches(&f(&[("scope", "local")])));
        // By ID or name prefix, and only events of that type.
        assert!(web.matches(&f(&[("service", "abc")])));
        assert!(web.matches(&f(&[("service", "web")])));
        assert!(!web.matches(&f(&[("service", "db")])));
        assert!(!node.matches(&f(&[("service", "web")])));
        assert!(node.matches(&f(&[("node", "host")])));
        assert!(!web.matches(&f(&[("container", "x")])));
        // Labels are attributes.
        assert!(web.matches(&f(&[("label", "name=web")])));
        assert!(!web.matches(&f(&[("label", "name=db")])));
    }

    #[test]
    fn unknown_filter_keys_are_refused() {
        assert!(event_filters(r#"{"type":{"service":true}}"#).is_ok());
        let e = event_filters(r#"{"colour":{"red":true}}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'colour'");
    }

    #[test]
    fn times_are_unix_seconds_with_an_optional_fraction() {
        assert_eq!(event_time("since", ""), Ok(None));
        assert_eq!(
            event_time("since", "1700000000"),
            Ok(Some(1_700_000_000_000_000_000))
        );
        assert_eq!(
            event_time("since", "1700000000.5"),
            Ok(Some(1_700_000_000_500_000_000))
        );
        assert_eq!(
            event_time("until", "1700000000.000000001"),
            Ok(Some(1_700_000_000_000_000_001))
        );
        for bad in ["yesterday", "-1", "1.2.3", "1.1234567890", ".5"] {
            let e = event_time("since", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid since: "), "{e}");
        }
    }
}
