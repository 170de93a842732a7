//! The conformance suite every [`Executor`] must pass, real or fake.

use crate::{Executor, LaunchSpec};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

fn spec(dir: &Path, id: &str, script: &str) -> LaunchSpec {
    LaunchSpec {
        task_id: id.into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hello".into())],
        workdir: Some(dir.display().to_string()),
        log_path: dir.join(format!("{id}.log")),
    }
}

/// Run every check against `exec`, using `dir` for logs and working directories.
pub async fn run_all<E: Executor>(exec: &E, dir: &Path) {
    records_exit_codes(exec, dir).await;
    passes_env_and_workdir_and_keeps_output(exec, dir).await;
    stop_sends_the_signal(exec, dir).await;
    stop_kills_after_the_grace_period(exec, dir).await;
    stop_of_an_exited_task_returns_its_exit(exec, dir).await;
    missing_program_is_an_error(exec, dir).await;
}

async fn wait_exit<E: Executor>(exec: &E, spec: &LaunchSpec) -> crate::ExitInfo {
    let running = exec.start(spec).await.expect("start");
    let mut exited = running.exited.clone();
    let info = tokio::time::timeout(LIMIT, exited.wait_for(|e| e.is_some()))
        .await
        .expect("task exits in time")
        .expect("exit watch open");
    info.expect("exit info")
}

async fn records_exit_codes<E: Executor>(exec: &E, dir: &Path) {
    assert_eq!(wait_exit(exec, &spec(dir, "ok", "exit 0")).await.code, 0);
    let info = wait_exit(exec, &spec(dir, "three", "exit 3")).await;
    assert_eq!((info.code, info.signal), (3, None));
}

async fn passes_env_and_workdir_and_keeps_output<E: Executor>(exec: &E, dir: &Path) {
    let s = spec(dir, "out", "echo \"$GREETING from $(pwd)\"; echo oops >&2");
    wait_exit(exec, &s).await;
    let log = std::fs::read_to_string(&s.log_path).expect("log written");
    assert!(
        log.contains(&format!("hello from {}", dir.display())),
        "{log}"
    );
    assert!(log.contains("oops"), "stderr kept too: {log}");
}

async fn stop_sends_the_signal<E: Executor>(exec: &E, dir: &Path) {
    let s = spec(
        dir,
        "term",
        "trap 'echo got-term; exit 7' TERM; while true; do sleep 0.05; done",
    );
    let running = exec.start(&s).await.expect("start");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = tokio::time::timeout(
        LIMIT,
        exec.stop(&running, libc::SIGTERM, Duration::from_secs(5)),
    )
    .await
    .expect("stop in time");
    assert_eq!(info.code, 7, "the task's own handler ran");
    let log = std::fs::read_to_string(&s.log_path).expect("log");
    assert!(log.contains("got-term"));
}

async fn stop_kills_after_the_grace_period<E: Executor>(exec: &E, dir: &Path) {
    let s = spec(
        dir,
        "stubborn",
        "trap '' TERM; while true; do sleep 0.05; done",
    );
    let running = exec.start(&s).await.expect("start");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let info = tokio::time::timeout(
        LIMIT,
        exec.stop(&running, libc::SIGTERM, Duration::from_millis(300)),
    )
    .await
    .expect("stop in time");
    assert_eq!(info.signal, Some(libc::SIGKILL));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "grace period honoured"
    );
}

async fn stop_of_an_exited_task_returns_its_exit<E: Executor>(exec: &E, dir: &Path) {
    let s = spec(dir, "quick", "exit 4");
    let running = exec.start(&s).await.expect("start");
    let mut exited = running.exited.clone();
    let _ = tokio::time::timeout(LIMIT, exited.wait_for(|e| e.is_some())).await;
    let info = exec
        .stop(&running, libc::SIGTERM, Duration::from_secs(1))
        .await;
    assert_eq!(info.code, 4);
}

async fn missing_program_is_an_error<E: Executor>(exec: &E, dir: &Path) {
    let mut s = spec(dir, "missing", "");
    s.argv = vec!["/no/such/program".into()];
    let err = exec.start(&s).await.expect_err("missing program");
    assert!(err.to_string().contains("/no/such/program"), "{err}");
}
