//! What the nodes already carry, as the scheduler counts it: live tasks per node (overall
//! and per service), the host-mode ports they bind, and the CPU and memory they reserve.
//! Updated as tasks are assigned, so one pass places a batch as if one by one.

use shoal_api::{ClusterState, PortConfig, Protocol, PublishMode, Task, TaskState};
use std::collections::{HashMap, HashSet};

/// CPU and memory set aside on a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

#[derive(Debug, Default)]
pub struct Load<'a> {
    total: HashMap<&'a str, usize>,
    per_service: HashMap<(&'a str, &'a str), usize>,
    /// Host-mode published ports in use per node: two tasks cannot bind the same one.
    host_ports: HashSet<(&'a str, u16, Protocol)>,
    reserved: HashMap<&'a str, Reserved>,
}

impl<'a> Load<'a> {
    pub fn new(state: &'a ClusterState) -> Self {
        let mut load = Load::default();
        for t in state.tasks.values().filter(|t| t.is_live()) {
            let Some(node) = t.node_id.as_deref() else {
                continue;
            };
            load.count(&t.service_id, node);
            // A global task waiting for its node holds nothing there yet (or it would be in
            // its own way).
            if t.status.state >= TaskState::Assigned {
                load.hold(t, node);
            }
        }
        load
    }

    /// `task` was just assigned to `node`.
    pub fn add(&mut self, task: &'a Task, node: &'a str) {
        self.count(&task.service_id, node);
        self.hold(task, node);
    }

    fn count(&mut self, service: &'a str, node: &'a str) {
        *self.total.entry(node).or_default() += 1;
        *self.per_service.entry((service, node)).or_default() += 1;
    }

    fn hold(&mut self, task: &Task, node: &'a str) {
        for (port, proto) in host_ports(&task.ports) {
            self.host_ports.insert((node, port, proto));
        }
        let want = &task.spec.resources.reservations;
        let r = self.reserved.entry(node).or_default();
        r.nano_cpus = r.nano_cpus.saturating_add(want.nano_cpus);
        r.memory_bytes = r.memory_bytes.saturating_add(want.memory_bytes);
    }

    /// One of `ports` (host mode) is already bound on `node`.
    pub fn host_port_taken(&self, node: &str, ports: &[PortConfig]) -> bool {
        host_ports(ports).any(|(port, proto)| self.host_ports.contains(&(node, port, proto)))
    }

    pub fn reserved(&self, node: &str) -> Reserved {
        self.reserved.get(node).copied().unwrap_or_default()
    }

    pub fn of_service(&self, service: &str, node: &str) -> usize {
        self.per_service.get(&(service, node)).copied().unwrap_or(0)
    }

    pub fn total(&self, node: &str) -> usize {
        self.total.get(node).copied().unwrap_or(0)
    }
}

/// The host-mode published ports of a task.
pub fn host_ports(ports: &[PortConfig]) -> impl Iterator<Item = (u16, Protocol)> + '_ {
    ports
        .iter()
        .filter(|p| p.mode == PublishMode::Host)
        .filter_map(|p| Some((p.published?, p.protocol)))
}
