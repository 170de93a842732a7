//! The executor seam: how a task's workload is prepared, started, stopped, removed and, after
//! a daemon restart, adopted again. One executor per runtime (process, container); the agent
//! drives each task through a [`crate::Controller`] chosen from the [`crate::Registry`].

use shoal_api::{RuntimeKind, RuntimeStatus};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

/// A boxed future, so executors of different runtimes sit behind one `dyn Executor`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything needed to start one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub task_id: String,
    /// A process's program and arguments; a container's command (the image's CMD when
    /// empty), after the entrypoint in `container`.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// File that receives the task's stdout and stderr.
    pub log_path: PathBuf,
    /// What a container task needs beyond the above.
    pub container: Option<crate::ContainerLaunch>,
}

impl LaunchSpec {
    /// The directory of the task's log files.
    pub fn logs_dir(&self) -> &std::path::Path {
        self.log_path.parent().unwrap_or(std::path::Path::new("."))
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit status, or 128 + signal number when killed by a signal (shell convention).
    pub code: i32,
    pub signal: Option<i32>,
    /// The kernel killed it for going over its memory limit.
    pub oom_killed: bool,
}

impl ExitInfo {
    pub fn code(code: i32) -> ExitInfo {
        ExitInfo {
            code,
            signal: None,
            oom_killed: false,
        }
    }

    pub fn describe(&self) -> String {
        match (self.oom_killed, self.signal) {
            (true, _) => format!("task: killed: out of memory (exit {})", self.code),
            (false, Some(s)) => format!("task: killed by signal {s}"),
            (false, None) => format!("task: non-zero exit ({})", self.code),
        }
    }
}

/// Stop a running task the way every executor does: `send` it `signal`, wait up to `grace`
/// for its exit, then `send` SIGKILL and wait up to `kill_wait`. Returns how it ended (a
/// kill when no exit was seen); a task that already ended is not signalled.
pub(crate) async fn signal_then_kill<F, Fut>(
    running: &Running,
    signal: i32,
    grace: Duration,
    kill_wait: Duration,
    send: F,
) -> ExitInfo
where
    F: Fn(i32) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut exited = running.exited.clone();
    if let Some(info) = *exited.borrow() {
        return info;
    }
    send(signal).await;
    let in_grace = tokio::time::timeout(grace, exited.wait_for(|e| e.is_some()))
        .await
        .is_ok();
    if !in_grace {
        tracing::info!(runtime = %running.runtime.describe(), "grace period over, killing task");
        send(libc::SIGKILL).await;
        let _ = tokio::time::timeout(kill_wait, exited.wait_for(|e| e.is_some())).await;
    }
    let info = *exited.borrow();
    info.unwrap_or(ExitInfo {
        code: 137,
        signal: Some(libc::SIGKILL),
        oom_killed: false,
    })
}

/// A started task.
#[derive(Debug, Clone)]
pub struct Running {
    /// What runs the task: its process group or its container.
    pub runtime: RuntimeStatus,
    /// Becomes `Some` once the task has exited.
    pub exited: watch::Receiver<Option<ExitInfo>>,
    /// Health as the runtime itself checks it (a container's HEALTHCHECK), if it does.
    pub health: Option<watch::Receiver<Option<shoal_api::Health>>>,
}

/// A task made ready to start (PREPARING done): what `start` needs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub spec: LaunchSpec,
    /// The created but not yet started workload, when the runtime creates one first.
    pub runtime: Option<RuntimeStatus>,
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
    /// What the container engine refused, in its own words.
    #[error("task {task}: {message}")]
    Engine { task: String, message: String },
    #[error("task {task}: this node cannot run {runtime} tasks ({why})")]
    NoRuntime {
        task: String,
        runtime: &'static str,
        why: String,
    },
}

/// Prepares, starts and stops task workloads of one runtime. Every implementation runs
/// [`crate::conformance`].
pub trait Executor: Send + Sync + std::fmt::Debug + 'static {
    fn kind(&self) -> RuntimeKind;

    /// PREPARING: make the task startable (a container's image present, the container
    /// created). An error rejects the task.
    fn prepare<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Prepared, ExecError>>;

    /// STARTING: start what `prepare` made ready.
    fn start(&self, prepared: Prepared) -> BoxFuture<'_, Result<Running, ExecError>>;

    /// Send `signal`, wait up to `grace`, then kill whatever is left. Returns how it ended.
    fn stop<'a>(
        &'a self,
        running: &'a Running,
        signal: i32,
        grace: Duration,
    ) -> BoxFuture<'a, ExitInfo>;

    /// Remove what is left of a task that will not run again (a container and its state).
    fn remove<'a>(&'a self, runtime: &'a RuntimeStatus) -> BoxFuture<'a, ()>;

    /// After this daemon restarted: take a task started before back if it still runs
    /// (`Some`), or clean up what is left of it (`None`: the task is lost).
    fn adopt<'a>(
        &'a self,
        task_id: &'a str,
        runtime: &'a RuntimeStatus,
    ) -> BoxFuture<'a, Option<Running>>;

    /// Workloads this executor runs for this node, by task ID, whether or not assigned.
    fn list(&self) -> BoxFuture<'_, Vec<(String, RuntimeStatus)>> {
        Box::pin(async { Vec::new() })
    }

    /// Whether a task keeps running when the daemon stops (a container does, so a daemon
    /// restart does not restart it; a process goes with the daemon).
    fn survives_daemon(&self) -> bool {
        false
    }
}
