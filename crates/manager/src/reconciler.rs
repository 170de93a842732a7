//! The reconciler: runs the planners on every change and commits their decisions.

use crate::now_millis;
use crate::orchestrator::{plan_cluster, Action, SlotKey};
use crate::scheduler::{schedule, Decision};
use shoal_api::{id, Task, TaskState, TaskStatus};
use shoal_store::{Op, Store, StoreError, Txn};
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
    pub fn reconcile_once(&self, now: u64) -> Result<Option<u64>, StoreError> {
        self.store.update(|tx| {
            let plan = plan_cluster(tx.state(), now);
            for action in plan.actions {
                apply_action(tx, action, now);
            }
            for decision in schedule(tx.state()) {
                apply_decision(tx, decision, now);
            }
            Ok(plan.wake_at)
        })
    }

    /// Reconcile on every store change and at planned wake-ups, until `stop` flips.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        loop {
            changes.borrow_and_update();
            let now = now_millis();
            let wake = match self.reconcile_once(now) {
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

fn apply_action(tx: &mut Txn, action: Action, now: u64) {
    match action {
        Action::Create {
            service_id,
            slot,
            attempt,
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
                pending_reason: None,
            };
            tracing::info!(task = %task.name(), attempt, "task created");
            tx.put_task(task);
        }
        Action::SetDesired { task_id, state } => {
            let Some(mut task) = tx.state().tasks.get(&task_id).cloned() else {
                return;
            };
            if task.desired_state == state {
                return;
            }
            match task.set_desired(state) {
                Ok(()) => tx.put_task(task),
                Err(e) => tracing::warn!(error = %e, "desired state change refused"),
            }
        }
        Action::Delete { task_id } => tx.push(Op::DeleteTask(task_id)),
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
            tx.put_task(task);
        }
        Decision::Pending { task_id, reason } => {
            let Some(mut task) = tx.state().tasks.get(&task_id).cloned() else {
                return;
            };
            if task.pending_reason.as_deref() != Some(reason.as_str()) {
                task.pending_reason = Some(reason);
                tx.put_task(task);
            }
        }
    }
}
