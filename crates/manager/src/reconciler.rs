//! The reconciler: runs the planners on every change and commits their decisions.

use crate::now_millis;
use crate::orchestrator::plan_cluster;
use crate::plan::{Action, SlotKey, UpdateChange};
use crate::scheduler::{schedule, Decision};
use crate::updater::rolled_back;
use shoal_api::{id, Task, TaskState, TaskStatus, UpdateState};
use shoal_store::{Store, StoreError, Txn};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest sleep between passes when nothing asks to be woken sooner.
const IDLE_PASS: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Reconciler {
    store: Arc<Store>,
}

impl Reconciler {
    pub fn new(store: Arc<Store>) -> Reconciler {
        Reconciler { store }
    }

    /// Plan and commit one pass; returns when the next pass is due (Unix ms), if planned.
    pub async fn reconcile_once(&self, now: u64) -> Result<Option<u64>, StoreError> {
        self.store
            .update(|tx| {
                let plan = plan_cluster(tx.state(), now);
                // Rollout status first, so a rollback's replacements get the restored spec.
                for change in plan.updates {
                    apply_update(tx, change, now);
                }
                for action in plan.actions {
                    apply_action(tx, action, now);
                }
                for decision in schedule(tx.state()) {
                    apply_decision(tx, decision, now);
                }
                Ok(plan.wake_at)
            })
            .await
    }

    /// Reconcile on every store change and at planned wake-ups, until `stop` flips.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        loop {
            changes.borrow_and_update();
            let now = now_millis();
            let wake = match self.reconcile_once(now).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "reconcile pass failed");
                    Some(now + 1000)
                }
            };
            let nap = wake
                .map(|w| Duration::from_millis(w.saturating_sub(now)))
                .unwrap_or(IDLE_PASS)
                .min(IDLE_PASS);
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(nap) => {},
                _ = stop.changed() => return,
            }
        }
    }
}

fn apply_update(tx: &mut Txn, change: UpdateChange, now: u64) {
    let Some(service) = tx.state().services.get(&change.service_id) else {
        return;
    };
    let (name, status) = (service.spec.name.clone(), change.status.clone());
    let service = if change.rollback {
        match rolled_back(tx.state(), service, change.status, now) {
            Some(s) => s,
            None => return,
        }
    } else {
        let mut s = service.clone();
        s.update_status = Some(change.status);
        s
    };
    let (state, message) = (status.state.as_str(), status.message.as_str());
    // Pauses and rollbacks are what operators look for (moby#37338): say them louder.
    if change.rollback
        || matches!(
            status.state,
            UpdateState::Paused | UpdateState::RollbackPaused
        )
    {
        tracing::warn!(service = %name, version = service.version, state, message, "rollout");
    } else {
        tracing::info!(service = %name, version = service.version, state, message, "rollout");
    }
    tx.put(service);
}

fn apply_action(tx: &mut Txn, action: Action, now: u64) {
    match action {
        Action::Create {
            service_id,
            slot,
            attempt,
            quick_exits,
        } => {
            let Some(service) = tx.state().services.get(&service_id) else {
                return;
            };
            let (slot, node_id) = match slot {
                SlotKey::Slot(n) => (n, None),
                SlotKey::Node(n) => (0, Some(n)),
            };
            let task = Task {
                id: id::new_id(),
                service_id,
                service_name: service.spec.name.clone(),
                slot,
                node_id,
                spec_version: service.version,
                spec: service.spec.task.clone(),
                ports: service.ports.clone(),
                desired_state: TaskState::Running,
                status: TaskStatus::new(TaskState::Pending, now, "pending task scheduling"),
                endpoint: None,
                created_at: now,
                attempt,
                quick_exits,
                pending_reason: None,
            };
            tracing::info!(task = %task.name(), attempt, "task created");
            tx.put(task);
        }
        Action::SetDesired { task_id, state } => {
            let Some(mut task) = tx.state().tasks.get(&task_id).cloned() else {
                return;
            };
            if task.desired_state == state {
                return;
            }
            if let Err(e) = task.set_desired(state) {
                tracing::warn!(error = %e, "desired state change refused");
                return;
            }
            // No agent has seen a task that was never assigned: it ends here, or it would
            // stay pending forever (and a stop-first replacement would wait for it).
            if task.status.state <= TaskState::Pending && state >= TaskState::Shutdown {
                let _ = task.advance(
                    TaskState::Shutdown,
                    now,
                    "shut down before it was scheduled",
                );
            }
            tx.put(task);
        }
        Action::Delete { task_id } => tx.delete::<Task>(task_id),
    }
}

fn apply_decision(tx: &mut Txn, decision: Decision, now: u64) {
    match decision {
        Decision::Assign { task_id, node_id } => {
            let Some(mut task) = tx.state().tasks.get(&task_id).cloned() else {
                return;
            };
            task.node_id = Some(node_id);
            task.pending_reason = None;
            if let Err(e) = task.advance(TaskState::Assigned, now, "assigned") {
                tracing::warn!(error = %e, "assignment refused");
                return;
            }
            tx.put(task);
        }
        Decision::Pending { task_id, reason } => {
            let Some(mut task) = tx.state().tasks.get(&task_id).cloned() else {
                return;
            };
            if task.pending_reason.as_deref() != Some(reason.as_str()) {
                task.pending_reason = Some(reason);
                tx.put(task);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Whole rollouts through the reconciler and a fake agent, one pass per simulated second.

    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }
    use shoal_api::{
        FailureAction, Node, NodeRole, PortConfig, Service, ServiceMode, ServiceSpec, TaskTemplate,
        UpdateOrder, UpdateState, UpdateStatus,
    };
    use std::collections::BTreeMap;

    fn spec(replicas: u64, command: &str) -> ServiceSpec {
        ServiceSpec {
            endpoint_mode: Default::default(),
            lb: Default::default(),
            lb_local_first: false,
            lb_mode: Default::default(),
            idle_timeout: Default::default(),
            name: "web".into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas },
            task: TaskTemplate::with_command(vec![command.into()]),
            ports: vec![],
            update: Default::default(),
            rollback: Default::default(),
        }
    }

    fn setup(spec: ServiceSpec) -> (tempfile::TempDir, Reconciler) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("state.redb")).expect("store"));
        block(store.update(|tx| {
            tx.put(Node::new(
                "n1".into(),
                "n1".into(),
                NodeRole::Manager,
                "127.0.0.1".into(),
                0,
            ));
            tx.put(Service {
                vip: None,
                id: "s1".into(),
                version: 1,
                ports: spec.ports.clone(),
                spec,
                previous_spec: None,
                update_status: None,
                docker_spec: None,
                docker_previous_spec: None,
                created_at: 0,
                updated_at: 0,
            });
            Ok::<_, StoreError>(())
        }))
        .unwrap();
        (dir, Reconciler::new(store))
    }

    /// The agent: assigned tasks start (tasks running `false` fail a second later, tasks
    /// running `sick` never pass their health check and fail 4 seconds later), tasks asked
    /// to stop stop a second later (their grace period).
    fn agent(r: &Reconciler, now: u64) {
        block(r.store.update(|tx| {
            let tasks: Vec<Task> = tx.state().tasks.values().cloned().collect();
            for mut t in tasks {
                let to = if !t.is_live() || t.status.state < TaskState::Assigned {
                    continue;
                } else if t.desired_state > TaskState::Running {
                    if t.status.message != "stopping" {
                        let state = t.status.state;
                        t.advance(state, now, "stopping").unwrap();
                        tx.put(t);
                        continue;
                    }
                    TaskState::Shutdown
                } else if t.status.state < TaskState::Running {
                    TaskState::Running
                } else if t.spec.argv() == ["false"] {
                    TaskState::Failed
                } else if t.spec.argv() == ["sick"] && now >= t.status.timestamp + 4000 {
                    t.status.health = Some(shoal_api::Health::Unhealthy);
                    TaskState::Failed
                } else {
                    continue;
                };
                if to == TaskState::Running && t.spec.argv() == ["sick"] {
                    t.status.health = Some(shoal_api::Health::Starting);
                }
                t.advance(to, now, to.as_str()).unwrap();
                tx.put(t);
            }
            Ok::<_, StoreError>(())
        }))
        .unwrap();
    }

    /// `service update`, as the control API writes it.
    fn update(r: &Reconciler, change: impl FnOnce(&mut ServiceSpec), now: u64) {
        block(r.store.update(|tx| {
            let mut s = tx.state().services["s1"].clone();
            let mut spec = s.spec.clone();
            change(&mut spec);
            s.previous_spec = Some(std::mem::replace(&mut s.spec, spec));
            s.version += 1;
            s.update_status = Some(UpdateStatus {
                state: UpdateState::Updating,
                version: s.version,
                started_at: now,
                completed_at: None,
                message: String::new(),
            });
            tx.put(s);
            Ok::<_, StoreError>(())
        }))
        .unwrap();
    }

    /// Stop-first: one live task per slot. Start-first: one wanted live task per slot, or
    /// two while the new one is not ready. At most `max_unready` slots without a ready task.
    fn check_slots(r: &Reconciler, start_first: bool, max_unready: usize) {
        let state = r.store.state();
        let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
        for t in state.tasks.values().filter(|t| t.is_live()) {
            slots.entry(t.slot).or_default().push(t);
        }
        let unready = slots
            .values()
            .filter(|ts| !ts.iter().any(|t| t.is_ready()))
            .count();
        assert!(
            unready <= max_unready,
            "{unready} slots unready: {slots:#?}"
        );
        for (slot, ts) in slots {
            // Stop-first: a replacement starts only once the old task is dead.
            assert!(start_first || ts.len() == 1, "slot {slot}: {ts:#?}");
            let mut ts: Vec<&Task> = ts.into_iter().filter(|t| t.is_wanted()).collect();
            ts.sort_by_key(|t| t.created_at);
            let overlap = start_first && ts.len() == 2 && !ts[1].is_ready();
            assert!(ts.len() <= 1 || overlap, "slot {slot}: {ts:#?}");
        }
    }

    /// Run passes until the rollout state changes; returns the service then.
    fn run(r: &Reconciler, now: &mut u64, start_first: bool, max_unready: usize) -> Service {
        let from = r.store.state().services["s1"]
            .update_status
            .as_ref()
            .map(|u| u.state)
            .expect("a rollout");
        for _ in 0..300 {
            block(r.reconcile_once(*now)).unwrap();
            // After each pass (an agent report may leave a ready new task beside the old
            // one until the next pass).
            check_slots(r, start_first, max_unready);
            agent(r, *now);
            *now += 1000;
            let s = r.store.state().services["s1"].clone();
            if s.update_status.as_ref().map(|u| u.state) != Some(from) {
                return s;
            }
        }
        panic!("rollout did not finish: {:#?}", r.store.state());
    }

    fn live_versions(r: &Reconciler) -> Vec<u64> {
        let state = r.store.state();
        state
            .tasks
            .values()
            .filter(|t| t.is_wanted())
            .map(|t| t.spec_version)
            .collect()
    }

    fn converge(r: &Reconciler, now: &mut u64) {
        for _ in 0..5 {
            block(r.reconcile_once(*now)).unwrap();
            agent(r, *now);
            *now += 1000;
        }
    }

    #[test]
    fn rolling_updates_complete_in_both_orders() {
        for order in [UpdateOrder::StopFirst, UpdateOrder::StartFirst] {
            let mut s = spec(3, "true");
            s.update.order = order;
            let (_dir, r) = setup(s);
            let mut now = 1000;
            converge(&r, &mut now);
            assert_eq!(live_versions(&r), vec![1, 1, 1]);
            update(&r, |s| s.task.env = vec!["V=2".into()], now);
            // Parallelism 1: stop-first takes one slot out at a time, start-first none.
            let start_first = order == UpdateOrder::StartFirst;
            let done = run(&r, &mut now, start_first, usize::from(!start_first));
            let status = done.update_status.unwrap();
            assert_eq!(status.state, UpdateState::Completed, "{order:?}");
            assert_eq!(status.message, "update completed");
            converge(&r, &mut now);
            assert_eq!(live_versions(&r), vec![2, 2, 2], "{order:?}");
        }
    }

    #[test]
    fn failed_update_rolls_back() {
        let mut s = spec(2, "true");
        s.update.failure_action = FailureAction::Rollback;
        let (_dir, r) = setup(s.clone());
        let mut now = 1000;
        converge(&r, &mut now);
        update(
            &r,
            |s| s.task.process_mut().expect("process").command = vec!["false".into()],
            now,
        );
        let after = run(&r, &mut now, false, usize::MAX);
        let status = after.update_status.clone().unwrap();
        assert_eq!(status.state, UpdateState::RollbackStarted);
        assert!(
            status.message.starts_with("update failed: task web.1.")
                && status.message.ends_with("failed, rolling back"),
            "{}",
            status.message
        );
        assert_eq!(after.version, 3);
        assert_eq!(after.spec.task.argv(), vec!["true".to_string()]);
        // The rollback itself runs to completion.
        let done = run(&r, &mut now, false, usize::MAX);
        assert_eq!(
            done.update_status.unwrap().state,
            UpdateState::RollbackCompleted
        );
        converge(&r, &mut now);
        assert_eq!(live_versions(&r), vec![3, 3]);
    }

    /// The rollout of a task that is never healthy, and takes longer than `monitor` to be
    /// declared unhealthy, went on for good: each restart was a fresh task in flight.
    #[test]
    fn new_task_that_fails_before_ready_fails_the_update_at_once() {
        for action in [FailureAction::Pause, FailureAction::Rollback] {
            let mut s = spec(3, "true");
            s.update.failure_action = action;
            s.update.monitor = Duration::from_secs(3);
            let (_dir, r) = setup(s);
            let mut now = 1000;
            converge(&r, &mut now);
            let started = now;
            update(
                &r,
                |s| s.task.process_mut().expect("process").command = vec!["sick".into()],
                now,
            );
            let after = run(&r, &mut now, false, 1);
            let status = after.update_status.unwrap();
            let want = match action {
                FailureAction::Rollback => UpdateState::RollbackStarted,
                _ => UpdateState::Paused,
            };
            assert_eq!(status.state, want, "{action:?}: {}", status.message);
            // The first new task's failure, not a progress deadline.
            assert!(
                now - started <= 10_000,
                "{action:?}: took {}ms",
                now - started
            );
            let sick = r
                .store
                .state()
                .tasks
                .values()
                .filter(|t| t.spec.argv() == ["sick"])
                .count();
            assert_eq!(sick, 1, "{action:?}: one new task tried");
        }
    }

    #[test]
    fn start_first_with_host_ports_completes_stop_first() {
        // One node: start-first would wait forever for the port (moby#41364).
        let mut s = spec(1, "true");
        s.update.order = UpdateOrder::StartFirst;
        s.ports = vec![PortConfig::parse("published=8080,target=80,mode=host").unwrap()];
        let (_dir, r) = setup(s);
        let mut now = 1000;
        converge(&r, &mut now);
        update(&r, |s| s.task.env = vec!["V=2".into()], now);
        let done = run(&r, &mut now, false, usize::MAX);
        assert_eq!(done.update_status.unwrap().state, UpdateState::Completed);
        converge(&r, &mut now);
        assert_eq!(live_versions(&r), vec![2]);
    }

    #[test]
    fn a_task_stopped_before_it_was_scheduled_ends_at_once() {
        let (_dir, r) = setup(spec(1, "true"));
        block(r.store.update(|tx| {
            let mut nodes = tx.state().nodes["n1"].clone();
            nodes.state = shoal_api::NodeState::Down;
            tx.put(nodes);
            Ok::<_, StoreError>(())
        }))
        .unwrap();
        block(r.reconcile_once(0)).unwrap();
        let id = r.store.state().tasks.keys().next().unwrap().clone();
        block(r.store.update(|tx| {
            apply_action(
                tx,
                Action::SetDesired {
                    task_id: id.clone(),
                    state: TaskState::Shutdown,
                },
                5,
            );
            Ok::<_, StoreError>(())
        }))
        .unwrap();
        let t = r.store.state().tasks[&id].clone();
        assert_eq!(
            (t.status.state, t.status.timestamp),
            (TaskState::Shutdown, 5)
        );
    }
}
