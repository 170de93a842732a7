//! The scheduler planner: a node for each pending task, or the reason there is none.
//!
//! Pure. Each node goes through the [`filters`] in order (availability, constraints,
//! runtime, resources, host ports, max replicas per node); among those that pass, spread
//! preferences first (Swarm's: balance the service over the values of a node attribute, one
//! preference inside the other), then the node with the fewest live tasks of the same
//! service, then the fewest live tasks overall, then the lowest ID. When none passes, the
//! task stays pending with the count of nodes each filter turned away
//! (`no suitable node (2 nodes lack memory, 1 node has no container engine)`).

mod filters;
mod load;

use filters::{explain, Need, Rejection};
use load::Load;
use shoal_api::service::spread_key;
use shoal_api::{ClusterState, Node, Service, Task, TaskState};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Assign {
        task_id: String,
        node_id: String,
    },
    /// Stays pending; the reason is shown in `service ps`.
    Pending {
        task_id: String,
        reason: String,
    },
}

/// Decide for every unassigned task (state NEW or PENDING, wanted running) in `state`.
pub fn schedule(state: &ClusterState) -> Vec<Decision> {
    let nodes: Vec<&Node> = state.nodes.values().collect();
    let mut load = Load::new(state);
    let mut out = Vec::new();
    for task in state.tasks.values().filter(|t| needs_node(t)) {
        let Some(service) = state.services.get(&task.service_id) else {
            continue;
        };
        match place(service, task, &nodes, &load) {
            Ok(node) => {
                load.add(task, &node.id);
                out.push(Decision::Assign {
                    task_id: task.id.clone(),
                    node_id: node.id.clone(),
                });
            }
            Err(reason) => out.push(Decision::Pending {
                task_id: task.id.clone(),
                reason,
            }),
        }
    }
    out
}

/// The node for `task`, or why there is none.
fn place<'n>(
    service: &Service,
    task: &Task,
    nodes: &[&'n Node],
    load: &Load,
) -> Result<&'n Node, String> {
    // A global task is made for one node: it goes there if that node passes.
    let candidates = nodes
        .iter()
        .copied()
        .filter(|n| task.node_id.as_ref().is_none_or(|want| *want == n.id));
    let need = Need::of(service, task);
    let mut passed = Vec::new();
    let mut rejected: BTreeMap<Rejection, usize> = BTreeMap::new();
    for node in candidates {
        match need.check(node, load) {
            Ok(()) => passed.push(node),
            Err(why) => *rejected.entry(why).or_default() += 1,
        }
    }
    let prefs: Vec<&str> = service
        .spec
        .task
        .placement_prefs
        .iter()
        .filter_map(|p| spread_key(p).ok())
        .collect();
    pick(passed, &prefs, &service.id, load).ok_or_else(|| match &task.node_id {
        Some(id) if rejected.is_empty() => format!("no suitable node (node {id} left the cluster)"),
        _ => explain(&rejected),
    })
}

/// Swarm's spread: the first preference splits the nodes into groups by the attribute's
/// value (nodes without it form their own group); the group with the fewest tasks of the
/// service wins and the next preference splits it again. Last, the least loaded node.
fn pick<'n>(nodes: Vec<&'n Node>, prefs: &[&str], service: &str, load: &Load) -> Option<&'n Node> {
    let Some((pref, rest)) = prefs.split_first() else {
        return nodes.into_iter().min_by_key(|n| {
            (
                load.of_service(service, &n.id),
                load.total(&n.id),
                n.id.as_str(),
            )
        });
    };
    // Keyed (missing, value): ties go to the lowest value, the unlabelled group last.
    let mut groups: BTreeMap<(bool, &str), Vec<&Node>> = BTreeMap::new();
    for n in nodes {
        let value = node_value(n, pref);
        groups
            .entry((value.is_none(), value.unwrap_or("")))
            .or_default()
            .push(n);
    }
    let group = groups.into_values().min_by_key(|g| {
        g.iter()
            .map(|n| load.of_service(service, &n.id))
            .sum::<usize>()
    })?;
    pick(group, rest, service, load)
}

/// The value a spread key (`node.labels.zone`, `node.id`, `node.hostname`) has on `node`.
fn node_value<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    match key {
        "node.id" => Some(&node.id),
        "node.hostname" => Some(&node.hostname),
        _ => key
            .strip_prefix("node.labels.")
            .and_then(|l| node.labels.get(l))
            .map(String::as_str),
    }
}

fn needs_node(t: &Task) -> bool {
    t.status.state <= TaskState::Pending && t.desired_state == TaskState::Running
}

#[cfg(test)]
mod tests;
