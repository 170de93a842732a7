//! The process executor: each task is a child process group of the daemon.
//!
//! stdout and stderr go straight to the task's log file (appended, so output survives a
//! daemon restart). Each child asks the kernel to SIGKILL it if the daemon dies
//! (`PR_SET_PDEATHSIG`), so no task outlives its daemon; after a restart the agent also
//! kills any leftover group it recorded ([`Executor::reap_stale`]).
#![allow(unsafe_code)]

use crate::executor::{ExecError, Executor, ExitInfo, LaunchSpec, Running};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_api::service::SELF_PROGRAM;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::watch;

/// Environment variables passed through from the daemon to every task.
const PASSED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TZ", "USER"];

/// How long to wait for a SIGKILLed group to be reaped before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// What the program name `shoal` resolves to: this very binary.
    self_exe: PathBuf,
}

impl ProcessExecutor {
    pub fn new(self_exe: PathBuf) -> ProcessExecutor {
        ProcessExecutor { self_exe }
    }
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn signal_group(pid: u32, signal: i32) {
    let Ok(sig) = Signal::try_from(signal) else {
        return;
    };
    // ESRCH (already gone) is the expected outcome of a race with exit: ignore it.
    let _ = killpg(Pid::from_raw(pid as i32), sig);
}

impl Executor for ProcessExecutor {
    async fn start(&self, spec: &LaunchSpec) -> Result<Running, ExecError> {
        let program = spec.argv.first().ok_or_else(|| ExecError::EmptyCommand {
            task: spec.task_id.clone(),
        })?;
        let log_err = |source| ExecError::Log {
            task: spec.task_id.clone(),
            path: spec.log_path.display().to_string(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .map_err(log_err)?;
        let log2 = log.try_clone().map_err(log_err)?;
        let resolved = if program == SELF_PROGRAM {
            self.self_exe.clone()
        } else {
            PathBuf::from(program)
        };
        let mut cmd = tokio::process::Command::new(&resolved);
        cmd.args(&spec.argv[1..])
            .env_clear()
            .envs(
                PASSED_ENV
                    .iter()
                    .filter_map(|k| Some((*k, std::env::var_os(k)?))),
            )
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &spec.workdir {
            cmd.current_dir(dir);
        }
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (umask, prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                // The daemon keeps its own files private (umask 077); tasks get the usual one.
                libc::umask(0o022);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                // The daemon may have died between fork and prctl: then nobody would kill us.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            task: spec.task_id.clone(),
            program: program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let pid_start = process_start_time(pid).unwrap_or(0);
        let (tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let info = match child.wait().await {
                Ok(status) => ExitInfo {
                    code: status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                    signal: status.signal(),
                },
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waiting for task process failed");
                    ExitInfo {
                        code: -1,
                        signal: None,
                    }
                }
            };
            // Grandchildren left in the group go with the leader.
            signal_group(pid, libc::SIGKILL);
            let _ = tx.send(Some(info));
        });
        Ok(Running {
            pid,
            pid_start,
            exited,
        })
    }

    async fn stop(&self, running: &Running, signal: i32, grace: Duration) -> ExitInfo {
        let mut exited = running.exited.clone();
        if let Some(info) = *exited.borrow() {
            return info;
        }
        signal_group(running.pid, signal);
        let in_grace = tokio::time::timeout(grace, exited.wait_for(|e| e.is_some()))
            .await
            .is_ok();
        if !in_grace {
            tracing::info!(pid = running.pid, "grace period over, killing task");
            signal_group(running.pid, libc::SIGKILL);
            let _ = tokio::time::timeout(KILL_WAIT, exited.wait_for(|e| e.is_some()))
                .await
                .is_ok();
        }
        let info = *exited.borrow();
        info.unwrap_or(ExitInfo {
            code: 137,
            signal: Some(libc::SIGKILL),
        })
    }

    fn reap_stale(&self, pid: u32, pid_start: u64) {
        if pid == 0 {
            return;
        }
        if process_start_time(pid) == Some(pid_start) {
            tracing::info!(
                pid,
                "killing task process left from before the daemon restarted"
            );
            signal_group(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = ProcessExecutor::new(PathBuf::from("/bin/true"));
        crate::conformance::run_all(&exe, dir.path()).await;
    }

    #[test]
    fn reads_own_start_time() {
        assert!(process_start_time(std::process::id()).is_some());
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
