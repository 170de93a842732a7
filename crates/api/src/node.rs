//! Cluster members.

use crate::NodeDescription;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Manager,
    Worker,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        }
    }
}

impl std::str::FromStr for NodeRole {
    type Err = String;

    fn from_str(s: &str) -> Result<NodeRole, String> {
        match s {
            "manager" => Ok(NodeRole::Manager),
            "worker" => Ok(NodeRole::Worker),
            other => Err(format!(
                "invalid role {other:?}: expected manager or worker"
            )),
        }
    }
}

/// `active` takes tasks; `pause` keeps its tasks but takes no new ones; `drain` moves them off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Down => "down",
            NodeState::Ready => "ready",
            NodeState::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub role: NodeRole,
    pub availability: Availability,
    pub state: NodeState,
    /// Address other nodes and the local data plane use to reach this node's tasks.
    pub addr: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The shoal version that created the record (the field keeps its first name so
    /// replicas of every version read it); the container engine's is in `description`.
    pub engine_version: String,
    /// What the node reports about itself (capacity, runtimes, engine).
    #[serde(default)]
    pub description: NodeDescription,
    pub created_at: u64,
    pub updated_at: u64,
    /// Managers: the control address (`ip:port`) other managers and agents reach it at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_addr: Option<String>,
    /// Managers, in API answers only (never stored): Leader, Reachable or Unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<String>,
}

impl Node {
    pub fn new(id: String, hostname: String, role: NodeRole, addr: String, now: u64) -> Node {
        Node {
            id,
            hostname,
            role,
            availability: Availability::Active,
            state: NodeState::Ready,
            addr,
            labels: BTreeMap::new(),
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            description: NodeDescription::default(),
            created_at: now,
            updated_at: now,
            control_addr: None,
            manager_status: None,
        }
    }

    /// May receive new tasks.
    pub fn accepts_tasks(&self) -> bool {
        self.state == NodeState::Ready && self.availability == Availability::Active
    }
}

/// Longest hostname kept (DNS's limit).
pub const MAX_HOSTNAME: usize = 253;

/// A hostname a node reports, made safe to store and print: letters, digits, '-', '.' and
/// '_' are kept, anything else (control characters and escape sequences included) becomes
/// '_', and it is cut at [`MAX_HOSTNAME`] characters. Empty stays empty.
pub fn clean_hostname(reported: &str) -> String {
    reported
        .chars()
        .take(MAX_HOSTNAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod hostname_tests {
    use super::*;

    #[test]
    fn escape_sequences_in_hostnames_are_neutralised() {
        assert_eq!(clean_hostname("web-1.example"), "web-1.example");
        assert_eq!(clean_hostname("\u{1b}[31mred\u{7}"), "__31mred_");
        assert_eq!(clean_hostname(&"a".repeat(400)).len(), MAX_HOSTNAME);
        assert_eq!(clean_hostname(""), "");
    }
}
