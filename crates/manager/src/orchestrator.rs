//! The orchestrator planner: from a service and its tasks, the actions that converge it.
//!
//! Pure: takes state and the current time, returns actions and when to look again.
//! Replicated services get one wanted task per slot `1..=replicas`; global services one per
//! eligible node. Dead tasks are replaced per the restart policy (after its delay), extra
//! tasks are stopped (highest slots first on scale-down), and history is trimmed to
//! [`TASK_HISTORY_LIMIT`] dead tasks per slot.

use shoal_api::{
    ClusterState, Constraint, Node, RestartCondition, Service, ServiceMode, Task, TaskState,
    TASK_HISTORY_LIMIT,
};
use std::collections::BTreeMap;

/// Where a task belongs: a replica slot or, for global services, a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlotKey {
    Slot(u64),
    Node(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make a new task for the slot (`attempt` counts restarts of the slot).
    Create {
        service_id: String,
        slot: SlotKey,
        attempt: u32,
    },
    /// Move a task's desired state forward (stop it, or mark it for removal).
    SetDesired { task_id: String, state: TaskState },
    /// Forget a dead task (history trimming, removed slots, removed services).
    Delete { task_id: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Earliest time (Unix ms) at which planning again may produce new actions.
    pub wake_at: Option<u64>,
}

impl Plan {
    fn wake(&mut self, at: u64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn merge(&mut self, other: Plan) {
        self.actions.extend(other.actions);
        if let Some(w) = other.wake_at {
            self.wake(w);
        }
    }
}

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
        ServiceMode::Replicated { replicas } => (1..=*replicas).map(SlotKey::Slot).collect(),
        ServiceMode::Global => eligible_nodes(service, nodes)
            .into_iter()
            .map(|n| SlotKey::Node(n.id.clone()))
            .collect(),
    };
    let mut plan = Plan::default();
    for key in &wanted {
        let slot_tasks = by_slot.remove(key).unwrap_or_default();
        plan.merge(plan_slot(service, key, &slot_tasks, now));
    }
    // Slots no longer wanted (scale-down, node ineligible): stop and forget their tasks.
    for (_, slot_tasks) in by_slot {
        for t in slot_tasks {
            plan.actions.extend(remove_task(t));
        }
    }
    plan
}

fn plan_slot(service: &Service, key: &SlotKey, tasks: &[&Task], now: u64) -> Plan {
    let mut plan = Plan::default();
    let mut sorted: Vec<&Task> = tasks.to_vec();
    sorted.sort_by_key(|t| (t.created_at, t.attempt));

    // Keep the newest wanted live task; stop any others (never two live tasks per slot).
    let wanted: Vec<&Task> = sorted.iter().copied().filter(|t| t.is_wanted()).collect();
    if let Some((_, extra)) = wanted.split_last() {
        for t in extra {
            plan.actions.push(Action::SetDesired {
                task_id: t.id.clone(),
                state: TaskState::Shutdown,
            });
        }
    }
    // Dead tasks still marked wanted-running are settled as shut down.
    for t in &sorted {
        if !t.is_live() && t.desired_state == TaskState::Running {
            plan.actions.push(Action::SetDesired {
                task_id: t.id.clone(),
                state: TaskState::Shutdown,
            });
        }
    }
    // Trim history: keep the newest TASK_HISTORY_LIMIT dead tasks.
    let dead: Vec<&Task> = sorted.iter().copied().filter(|t| !t.is_live()).collect();
    if dead.len() > TASK_HISTORY_LIMIT {
        for t in &dead[..dead.len() - TASK_HISTORY_LIMIT] {
            plan.actions.push(Action::Delete {
                task_id: t.id.clone(),
            });
        }
    }
    if !wanted.is_empty() {
        return plan;
    }
    let Some(latest) = sorted.last() else {
        plan.actions.push(create(service, key, 0));
        return plan;
    };
    if latest.is_live() || latest.status.state == TaskState::Shutdown {
        // Stopped on purpose (scale, drain, shutdown of a duplicate): replace at once.
        plan.actions.push(create(service, key, latest.attempt));
        return plan;
    }
    // The task ended on its own: the restart policy decides.
    let policy = &service.spec.task.restart;
    let failed = latest.status.state != TaskState::Complete;
    let restart = match policy.condition {
        RestartCondition::Any => true,
        RestartCondition::OnFailure => failed,
        RestartCondition::None => false,
    };
    if !restart {
        return plan;
    }
    let started = latest.created_at;
    let ended = latest.status.timestamp;
    let attempt = if !policy.window.is_zero()
        && ended.saturating_sub(started) >= policy.window.as_millis() as u64
    {
        0
    } else {
        latest.attempt + 1
    };
    if policy.max_attempts > 0 && attempt > policy.max_attempts {
        return plan;
    }
    let due = ended.saturating_add(policy.delay.as_millis() as u64);
    if now >= due {
        plan.actions.push(create(service, key, attempt));
    } else {
        plan.wake(due);
    }
    plan
}

fn create(service: &Service, key: &SlotKey, attempt: u32) -> Action {
    Action::Create {
        service_id: service.id.clone(),
        slot: key.clone(),
        attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{NodeRole, ServiceSpec, TaskStatus, TaskTemplate};
    use std::time::Duration;

    fn service(mode: ServiceMode) -> Service {
        let mut task = TaskTemplate::with_command(vec!["true".into()]);
        task.restart.delay = Duration::from_secs(5);
        Service {
            id: "s1".into(),
            version: 1,
            spec: ServiceSpec {
                name: "web".into(),
                labels: Default::default(),
                mode,
                task,
                ports: vec![],
            },
            previous_spec: None,
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
                attempt: 2
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
                attempt: 0
            }]
        );
    }

    #[test]
    fn history_is_trimmed_to_five_per_slot() {
        let svc = service(ServiceMode::Replicated { replicas: 1 });
        let mut tasks: Vec<Task> = (0..7)
            .map(|i| task(&format!("d{i}"), 1, Failed, Shutdown, i * 10))
            .collect();
        tasks.push(task("live", 1, Running, Running, 100));
        let refs: Vec<&Task> = tasks.iter().collect();
        let plan = plan_service(&svc, &refs, &[], 0);
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
