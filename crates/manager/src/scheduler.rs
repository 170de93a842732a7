//! The scheduler planner: a node for each pending task, or the reason there is none.
//!
//! Among nodes that accept tasks, satisfy the constraints and run fewer than the service's
//! `max_replicas_per_node` and have the task's host-mode ports free: spread preferences first (Swarm's: balance the service over the
//! values of a node attribute, one preference inside the other), then the node with the
//! fewest live tasks of the same service, then the fewest live tasks overall.

use crate::orchestrator::eligible_nodes;
use shoal_api::service::spread_key;
use shoal_api::{ClusterState, Node, PortConfig, Protocol, PublishMode, Service, Task, TaskState};
use std::collections::{BTreeMap, HashMap, HashSet};

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
                load.add(&service.id, &node.id);
                load.add_host_ports(&node.id, &task.ports);
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

/// Live task counts per node, overall and per service; updated as tasks are assigned so
/// one pass spreads a batch of new tasks as if they were placed one by one.
#[derive(Debug, Default)]
struct Load<'a> {
    total: HashMap<&'a str, usize>,
    per_service: HashMap<(&'a str, &'a str), usize>,
    /// Host-mode published ports in use per node: two tasks cannot bind the same one.
    host_ports: HashSet<(&'a str, u16, Protocol)>,
}

impl<'a> Load<'a> {
    fn new(state: &'a ClusterState) -> Self {
        let mut load = Load::default();
        for t in state.tasks.values().filter(|t| t.is_live()) {
            if let Some(n) = t.node_id.as_deref() {
                load.add(&t.service_id, n);
                load.add_host_ports(n, &t.ports);
            }
        }
        load
    }

    fn add(&mut self, service: &'a str, node: &'a str) {
        *self.total.entry(node).or_default() += 1;
        *self.per_service.entry((service, node)).or_default() += 1;
    }

    fn add_host_ports(&mut self, node: &'a str, ports: &[PortConfig]) {
        for (port, proto) in host_ports(ports) {
            self.host_ports.insert((node, port, proto));
        }
    }

    fn host_ports_free(&self, node: &'a str, ports: &[PortConfig]) -> bool {
        host_ports(ports).all(|(port, proto)| !self.host_ports.contains(&(node, port, proto)))
    }

    fn of_service(&self, service: &str, node: &str) -> usize {
        self.per_service.get(&(service, node)).copied().unwrap_or(0)
    }

    fn total(&self, node: &str) -> usize {
        self.total.get(node).copied().unwrap_or(0)
    }
}

/// The node for `task`, or why there is none.
fn place<'n>(
    service: &Service,
    task: &Task,
    nodes: &[&'n Node],
    load: &Load,
) -> Result<&'n Node, String> {
    let eligible = eligible_nodes(service, nodes);
    // Global tasks are made for one node; they go there if it still fits.
    if let Some(want) = task.node_id.as_deref() {
        return eligible
            .iter()
            .find(|n| n.id == want)
            .copied()
            .ok_or_else(|| no_node_reason(nodes.len(), eligible.len(), 0, 0));
    }
    // A node already running the service's maximum takes no more of its tasks.
    let max = service.spec.task.max_replicas_per_node;
    let (room, full): (Vec<&Node>, Vec<&Node>) = eligible
        .iter()
        .partition(|n| max == 0 || (load.of_service(&service.id, &n.id) as u64) < max);
    // Host-mode ports bind on the node itself: a node already using one cannot take it.
    let (room, port_taken): (Vec<&Node>, Vec<&Node>) = room
        .into_iter()
        .partition(|n| load.host_ports_free(&n.id, &task.ports));
    if room.is_empty() && !port_taken.is_empty() {
        let ports: Vec<String> = host_ports(&task.ports)
            .map(|(p, proto)| format!("{p}/{}", proto.as_str()))
            .collect();
        return Err(format!(
            "no suitable node (host-mode published port {} already in use on {} of {} nodes)",
            ports.join(", "),
            port_taken.len(),
            nodes.len()
        ));
    }
    let prefs: Vec<&str> = service
        .spec
        .task
        .placement_prefs
        .iter()
        .filter_map(|p| spread_key(p).ok())
        .collect();
    pick(room, &prefs, &service.id, load)
        .ok_or_else(|| no_node_reason(nodes.len(), eligible.len(), full.len(), max))
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

/// The host-mode published ports of a task.
fn host_ports(ports: &[PortConfig]) -> impl Iterator<Item = (u16, Protocol)> + '_ {
    ports
        .iter()
        .filter(|p| p.mode == PublishMode::Host)
        .filter_map(|p| Some((p.published?, p.protocol)))
}

fn needs_node(t: &Task) -> bool {
    t.status.state <= TaskState::Pending && t.desired_state == TaskState::Running
}

/// Why no node fits: `full` eligible nodes already run `max` tasks of the service.
fn no_node_reason(nodes: usize, eligible: usize, full: usize, max: u64) -> String {
    if nodes == 0 {
        return "no suitable node (the cluster has no nodes)".into();
    }
    let mut why = Vec::new();
    if eligible < nodes || full == 0 {
        why.push(format!(
            "{} of {nodes} nodes are unavailable or do not match the placement constraints",
            nodes - eligible
        ));
    }
    if full > 0 {
        why.push(format!(
            "max replicas per node limit of {max} reached on {full} of {nodes} nodes"
        ));
    }
    format!("no suitable node ({})", why.join("; "))
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
                        update: Default::default(),
                        rollback: Default::default(),
                    },
                    previous_spec: None,
                    update_status: None,
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
                    quick_exits: 0,
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
    fn placement_table() {
        struct Case {
            name: &'static str,
            /// Node ID and its labels.
            nodes: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
            prefs: Vec<&'static str>,
            max_per_node: u64,
            /// Nodes already running one live task of the service each (repeat for more).
            running: Vec<&'static str>,
            new_tasks: usize,
            /// New tasks assigned per node.
            want: Vec<(&'static str, usize)>,
            /// Substring of the reason every task left pending carries.
            pending: Option<&'static str>,
        }
        let zone = |z| vec![("zone", z)];
        let rack = |z, r| vec![("zone", z), ("rack", r)];
        let cases = vec![
            Case {
                name: "spread over zones a/a/b: half in each zone",
                nodes: vec![("n1", zone("a")), ("n2", zone("a")), ("n3", zone("b"))],
                prefs: vec!["spread=node.labels.zone"],
                max_per_node: 0,
                running: vec![],
                new_tasks: 4,
                want: vec![("n1", 1), ("n2", 1), ("n3", 2)],
                pending: None,
            },
            Case {
                name: "nodes without the label form their own group",
                nodes: vec![("n1", zone("a")), ("n2", zone("a")), ("n3", vec![])],
                prefs: vec!["spread=node.labels.zone"],
                max_per_node: 0,
                running: vec![],
                new_tasks: 2,
                want: vec![("n1", 1), ("n3", 1)],
                pending: None,
            },
            Case {
                name: "spread counts the tasks already running",
                nodes: vec![("n1", zone("a")), ("n2", zone("b")), ("n3", zone("b"))],
                prefs: vec!["spread=node.labels.zone"],
                max_per_node: 0,
                running: vec!["n1", "n1"],
                new_tasks: 2,
                want: vec![("n2", 1), ("n3", 1)],
                pending: None,
            },
            Case {
                name: "the next preference splits the chosen group",
                nodes: vec![
                    ("n1", rack("a", "1")),
                    ("n2", rack("a", "1")),
                    ("n3", rack("a", "2")),
                    ("n4", rack("b", "1")),
                ],
                prefs: vec!["spread=node.labels.zone", "spread=node.labels.rack"],
                max_per_node: 0,
                running: vec![],
                new_tasks: 4,
                want: vec![("n1", 1), ("n3", 1), ("n4", 2)],
                pending: None,
            },
            Case {
                name: "max 1 per node: 3 tasks on 2 nodes leave one pending",
                nodes: vec![("n1", vec![]), ("n2", vec![])],
                prefs: vec![],
                max_per_node: 1,
                running: vec![],
                new_tasks: 3,
                want: vec![("n1", 1), ("n2", 1)],
                pending: Some(
                    "no suitable node (max replicas per node limit of 1 reached on 2 of 2 nodes)",
                ),
            },
            Case {
                name: "max per node counts the tasks already running",
                nodes: vec![("n1", vec![]), ("n2", vec![])],
                prefs: vec![],
                max_per_node: 2,
                running: vec!["n1", "n1"],
                new_tasks: 3,
                want: vec![("n2", 2)],
                pending: Some("max replicas per node limit of 2 reached on 2 of 2 nodes"),
            },
        ];
        for c in cases {
            let ids: Vec<&str> = c.nodes.iter().map(|(id, _)| *id).collect();
            let mut tasks: Vec<(String, &str, Option<&str>)> = c
                .running
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("r{i}"), "s1", Some(*n)))
                .collect();
            tasks.extend((0..c.new_tasks).map(|i| (format!("t{i}"), "s1", None)));
            let refs: Vec<(&str, &str, Option<&str>)> =
                tasks.iter().map(|(a, b, n)| (a.as_str(), *b, *n)).collect();
            let mut s = state(&ids, &refs);
            for (id, labels) in &c.nodes {
                if let Some(node) = s.nodes.get_mut(*id) {
                    node.labels = labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                }
            }
            if let Some(svc) = s.services.get_mut("s1") {
                svc.spec.task.placement_prefs = c.prefs.iter().map(|p| p.to_string()).collect();
                svc.spec.task.max_replicas_per_node = c.max_per_node;
            }
            let decisions = schedule(&s);
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for (_, n) in assigned(&decisions) {
                *per.entry(n).or_default() += 1;
            }
            let want: BTreeMap<String, usize> =
                c.want.iter().map(|(n, k)| (n.to_string(), *k)).collect();
            assert_eq!(per, want, "{}", c.name);
            let pending: Vec<&String> = decisions
                .iter()
                .filter_map(|d| match d {
                    Decision::Pending { reason, .. } => Some(reason),
                    Decision::Assign { .. } => None,
                })
                .collect();
            let placed: usize = c.want.iter().map(|(_, k)| k).sum();
            assert_eq!(pending.len(), c.new_tasks - placed, "{}", c.name);
            for reason in pending {
                let want = c.pending.unwrap_or("(no pending task expected)");
                assert!(reason.contains(want), "{}: {reason}", c.name);
            }
        }
    }

    #[test]
    fn drained_node_leaves_the_replacement_pending() {
        let mut s = state(&["n1"], &[("old", "s1", Some("n1")), ("new", "s1", None)]);
        if let Some(n) = s.nodes.get_mut("n1") {
            n.availability = shoal_api::Availability::Drain;
        }
        assert_eq!(
            schedule(&s),
            vec![Decision::Pending {
                task_id: "new".into(),
                reason: "no suitable node (1 of 1 nodes are unavailable or do not match the placement constraints)".into(),
            }]
        );
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

    #[test]
    fn host_mode_ports_never_collide_on_a_node() {
        let tasks: Vec<(String, &str, Option<&str>)> =
            (0..3).map(|i| (format!("t{i}"), "s1", None)).collect();
        let refs: Vec<(&str, &str, Option<&str>)> =
            tasks.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
        let mut s = state(&["n1", "n2"], &refs);
        let host = PortConfig::parse("published=8080,target=80,mode=host").unwrap();
        for t in s.tasks.values_mut() {
            t.ports = vec![host];
        }
        let d = schedule(&s);
        let nodes: HashSet<String> = assigned(&d).into_iter().map(|(_, n)| n).collect();
        assert_eq!(nodes.len(), 2, "one task per node: {d:?}");
        let pending: Vec<&String> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Pending { reason, .. } => Some(reason),
                Decision::Assign { .. } => None,
            })
            .collect();
        assert_eq!(pending.len(), 1);
        assert!(
            pending[0].contains("8080/tcp already in use on 2 of 2"),
            "{}",
            pending[0]
        );
    }
}
