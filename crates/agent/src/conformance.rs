//! The conformance suite every [`Executor`] must pass, real or fake.
//!
//! Tasks run `/bin/sh -c SCRIPT` (with `sleep` and `echo`), so a container executor runs
//! it with an image that has them.

use crate::{Executor, LaunchSpec, Running};
use std::path::Path;
use std::time::Duration;

/// Generous: the suite also runs on a busy machine, against a container engine.
const LIMIT: Duration = Duration::from_secs(30);

/// How a runtime's tasks are described: `dir` takes the logs, `workdir` is a directory
/// that exists where the task runs, `container` the extra a container task needs.
#[derive(Debug, Clone)]
pub struct Fixture<'a> {
    pub dir: &'a Path,
    pub workdir: String,
    pub container: Option<crate::ContainerLaunch>,
}

impl Fixture<'_> {
    fn spec(&self, id: &str, script: &str) -> LaunchSpec {
        LaunchSpec {
            task_id: id.into(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            workdir: Some(self.workdir.clone()),
            log_path: self.dir.join(format!("{id}.log")),
            container: self.container.clone(),
        }
    }
}

/// Run every check against `exec`.
pub async fn run_all(exec: &dyn Executor, f: &Fixture<'_>) {
    records_exit_codes(exec, f).await;
    passes_env_and_workdir_and_keeps_output(exec, f).await;
    stop_sends_the_signal(exec, f).await;
    stop_kills_after_the_grace_period(exec, f).await;
    stop_of_an_exited_task_returns_its_exit(exec, f).await;
    missing_program_is_an_error(exec, f).await;
    removed_task_is_gone_and_not_adopted(exec, f).await;
}

async fn start(exec: &dyn Executor, spec: &LaunchSpec) -> Running {
    let prepared = exec.prepare(spec).await.expect("prepare");
    exec.start(prepared).await.expect("start")
}

async fn wait_exit(exec: &dyn Executor, spec: &LaunchSpec) -> crate::ExitInfo {
    let running = start(exec, spec).await;
    let mut exited = running.exited.clone();
    let info = tokio::time::timeout(LIMIT, exited.wait_for(|e| e.is_some()))
        .await
        .expect("task exits in time")
        .expect("exit watch open");
    let info = info.expect("exit info");
    exec.remove(&running.runtime).await;
    info
}

async fn records_exit_codes(exec: &dyn Executor, f: &Fixture<'_>) {
    assert_eq!(wait_exit(exec, &f.spec("ok", "exit 0")).await.code, 0);
    let info = wait_exit(exec, &f.spec("three", "exit 3")).await;
    assert_eq!((info.code, info.signal), (3, None));
}

async fn passes_env_and_workdir_and_keeps_output(exec: &dyn Executor, f: &Fixture<'_>) {
    let s = f.spec("out", "echo \"$GREETING from $(pwd)\"; echo oops >&2");
    wait_exit(exec, &s).await;
    let log = std::fs::read_to_string(&s.log_path).expect("log written");
    assert!(log.contains(&format!("hello from {}", f.workdir)), "{log}");
    assert!(log.contains("oops"), "stderr kept too: {log}");
}

async fn stop_sends_the_signal(exec: &dyn Executor, f: &Fixture<'_>) {
    let s = f.spec(
        "term",
        "trap 'echo got-term; exit 7' TERM; echo up; while true; do sleep 0.05; done",
    );
    let running = start(exec, &s).await;
    // The trap is set once the script runs; wait for its first line of output.
    wait_for_output(&s).await;
    let info = tokio::time::timeout(
        LIMIT,
        exec.stop(&running, libc::SIGTERM, Duration::from_secs(10)),
    )
    .await
    .expect("stop in time");
    exec.remove(&running.runtime).await;
    assert_eq!(info.code, 7, "the task's own handler ran");
    let log = std::fs::read_to_string(&s.log_path).expect("log");
    assert!(log.contains("got-term"));
}

async fn stop_kills_after_the_grace_period(exec: &dyn Executor, f: &Fixture<'_>) {
    let s = f.spec(
        "stubborn",
        "trap '' TERM; echo up; while true; do sleep 0.05; done",
    );
    let running = start(exec, &s).await;
    wait_for_output(&s).await;
    let started = std::time::Instant::now();
    let info = tokio::time::timeout(
        LIMIT,
        exec.stop(&running, libc::SIGTERM, Duration::from_millis(300)),
    )
    .await
    .expect("stop in time");
    exec.remove(&running.runtime).await;
    assert_eq!(info.signal, Some(libc::SIGKILL));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "grace period honoured"
    );
}

async fn stop_of_an_exited_task_returns_its_exit(exec: &dyn Executor, f: &Fixture<'_>) {
    let s = f.spec("quick", "exit 4");
    let running = start(exec, &s).await;
    let mut exited = running.exited.clone();
    let _ = tokio::time::timeout(LIMIT, exited.wait_for(|e| e.is_some())).await;
    let info = exec
        .stop(&running, libc::SIGTERM, Duration::from_secs(1))
        .await;
    exec.remove(&running.runtime).await;
    assert_eq!(info.code, 4);
}

async fn missing_program_is_an_error(exec: &dyn Executor, f: &Fixture<'_>) {
    let mut s = f.spec("missing", "");
    s.argv = vec!["/no/such/program".into()];
    let err = match exec.prepare(&s).await {
        Ok(p) => exec.start(p).await.expect_err("missing program"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("/no/such/program"), "{err}");
}

async fn removed_task_is_gone_and_not_adopted(exec: &dyn Executor, f: &Fixture<'_>) {
    let s = f.spec("gone", "echo up; while true; do sleep 0.05; done");
    let running = start(exec, &s).await;
    wait_for_output(&s).await;
    exec.stop(&running, libc::SIGKILL, Duration::from_secs(1))
        .await;
    exec.remove(&running.runtime).await;
    assert!(
        exec.adopt("gone", &running.runtime).await.is_none(),
        "a removed task cannot be adopted"
    );
    assert!(
        !exec.list().await.iter().any(|(id, _)| id == "gone"),
        "a removed task is not listed"
    );
}

/// Wait until the task has written something (so its shell is past its first line).
async fn wait_for_output(s: &LaunchSpec) {
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&s.log_path).map_or(true, |l| l.is_empty()) {
        assert!(
            started.elapsed() < LIMIT,
            "task {} wrote nothing",
            s.task_id
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
