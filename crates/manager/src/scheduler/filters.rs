//! The scheduler's filters: whether a node can take a task, and if not, why. They run in
//! this order and a node is counted by the first that rejects it, so the explanation of a
//! pending task adds up to the nodes there are:
//!
//! 1. availability: the node is ready and active (not down, paused or drained);
//! 2. constraints: it satisfies the service's placement constraints;
//! 3. runtime: it runs the task's runtime (a container task needs a container engine);
//! 4. resources: a CPU limit not above its CPUs, and room for the task's CPU and memory
//!    reservations next to those of the live tasks it has;
//! 5. host ports: no live task on it binds one of the task's host-mode ports;
//! 6. max replicas: it runs fewer live tasks of the service than `max_replicas_per_node`.

use super::load::{host_ports, Load};
use shoal_api::resources::format_cpus;
use shoal_api::{Constraint, Node, PortConfig, Resources, RuntimeKind, Service, Task};
use std::collections::BTreeMap;

/// Why a node cannot take a task: the first filter it fails.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    Unavailable,
    Constraints,
    NoContainerEngine,
    /// The task's CPU limit (nano CPUs) is above the node's CPUs.
    CpuLimit(u64),
    Cpu,
    Memory,
    /// The task's host-mode ports, as `8080/tcp, 53/udp`.
    HostPorts(String),
    /// The service's `max_replicas_per_node`.
    MaxReplicas(u64),
}

impl Rejection {
    /// What `n` nodes rejected this way have in common: `2 nodes lack memory`.
    fn phrase(&self, n: usize) -> String {
        let one = n == 1;
        let pick = |singular: &str, plural: &str| if one { singular } else { plural }.to_string();
        let what = match self {
            Rejection::Unavailable => pick(
                "is not available for new tasks",
                "are not available for new tasks",
            ),
            Rejection::Constraints => pick(
                "does not satisfy the placement constraints",
                "do not satisfy the placement constraints",
            ),
            Rejection::NoContainerEngine => {
                pick("has no container engine", "have no container engine")
            }
            Rejection::CpuLimit(limit) => format!(
                "{} fewer CPUs than the limit of {}",
                pick("has", "have"),
                format_cpus(*limit)
            ),
            Rejection::Cpu => pick("lacks CPU", "lack CPU"),
            Rejection::Memory => pick("lacks memory", "lack memory"),
            Rejection::HostPorts(ports) => {
                format!(
                    "{} host-mode port {ports} already in use",
                    pick("has", "have")
                )
            }
            Rejection::MaxReplicas(max) => format!(
                "already {} the maximum of {max} {} of the service",
                pick("runs", "run"),
                if *max == 1 { "task" } else { "tasks" }
            ),
        };
        format!("{n} {} {what}", if one { "node" } else { "nodes" })
    }
}

/// The pending reason for a task no node took, from how many nodes each filter rejected,
/// most first as in Swarm (ties in filter order):
/// `no suitable node (2 nodes lack memory, 1 node has no container engine)`.
pub fn explain(rejected: &BTreeMap<Rejection, usize>) -> String {
    if rejected.is_empty() {
        return "no suitable node (the cluster has no nodes)".into();
    }
    let mut counts: Vec<(&Rejection, usize)> = rejected.iter().map(|(r, n)| (r, *n)).collect();
    counts.sort_by_key(|(r, n)| (std::cmp::Reverse(*n), *r));
    let parts: Vec<String> = counts.iter().map(|(r, n)| r.phrase(*n)).collect();
    format!("no suitable node ({})", parts.join(", "))
}

/// What a task asks of its node.
#[derive(Debug)]
pub struct Need<'t> {
    service_id: &'t str,
    constraints: Vec<Constraint>,
    runtime: RuntimeKind,
    resources: &'t Resources,
    ports: &'t [PortConfig],
    /// 0: no maximum.
    max_per_node: u64,
}

impl<'t> Need<'t> {
    /// The service gives the placement rules; the task what it runs and reserves (its own
    /// template, which is the one it will run).
    pub fn of(service: &'t Service, task: &'t Task) -> Need<'t> {
        let t = &service.spec.task;
        Need {
            service_id: &service.id,
            // Validated when the spec was accepted; one that no longer parses is ignored.
            constraints: t
                .constraints
                .iter()
                .filter_map(|c| Constraint::parse(c).ok())
                .collect(),
            runtime: task.spec.runtime.kind(),
            resources: &task.spec.resources,
            ports: &task.ports,
            // A global task is made for its node: the maximum is the replicated services'.
            max_per_node: if task.node_id.is_some() {
                0
            } else {
                t.max_replicas_per_node
            },
        }
    }

    /// Run the filters over `node`; the first that fails says why it cannot take the task.
    pub fn check(&self, node: &Node, load: &Load) -> Result<(), Rejection> {
        if !node.accepts_tasks() {
            return Err(Rejection::Unavailable);
        }
        if !self.constraints.iter().all(|c| c.matches(node)) {
            return Err(Rejection::Constraints);
        }
        if !node.description.runs(self.runtime) {
            return Err(Rejection::NoContainerEngine);
        }
        self.fits(node, load)?;
        if load.host_port_taken(&node.id, self.ports) {
            let ports: Vec<String> = host_ports(self.ports)
                .map(|(p, proto)| format!("{p}/{}", proto.as_str()))
                .collect();
            return Err(Rejection::HostPorts(ports.join(", ")));
        }
        let max = self.max_per_node;
        if max > 0 && load.of_service(self.service_id, &node.id) as u64 >= max {
            return Err(Rejection::MaxReplicas(max));
        }
        Ok(())
    }

    /// Resources: the CPU limit is within the node's CPUs (it could never run there
    /// otherwise), and the reservations fit next to what its live tasks reserve.
    fn fits(&self, node: &Node, load: &Load) -> Result<(), Rejection> {
        let have = &node.description;
        let (limits, want) = (&self.resources.limits, &self.resources.reservations);
        if limits.nano_cpus > have.nano_cpus {
            return Err(Rejection::CpuLimit(limits.nano_cpus));
        }
        let used = load.reserved(&node.id);
        if want.nano_cpus > 0 && used.nano_cpus.saturating_add(want.nano_cpus) > have.nano_cpus {
            return Err(Rejection::Cpu);
        }
        if want.memory_bytes > 0
            && used.memory_bytes.saturating_add(want.memory_bytes) > have.memory_bytes
        {
            return Err(Rejection::Memory);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanation_table() {
        use Rejection::*;
        // (nodes rejected per filter, the pending reason)
        let cases: Vec<(Vec<(Rejection, usize)>, &str)> = vec![
            (vec![], "no suitable node (the cluster has no nodes)"),
            (
                vec![(Unavailable, 1)],
                "no suitable node (1 node is not available for new tasks)",
            ),
            (
                vec![(Unavailable, 3)],
                "no suitable node (3 nodes are not available for new tasks)",
            ),
            (
                vec![(Constraints, 2)],
                "no suitable node (2 nodes do not satisfy the placement constraints)",
            ),
            (
                vec![(NoContainerEngine, 1), (Memory, 2)],
                "no suitable node (2 nodes lack memory, 1 node has no container engine)",
            ),
            (
                vec![(Cpu, 1), (Memory, 1), (Unavailable, 1)],
                "no suitable node (1 node is not available for new tasks, 1 node lacks CPU, 1 node lacks memory)",
            ),
            (
                vec![(CpuLimit(1_500_000_000), 2)],
                "no suitable node (2 nodes have fewer CPUs than the limit of 1.5)",
            ),
            (
                vec![(CpuLimit(8_000_000_000), 1)],
                "no suitable node (1 node has fewer CPUs than the limit of 8)",
            ),
            (
                vec![(HostPorts("8080/tcp, 53/udp".into()), 1)],
                "no suitable node (1 node has host-mode port 8080/tcp, 53/udp already in use)",
            ),
            (
                vec![(MaxReplicas(1), 2), (Cpu, 3)],
                "no suitable node (3 nodes lack CPU, 2 nodes already run the maximum of 1 task of the service)",
            ),
            (
                vec![(MaxReplicas(3), 1)],
                "no suitable node (1 node already runs the maximum of 3 tasks of the service)",
            ),
        ];
        for (counts, want) in cases {
            let rejected: BTreeMap<Rejection, usize> = counts.into_iter().collect();
            assert_eq!(explain(&rejected), want);
        }
    }
}
