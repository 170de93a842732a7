//! The worker side of a node: runs the tasks assigned to it and reports what happens.
//!
//! The [`Agent`] receives its assignments through a [`Dispatcher`] (the local store on a
//! single node; a manager session later), starts tasks with an [`Executor`], runs their
//! health checks, and reports observed state back. Before it signals a task to stop it waits
//! until the node's data plane has acknowledged an endpoint table without that task, so no
//! new connection reaches a stopping task.
//!
//! Depends on `shoal-api` only: never on the manager, the store or the data plane crates.

mod agent;
pub mod conformance;
mod container;
mod controller;
mod dispatcher;
mod executor;
pub mod files;
mod health;
pub mod host_ports;
pub mod launch;
mod log_cleanup;
mod log_reader;
mod log_serve;
mod log_writer;
mod process;

pub use agent::{Agent, AgentConfig, AgentStop};
pub use container::{docker_host, engine_version, ContainerExecutor, DEFAULT_DOCKER_HOST};
pub use controller::{Controller, Registry};
pub use dispatcher::{Assignments, Dispatcher, TaskReport};
pub use executor::{BoxFuture, ExecError, Executor, ExitInfo, LaunchSpec, Prepared, Running};
pub use launch::{launch_spec, ContainerHealth, ContainerLaunch};
pub use log_cleanup::{remove_task_logs, sweep_task_logs};
pub use log_serve::serve_logs;
pub use log_writer::{LogRotation, RotatingLog, LOG_MAX_FILES, LOG_MAX_SIZE};
pub use process::ProcessExecutor;

/// The time now in unix nanoseconds (0 before 1970, the maximum past 2262).
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
