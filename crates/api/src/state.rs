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
    #[serde(default)]
    pub networks: BTreeMap<String, crate::Network>,
    #[serde(default)]
    pub secrets: BTreeMap<String, crate::Secret>,
    #[serde(default)]
    pub configs: BTreeMap<String, crate::Config>,
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

    /// A network by ID, name or unique ID prefix.
    pub fn find_network(&self, key: &str) -> Option<&crate::Network> {
        find_named(&self.networks, key, |n| &n.name)
    }

    /// A secret by ID, name or unique ID prefix.
    pub fn find_secret(&self, key: &str) -> Option<&crate::Secret> {
        find_named(&self.secrets, key, |s| &s.name)
    }

    /// A config by ID, name or unique ID prefix.
    pub fn find_config(&self, key: &str) -> Option<&crate::Config> {
        find_named(&self.configs, key, |c| &c.name)
    }

    pub fn tasks_of<'a>(&'a self, service_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks
            .values()
            .filter(move |t| t.service_id == service_id)
    }
}

/// An object by full ID, then by name, then by a prefix of its ID only one object has
/// (Docker's order).
pub fn find_named<'a, T>(
    map: &'a BTreeMap<String, T>,
    key: &str,
    name: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    if let Some(x) = map.get(key) {
        return Some(x);
    }
    if let Some(x) = map.values().find(|x| name(x) == key) {
        return Some(x);
    }
    let mut by_prefix = map
        .iter()
        .filter(|(id, _)| id.starts_with(key))
        .map(|(_, x)| x);
    match (by_prefix.next(), by_prefix.next()) {
        (Some(x), None) if !key.is_empty() => Some(x),
        _ => None,
    }
}
