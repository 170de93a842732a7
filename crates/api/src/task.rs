//! Tasks and their forward-only lifecycle.
//!
//! A task's observed state (what the agent reports) and desired state (what the manager
//! wants) both only ever move forward through [`TaskState`]; [`TaskStatus::advance`] is the
//! one guarded transition and refuses anything else.

use crate::runtime::RuntimeStatus;
use crate::service::TaskTemplate;
use crate::Protocol;
use serde::{Deserialize, Serialize};

/// Swarm's task states, in lifecycle order. The declaration order is the transition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    New,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub const ALL: [TaskState; 14] = [
        TaskState::New,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Preparing,
        TaskState::Ready,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Complete,
        TaskState::Shutdown,
        TaskState::Failed,
        TaskState::Rejected,
        TaskState::Remove,
        TaskState::Orphaned,
    ];

    /// The lowercase name used in the API and in `--filter desired-state=...`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// The capitalised name shown in tables (`Running`, `Shutdown`).
    pub fn title(self) -> String {
        let s = self.as_str();
        let mut c = s.chars();
        match c.next() {
            Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
            None => String::new(),
        }
    }

    pub fn parse(text: &str) -> Option<TaskState> {
        TaskState::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// The task has stopped for good (or never will run).
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused state change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task}: cannot move {what} state from {from} to {to}")]
pub struct TransitionError {
    pub task: String,
    pub what: &'static str,
    pub from: TaskState,
    pub to: TaskState,
}

/// Health of a task with a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Checks have not passed yet (start period, or no run so far).
    Starting,
    Healthy,
    /// The last check failed but retries are not used up: out of rotation, still running.
    Failing,
    /// Retries used up: the task is stopped and the restart policy applies.
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Failing => "failing",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What the agent last observed of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    /// Unix milliseconds of the last state change.
    pub timestamp: u64,
    /// Short human message for the current state (`started`, `preparing`...).
    #[serde(default)]
    pub message: String,
    /// Why the task failed or was rejected, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What runs the task (process or container), once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStatus>,
    /// The kernel killed the task for exceeding its memory limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Unix milliseconds at which the task first became ready ([`Task::is_ready`]), if it
    /// ever did. Kept once set: a rollout tells a task that failed before it ever served
    /// from one that served and failed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<u64>,
}

impl TaskStatus {
    pub fn new(state: TaskState, now: u64, message: impl Into<String>) -> Self {
        TaskStatus {
            state,
            timestamp: now,
            message: message.into(),
            err: None,
            exit_code: None,
            runtime: None,
            oom_killed: false,
            health: None,
            ready_at: None,
        }
    }
}

/// Where a running task can be reached: `(node address, host port)` per target port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEndpoint {
    pub addr: String,
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPort {
    pub target: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// An observed change of one task, sent by the agent that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub task_id: String,
    pub state: TaskState,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What runs the task, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStatus>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<TaskEndpoint>,
}

impl TaskReport {
    pub fn new(task_id: &str, state: TaskState, message: impl Into<String>) -> TaskReport {
        TaskReport {
            task_id: task_id.to_string(),
            state,
            message: message.into(),
            err: None,
            exit_code: None,
            runtime: None,
            oom_killed: false,
            health: None,
            endpoint: None,
        }
    }
}

impl Task {
    /// Apply an agent's report: move the observed state forward and record the details.
    pub fn apply_report(&mut self, r: &TaskReport, now: u64) -> Result<(), TransitionError> {
        self.advance(r.state, now, r.message.clone())?;
        if r.err.is_some() {
            self.status.err = r.err.clone();
        }
        if r.exit_code.is_some() {
            self.status.exit_code = r.exit_code;
        }
        if r.runtime.is_some() {
            self.status.runtime = r.runtime.clone();
        }
        self.status.oom_killed |= r.oom_killed;
        if r.health.is_some() {
            self.status.health = r.health;
        }
        if r.endpoint.is_some() {
            self.endpoint = r.endpoint.clone();
        }
        // Only now, with the health of this report applied: a task with a check reports
        // `running` together with health `starting`.
        if self.status.ready_at.is_none() && self.is_ready() {
            self.status.ready_at = Some(now);
        }
        Ok(())
    }
}

impl TaskEndpoint {
    pub fn host_port(&self, target: u16, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.target == target && p.protocol == protocol)
            .map(|p| p.host_port)
    }
}

/// One instance of a service: a slot (replicated) or a node (global).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    pub service_name: String,
    /// Replica number from 1 (replicated); 0 for global tasks.
    pub slot: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The service spec version this task was made from.
    pub spec_version: u64,
    pub spec: TaskTemplate,
    /// The service's published ports when the task was made (targets to give the task).
    #[serde(default)]
    pub ports: Vec<crate::PortConfig>,
    pub desired_state: TaskState,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<TaskEndpoint>,
    pub created_at: u64,
    /// Restarts of this slot so far (0 for the first task).
    #[serde(default)]
    pub attempt: u32,
    /// Tasks of this slot that ended on their own soon after they were created, in a row,
    /// just before this one: the restart back-off grows with it.
    #[serde(default)]
    pub quick_exits: u32,
    /// Why the scheduler could not place the task, while it is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
}

impl Task {
    /// `web.1` for replicated tasks, `web.<node id>` for global ones.
    pub fn slot_name(&self) -> String {
        if self.slot == 0 {
            format!(
                "{}.{}",
                self.service_name,
                self.node_id.as_deref().unwrap_or("")
            )
        } else {
            format!("{}.{}", self.service_name, self.slot)
        }
    }

    /// The full task name, `web.1.<task id>`, like Swarm's container names.
    pub fn name(&self) -> String {
        format!("{}.{}", self.slot_name(), self.id)
    }

    /// Alive: not terminal yet.
    pub fn is_live(&self) -> bool {
        !self.status.state.is_terminal()
    }

    /// Counts against the service's wanted replicas: wanted running and not dead.
    pub fn is_wanted(&self) -> bool {
        self.desired_state <= TaskState::Running && self.is_live()
    }

    /// May receive traffic: running, wanted, and healthy if it has a check.
    pub fn is_ready(&self) -> bool {
        self.status.state == TaskState::Running
            && self.desired_state == TaskState::Running
            && match self.status.health {
                None | Some(Health::Healthy) => true,
                Some(Health::Starting | Health::Failing | Health::Unhealthy) => false,
            }
    }

    /// Move the observed state forward. Same state is a no-op update of the message.
    pub fn advance(
        &mut self,
        to: TaskState,
        now: u64,
        message: impl Into<String>,
    ) -> Result<(), TransitionError> {
        let from = self.status.state;
        if to < from || (from.is_terminal() && to != from) {
            return Err(TransitionError {
                task: self.id.clone(),
                what: "observed",
                from,
                to,
            });
        }
        if to != from {
            self.status.timestamp = now;
        }
        self.status.state = to;
        self.status.message = message.into();
        Ok(())
    }

    /// Move the desired state forward (`running` -> `shutdown` -> `remove`). Same is a no-op.
    pub fn set_desired(&mut self, to: TaskState) -> Result<(), TransitionError> {
        if to < self.desired_state {
            return Err(TransitionError {
                task: self.id.clone(),
                what: "desired",
                from: self.desired_state,
                to,
            });
        }
        self.desired_state = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: None,
            spec_version: 1,
            spec: TaskTemplate::default(),
            ports: vec![],
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::New, 0, "created"),
            endpoint: None,
            created_at: 0,
            attempt: 0,
            quick_exits: 0,
            pending_reason: None,
        }
    }

    #[test]
    fn observed_state_moves_forward_only() {
        let mut t = task();
        for (i, to) in [
            TaskState::Pending,
            TaskState::Assigned,
            TaskState::Running,
            TaskState::Failed,
        ]
        .into_iter()
        .enumerate()
        {
            t.advance(to, i as u64 + 1, "").unwrap();
            assert_eq!(t.status.state, to);
        }
        assert_eq!(t.status.timestamp, 4);
        let err = t.advance(TaskState::Running, 9, "").unwrap_err();
        assert_eq!(err.from, TaskState::Failed);
        assert_eq!(t.status.state, TaskState::Failed);
    }

    #[test]
    fn terminal_states_are_final() {
        for end in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            let mut t = task();
            t.advance(end, 1, "").unwrap();
            for later in TaskState::ALL.into_iter().filter(|s| *s > end) {
                assert!(t.clone().advance(later, 2, "").is_err(), "{end} -> {later}");
            }
        }
    }

    #[test]
    fn backward_moves_are_refused_for_every_pair() {
        for from in TaskState::ALL {
            for to in TaskState::ALL.into_iter().filter(|s| *s < from) {
                let mut t = task();
                t.status.state = from;
                assert!(t.advance(to, 1, "").is_err(), "{from} -> {to}");
                assert_eq!(t.status.state, from);
            }
        }
    }

    #[test]
    fn desired_state_moves_forward_only() {
        let mut t = task();
        t.set_desired(TaskState::Shutdown).unwrap();
        assert!(t.set_desired(TaskState::Running).is_err());
        t.set_desired(TaskState::Remove).unwrap();
        assert_eq!(t.desired_state, TaskState::Remove);
    }

    #[test]
    fn readiness_needs_running_wanted_and_healthy() {
        let mut t = task();
        assert!(!t.is_ready());
        t.status.state = TaskState::Running;
        assert!(t.is_ready());
        t.status.health = Some(Health::Starting);
        assert!(!t.is_ready());
        t.status.health = Some(Health::Healthy);
        assert!(t.is_ready());
        t.status.health = Some(Health::Failing);
        assert!(!t.is_ready());
        t.status.health = Some(Health::Healthy);
        t.set_desired(TaskState::Shutdown).unwrap();
        assert!(!t.is_ready(), "a task being stopped leaves the rotation");
    }

    #[test]
    fn ready_at_is_the_first_report_that_makes_the_task_ready() {
        let report = |state, health| {
            let mut r = TaskReport::new("t1", state, "");
            r.health = health;
            r
        };
        // With a check: `running` comes with `starting`, so only the first healthy report.
        let mut t = task();
        t.apply_report(&report(TaskState::Running, Some(Health::Starting)), 5)
            .unwrap();
        assert_eq!(t.status.ready_at, None);
        t.apply_report(&report(TaskState::Running, Some(Health::Healthy)), 7)
            .unwrap();
        assert_eq!(t.status.ready_at, Some(7));
        t.apply_report(&report(TaskState::Running, Some(Health::Failing)), 8)
            .unwrap();
        t.apply_report(&report(TaskState::Running, Some(Health::Healthy)), 9)
            .unwrap();
        t.apply_report(&report(TaskState::Failed, None), 10)
            .unwrap();
        assert_eq!(t.status.ready_at, Some(7), "kept from the first time");
        // Never healthy: never ready, also once dead.
        let mut t = task();
        t.apply_report(&report(TaskState::Running, Some(Health::Starting)), 5)
            .unwrap();
        t.apply_report(&report(TaskState::Running, Some(Health::Unhealthy)), 6)
            .unwrap();
        t.apply_report(&report(TaskState::Failed, None), 7).unwrap();
        assert_eq!(t.status.ready_at, None);
        // Without a check: ready on `running`.
        let mut t = task();
        t.apply_report(&report(TaskState::Running, None), 3)
            .unwrap();
        assert_eq!(t.status.ready_at, Some(3));
    }

    #[test]
    fn names_follow_swarm() {
        let mut t = task();
        assert_eq!(t.name(), "web.1.t1");
        t.slot = 0;
        t.node_id = Some("n1".into());
        assert_eq!(t.slot_name(), "web.n1");
        assert_eq!(TaskState::parse("Running"), Some(TaskState::Running));
        assert_eq!(TaskState::Shutdown.title(), "Shutdown");
    }
}
