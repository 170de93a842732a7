//! What the planners decide, in one vocabulary: a service's slots, the actions that change
//! its tasks, and the replacement of a slot's task under the restart policy.
//!
//! Shared by the [`orchestrator`](crate::orchestrator) and the
//! [`updater`](crate::updater), so the dependency goes one way: orchestrator → updater → plan.
//! Pure, like both of them.

use crate::restart::{quick_exits, restart_delay};
use shoal_api::limits::MAX_REPLICAS;
use shoal_api::{RestartCondition, Service, Task, TaskState, UpdateStatus};
use std::time::Duration;

/// Where a task belongs: a replica slot or, for global services, a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlotKey {
    Slot(u64),
    Node(String),
}

/// One change a planner decides: a new task, or a step for an existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make a new task for the slot (`attempt` counts restarts of the slot, `quick_exits`
    /// the tasks in a row that ended soon after they were created).
    Create {
        service_id: String,
        slot: SlotKey,
        attempt: u32,
        quick_exits: u32,
    },
    /// Move a task's desired state forward (stop it, or mark it for removal).
    SetDesired { task_id: String, state: TaskState },
    /// Forget a dead task (history trimming, removed slots, removed services).
    Delete { task_id: String },
}

/// A rollout status to write for a service (from the updater).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateChange {
    pub service_id: String,
    pub status: UpdateStatus,
    /// Roll back: put the previous spec back as a new version, with `status` for it.
    pub rollback: bool,
}

/// What a planning pass decided, for the cluster, a service or one slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Earliest time (Unix ms) at which planning again may produce new actions.
    pub wake_at: Option<u64>,
    /// Rollout status changes, applied before the actions.
    pub updates: Vec<UpdateChange>,
}

impl Plan {
    pub(crate) fn wake(&mut self, at: u64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    pub(crate) fn merge(&mut self, other: Plan) {
        self.actions.extend(other.actions);
        if let Some(w) = other.wake_at {
            self.wake(w);
        }
        self.updates.extend(other.updates);
    }
}

/// The replica slots to plan: the spec's count, never more than [`MAX_REPLICAS`]. Validation
/// refuses more, but a service stored before that check must not make the planner allocate
/// (or create tasks) in proportion to whatever number it holds.
pub fn planned_replicas(service: &Service) -> u64 {
    service.spec.replicas().unwrap_or(0).min(MAX_REPLICAS)
}

/// The new task for a slot whose newest task is `latest` (none: the slot never had one).
pub(crate) fn replacement(
    service: &Service,
    key: &SlotKey,
    latest: Option<&Task>,
    now: u64,
) -> Plan {
    let mut plan = Plan::default();
    let Some(latest) = latest else {
        plan.actions.push(create(service, key, 0, 0));
        return plan;
    };
    if latest.is_live() || latest.status.state == TaskState::Shutdown {
        // Stopped on purpose (scale, drain, node down, duplicate): replace at once.
        plan.actions.push(create(service, key, latest.attempt, 0));
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
    // Back off: quick exits in a row double the delay (a crash loop is not a fork loop).
    let streak = quick_exits(
        latest.quick_exits,
        Duration::from_millis(ended.saturating_sub(started)),
    );
    let delay = restart_delay(policy.delay, streak);
    let due = ended.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    if now >= due {
        plan.actions.push(create(service, key, attempt, streak));
    } else {
        plan.wake(due);
    }
    plan
}

/// Stop a task (its desired state moves to shutdown).
pub(crate) fn stop(t: &Task) -> Action {
    Action::SetDesired {
        task_id: t.id.clone(),
        state: TaskState::Shutdown,
    }
}

/// A new task for the slot.
pub(crate) fn create(service: &Service, key: &SlotKey, attempt: u32, quick_exits: u32) -> Action {
    Action::Create {
        service_id: service.id.clone(),
        slot: key.clone(),
        attempt,
        quick_exits,
    }
}
