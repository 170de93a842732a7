//! The orchestrator planner: from a service and its tasks, the actions that converge it.
//!
//! Pure: takes state and the current time, returns actions and when to look again.
//! Replicated services get one wanted task per slot `1..=replicas`; global services one per
//! eligible node (at most `MAX_REPLICAS` slots, whatever count is stored). Dead tasks are
//! replaced per the restart policy (after its delay, backed off by [`crate::restart`]), tasks on
//! down or removed nodes are stopped and replaced at once, tasks on drained nodes are
//! replaced start-first ([`DRAIN_PARALLELISM`] slots at a time) and stopped once their
//! replacement is ready, extra tasks are stopped (highest slots first on scale-down), and
//! history is trimmed to [`TASK_HISTORY_LIMIT`] dead tasks per slot. Rolling updates are
//! planned by the [`updater`](crate::updater) over the same slots and merged in here; the
//! vocabulary both speak (slots, actions, a slot's replacement) is in [`crate::plan`].

use crate::plan::{planned_replicas, replacement, stop, Action, Plan, SlotKey, UpdateChange};
use crate::updater::{plan_update, rollout_order};
use shoal_api::{
    Availability, ClusterState, Constraint, Node, NodeState, Service, ServiceMode, Task, TaskState,
    UpdateOrder, TASK_HISTORY_LIMIT,
};
use std::collections::{BTreeMap, BTreeSet};

/// Plan the whole cluster: every service, and tasks whose service is gone.
pub fn plan_cluster(state: &ClusterState, now: u64) -> Plan {
    let mut plan = Plan::default();
    let nodes: Vec<&Node> = state.nodes.values().collect();
    for service in state.services.values() {
        let tasks: Vec<&Task> = state.tasks_of(&service.id).collect();
        plan.merge(plan_service(service, &tasks, &nodes, now));
    }
    for task in state.tasks.values() {
        if !state.services.contains_key(&task.service_id) {
            plan.actions.extend(remove_task(task));
        }
    }
    plan
}

/// Stop a task for good and forget it once dead.
fn remove_task(task: &Task) -> Option<Action> {
    if !task.is_live() {
        Some(Action::Delete {
            task_id: task.id.clone(),
        })
    } else if task.desired_state < TaskState::Remove {
        Some(Action::SetDesired {
            task_id: task.id.clone(),
            state: TaskState::Remove,
        })
    } else {
        None
    }
}

/// Nodes a task of this service may run on.
pub fn eligible_nodes<'a>(service: &Service, nodes: &[&'a Node]) -> Vec<&'a Node> {
    let constraints: Vec<Constraint> = service
        .spec
        .task
        .constraints
        .iter()
        .filter_map(|c| Constraint::parse(c).ok())
        .collect();
    nodes
        .iter()
        .copied()
        .filter(|n| n.accepts_tasks() && constraints.iter().all(|c| c.matches(n)))
        .collect()
}

/// Slots of one service that may be moving off drained nodes at once: Swarm's default
/// update parallelism, until services carry an update config.
pub const DRAIN_PARALLELISM: usize = 1;

/// The cluster's nodes by ID, to judge where a task runs.
#[derive(Debug)]
struct NodeIndex<'a>(BTreeMap<&'a str, &'a Node>);

impl<'a> NodeIndex<'a> {
    fn new(nodes: &[&'a Node]) -> Self {
        NodeIndex(nodes.iter().map(|n| (n.id.as_str(), *n)).collect())
    }

    /// Wanted but on a node that is down or gone: it can no longer serve.
    fn lost(&self, t: &Task) -> bool {
        t.is_wanted()
            && t.node_id
                .as_deref()
                .is_some_and(|id| self.0.get(id).is_none_or(|n| n.state == NodeState::Down))
    }

    /// On a node being drained: it serves until a replacement is ready.
    fn draining(&self, t: &Task) -> bool {
        t.node_id
            .as_deref()
            .and_then(|id| self.0.get(id))
            .is_some_and(|n| n.availability == Availability::Drain)
    }

    /// Handed to a node that is up and not drained: its agent will stop it and report.
    fn stops_itself(&self, t: &Task) -> bool {
        t.status.state >= TaskState::Assigned
            && t.node_id
                .as_deref()
                .and_then(|id| self.0.get(id))
                .is_some_and(|n| {
                    n.state != NodeState::Down && n.availability != Availability::Drain
                })
    }
}

/// A stop-first rollout stopped this out-of-date task: its replacement waits until it is
/// dead (so the two never overlap, e.g. on a host-mode port). Tasks on down, drained or
/// removed nodes, or never handed to a node, are replaced at once as before.
fn awaits_stop(service: &Service, t: &Task, nodes: &NodeIndex) -> bool {
    t.is_live()
        && t.desired_state == TaskState::Shutdown
        && t.spec_version < service.version
        && nodes.stops_itself(t)
        && rollout_order(service) == UpdateOrder::StopFirst
}

/// One slot's tasks, sorted oldest first, with the roles the rules below need.
#[derive(Debug)]
struct SlotView<'t> {
    sorted: Vec<&'t Task>,
    /// Wanted tasks on down or removed nodes.
    lost: Vec<&'t Task>,
    /// Wanted tasks that can still serve.
    wanted: Vec<&'t Task>,
    /// The newest wanted task not on a drained node: the one the slot keeps.
    best: Option<&'t Task>,
    /// Some wanted task is on a drained node.
    draining: bool,
}

impl<'t> SlotView<'t> {
    fn new(tasks: &[&'t Task], nodes: &NodeIndex) -> Self {
        let mut sorted = tasks.to_vec();
        sorted.sort_by_key(|t| (t.created_at, t.attempt));
        let (lost, wanted): (Vec<&Task>, Vec<&Task>) = sorted
            .iter()
            .copied()
            .filter(|t| t.is_wanted())
            .partition(|t| nodes.lost(t));
        let best = wanted.iter().rev().copied().find(|t| !nodes.draining(t));
        let draining = wanted.iter().any(|t| nodes.draining(t));
        SlotView {
            sorted,
            lost,
            wanted,
            best,
            draining,
        }
    }

    /// Moving off a drained node, with a replacement that is not ready yet.
    fn in_flight(&self) -> bool {
        self.draining && self.best.is_some_and(|b| !b.is_ready())
    }
}

pub fn plan_service(service: &Service, tasks: &[&Task], nodes: &[&Node], now: u64) -> Plan {
    let mut by_slot: BTreeMap<SlotKey, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        let key = match &service.spec.mode {
            ServiceMode::Replicated { .. } => SlotKey::Slot(t.slot),
            ServiceMode::Global => SlotKey::Node(t.node_id.clone().unwrap_or_default()),
        };
        by_slot.entry(key).or_default().push(t);
    }
    let wanted: Vec<SlotKey> = match &service.spec.mode {
        ServiceMode::Replicated { .. } => {
            (1..=planned_replicas(service)).map(SlotKey::Slot).collect()
        }
        ServiceMode::Global => eligible_nodes(service, nodes)
            .into_iter()
            .map(|n| SlotKey::Node(n.id.clone()))
            .collect(),
    };
    let index = NodeIndex::new(nodes);
    let views: Vec<(&SlotKey, SlotView)> = wanted
        .iter()
        .map(|k| {
            (
                k,
                SlotView::new(&by_slot.remove(k).unwrap_or_default(), &index),
            )
        })
        .collect();
    // Drain moves a few slots at a time, so most replicas keep serving throughout.
    let in_flight = views.iter().filter(|(_, v)| v.in_flight()).count();
    let mut moves = DRAIN_PARALLELISM.saturating_sub(in_flight);
    let mut plan = Plan::default();
    for (key, view) in &views {
        plan.merge(plan_slot(service, key, view, &index, now, &mut moves));
    }
    merge_update(&mut plan, service, &views, now);
    // Slots no longer wanted (scale-down, node ineligible): stop and forget their tasks.
    for (_, slot_tasks) in by_slot {
        for t in slot_tasks {
            plan.actions.extend(remove_task(t));
        }
    }
    plan
}

/// Add the updater's plan over the wanted slots. A slot the orchestrator refills in this
/// pass (node down, drain, restart) gets the current version anyway, so the updater's
/// actions for it are dropped: the two never both create a task for one slot.
fn merge_update(plan: &mut Plan, service: &Service, views: &[(&SlotKey, SlotView)], now: u64) {
    let tasks: Vec<&Task> = views
        .iter()
        .flat_map(|(_, v)| v.sorted.iter().copied())
        .collect();
    let update = plan_update(service, &tasks, now);
    let refilled: BTreeSet<&SlotKey> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { slot, .. } => Some(slot),
            _ => None,
        })
        .collect();
    let busy: BTreeSet<&str> = views
        .iter()
        .filter(|(k, _)| refilled.contains(k))
        .flat_map(|(_, v)| v.sorted.iter().map(|t| t.id.as_str()))
        .collect();
    let kept: Vec<Action> = update
        .actions
        .into_iter()
        .filter(|a| match a {
            Action::Create { slot, .. } => !refilled.contains(slot),
            Action::SetDesired { task_id, .. } | Action::Delete { task_id } => {
                !busy.contains(task_id.as_str())
            }
        })
        .collect();
    plan.actions.extend(kept);
    if let Some(w) = update.wake_at {
        plan.wake(w);
    }
    if let Some(status) = update.status {
        plan.updates.push(UpdateChange {
            service_id: service.id.clone(),
            status,
            rollback: update.rollback,
        });
    }
}

/// Plan one wanted slot; `moves` is how many more slots may start moving off drained nodes.
fn plan_slot(
    service: &Service,
    key: &SlotKey,
    view: &SlotView,
    nodes: &NodeIndex,
    now: u64,
    moves: &mut usize,
) -> Plan {
    let mut plan = Plan::default();
    // A task on a down or removed node cannot serve: stop it so the slot is refilled now.
    // When the node returns, its agent sees the desired state and stops the task itself.
    for t in &view.lost {
        plan.actions.push(stop(t));
    }
    // The slot's other wanted tasks become surplus only once the task it keeps is ready;
    // until then they still serve (start-first: drain never leaves a slot empty).
    if let Some(best) = view.best.filter(|b| b.is_ready()) {
        for t in view.wanted.iter().filter(|t| t.id != best.id) {
            plan.actions.push(stop(t));
        }
    }
    // Dead tasks still marked wanted-running are settled as shut down.
    for t in &view.sorted {
        if !t.is_live() && t.desired_state == TaskState::Running {
            plan.actions.push(stop(t));
        }
    }
    // Trim history: keep the newest TASK_HISTORY_LIMIT dead tasks.
    let dead: Vec<&Task> = view
        .sorted
        .iter()
        .copied()
        .filter(|t| !t.is_live())
        .collect();
    if dead.len() > TASK_HISTORY_LIMIT {
        for t in &dead[..dead.len() - TASK_HISTORY_LIMIT] {
            plan.actions.push(Action::Delete {
                task_id: t.id.clone(),
            });
        }
    }
    if view.best.is_some() {
        return plan;
    }
    // Only tasks on drained nodes are left: replace them first, within the drain budget.
    if view.draining && *moves == 0 {
        return plan;
    }
    let latest = view.sorted.last().copied();
    if latest.is_some_and(|t| awaits_stop(service, t, nodes)) {
        return plan;
    }
    let next = replacement(service, key, latest, now);
    if view.draining
        && next
            .actions
            .iter()
            .any(|a| matches!(a, Action::Create { .. }))
    {
        *moves -= 1;
    }
    plan.merge(next);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::limits::MAX_REPLICAS;
    use shoal_api::{
        NodeRole, RestartCondition, ServiceSpec, TaskStatus, TaskTemplate, UpdateStatus,
    };
    use std::time::Duration;

    fn service(mode: ServiceMode) -> Service {
        let mut task = TaskTemplate::with_command(vec!["true".into()]);
        task.restart.delay = Duration::from_secs(5);
        Service {
            vip: None,
            id: "s1".into(),
            version: 1,
            spec: ServiceSpec {
                endpoint_mode: Default::default(),
                lb: Default::default(),
                lb_local_first: false,
                lb_mode: Default::default(),
                idle_timeout: Default::default(),
                name: "web".into(),
                labels: Default::default(),
                mode,
                task,
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
        }
    }

    fn task(id: &str, slot: u64, state: TaskState, desired: TaskState, created: u64) -> Task {
        Task {
            id: id.into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot,
            node_id: Some("n1".into()),
            spec_version: 1,
            spec: TaskTemplate::default(),
            ports: vec![],
            desired_state: desired,
            status: TaskStatus::new(state, created + 1000, ""),
            endpoint: None,
            created_at: created,
            attempt: 0,
            quick_exits: 0,
            pending_reason: None,
        }
    }

    fn node(id: &str) -> Node {
        Node::new(
            id.into(),
            id.into(),
            NodeRole::Manager,
            "127.0.0.1".into(),
            0,
        )
    }

    fn on(mut t: Task, node: Option<&str>) -> Task {
        t.node_id = node.map(str::to_string);
        t
    }

    fn node_with(id: &str, state: NodeState, availability: Availability) -> Node {
        let mut n = node(id);
        n.state = state;
        n.availability = availability;
        n
    }

    fn down(id: &str) -> Node {
        node_with(id, NodeState::Down, Availability::Active)
    }

    fn drained(id: &str) -> Node {
        node_with(id, NodeState::Ready, Availability::Drain)
    }

    fn paused(id: &str) -> Node {
        node_with(id, NodeState::Ready, Availability::Pause)
    }

    fn creates(plan: &Plan) -> Vec<SlotKey> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { slot, .. } => Some(slot.clone()),
                _ => None,
            })
            .collect()
    }

    fn desired(plan: &Plan) -> Vec<(String, TaskState)> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::SetDesired { task_id, state } => Some((task_id.clone(), *state)),
                _ => None,
            })
            .collect()
    }

    use TaskState::*;

    #[test]
    fn replicated_table() {
        struct Case {
            name: &'static str,
            replicas: u64,
            tasks: Vec<Task>,
            now: u64,
            creates: Vec<u64>,
            desired: Vec<(&'static str, TaskState)>,
            wake_at: Option<u64>,
        }
        let cases = vec![
            Case {
                name: "empty service gets every slot",
                replicas: 3,
                tasks: vec![],
                now: 0,
                creates: vec![1, 2, 3],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "converged service does nothing",
                replicas: 2,
                tasks: vec![
                    task("a", 1, Running, Running, 0),
                    task("b", 2, Running, Running, 0),
                ],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "scale up adds the next slots",
                replicas: 3,
                tasks: vec![task("a", 1, Running, Running, 0)],
                now: 0,
                creates: vec![2, 3],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "scale down removes the highest slots",
                replicas: 1,
                tasks: vec![
                    task("a", 1, Running, Running, 0),
                    task("b", 2, Running, Running, 0),
                    task("c", 3, Starting, Running, 0),
                ],
                now: 0,
                creates: vec![],
                desired: vec![("b", Remove), ("c", Remove)],
                wake_at: None,
            },
            Case {
                name: "failed task waits for the restart delay",
                replicas: 1,
                tasks: vec![task("a", 1, Failed, Running, 0)],
                now: 2000,
                creates: vec![],
                desired: vec![("a", Shutdown)],
                wake_at: Some(6000),
            },
            Case {
                name: "failed task is replaced after the delay",
                replicas: 1,
                tasks: vec![task("a", 1, Failed, Shutdown, 0)],
                now: 6000,
                creates: vec![1],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "task stopping on purpose is replaced at once",
                replicas: 1,
                tasks: vec![task("a", 1, Running, Shutdown, 0)],
                now: 0,
                creates: vec![1],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "task stopped on purpose is replaced at once",
                replicas: 1,
                tasks: vec![task("a", 1, Shutdown, Shutdown, 0)],
                now: 0,
                creates: vec![1],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "settled failed task still waits for the delay",
                replicas: 1,
                tasks: vec![task("a", 1, Failed, Shutdown, 0)],
                now: 2000,
                creates: vec![],
                desired: vec![],
                wake_at: Some(6000),
            },
            Case {
                name: "two live tasks in a slot: the older is stopped",
                replicas: 1,
                tasks: vec![
                    task("old", 1, Running, Running, 0),
                    task("new", 1, Running, Running, 10),
                ],
                now: 0,
                creates: vec![],
                desired: vec![("old", Shutdown)],
                wake_at: None,
            },
        ];
        for c in cases {
            let svc = service(ServiceMode::Replicated {
                replicas: c.replicas,
            });
            let refs: Vec<&Task> = c.tasks.iter().collect();
            let n = node("n1");
            let plan = plan_service(&svc, &refs, &[&n], c.now);
            let want: Vec<SlotKey> = c.creates.iter().map(|s| SlotKey::Slot(*s)).collect();
            assert_eq!(creates(&plan), want, "{}", c.name);
            let want: Vec<(String, TaskState)> = c
                .desired
                .iter()
                .map(|(id, s)| (id.to_string(), *s))
                .collect();
            assert_eq!(desired(&plan), want, "{}", c.name);
            assert_eq!(plan.wake_at, c.wake_at, "{}", c.name);
        }
    }

    #[test]
    fn multi_node_table() {
        struct Case {
            name: &'static str,
            replicas: u64,
            nodes: Vec<Node>,
            tasks: Vec<Task>,
            now: u64,
            creates: Vec<u64>,
            desired: Vec<(&'static str, TaskState)>,
            wake_at: Option<u64>,
        }
        let n1 = Some("n1");
        let n2 = Some("n2");
        let cases = vec![
            Case {
                name: "node down: its task is stopped and replaced at once",
                replicas: 1,
                nodes: vec![down("n1"), node("n2")],
                tasks: vec![on(task("a", 1, Running, Running, 0), n1)],
                now: 0,
                creates: vec![1],
                desired: vec![("a", Shutdown)],
                wake_at: None,
            },
            Case {
                name: "node removed: its task is stopped and replaced at once",
                replicas: 1,
                nodes: vec![node("n2")],
                tasks: vec![on(task("a", 1, Starting, Running, 0), n1)],
                now: 0,
                creates: vec![1],
                desired: vec![("a", Shutdown)],
                wake_at: None,
            },
            Case {
                name: "unassigned task is not affected by missing nodes",
                replicas: 1,
                nodes: vec![],
                tasks: vec![on(task("p", 1, Pending, Running, 0), None)],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "node back: its old task stays stopping, nothing new",
                replicas: 1,
                nodes: vec![node("n1"), node("n2")],
                tasks: vec![
                    on(task("old", 1, Running, Shutdown, 0), n1),
                    on(task("new", 1, Running, Running, 10), n2),
                ],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "node back before its replacement runs: nothing new",
                replicas: 1,
                nodes: vec![node("n1")],
                tasks: vec![
                    on(task("old", 1, Running, Shutdown, 0), n1),
                    on(task("new", 1, Pending, Running, 10), None),
                ],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "drain starts the replacement first",
                replicas: 1,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![on(task("a", 1, Running, Running, 0), n1)],
                now: 0,
                creates: vec![1],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "drain with a starting replacement: the drained task keeps serving",
                replicas: 1,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![
                    on(task("a", 1, Running, Running, 0), n1),
                    on(task("r", 1, Starting, Running, 10), n2),
                ],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "drain with a ready replacement: the drained task stops",
                replicas: 1,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![
                    on(task("a", 1, Running, Running, 0), n1),
                    on(task("r", 1, Running, Running, 10), n2),
                ],
                now: 0,
                creates: vec![],
                desired: vec![("a", Shutdown)],
                wake_at: None,
            },
            Case {
                name: "drain of several slots moves one at a time",
                replicas: 3,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![
                    on(task("a1", 1, Running, Running, 0), n1),
                    on(task("a2", 2, Running, Running, 0), n1),
                    on(task("a3", 3, Running, Running, 0), n1),
                ],
                now: 0,
                creates: vec![1],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "drain waits while a slot is in flight",
                replicas: 3,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![
                    on(task("a1", 1, Running, Running, 0), n1),
                    on(task("a2", 2, Running, Running, 0), n1),
                    on(task("a3", 3, Running, Running, 0), n1),
                    on(task("r1", 1, Starting, Running, 10), n2),
                ],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "drain moves the next slot once the replacement is ready",
                replicas: 3,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![
                    on(task("a1", 1, Running, Running, 0), n1),
                    on(task("a2", 2, Running, Running, 0), n1),
                    on(task("a3", 3, Running, Running, 0), n1),
                    on(task("r1", 1, Running, Running, 10), n2),
                ],
                now: 0,
                creates: vec![2],
                desired: vec![("a1", Shutdown)],
                wake_at: None,
            },
            Case {
                name: "drain with no other node: the replacement stays pending, the task serves",
                replicas: 1,
                nodes: vec![drained("n1")],
                tasks: vec![
                    on(task("a", 1, Running, Running, 0), n1),
                    on(task("r", 1, Pending, Running, 10), None),
                ],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
            Case {
                name: "drain whose replacement failed waits for the restart delay",
                replicas: 1,
                nodes: vec![drained("n1"), node("n2")],
                tasks: vec![
                    on(task("a", 1, Running, Running, 0), n1),
                    on(task("r", 1, Failed, Shutdown, 10), n2),
                ],
                now: 2000,
                creates: vec![],
                desired: vec![],
                wake_at: Some(6010),
            },
            Case {
                name: "pause keeps the node's tasks",
                replicas: 1,
                nodes: vec![paused("n1"), node("n2")],
                tasks: vec![on(task("a", 1, Running, Running, 0), n1)],
                now: 0,
                creates: vec![],
                desired: vec![],
                wake_at: None,
            },
        ];
        for c in cases {
            let svc = service(ServiceMode::Replicated {
                replicas: c.replicas,
            });
            let refs: Vec<&Task> = c.tasks.iter().collect();
            let nodes: Vec<&Node> = c.nodes.iter().collect();
            let plan = plan_service(&svc, &refs, &nodes, c.now);
            let want: Vec<SlotKey> = c.creates.iter().map(|s| SlotKey::Slot(*s)).collect();
            assert_eq!(creates(&plan), want, "{}", c.name);
            let want: Vec<(String, TaskState)> = c
                .desired
                .iter()
                .map(|(id, s)| (id.to_string(), *s))
                .collect();
            assert_eq!(desired(&plan), want, "{}", c.name);
            assert_eq!(plan.wake_at, c.wake_at, "{}", c.name);
        }
    }

    #[test]
    fn restart_conditions() {
        let cases = [
            (RestartCondition::Any, Complete, true),
            (RestartCondition::Any, Failed, true),
            (RestartCondition::OnFailure, Complete, false),
            (RestartCondition::OnFailure, Failed, true),
            (RestartCondition::None, Failed, false),
        ];
        for (cond, end, restarts) in cases {
            let mut svc = service(ServiceMode::Replicated { replicas: 1 });
            svc.spec.task.restart.condition = cond;
            let t = task("a", 1, end, Shutdown, 0);
            let plan = plan_service(&svc, &[&t], &[], 100_000);
            assert_eq!(!creates(&plan).is_empty(), restarts, "{cond:?} after {end}");
        }
    }

    #[test]
    fn max_attempts_stop_restarts() {
        let mut svc = service(ServiceMode::Replicated { replicas: 1 });
        svc.spec.task.restart.max_attempts = 2;
        let mut t = task("a", 1, Failed, Shutdown, 0);
        t.attempt = 1;
        let plan = plan_service(&svc, &[&t], &[], 100_000);
        assert_eq!(
            plan.actions,
            vec![Action::Create {
                service_id: "s1".into(),
                slot: SlotKey::Slot(1),
                attempt: 2,
                quick_exits: 1
            }]
        );
        t.attempt = 2;
        let plan = plan_service(&svc, &[&t], &[], 100_000);
        assert!(creates(&plan).is_empty());
        // A task that ran longer than the window resets the count.
        svc.spec.task.restart.window = Duration::from_millis(500);
        let plan = plan_service(&svc, &[&t], &[], 100_000);
        assert_eq!(
            plan.actions,
            vec![Action::Create {
                service_id: "s1".into(),
                slot: SlotKey::Slot(1),
                attempt: 0,
                quick_exits: 1
            }]
        );
    }

    #[test]
    fn huge_stored_replica_count_plans_at_most_the_bound() {
        // A service stored before counts were validated: planning must neither allocate a
        // slot per replica nor create more tasks than the bound.
        let svc = service(ServiceMode::Replicated {
            replicas: 1_000_000_000_000,
        });
        let n = node("n1");
        let plan = plan_service(&svc, &[], &[&n], 0);
        assert_eq!(creates(&plan).len() as u64, MAX_REPLICAS);
        assert_eq!(creates(&plan).last(), Some(&SlotKey::Slot(MAX_REPLICAS)));
        // Its tasks beyond the bound are removed like a scale-down's.
        let beyond = task("beyond", MAX_REPLICAS + 1, Running, Running, 0);
        let plan = plan_service(&svc, &[&beyond], &[&n], 0);
        assert!(desired(&plan).contains(&("beyond".into(), Remove)));
        // The updater plans over the same bounded slots.
        let mut rolling = svc.clone();
        rolling.version = 2;
        rolling.update_status = updating(1, UpdateOrder::StopFirst).update_status;
        let plan = plan_service(&rolling, &[], &[&n], 0);
        assert_eq!(creates(&plan).len() as u64, MAX_REPLICAS);
    }

    #[test]
    fn crash_loop_backs_off_in_the_plan() {
        // A slot's task ran `ran` ms after `before` quick exits in a row; `waited` ms later:
        struct Case {
            name: &'static str,
            delay: u64,
            before: u32,
            ran: u64,
            waited: u64,
            creates: bool,
            wake_in: Option<u64>,
            streak: u32,
        }
        let cases = [
            Case {
                name: "0s delay: first quick exit waits the 100ms floor",
                delay: 0,
                before: 0,
                ran: 10,
                waited: 50,
                creates: false,
                wake_in: Some(50),
                streak: 1,
            },
            Case {
                name: "0s delay: replaced once the floor passed",
                delay: 0,
                before: 0,
                ran: 10,
                waited: 100,
                creates: true,
                wake_in: None,
                streak: 1,
            },
            Case {
                name: "0s delay: the fourth quick exit in a row waits 800ms",
                delay: 0,
                before: 3,
                ran: 10,
                waited: 799,
                creates: false,
                wake_in: Some(1),
                streak: 4,
            },
            Case {
                name: "5s delay: the third quick exit in a row waits 20s",
                delay: 5_000,
                before: 2,
                ran: 1_000,
                waited: 19_000,
                creates: false,
                wake_in: Some(1_000),
                streak: 3,
            },
            Case {
                name: "a long crash loop waits at most a minute",
                delay: 0,
                before: 1_000,
                ran: 10,
                waited: 60_000,
                creates: true,
                wake_in: None,
                streak: 1_001,
            },
            Case {
                name: "a task that ran 10s resets the back-off",
                delay: 0,
                before: 7,
                ran: 10_000,
                waited: 100,
                creates: true,
                wake_in: None,
                streak: 0,
            },
        ];
        for c in cases {
            let mut svc = service(ServiceMode::Replicated { replicas: 1 });
            svc.spec.task.restart.delay = Duration::from_millis(c.delay);
            let mut t = task("a", 1, Failed, Shutdown, 1_000);
            t.status.timestamp = 1_000 + c.ran;
            t.quick_exits = c.before;
            let end = t.status.timestamp;
            let plan = plan_service(&svc, &[&t], &[&node("n1")], end + c.waited);
            let made: Vec<u32> = plan
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::Create { quick_exits, .. } => Some(*quick_exits),
                    _ => None,
                })
                .collect();
            if c.creates {
                assert_eq!(made, vec![c.streak], "{}", c.name);
            } else {
                assert!(made.is_empty(), "{}: {plan:?}", c.name);
            }
            let wake = plan.wake_at.map(|w| w - end - c.waited);
            assert_eq!(wake, c.wake_in, "{}", c.name);
        }
    }

    #[test]
    fn history_is_trimmed_to_five_per_slot() {
        let svc = service(ServiceMode::Replicated { replicas: 1 });
        let mut tasks: Vec<Task> = (0..7)
            .map(|i| task(&format!("d{i}"), 1, Failed, Shutdown, i * 10))
            .collect();
        tasks.push(task("live", 1, Running, Running, 100));
        let refs: Vec<&Task> = tasks.iter().collect();
        let plan = plan_service(&svc, &refs, &[&node("n1")], 0);
        let deleted: Vec<&Action> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Delete { .. }))
            .collect();
        assert_eq!(
            deleted,
            vec![
                &Action::Delete {
                    task_id: "d0".into()
                },
                &Action::Delete {
                    task_id: "d1".into()
                }
            ]
        );
    }

    #[test]
    fn global_runs_one_task_per_eligible_node() {
        let mut svc = service(ServiceMode::Global);
        let a = node("a");
        let mut b = node("b");
        b.availability = shoal_api::Availability::Drain;
        let c = node("c");
        let plan = plan_service(&svc, &[], &[&a, &b, &c], 0);
        assert_eq!(
            creates(&plan),
            vec![SlotKey::Node("a".into()), SlotKey::Node("c".into())]
        );
        svc.spec.task.constraints = vec!["node.hostname!=c".into()];
        let mut on_c = task("t", 0, Running, Running, 0);
        on_c.node_id = Some("c".into());
        let plan = plan_service(&svc, &[&on_c], &[&a, &b, &c], 0);
        assert_eq!(creates(&plan), vec![SlotKey::Node("a".into())]);
        assert_eq!(desired(&plan), vec![("t".into(), Remove)]);
        // Drained or down nodes are not eligible: their global tasks are removed.
        let mut on_b = task("tb", 0, Running, Running, 0);
        on_b.node_id = Some("b".into());
        let mut on_a = task("ta", 0, Running, Running, 0);
        on_a.node_id = Some("a".into());
        let a_down = down("a");
        let plan = plan_service(&svc, &[&on_a, &on_b], &[&a_down, &b], 0);
        assert!(creates(&plan).is_empty());
        assert_eq!(
            desired(&plan),
            vec![("ta".into(), Remove), ("tb".into(), Remove)]
        );
    }

    /// `service` at version 2, rolling out with `order`.
    fn updating(replicas: u64, order: UpdateOrder) -> Service {
        let mut svc = service(ServiceMode::Replicated { replicas });
        svc.version = 2;
        svc.spec.update.order = order;
        svc.previous_spec = Some(svc.spec.clone());
        svc.update_status = Some(UpdateStatus {
            state: shoal_api::UpdateState::Updating,
            version: 2,
            started_at: 0,
            completed_at: None,
            message: String::new(),
        });
        svc
    }

    fn version(mut t: Task, v: u64) -> Task {
        t.spec_version = v;
        t
    }

    #[test]
    fn stop_first_replacement_waits_for_the_old_task_to_die() {
        let n1 = Some("n1");
        let stop_first = updating(1, UpdateOrder::StopFirst);
        let start_first = updating(1, UpdateOrder::StartFirst);
        let cases: Vec<(&str, &Service, Vec<Node>, Task, bool)> = vec![
            (
                "stop-first: the old task is still stopping",
                &stop_first,
                vec![node("n1")],
                on(task("a", 1, Running, Shutdown, 0), n1),
                false,
            ),
            (
                "stop-first: the old task is dead",
                &stop_first,
                vec![node("n1")],
                on(task("a", 1, Shutdown, Shutdown, 0), n1),
                true,
            ),
            (
                "start-first never waits",
                &start_first,
                vec![node("n1")],
                on(task("a", 1, Running, Shutdown, 0), n1),
                true,
            ),
            (
                "stopping on a down node: replaced at once",
                &stop_first,
                vec![down("n1"), node("n2")],
                on(task("a", 1, Running, Shutdown, 0), n1),
                true,
            ),
            (
                "stopping on a removed node: replaced at once",
                &stop_first,
                vec![node("n2")],
                on(task("a", 1, Running, Shutdown, 0), n1),
                true,
            ),
            (
                "stopping on a drained node: replaced at once",
                &stop_first,
                vec![drained("n1"), node("n2")],
                on(task("a", 1, Running, Shutdown, 0), n1),
                true,
            ),
            (
                "never assigned: replaced at once",
                &stop_first,
                vec![node("n1")],
                on(task("a", 1, Pending, Shutdown, 0), None),
                true,
            ),
        ];
        for (name, svc, nodes, old, replaced) in cases {
            let old = version(old, 1);
            let nodes: Vec<&Node> = nodes.iter().collect();
            let plan = plan_service(svc, &[&old], &nodes, 0);
            let want = if replaced {
                vec![SlotKey::Slot(1)]
            } else {
                vec![]
            };
            assert_eq!(creates(&plan), want, "{name}");
        }
        // A task of the current version stopped on purpose is replaced at once, as before.
        let current = version(on(task("a", 1, Running, Shutdown, 0), n1), 2);
        let plan = plan_service(&stop_first, &[&current], &[&node("n1")], 0);
        assert_eq!(creates(&plan), vec![SlotKey::Slot(1)]);
    }

    #[test]
    fn updater_actions_are_merged_per_service() {
        let n = node("n1");
        let svc = updating(2, UpdateOrder::StopFirst);
        let (a1, a2) = (
            version(task("a1", 1, Running, Running, 0), 1),
            version(task("a2", 2, Running, Running, 0), 1),
        );
        let plan = plan_service(&svc, &[&a1, &a2], &[&n], 0);
        assert_eq!(creates(&plan), vec![]);
        assert_eq!(desired(&plan), vec![("a1".into(), Shutdown)]);
        assert!(plan.updates.is_empty());
        // Done and watched: the status change comes with the plan.
        let (n1, n2) = (
            version(task("n1", 1, Running, Running, 0), 2),
            version(task("n2", 2, Running, Running, 0), 2),
        );
        let plan = plan_service(&svc, &[&n1, &n2], &[&n], 60_000);
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(
            plan.updates[0].status.state,
            shoal_api::UpdateState::Completed
        );
    }

    #[test]
    fn orchestrator_and_updater_never_both_create_in_a_slot() {
        // Node n1 goes down mid-update: the orchestrator refills slot 1 (at the current
        // version); the updater's start-first task for the same slot is dropped.
        let svc = updating(2, UpdateOrder::StartFirst);
        let a1 = version(on(task("a1", 1, Running, Running, 0), Some("n1")), 1);
        let a2 = version(on(task("a2", 2, Running, Running, 0), Some("n2")), 1);
        let nodes = [down("n1"), node("n2")];
        let nodes: Vec<&Node> = nodes.iter().collect();
        let plan = plan_service(&svc, &[&a1, &a2], &nodes, 0);
        assert_eq!(creates(&plan), vec![SlotKey::Slot(1)]);
        assert_eq!(desired(&plan), vec![("a1".into(), Shutdown)]);
        // Stop-first: the updater does not stop a task the drain is replacing start-first.
        let svc = updating(1, UpdateOrder::StopFirst);
        let a1 = version(on(task("a1", 1, Running, Running, 0), Some("n1")), 1);
        let nodes = [drained("n1"), node("n2")];
        let nodes: Vec<&Node> = nodes.iter().collect();
        let plan = plan_service(&svc, &[&a1], &nodes, 0);
        assert_eq!(creates(&plan), vec![SlotKey::Slot(1)]);
        assert_eq!(desired(&plan), vec![]);
    }

    #[test]
    fn tasks_of_removed_services_are_removed_then_deleted() {
        let mut state = ClusterState::default();
        let live = task("live", 1, Running, Running, 0);
        let dead = task("dead", 1, Shutdown, Remove, 0);
        state.tasks.insert(live.id.clone(), live);
        state.tasks.insert(dead.id.clone(), dead);
        let plan = plan_cluster(&state, 0);
        assert_eq!(
            plan.actions,
            vec![
                Action::Delete {
                    task_id: "dead".into()
                },
                Action::SetDesired {
                    task_id: "live".into(),
                    state: Remove
                },
            ]
        );
    }
}
