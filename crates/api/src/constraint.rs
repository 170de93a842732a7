//! Placement constraints: `node.hostname==web1`, `node.role!=manager`, `node.labels.zone==a`.

use crate::{Node, SpecError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub key: String,
    pub equal: bool,
    pub value: String,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, SpecError> {
        let bad = |reason: &str| SpecError::invalid("constraint", text, reason);
        let (key, equal, value) = if let Some((k, v)) = text.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = text.split_once("==") {
            (k, true, v)
        } else {
            return Err(bad("expected KEY==VALUE or KEY!=VALUE"));
        };
        let key = key.trim();
        let value = value.trim();
        let known = matches!(
            key,
            "node.id" | "node.hostname" | "node.role" | "node.platform.os"
        ) || key
            .strip_prefix("node.labels.")
            .is_some_and(|l| !l.is_empty());
        if !known {
            return Err(bad(
                "unknown key (use node.id, node.hostname, node.role or node.labels.NAME)",
            ));
        }
        if value.is_empty() {
            return Err(bad("missing value"));
        }
        if key == "node.role" && !matches!(value, "manager" | "worker") {
            return Err(bad("node.role is manager or worker"));
        }
        Ok(Constraint {
            key: key.to_string(),
            equal,
            value: value.to_string(),
        })
    }

    /// Does `node` satisfy this constraint? Missing labels never equal anything.
    pub fn matches(&self, node: &Node) -> bool {
        let actual: Option<String> = match self.key.as_str() {
            "node.id" => Some(node.id.clone()),
            "node.hostname" => Some(node.hostname.clone()),
            "node.role" => Some(node.role.as_str().to_string()),
            "node.platform.os" => Some("linux".to_string()),
            key => key
                .strip_prefix("node.labels.")
                .and_then(|l| node.labels.get(l).cloned()),
        };
        let eq = actual.is_some_and(|a| a == self.value);
        eq == self.equal
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{}{}{}", self.key, op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeRole;

    #[test]
    fn matches_node_fields_and_labels() {
        let mut node = Node::new(
            "n1".into(),
            "host-a".into(),
            NodeRole::Manager,
            "127.0.0.1".into(),
            0,
        );
        node.labels.insert("zone".into(), "a".into());
        let table = [
            ("node.hostname==host-a", true),
            ("node.hostname!=host-a", false),
            ("node.role==manager", true),
            ("node.role!=worker", true),
            ("node.labels.zone==a", true),
            ("node.labels.zone==b", false),
            ("node.labels.rack==1", false),
            ("node.labels.rack!=1", true),
            ("node.id==n1", true),
        ];
        for (text, want) in table {
            assert_eq!(
                Constraint::parse(text).unwrap().matches(&node),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_typos() {
        for text in [
            "node.hostnme==a",
            "node.role=manager",
            "node.role==boss",
            "node.labels.==a",
            "node.id==",
        ] {
            assert!(Constraint::parse(text).is_err(), "{text}");
        }
    }
}
