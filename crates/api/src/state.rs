//! A consistent snapshot of the whole cluster: what planners read and the store holds.

use crate::{Cluster, Node, Service, Task};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Bumped by every committed change; the data plane acknowledges versions.
    pub version: u64,
    /// Set once by `shoal init`.
    pub cluster: Option<Cluster>,
    pub nodes: BTreeMap<String, Node>,
    pub services: BTreeMap<String, Service>,
    pub tasks: BTreeMap<String, Task>,
}

impl ClusterState {
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.id.as_str())
    }

    /// Look a service up by full ID, unique ID prefix, or name (Docker's rules).
    pub fn find_service(&self, key: &str) -> Option<&Service> {
        if let Some(s) = self.services.get(key) {
            return Some(s);
        }
        if let Some(s) = self.services.values().find(|s| s.spec.name == key) {
            return Some(s);
        }
        let mut by_prefix = self.services.values().filter(|s| s.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(s), None) if !key.is_empty() => Some(s),
            _ => None,
        }
    }

    /// Look a node up by ID, unique ID prefix, or hostname.
    pub fn find_node(&self, key: &str) -> Option<&Node> {
        if let Some(n) = self.nodes.get(key) {
            return Some(n);
        }
        if let Some(n) = self.nodes.values().find(|n| n.hostname == key) {
            return Some(n);
        }
        let mut by_prefix = self.nodes.values().filter(|n| n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) if !key.is_empty() => Some(n),
            _ => None,
        }
    }

    /// A task by ID, or by a prefix of its ID only one task has.
    pub fn find_task(&self, key: &str) -> Option<&Task> {
        if let Some(t) = self.tasks.get(key) {
            return Some(t);
        }
        let mut m = self.tasks.values().filter(|t| t.id.starts_with(key));
        match (m.next(), m.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    }

    pub fn tasks_of<'a>(&'a self, service_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks
            .values()
            .filter(move |t| t.service_id == service_id)
    }
}
