//! Scheduling whole cluster states: the ranking, each filter, and the reason a task that no
//! node takes stays pending with.

use super::*;
use shoal_api::resources::NANO_CPUS;
use shoal_api::{
    Availability, NodeDescription, NodeRole, NodeState, PortConfig, RuntimeKind, Service,
    ServiceMode, ServiceSpec, TaskStatus, TaskTemplate,
};
use std::collections::{HashMap, HashSet};

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
                vip: None,
                id: svc.into(),
                version: 1,
                spec: ServiceSpec {
                    endpoint_mode: Default::default(),
                    lb: Default::default(),
                    lb_local_first: false,
                    lb_mode: Default::default(),
                    idle_timeout: Default::default(),
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
                docker_spec: None,
                docker_previous_spec: None,
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
                "no suitable node (2 nodes already run the maximum of 1 task of the service)",
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
            pending: Some("2 nodes already run the maximum of 2 tasks of the service"),
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
            reason: "no suitable node (1 node is not available for new tasks)".into(),
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
            assert_eq!(
                reason,
                "no suitable node (1 node does not satisfy the placement constraints)"
            )
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
        pending[0] == "no suitable node (2 nodes have host-mode port 8080/tcp already in use)",
        "{}",
        pending[0]
    );
}

const GIB: u64 = 1 << 30;

/// A ready, active node with 4 CPUs and 8 GiB that runs processes.
fn described(id: &str) -> Node {
    let mut n = Node::new(
        id.into(),
        format!("host-{id}"),
        NodeRole::Worker,
        "127.0.0.1".into(),
        0,
    );
    n.description = NodeDescription {
        nano_cpus: 4 * NANO_CPUS,
        memory_bytes: 8 * GIB,
        runtimes: vec![RuntimeKind::Process],
        engine: None,
        arch: String::new(),
    };
    n
}

fn with_engine(n: &mut Node) {
    n.description.runtimes.push(RuntimeKind::Container);
}

/// A running task of service `s2` on `node` reserving `cpus` nano CPUs and `memory` bytes.
fn reserving(id: &str, node: &str, cpus: u64, memory: u64) -> Task {
    let mut t = state(&[], &[(id, "s2", Some(node))])
        .tasks
        .remove(id)
        .expect("task");
    t.spec.resources.reservations.nano_cpus = cpus;
    t.spec.resources.reservations.memory_bytes = memory;
    t
}

type NodeChange = Box<dyn Fn(&mut Node)>;
type TaskChange = Box<dyn Fn(&mut Task)>;
type ServiceChange = Box<dyn Fn(&mut Service)>;

fn keep<T>() -> Box<dyn Fn(&mut T)> {
    Box::new(|_| {})
}

#[test]
fn filter_table() {
    struct Case {
        name: &'static str,
        /// Nodes, each changed from [`described`].
        nodes: Vec<(&'static str, NodeChange)>,
        /// Tasks already on the nodes.
        running: Vec<Task>,
        /// The service `s1` and its new task (a process of `s1`, no node yet).
        service: ServiceChange,
        task: TaskChange,
        /// The node the task goes to, or the reason it stays pending.
        want: Result<&'static str, &'static str>,
    }
    let host_8080 = || PortConfig::parse("published=8080,target=80,mode=host").unwrap();
    let container = || TaskTemplate::with_image("nginx").runtime;
    let cases = vec![
        Case {
            name: "down, drained and paused nodes are not available",
            nodes: vec![
                ("n1", Box::new(|n| n.state = NodeState::Down)),
                ("n2", Box::new(|n| n.availability = Availability::Drain)),
                ("n3", Box::new(|n| n.availability = Availability::Pause)),
            ],
            running: vec![],
            service: keep(),
            task: keep(),
            want: Err("no suitable node (3 nodes are not available for new tasks)"),
        },
        Case {
            name: "an available node takes it",
            nodes: vec![
                ("n1", Box::new(|n| n.availability = Availability::Drain)),
                ("n2", keep()),
            ],
            running: vec![],
            service: keep(),
            task: keep(),
            want: Ok("n2"),
        },
        Case {
            name: "constraints",
            nodes: vec![
                ("n1", Box::new(|n| {
                    n.labels.insert("zone".into(), "b".into());
                })),
                ("n2", keep()),
            ],
            running: vec![],
            service: Box::new(|s| s.spec.task.constraints = vec!["node.labels.zone==a".into()]),
            task: keep(),
            want: Err("no suitable node (2 nodes do not satisfy the placement constraints)"),
        },
        Case {
            name: "constraints: the matching node",
            nodes: vec![
                ("n1", keep()),
                ("n2", Box::new(|n| {
                    n.labels.insert("zone".into(), "a".into());
                })),
            ],
            running: vec![],
            service: Box::new(|s| s.spec.task.constraints = vec!["node.labels.zone==a".into()]),
            task: keep(),
            want: Ok("n2"),
        },
        Case {
            name: "a container task needs a container engine",
            nodes: vec![("n1", keep())],
            running: vec![],
            service: keep(),
            task: Box::new(move |t| t.spec.runtime = container()),
            want: Err("no suitable node (1 node has no container engine)"),
        },
        Case {
            name: "a container task goes to the node with an engine",
            nodes: vec![("n1", keep()), ("n2", Box::new(with_engine))],
            running: vec![],
            service: keep(),
            task: Box::new(move |t| t.spec.runtime = container()),
            want: Ok("n2"),
        },
        Case {
            name: "a node that never reported takes a process task reserving nothing",
            nodes: vec![("n1", Box::new(|n| n.description = NodeDescription::default()))],
            running: vec![],
            service: keep(),
            task: keep(),
            want: Ok("n1"),
        },
        Case {
            name: "a node that never reported has no room for a reservation",
            nodes: vec![("n1", Box::new(|n| n.description = NodeDescription::default()))],
            running: vec![],
            service: keep(),
            task: Box::new(|t| t.spec.resources.reservations.memory_bytes = 1 << 20),
            want: Err("no suitable node (1 node lacks memory)"),
        },
        Case {
            name: "memory reserved by live tasks counts",
            nodes: vec![("n1", keep()), ("n2", keep())],
            running: vec![reserving("r1", "n1", 0, 7 * GIB)],
            service: keep(),
            task: Box::new(|t| t.spec.resources.reservations.memory_bytes = 2 * GIB),
            want: Ok("n2"),
        },
        Case {
            name: "no node has the memory",
            nodes: vec![("n1", keep()), ("n2", keep())],
            running: vec![],
            service: keep(),
            task: Box::new(|t| t.spec.resources.reservations.memory_bytes = 9 * GIB),
            want: Err("no suitable node (2 nodes lack memory)"),
        },
        Case {
            name: "CPU reserved by live tasks counts",
            nodes: vec![("n1", keep())],
            running: vec![reserving("r1", "n1", 3 * NANO_CPUS + NANO_CPUS / 2, 0)],
            service: keep(),
            task: Box::new(|t| t.spec.resources.reservations.nano_cpus = NANO_CPUS),
            want: Err("no suitable node (1 node lacks CPU)"),
        },
        Case {
            name: "an exact fit is a fit",
            nodes: vec![("n1", keep())],
            running: vec![reserving("r1", "n1", 3 * NANO_CPUS, 6 * GIB)],
            service: keep(),
            task: Box::new(|t| {
                t.spec.resources.reservations.nano_cpus = NANO_CPUS;
                t.spec.resources.reservations.memory_bytes = 2 * GIB;
            }),
            want: Ok("n1"),
        },
        Case {
            name: "dead tasks reserve nothing",
            nodes: vec![("n1", keep())],
            running: vec![{
                let mut t = reserving("r1", "n1", 4 * NANO_CPUS, 0);
                t.status = TaskStatus::new(TaskState::Failed, 0, "");
                t
            }],
            service: keep(),
            task: Box::new(|t| t.spec.resources.reservations.nano_cpus = NANO_CPUS),
            want: Ok("n1"),
        },
        Case {
            name: "a CPU limit above the node's CPUs",
            nodes: vec![("n1", keep()), ("n2", keep())],
            running: vec![],
            service: keep(),
            task: Box::new(|t| t.spec.resources.limits.nano_cpus = 8 * NANO_CPUS),
            want: Err("no suitable node (2 nodes have fewer CPUs than the limit of 8)"),
        },
        Case {
            name: "a CPU limit up to the node's CPUs is fine, whatever is reserved",
            nodes: vec![("n1", keep())],
            running: vec![reserving("r1", "n1", 4 * NANO_CPUS, 0)],
            service: keep(),
            task: Box::new(|t| t.spec.resources.limits.nano_cpus = 4 * NANO_CPUS),
            want: Ok("n1"),
        },
        Case {
            name: "a host-mode port in use on a node",
            nodes: vec![("n1", keep()), ("n2", keep())],
            running: vec![{
                let mut t = reserving("r1", "n1", 0, 0);
                t.ports = vec![host_8080()];
                t
            }],
            service: keep(),
            task: Box::new(move |t| t.ports = vec![host_8080()]),
            want: Ok("n2"),
        },
        Case {
            name: "a host-mode port in use everywhere",
            nodes: vec![("n1", keep()), ("n2", keep())],
            running: ["n1", "n2"]
                .iter()
                .map(|n| {
                    let mut t = reserving(&format!("r-{n}"), n, 0, 0);
                    t.ports = vec![host_8080()];
                    t
                })
                .collect(),
            service: keep(),
            task: Box::new(move |t| t.ports = vec![host_8080()]),
            want: Err("no suitable node (2 nodes have host-mode port 8080/tcp already in use)"),
        },
        Case {
            name: "max replicas per node",
            nodes: vec![("n1", keep()), ("n2", keep())],
            running: vec![{
                let mut t = reserving("r1", "n1", 0, 0);
                t.service_id = "s1".into();
                t
            }],
            service: Box::new(|s| s.spec.task.max_replicas_per_node = 1),
            task: keep(),
            want: Ok("n2"),
        },
        Case {
            name: "each node counted by the first filter that rejects it",
            nodes: vec![
                ("n1", keep()),
                ("n2", Box::new(|n| {
                    with_engine(n);
                    n.description.memory_bytes = GIB;
                })),
                ("n3", Box::new(|n| {
                    with_engine(n);
                    n.description.memory_bytes = GIB;
                    n.description.nano_cpus = NANO_CPUS;
                })),
                ("n4", Box::new(|n| n.state = NodeState::Down)),
            ],
            running: vec![],
            service: keep(),
            task: Box::new(move |t| {
                t.spec.runtime = container();
                t.spec.resources.reservations.memory_bytes = 2 * GIB;
            }),
            want: Err("no suitable node (2 nodes lack memory, 1 node is not available for new tasks, 1 node has no container engine)"),
        },
        Case {
            name: "a global task waits for its own node's room",
            nodes: vec![
                ("n1", Box::new(|n| n.description.memory_bytes = GIB)),
                ("n2", keep()),
            ],
            running: vec![],
            service: Box::new(|s| s.spec.mode = ServiceMode::Global),
            task: Box::new(|t| {
                t.node_id = Some("n1".into());
                t.spec.resources.reservations.memory_bytes = 2 * GIB;
            }),
            want: Err("no suitable node (1 node lacks memory)"),
        },
        Case {
            name: "a global task whose node is gone",
            nodes: vec![("n2", keep())],
            running: vec![],
            service: Box::new(|s| s.spec.mode = ServiceMode::Global),
            task: Box::new(|t| t.node_id = Some("n1".into())),
            want: Err("no suitable node (node n1 left the cluster)"),
        },
        Case {
            name: "no nodes at all",
            nodes: vec![],
            running: vec![],
            service: keep(),
            task: keep(),
            want: Err("no suitable node (the cluster has no nodes)"),
        },
        Case {
            name: "a global task's own host port does not block it",
            nodes: vec![("n1", keep())],
            running: vec![],
            service: Box::new(|s| s.spec.mode = ServiceMode::Global),
            task: Box::new(move |t| {
                t.node_id = Some("n1".into());
                t.ports = vec![host_8080()];
            }),
            want: Ok("n1"),
        },
    ];
    for c in cases {
        let mut s = state(&[], &[("new", "s1", None)]);
        for (id, change) in &c.nodes {
            let mut n = described(id);
            change(&mut n);
            s.nodes.insert(n.id.clone(), n);
        }
        for t in c.running {
            s.tasks.insert(t.id.clone(), t);
        }
        if let Some(svc) = s.services.get_mut("s1") {
            (c.service)(svc);
        }
        if let Some(t) = s.tasks.get_mut("new") {
            (c.task)(t);
        }
        let want = match c.want {
            Ok(node) => Decision::Assign {
                task_id: "new".into(),
                node_id: node.into(),
            },
            Err(reason) => Decision::Pending {
                task_id: "new".into(),
                reason: reason.into(),
            },
        };
        assert_eq!(schedule(&s), vec![want], "{}", c.name);
    }
}

#[test]
fn a_full_node_gets_nothing_more() {
    // One node with 4 CPUs; each task reserves 1.5: two fit, the third waits.
    let tasks: Vec<(String, &str, Option<&str>)> =
        (0..3).map(|i| (format!("t{i}"), "s1", None)).collect();
    let refs: Vec<(&str, &str, Option<&str>)> =
        tasks.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
    let mut s = state(&[], &refs);
    s.nodes.insert("n1".into(), described("n1"));
    for t in s.tasks.values_mut() {
        t.spec.resources.reservations.nano_cpus = 1_500_000_000;
    }
    let d = schedule(&s);
    assert_eq!(assigned(&d).len(), 2, "{d:?}");
    assert!(
        d.contains(&Decision::Pending {
            task_id: "t2".into(),
            reason: "no suitable node (1 node lacks CPU)".into(),
        }),
        "{d:?}"
    );
    // Once the two run, the next pass still finds the node full; a task that reserves no
    // CPU still goes there.
    for (task_id, node_id) in assigned(&d) {
        if let Some(t) = s.tasks.get_mut(&task_id) {
            t.node_id = Some(node_id);
            t.status = TaskStatus::new(TaskState::Running, 0, "");
        }
    }
    let mut light = s.tasks.get("t2").cloned().expect("t2");
    light.id = "light".into();
    light.spec.resources.reservations.nano_cpus = 0;
    light.spec.resources.reservations.memory_bytes = GIB;
    s.tasks.insert(light.id.clone(), light);
    assert_eq!(
        schedule(&s),
        vec![
            Decision::Assign {
                task_id: "light".into(),
                node_id: "n1".into(),
            },
            Decision::Pending {
                task_id: "t2".into(),
                reason: "no suitable node (1 node lacks CPU)".into(),
            },
        ]
    );
}
