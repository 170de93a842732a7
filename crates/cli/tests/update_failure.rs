//! End-to-end: a rolling update whose new task fails before it is ever ready (a health check
//! that never passes, a process that exits at start) fails the update at once; the failure
//! action runs and `shoal service update` exits non-zero. It used to stay `updating` for
//! good, replacing the failing task again and again, with the CLI waiting.

use serde_json::{json, Value};
use shoal_testkit::{free_port, http_get, wait_until, Daemon, Output};
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// How long `service update` may take when it pauses: the failure is seen a few seconds
/// after the first new task starts (about 5 s on an idle machine). Below the 60 s progress
/// deadline, so a pause that only a deadline would bring fails the test too.
const PAUSE_BOUND: Duration = Duration::from_secs(40);
/// When it rolls back: the failure, the restart delay of the failed slot (5 s), then the
/// five replicas one at a time (a health check interval each) and the 5 s rollback monitor:
/// about 20 s on an idle machine. It used to run for good.
const ROLLBACK_BOUND: Duration = Duration::from_secs(90);

/// `service create --name web --replicas 5 --publish PORT:80 --health-http /health
/// --health-interval 1s -- shoal whoami`, converged.
fn create_web(d: &Daemon, port: u16) {
    let publish = format!("{port}:80");
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "5",
        "--publish",
        &publish,
        "--health-http",
        "/health",
        "--health-interval",
        "1s",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(
        out.ok() && out.stdout.contains("verify: Service converged"),
        "create failed: {out:?}\n{}",
        d.log()
    );
}

/// Run `shoal service update ARGS... web`; it must end within `bound`.
fn update(d: &Daemon, args: &[&str], bound: Duration) -> (Output, Duration) {
    let mut all = vec!["service", "update"];
    all.extend_from_slice(args);
    all.push("web");
    let started = Instant::now();
    let out = d.cli_within(&all, bound);
    let took = started.elapsed();
    let out = out.unwrap_or_else(|| {
        panic!(
            "service update did not end within {bound:?}\n{:#?}\n{}",
            d.json(&["service", "inspect", "web"]),
            d.log()
        )
    });
    eprintln!("service update {args:?} took {took:?}");
    (out, took)
}

fn inspect(d: &Daemon) -> Value {
    d.json(&["service", "inspect", "web"])[0].clone()
}

/// Running, wanted and healthy.
fn healthy(d: &Daemon) -> Vec<Value> {
    d.running_tasks("web")
        .into_iter()
        .filter(|t| t["status"]["health"] == "healthy")
        .collect()
}

fn http_check() -> Value {
    json!({"http": {"path": "/health"}})
}

/// The failing update's tasks never take traffic: the mesh answers throughout.
fn mesh_answers(port: u16) {
    let body = http_get(port, "/").expect("a request through the mesh");
    assert!(body.contains("Name: web."), "{body}");
}

#[test]
fn unhealthy_new_task_rolls_the_update_back_at_once() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_web(&d, port);
    let (out, took) = update(
        &d,
        &[
            "--health-cmd",
            "false",
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "3s",
        ],
        ROLLBACK_BOUND,
    );
    assert_eq!(out.code, 1, "{out:?}");
    let err = out.stderr.trim_end();
    assert!(
        err.contains("failed and was rolled back") && err.contains("unhealthy"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let svc = inspect(&d);
    assert_eq!(
        svc["update_status"]["state"], "rollback_completed",
        "{svc:#}"
    );
    assert_eq!(svc["spec"]["task"]["health"]["probe"], http_check());
    // The rollback waits for every replica to be ready, so this holds at once; a short wait
    // covers only a health report still on its way.
    let all_healthy = wait_until(Duration::from_secs(10), || {
        let ready = healthy(&d);
        ready.len() == 5
            && ready
                .iter()
                .all(|t| t["spec"]["health"]["probe"] == http_check())
    });
    assert!(all_healthy, "{:#?}", d.tasks("web"));
    mesh_answers(port);
    eprintln!("rolled back in {took:?}");
}

#[test]
fn unhealthy_new_task_pauses_the_update_at_once() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_web(&d, port);
    let (out, _) = update(
        &d,
        &["--health-cmd", "false", "--update-monitor", "3s"],
        PAUSE_BOUND,
    );
    assert_eq!(out.code, 1, "{out:?}");
    let err = out.stderr.trim_end();
    assert!(
        err.contains("update of service web paused") && err.contains("unhealthy"),
        "{err}"
    );
    let svc = inspect(&d);
    assert_eq!(svc["update_status"]["state"], "paused", "{svc:#}");
    // Parallelism 1: only the first slot was touched; the other four still serve the old
    // spec, healthy.
    let old = healthy(&d)
        .into_iter()
        .filter(|t| t["spec"]["health"]["probe"] == http_check())
        .count();
    assert!(old >= 4, "{:#?}", d.tasks("web"));
    mesh_answers(port);
}

#[test]
fn new_task_exiting_at_start_pauses_the_update_at_once() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_web(&d, port);
    // An unknown flag: the new process exits with code 2 as soon as it starts. No monitor
    // window at all: a task that was never ready fails the update whatever the window.
    let (out, _) = update(
        &d,
        &["--args", "whoami --no-such-flag", "--update-monitor", "0s"],
        PAUSE_BOUND,
    );
    assert_eq!(out.code, 1, "{out:?}");
    let err = out.stderr.trim_end();
    assert!(
        err.contains("update of service web paused") && err.contains("exit"),
        "{err}"
    );
    let svc = inspect(&d);
    assert_eq!(svc["update_status"]["state"], "paused", "{svc:#}");
    assert_eq!(
        svc["spec"]["task"]["runtime"]["process"]["args"],
        json!(["whoami", "--no-such-flag"])
    );
    mesh_answers(port);
}
