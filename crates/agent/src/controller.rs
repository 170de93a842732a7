//! Choosing and driving the executor of each task.
//!
//! The [`Registry`] holds one executor per runtime this node can run (always processes;
//! containers when a Docker Engine answers). A [`Controller`] binds one task to its
//! executor and takes it through prepare, start, wait, shutdown, remove — or, after a
//! daemon restart, adopt.

use crate::executor::{ExecError, Executor, ExitInfo, LaunchSpec, Prepared, Running};
use shoal_api::{RuntimeKind, RuntimeStatus};
use std::sync::Arc;
use std::time::Duration;

/// The executors of this node, by runtime.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    executors: Vec<Arc<dyn Executor>>,
    /// Runtimes this node cannot run, and why (shown when a task of one is rejected).
    missing: Vec<(RuntimeKind, String)>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn with(mut self, exec: Arc<dyn Executor>) -> Registry {
        self.executors.retain(|e| e.kind() != exec.kind());
        self.executors.push(exec);
        self
    }

    /// Record that `kind` cannot run here, and why.
    pub fn without(mut self, kind: RuntimeKind, why: impl Into<String>) -> Registry {
        self.missing.push((kind, why.into()));
        self
    }

    /// The runtimes this node can run.
    pub fn kinds(&self) -> Vec<RuntimeKind> {
        let mut k: Vec<RuntimeKind> = self.executors.iter().map(|e| e.kind()).collect();
        k.sort();
        k
    }

    pub fn executors(&self) -> &[Arc<dyn Executor>] {
        &self.executors
    }

    pub fn get(&self, kind: RuntimeKind) -> Option<&Arc<dyn Executor>> {
        self.executors.iter().find(|e| e.kind() == kind)
    }

    /// The controller of task `task_id`, of runtime `kind`.
    pub fn controller(&self, task_id: &str, kind: RuntimeKind) -> Result<Controller, ExecError> {
        match self.get(kind) {
            Some(exec) => Ok(Controller {
                exec: exec.clone(),
                task_id: task_id.to_string(),
            }),
            None => Err(ExecError::NoRuntime {
                task: task_id.to_string(),
                runtime: kind.as_str(),
                why: self
                    .missing
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, why)| why.clone())
                    .unwrap_or_else(|| "not configured".into()),
            }),
        }
    }

    /// The controller of a task started earlier, by what runs it.
    pub fn controller_of(&self, task_id: &str, runtime: &RuntimeStatus) -> Option<Controller> {
        let kind = match runtime {
            RuntimeStatus::Process { .. } => RuntimeKind::Process,
            RuntimeStatus::Container { .. } => RuntimeKind::Container,
        };
        self.controller(task_id, kind).ok()
    }
}

/// One task bound to its executor.
#[derive(Debug, Clone)]
pub struct Controller {
    exec: Arc<dyn Executor>,
    task_id: String,
}

impl Controller {
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// Whether the task keeps running while the daemon is stopped.
    pub fn survives_daemon(&self) -> bool {
        self.exec.survives_daemon()
    }

    /// PREPARING: make the task startable.
    pub async fn prepare(&self, spec: &LaunchSpec) -> Result<Prepared, ExecError> {
        self.exec.prepare(spec).await
    }

    /// STARTING: start it. Whatever `prepare` created is removed again if this fails.
    pub async fn start(&self, prepared: Prepared) -> Result<Running, ExecError> {
        let created = prepared.runtime.clone();
        match self.exec.start(prepared).await {
            Ok(r) => Ok(r),
            Err(e) => {
                if let Some(rt) = created {
                    self.exec.remove(&rt).await;
                }
                Err(e)
            }
        }
    }

    /// Wait until the task exits.
    pub async fn wait(running: &Running) -> Option<ExitInfo> {
        let mut exited = running.exited.clone();
        exited.wait_for(|e| e.is_some()).await.ok().and_then(|e| *e)
    }

    /// Stop signal, grace period, then kill.
    pub async fn shutdown(&self, running: &Running, signal: i32, grace: Duration) -> ExitInfo {
        self.exec.stop(running, signal, grace).await
    }

    pub async fn remove(&self, runtime: &RuntimeStatus) {
        self.exec.remove(runtime).await
    }

    pub async fn adopt(&self, runtime: &RuntimeStatus) -> Option<Running> {
        self.exec.adopt(&self.task_id, runtime).await
    }
}
