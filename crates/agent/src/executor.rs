//! The executor seam: how a task's workload is started and stopped.

use shoal_api::RuntimeStatus;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Everything needed to start one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub task_id: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// File that receives the task's stdout and stderr.
    pub log_path: PathBuf,
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit status, or 128 + signal number when killed by a signal (shell convention).
    pub code: i32,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn describe(&self) -> String {
        match self.signal {
            Some(s) => format!("task: killed by signal {s}"),
            None => format!("task: non-zero exit ({})", self.code),
        }
    }
}

/// A started task.
#[derive(Debug, Clone)]
pub struct Running {
    /// What runs the task: its process group or its container.
    pub runtime: RuntimeStatus,
    /// Becomes `Some` once the task has exited.
    pub exited: watch::Receiver<Option<ExitInfo>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("task {task}: cannot start {program}: {source}")]
    Spawn {
        task: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("task {task}: cannot open log {path}: {source}")]
    Log {
        task: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("task {task}: empty command")]
    EmptyCommand { task: String },
}

/// Starts and stops task workloads. Every implementation runs [`crate::conformance`].
pub trait Executor: Send + Sync + 'static {
    fn start(&self, spec: &LaunchSpec) -> impl Future<Output = Result<Running, ExecError>> + Send;

    /// Send `signal`, wait up to `grace`, then kill whatever is left. Returns how it ended.
    fn stop(
        &self,
        running: &Running,
        signal: i32,
        grace: Duration,
    ) -> impl Future<Output = ExitInfo> + Send;

    /// Kill what is left of a task started before this daemon (re)started, if it still runs.
    fn reap_stale(&self, runtime: &RuntimeStatus);
}
