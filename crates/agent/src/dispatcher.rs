//! The seam between agent and control plane.

use shoal_api::{Health, Task, TaskEndpoint, TaskState};
use std::sync::Arc;
use tokio::sync::watch;

/// The tasks assigned to this node, at one control-plane version.
#[derive(Debug, Clone, Default)]
pub struct Assignments {
    pub version: u64,
    pub tasks: Vec<Task>,
}

/// An observed change of one task, sent by the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    pub task_id: String,
    pub state: TaskState,
    pub message: String,
    pub err: Option<String>,
    pub exit_code: Option<i32>,
    /// `(pid, start time)` of the task's process while it runs.
    pub process: Option<(u32, u64)>,
    pub health: Option<Health>,
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
            process: None,
            health: None,
            endpoint: None,
        }
    }
}

/// Where assignments come from and reports go to.
pub trait Dispatcher: Send + Sync + 'static {
    /// Wakes whenever this node's assignments change.
    fn assignments(&self) -> watch::Receiver<Arc<Assignments>>;
    /// Record observed changes; a refused transition is logged by the implementation.
    fn report(&self, reports: Vec<TaskReport>) -> anyhow::Result<()>;
}
