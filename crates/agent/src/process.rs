//! The process executor: each task is a child process group of the daemon.
//!
//! stdout and stderr share one pipe; the daemon copies what comes out of it to the task's
//! log file, rotated by size ([`LogRotation`]), and reports the exit only once the output is
//! all in the file. Each child asks the kernel to SIGKILL it if the daemon dies
//! (`PR_SET_PDEATHSIG`), so no task outlives its daemon; after a restart the agent also
//! kills any leftover group it recorded ([`Executor::reap_stale`]).
#![allow(unsafe_code)]

use crate::executor::{
    signal_then_kill, BoxFuture, ExecError, Executor, ExitInfo, LaunchSpec, Prepared, Running,
};
use crate::log_writer::{LogRotation, RotatingLog};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_api::service::SELF_PROGRAM;
use shoal_api::{RuntimeKind, RuntimeStatus};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// Environment variables passed through from the daemon to every task.
const PASSED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TZ", "USER"];

/// How long to wait for a SIGKILLed group to be reaped before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long, once a task has exited, its output may take to reach the log file. Only a
/// process that left the task's group still holding its stdout keeps the pipe open longer;
/// its output keeps being copied, but the exit is reported without waiting for it.
const OUTPUT_WAIT: Duration = Duration::from_secs(2);

/// Bytes read from a task's output pipe at once.
const COPY_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// What the program name `shoal` resolves to: this very binary.
    self_exe: PathBuf,
    /// How much output each task keeps on disk.
    logs: LogRotation,
}

impl ProcessExecutor {
    /// An executor keeping task logs with the default rotation (10 MiB x 3 files).
    pub fn new(self_exe: PathBuf) -> ProcessExecutor {
        ProcessExecutor::with_log_rotation(self_exe, LogRotation::default())
    }

    pub fn with_log_rotation(self_exe: PathBuf, logs: LogRotation) -> ProcessExecutor {
        ProcessExecutor { self_exe, logs }
    }
}

/// A pipe whose ends are closed on exec (the child gets its copy of the write end as
/// stdout and stderr, which clears the flag on those).
fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new file descriptors into `fds` on success; each is then
    // owned by exactly one OwnedFd.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are not owned by anything else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Copy a task's output to its log until every writer has closed the pipe. A write error
/// (disk full) drops output rather than stop reading, which would block the task.
async fn copy_output(mut from: pipe::Receiver, mut log: RotatingLog) {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut failed = false;
    loop {
        match from.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = log.write_output(&buf[..n], crate::now_nanos()) {
                    if !failed {
                        tracing::warn!(log = %log.path().display(), error = %e, "cannot write task output; dropping it");
                    }
                    failed = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(log = %log.path().display(), error = %e, "cannot read task output");
                return;
            }
        }
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
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    fn prepare<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Prepared, ExecError>> {
        Box::pin(async move {
            Ok(Prepared {
                spec: spec.clone(),
                runtime: None,
            })
        })
    }

    fn start(&self, prepared: Prepared) -> BoxFuture<'_, Result<Running, ExecError>> {
        Box::pin(async move { self.spawn(&prepared.spec) })
    }

    fn stop<'a>(
        &'a self,
        running: &'a Running,
        signal: i32,
        grace: Duration,
    ) -> BoxFuture<'a, ExitInfo> {
        Box::pin(self.stop_group(running, signal, grace))
    }

    fn remove<'a>(&'a self, _runtime: &'a RuntimeStatus) -> BoxFuture<'a, ()> {
        // A process leaves nothing but its log, which the agent manages.
        Box::pin(async {})
    }

    fn adopt<'a>(
        &'a self,
        _task_id: &'a str,
        runtime: &'a RuntimeStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        // The process died with the daemon (PR_SET_PDEATHSIG); kill whatever is left.
        self.reap_stale(runtime);
        Box::pin(async { None })
    }
}

impl ProcessExecutor {
    fn spawn(&self, spec: &LaunchSpec) -> Result<Running, ExecError> {
        let program = spec.argv.first().ok_or_else(|| ExecError::EmptyCommand {
            task: spec.task_id.clone(),
        })?;
        let log_err = |source| ExecError::Log {
            task: spec.task_id.clone(),
            path: spec.log_path.display().to_string(),
            source,
        };
        let log = RotatingLog::open(spec.logs_dir(), &spec.task_id, self.logs).map_err(log_err)?;
        let (output, stdout) = output_pipe().map_err(log_err)?;
        let stderr = stdout.try_clone().map_err(log_err)?;
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
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
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
        // Our copies of the pipe's write end go with the command: once the task's group is
        // gone, the copier reads end-of-file.
        drop(cmd);
        let copier = match pipe::Receiver::from_owned_fd(output) {
            Ok(from) => Some(tokio::spawn(copy_output(from, log))),
            Err(e) => {
                tracing::warn!(task = %spec.task_id, error = %e, "cannot read task output");
                None
            }
        };
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
                    oom_killed: false,
                },
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waiting for task process failed");
                    ExitInfo::code(-1)
                }
            };
            // Grandchildren left in the group go with the leader.
            signal_group(pid, libc::SIGKILL);
            if let Some(copier) = copier {
                if tokio::time::timeout(OUTPUT_WAIT, copier).await.is_err() {
                    tracing::warn!(
                        pid,
                        "task output still open after exit; reporting the exit anyway"
                    );
                }
            }
            let _ = tx.send(Some(info));
        });
        Ok(Running {
            runtime: RuntimeStatus::Process {
                pid,
                start: pid_start,
            },
            exited,
            health: None,
        })
    }

    async fn stop_group(&self, running: &Running, signal: i32, grace: Duration) -> ExitInfo {
        let pid = match running.runtime {
            RuntimeStatus::Process { pid, .. } => pid,
            RuntimeStatus::Container { .. } => 0,
        };
        signal_then_kill(running, signal, grace, KILL_WAIT, |sig| async move {
            signal_group(pid, sig)
        })
        .await
    }

    fn reap_stale(&self, runtime: &RuntimeStatus) {
        let RuntimeStatus::Process { pid, start } = *runtime else {
            return;
        };
        if pid == 0 {
            return;
        }
        if process_start_time(pid) == Some(start) {
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
        let fixture = crate::conformance::Fixture {
            dir: dir.path(),
            workdir: dir.path().display().to_string(),
            container: None,
        };
        crate::conformance::run_all(&exe, &fixture).await;
    }

    #[tokio::test]
    async fn output_is_rotated_and_complete_once_the_exit_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = ProcessExecutor::with_log_rotation(
            PathBuf::from("/bin/true"),
            LogRotation {
                max_size: 1000,
                max_files: 2,
            },
        );
        let spec = LaunchSpec {
            task_id: "t".into(),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo line-$i; echo err-$i >&2; done"
                    .into(),
            ],
            env: vec![],
            workdir: None,
            log_path: dir.path().join("t.log"),
            container: None,
        };
        let running = exe.spawn(&spec).expect("start");
        let mut exited = running.exited.clone();
        tokio::time::timeout(Duration::from_secs(30), exited.wait_for(|e| e.is_some()))
            .await
            .expect("exits in time")
            .expect("exit watch");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
        let (older, newer) = (read("t.log.1"), read("t.log"));
        assert!(!dir.path().join("t.log.2").exists(), "at most two files");
        assert!(older.len() <= 1000 && newer.len() <= 1000);
        let both = older + &newer;
        // Every line stamped with its time, then the output.
        let lines: Vec<&str> = both
            .lines()
            .map(|l| {
                let (time, rest) = shoal_api::task_log::split_stamp(l.as_bytes());
                assert!(time.is_some(), "unstamped: {l}");
                std::str::from_utf8(rest).expect("utf-8")
            })
            .collect();
        assert_eq!(lines[lines.len() - 2..], ["line-500", "err-500"]);
        assert!(lines
            .iter()
            .all(|l| l.starts_with("line-") || l.starts_with("err-")));
    }

    #[test]
    fn reads_own_start_time() {
        assert!(process_start_time(std::process::id()).is_some());
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
