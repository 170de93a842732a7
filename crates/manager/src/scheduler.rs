//! The scheduler planner: a node for each pending task, or the reason there is none.
//!
//! Spread: among nodes that accept tasks and satisfy the constraints, the one with the
//! fewest live tasks of the same service, then the fewest live tasks overall.

use crate::orchestrator::eligible_nodes;
use shoal_api::{ClusterState, Node, Task, TaskState};
use std::collections::HashMap;

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
    // Live task counts per node, overall and per service, updated as we assign.
    let mut total: HashMap<&str, usize> = HashMap::new();
    let mut per_service: HashMap<(&str, &str), usize> = HashMap::new();
    for t in state.tasks.values().filter(|t| t.is_live()) {
        if let Some(n) = t.node_id.as_deref() {
            *total.entry(n).or_default() += 1;
            *per_service.entry((t.service_id.as_str(), n)).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    let pending = state.tasks.values().filter(|t| needs_node(t));
    for task in pending {
        let Some(service) = state.services.get(&task.service_id) else {
            continue;
        };
        let eligible = eligible_nodes(service, &nodes);
        let choice = match task.node_id.as_deref() {
            // Global tasks are made for one node; they go there if it still fits.
            Some(want) => eligible.iter().find(|n| n.id == want).copied(),
            None => eligible.iter().copied().min_by_key(|n| {
                (
                    per_service
                        .get(&(service.id.as_str(), n.id.as_str()))
                        .copied()
                        .unwrap_or(0),
                    total.get(n.id.as_str()).copied().unwrap_or(0),
                    n.id.as_str(),
                )
            }),
        };
        match choice {
            Some(node) => {
                *total.entry(node.id.as_str()).or_default() += 1;
                *per_service
                    .entry((service.id.as_str(), node.id.as_str()))
                    .or_default() += 1;
                out.push(Decision::Assign {
                    task_id: task.id.clone(),
                    node_id: node.id.clone(),
                });
            }
            None => out.push(Decision::Pending {
                task_id: task.id.clone(),
                reason: no_node_reason(nodes.len(), eligible.len()),
            }),
        }
    }
    out
}

fn needs_node(t: &Task) -> bool {
    t.status.state <= TaskState::Pending && t.desired_state == TaskState::Running
}

fn no_node_reason(nodes: usize, eligible: usize) -> String {
    if nodes == 0 {
        "no suitable node (the cluster has no nodes)".into()
    } else {
        format!(
            "no suitable node ({} of {nodes} nodes are unavailable or do not match the placement constraints)",
            nodes - eligible
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{NodeRole, Service, ServiceMode, ServiceSpec, TaskStatus, TaskTemplate};

    fn state(nodes: &[&str], tasks: &[(&str, &str, Option<&str>)]) -> ClusterState {
        let mut s = ClusterState::default();
        for n in nodes {
            let node = Node::new(
                n.to_string(),
                format!("host-{n}"),
                NodeRole::Worker,
                "127.0.0.1".into(),
                0,
            );
            s.nodes.insert(node.id.clone(), node);
        }
        for svc in ["s1", "s2"] {
            s.services.insert(
                svc.into(),
                Service {
                    id: svc.into(),
                    version: 1,
                    spec: ServiceSpec {
                        name: svc.into(),
                        labels: Default::default(),
                        mode: ServiceMode::Replicated { replicas: 1 },
                        task: TaskTemplate::with_command(vec!["true".into()]),
                        ports: vec![],
                    },
                    previous_spec: None,
                    ports: vec![],
                    created_at: 0,
                    updated_at: 0,
                },
            );
        }
        for (i, (id, svc, node)) in tasks.iter().enumerate() {
            let state = if node.is_some() {
                TaskState::Running
            } else {
                TaskState::Pending
            };
            s.tasks.insert(
                id.to_string(),
                Task {
                    id: id.to_string(),
                    service_id: svc.to_string(),
                    service_name: svc.to_string(),
                    slot: i as u64 + 1,
                    node_id: node.map(str::to_string),
                    spec_version: 1,
                    spec: TaskTemplate::default(),
                    ports: vec![],
                    desired_state: TaskState::Running,
                    status: TaskStatus::new(state, 0, ""),
                    endpoint: None,
                    created_at: 0,
                    attempt: 0,
                    pending_reason: None,
                },
            );
        }
        s
    }

    fn assigned(d: &[Decision]) -> Vec<(String, String)> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Assign { task_id, node_id } => Some((task_id.clone(), node_id.clone())),
                Decision::Pending { .. } => None,
            })
            .collect()
    }

    #[test]
    fn spreads_by_service_then_total() {
        // n1 has one task of s1, n2 has two tasks of s2: s1's next task goes to n2? No:
        // fewest of the same service first (n2 has 0 of s1), so n2 wins over n1.
        let s = state(
            &["n1", "n2"],
            &[
                ("a", "s1", Some("n1")),
                ("b", "s2", Some("n2")),
                ("c", "s2", Some("n2")),
                ("new", "s1", None),
            ],
        );
        assert_eq!(assigned(&schedule(&s)), vec![("new".into(), "n2".into())]);
    }

    #[test]
    fn ties_break_on_total_load() {
        let s = state(
            &["n1", "n2"],
            &[("b", "s2", Some("n1")), ("new", "s1", None)],
        );
        assert_eq!(assigned(&schedule(&s)), vec![("new".into(), "n2".into())]);
    }

    #[test]
    fn six_new_tasks_spread_two_per_node() {
        let tasks: Vec<(String, &str, Option<&str>)> =
            (0..6).map(|i| (format!("t{i}"), "s1", None)).collect();
        let refs: Vec<(&str, &str, Option<&str>)> =
            tasks.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
        let s = state(&["n1", "n2", "n3"], &refs);
        let mut per: HashMap<String, usize> = HashMap::new();
        for (_, n) in assigned(&schedule(&s)) {
            *per.entry(n).or_default() += 1;
        }
        assert_eq!(per.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn unplaceable_task_stays_pending_with_reason() {
        let mut s = state(&["n1"], &[("new", "s1", None)]);
        if let Some(svc) = s.services.get_mut("s1") {
            svc.spec.task.constraints = vec!["node.labels.zone==a".into()];
        }
        match schedule(&s).as_slice() {
            [Decision::Pending { reason, .. }] => {
                assert!(reason.contains("1 of 1 nodes"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
