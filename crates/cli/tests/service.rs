//! End-to-end tests of a single-node cluster: a real daemon, the real CLI, real task
//! processes and real traffic through the routing mesh.

use shoal_testkit::{
    free_port, http_get, processes_with_env, wait_until, whoami_name, Daemon, Load,
};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Create a whoami service and return its ID.
fn create_whoami(d: &Daemon, name: &str, replicas: u32, port: u16, extra: &[&str]) -> String {
    let publish = format!("{port}:80");
    let replicas = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "--name",
        name,
        "--replicas",
        &replicas,
        "--publish",
        &publish,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "shoal", "whoami"]);
    let out = d.cli(&args);
    assert!(out.ok(), "create failed: {out:?}\n{}", d.log());
    assert!(
        out.stdout.contains("verify: Service converged"),
        "{}",
        out.stdout
    );
    out.stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The task name that answered each of `n` requests.
fn answers(port: u16, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let body = http_get(port, "/").expect("request through the mesh");
        let name = whoami_name(&body).unwrap_or_else(|| "?".into());
        *seen.entry(name).or_default() += 1;
    }
    seen
}

fn live_processes(service_id: &str) -> Vec<u32> {
    processes_with_env("SHOAL_SERVICE_ID", service_id)
}

#[test]
fn three_replicas_share_the_traffic() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_whoami(&d, "web", 3, port, &[]);
    // Converged means running; the mesh has every replica once each is ready too.
    let all = wait_until(Duration::from_secs(20), || answers(port, 3).len() == 3);
    assert!(all, "all replicas answer: {:?}", answers(port, 3));
    let seen = answers(port, 30);
    assert!(seen.values().all(|n| *n == 10), "round-robin: {seen:?}");
    let ls = d.cli(&["service", "ls"]);
    assert!(
        ls.stdout.contains("3/3") && ls.stdout.contains(&format!("*:{port}->80/tcp")),
        "{}",
        ls.stdout
    );
}

#[test]
fn scale_up_and_down() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    let id = create_whoami(&d, "web", 2, port, &[]);
    let out = d.cli(&["service", "scale", "web=5"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(d.running_tasks("web").len(), 5);
    assert_eq!(answers(port, 25).len(), 5);
    assert_eq!(live_processes(&id).len(), 5);

    let out = d.cli(&["service", "scale", "web=1"]);
    assert!(out.ok(), "{out:?}");
    let running = d.running_tasks("web");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["slot"], 1, "scale down keeps the lowest slot");
    assert!(wait_until(Duration::from_secs(5), || live_processes(&id)
        .len()
        == 1));
    assert_eq!(answers(port, 5).len(), 1);
}

#[test]
fn killed_task_is_replaced_after_the_restart_delay() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    let id = create_whoami(&d, "web", 1, port, &["--restart-delay", "1s"]);
    let task = &d.running_tasks("web")[0];
    let pid = task["status"]["runtime"]["process"]["pid"]
        .as_u64()
        .expect("pid") as i32;
    let old_id = task["id"].as_str().unwrap_or_default().to_string();
    std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    let replaced = wait_until(Duration::from_secs(15), || {
        d.running_tasks("web")
            .first()
            .is_some_and(|t| t["id"] != old_id.as_str())
    });
    assert!(replaced, "task replaced\n{}", d.log());
    let old = d
        .tasks("web")
        .into_iter()
        .find(|t| t["id"] == old_id.as_str())
        .expect("history kept");
    assert_eq!(old["status"]["state"], "failed");
    assert_eq!(old["status"]["exit_code"], 137);
    assert_eq!(live_processes(&id).len(), 1);
    let ps = d.cli(&["service", "ps", "web"]).stdout;
    assert!(
        ps.contains("\\_ web.1") && ps.contains("killed by signal 9"),
        "{ps}"
    );
    let filtered = d
        .cli(&["service", "ps", "web", "--filter", "desired-state=running"])
        .stdout;
    assert_eq!(
        filtered.lines().count(),
        2,
        "header and the one running task: {filtered}"
    );
}

#[test]
fn daemon_kill9_and_restart_keeps_one_task_per_slot() {
    let mut d = Daemon::start_cluster(bin());
    let port = free_port();
    let id = create_whoami(&d, "web", 3, port, &[]);
    assert_eq!(live_processes(&id).len(), 3);
    let before: Vec<String> = d
        .running_tasks("web")
        .iter()
        .map(|t| t["id"].to_string())
        .collect();
    d.kill9();
    assert!(
        wait_until(Duration::from_secs(5), || live_processes(&id).is_empty()),
        "no task outlives its daemon: {:?}",
        live_processes(&id)
    );
    d.restart();
    let converged = wait_until(Duration::from_secs(15), || {
        let now = d.running_tasks("web");
        now.len() == 3 && now.iter().all(|t| !before.contains(&t["id"].to_string()))
    });
    assert!(converged, "{}", d.log());
    let running = d.running_tasks("web");
    let mut slots: Vec<u64> = running.iter().filter_map(|t| t["slot"].as_u64()).collect();
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3], "exactly one live task per slot");
    let live_tasks = d.tasks("web").into_iter().filter(|t| {
        let s = t["status"]["state"].as_str().unwrap_or("");
        !matches!(
            s,
            "complete" | "shutdown" | "failed" | "rejected" | "remove" | "orphaned"
        )
    });
    assert_eq!(live_tasks.count(), 3);
    assert!(wait_until(Duration::from_secs(5), || live_processes(&id)
        .len()
        == 3));
    assert_eq!(answers(port, 9).len(), 3);
}

#[test]
fn scale_down_under_load_fails_no_request() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_whoami(&d, "web", 3, port, &[]);
    let load = Load::start(port);
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.cli(&["service", "scale", "web=1"]).ok());
    assert!(d.cli(&["service", "scale", "web=3"]).ok());
    std::thread::sleep(Duration::from_millis(300));
    let report = load.finish();
    assert!(report.sent > 20, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

#[test]
fn logs_and_inspect() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_whoami(&d, "web", 2, port, &["--env", "GREETING=hi-{{.Task.Slot}}"]);
    let logs = d.cli(&["service", "logs", "web", "--tail", "1"]);
    assert!(logs.ok(), "{logs:?}");
    assert_eq!(
        logs.stdout
            .lines()
            .filter(|l| l.contains("| whoami web."))
            .count(),
        2,
        "{}",
        logs.stdout
    );
    let inspect = d.json(&["service", "inspect", "web"]);
    assert_eq!(inspect[0]["spec"]["name"], "web");
    assert_eq!(
        inspect[0]["spec"]["task"]["env"][0],
        "GREETING=hi-{{.Task.Slot}}"
    );
    let pretty = d.cli(&["service", "inspect", "--pretty", "web"]).stdout;
    assert!(
        pretty.contains("Replicas:\t2") && pretty.contains("PublishedPort = "),
        "{pretty}"
    );
    let task = &d.running_tasks("web")[0];
    let pid = task["status"]["runtime"]["process"]["pid"]
        .as_u64()
        .expect("pid");
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let slot = task["slot"].as_u64().expect("slot");
    let want = format!("GREETING=hi-{slot}");
    assert!(
        env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()),
        "template expanded"
    );
    let nodes = d.cli(&["node", "ls"]).stdout;
    assert!(
        nodes.contains("Ready") && nodes.contains("Active") && nodes.contains("Leader"),
        "{nodes}"
    );
    let rm = d.cli(&["service", "rm", "web"]);
    assert!(rm.ok(), "{rm:?}");
    let id = inspect[0]["id"].as_str().unwrap_or_default().to_string();
    assert!(wait_until(Duration::from_secs(15), || live_processes(&id).is_empty()));
    assert!(http_get(port, "/").is_err(), "port closed after rm");
}

#[test]
fn global_service_runs_one_task_on_the_node() {
    let d = Daemon::start_cluster(bin());
    let out = d.cli(&[
        "service", "create", "--name", "g", "--mode", "global", "--", "shoal", "echo", "--port",
        "0",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(d.running_tasks("g").len(), 1);
    let ls = d.cli(&["service", "ls"]).stdout;
    assert!(ls.contains("global") && ls.contains("1/1"), "{ls}");
}

#[test]
fn failing_tasks_make_create_exit_non_zero() {
    let d = Daemon::start_cluster(bin());
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "crash",
        "--restart-delay",
        "200ms",
        "--timeout",
        "3s",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("did not converge") && out.stderr.contains("non-zero exit (3)"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
}

/// POST to one replica directly (not through the mesh).
fn post_direct(port: u16, path: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to replica");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn failing_health_check_takes_a_task_out_of_rotation_then_replaces_it() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_whoami(
        &d,
        "web",
        2,
        port,
        &[
            "--health-http",
            "/health",
            "--health-interval",
            "200ms",
            // 10 s of failed checks before the task fails: time to see it out of rotation
            // while it still runs.
            "--health-retries",
            "50",
            "--restart-delay",
            "100ms",
        ],
    );
    let running = d.running_tasks("web");
    assert!(
        running.iter().all(|t| t["status"]["health"] == "healthy"),
        "{running:?}"
    );
    let sick = &running[0];
    let sick_name = format!(
        "web.{}.{}",
        sick["slot"],
        sick["id"].as_str().unwrap_or_default()
    );
    let host_port = sick["endpoint"]["ports"][0]["host_port"]
        .as_u64()
        .expect("host port") as u16;
    post_direct(host_port, "/health/fail");
    // Out of rotation once its checks fail: only the healthy replica answers, and no
    // request fails on the way (`answers` panics on a failed request).
    let mut seen = HashMap::new();
    let out = wait_until(Duration::from_secs(10), || {
        seen = answers(port, 10);
        !seen.contains_key(&sick_name)
    });
    assert!(out, "the sick replica still answers: {seen:?}");
    assert_eq!(seen.len(), 1, "only the healthy replica answers: {seen:?}");
    // Out of rotation for failing its checks, not for having stopped.
    let sick_id = sick["id"].clone();
    let state = d
        .tasks("web")
        .into_iter()
        .find(|t| t["id"] == sick_id)
        .map(|t| t["status"]["state"].clone());
    assert_eq!(state, Some("running".into()), "the sick task still runs");
    // Retries used up: the task fails and the restart policy replaces it.
    let replaced = wait_until(Duration::from_secs(40), || {
        let tasks = d.tasks("web");
        let failed = tasks
            .iter()
            .any(|t| t["id"] == sick_id && t["status"]["state"] == "failed");
        failed
            && d.running_tasks("web")
                .iter()
                .filter(|t| t["status"]["health"] == "healthy")
                .count()
                == 2
    });
    assert!(replaced, "unhealthy task replaced\n{}", d.log());
    assert_eq!(answers(port, 10).len(), 2);
}

#[test]
fn update_then_manual_rollback() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_whoami(
        &d,
        "web",
        2,
        port,
        &["--update-monitor", "300ms", "--rollback-monitor", "300ms"],
    );
    let out = d.cli(&["service", "update", "--env-add", "RELEASE=2", "web"]);
    assert!(
        out.ok()
            && out
                .stdout
                .contains("overall progress: 2 out of 2 tasks updated"),
        "{out:?}"
    );
    let v = d.json(&["service", "inspect", "web"]);
    assert_eq!(
        (
            v[0]["version"].as_u64(),
            v[0]["update_status"]["state"].as_str()
        ),
        (Some(2), Some("completed"))
    );
    assert!(d
        .running_tasks("web")
        .iter()
        .all(|t| t["spec"]["env"] == serde_json::json!(["RELEASE=2"])));
    // Only the replica count: a scale, not a rollout (the version stays).
    assert!(d.cli(&["service", "update", "--replicas", "3", "web"]).ok());
    assert_eq!(d.json(&["service", "inspect", "web"])[0]["version"], 2);
    let out = d.cli(&["service", "rollback", "web"]);
    assert!(
        out.ok() && out.stdout.contains("verify: Service converged"),
        "{out:?}"
    );
    let v = d.json(&["service", "inspect", "web"]);
    assert_eq!(v[0]["update_status"]["state"], "rollback_completed");
    assert_eq!(v[0]["spec"]["task"]["env"], serde_json::json!([]));
    assert!(d
        .running_tasks("web")
        .iter()
        .all(|t| t["spec"]["env"] == serde_json::json!([])));
    let pretty = d.cli(&["service", "inspect", "--pretty", "web"]).stdout;
    assert!(pretty.contains("rollback_completed"), "{pretty}");
}

#[test]
fn crash_loop_backs_off() {
    let d = Daemon::start_cluster(bin());
    let started = std::time::Instant::now();
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "crash",
        "--restart-delay",
        "0s",
        "-d",
        "--",
        "false",
    ]);
    assert!(out.ok(), "{out:?}");
    let attempt = || {
        d.tasks("crash")
            .iter()
            .filter_map(|t| t["attempt"].as_u64())
            .max()
            .unwrap_or(0)
    };
    // Restarts wait 100ms, 200ms, 400ms, 800ms...: the fourth restart comes 1.5s after the
    // first exit at the soonest (without back-off it came within 50ms).
    assert!(
        wait_until(Duration::from_secs(60), || attempt() >= 4),
        "restarted: {:?}",
        d.tasks("crash")
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400),
        "four restarts within {elapsed:?}"
    );
}

#[test]
fn resources_and_the_node_description_show_like_docker() {
    // A node pointed at an engine that is not there: it runs processes only.
    let d = Daemon::start_with(
        bin(),
        &["--docker-host", "unix:///nonexistent/docker.sock"],
        |_| {},
    );
    d.init();
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "r",
        "--limit-cpu",
        "1.5",
        "--limit-memory",
        "512M",
        "--limit-pids",
        "100",
        "--reserve-cpu",
        "0.001",
        "--reserve-memory",
        "8m",
        "--",
        "sleep",
        "600",
    ]);
    assert!(out.ok(), "{out:?}\n{}", d.log());
    let pretty = d.cli(&["service", "inspect", "--pretty", "r"]).stdout;
    let want = "Resources:\n Reservations:\n  CPU:\t\t0.001\n  Memory:\t8MiB\n Limits:\n  CPU:\t\t1.5\n  Memory:\t512MiB\n  PIDs:\t\t100\n";
    assert!(pretty.contains(want), "{pretty}");
    let out = d.cli(&["service", "update", "--limit-memory", "1g", "-d", "r"]);
    assert!(out.ok(), "{out:?}");
    let r = &d.json(&["service", "inspect", "r"])[0]["spec"]["task"]["resources"];
    assert_eq!(r["limits"]["memory_bytes"], 1u64 << 30, "{r}");
    assert_eq!(r["limits"]["nano_cpus"], 1_500_000_000u64, "{r}");
    assert_eq!(r["reservations"]["memory_bytes"], 8u64 << 20, "{r}");

    // The node reports itself once its session opens; no container engine here.
    let me = d.node_id();
    assert!(wait_until(Duration::from_secs(10), || {
        d.json(&["node", "inspect", &me])[0]["description"]["nano_cpus"]
            .as_u64()
            .is_some_and(|n| n >= 1_000_000_000)
    }));
    let node = &d.json(&["node", "inspect", &me])[0]["description"];
    assert!(
        node["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{node}"
    );
    assert_eq!(node["runtimes"], serde_json::json!(["process"]), "{node}");
    assert!(node.get("engine").is_none(), "{node}");
    let pretty = d.cli(&["node", "inspect", "--pretty", &me]).stdout;
    for line in [
        "Resources:\n CPUs:\t\t\t",
        "\n Memory:\t\t",
        "\nRuntimes:\t\tprocess\n",
        "\nEngine Version:\t\t\n",
        "\nShoal Version:\t\t",
        "\nManager Status:\t\tLeader\n",
    ] {
        assert!(pretty.contains(line), "{line:?} in {pretty}");
    }
    let ls = d.cli(&["node", "ls"]).stdout;
    let row = ls.lines().nth(1).unwrap_or_default();
    assert!(
        ls.starts_with("ID") && ls.contains("ENGINE VERSION") && row.trim_end().ends_with("Leader"),
        "no engine, empty ENGINE VERSION: {ls}"
    );
}

#[test]
fn a_task_no_node_can_take_stays_pending_and_says_why() {
    let d = Daemon::start_cluster(bin());
    let why = "no suitable node (1 node lacks memory)";
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "big",
        "--reserve-memory",
        "64T",
        "--timeout",
        "2s",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!("1/1: {why}")),
        "progress names it: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("did not converge") && out.stderr.contains(why),
        "{}",
        out.stderr
    );
    let ps = d.cli(&["service", "ps", "big"]).stdout;
    assert!(
        ps.contains("Pending") && ps.contains(&format!("\"{why}\"")),
        "{ps}"
    );
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "wide",
        "--limit-cpu",
        "1000",
        "-d",
        "--",
        "sleep",
        "600",
    ]);
    assert!(out.ok(), "{out:?}");
    assert!(wait_until(Duration::from_secs(10), || {
        d.tasks("wide").iter().any(|t| {
            t["pending_reason"] == "no suitable node (1 node has fewer CPUs than the limit of 1000)"
        })
    }));
    // Asking for less lets it run.
    let out = d.cli(&["service", "update", "--reserve-memory", "0", "-d", "big"]);
    assert!(out.ok(), "{out:?}");
    assert!(wait_until(Duration::from_secs(15), || d
        .running_tasks("big")
        .len()
        == 1));
}

/// Reads from `s` until the peer closes it (or an error); false if it is still open after
/// `limit`.
fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    let end = std::time::Instant::now() + limit;
    let mut buf = [0u8; 64];
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left.min(Duration::from_millis(500))));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}

/// One echo round trip on `s`.
fn echo(s: &mut std::net::TcpStream, what: &[u8]) {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(what).expect("write");
    let mut got = vec![0u8; what.len()];
    s.read_exact(&mut got).expect("echoed");
    assert_eq!(got, what);
}

#[test]
fn the_idle_timeout_closes_quiet_connections_and_only_those() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    let publish = format!("{port}:7");
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "echo",
        "--publish",
        &publish,
        "--idle-timeout",
        "1s",
        "--",
        "shoal",
        "echo",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        d.json(&["service", "inspect", "echo"])[0]["spec"]["idle_timeout"],
        1000
    );
    let connect = || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect")
    };
    let mut s = connect();
    echo(&mut s, b"hello");
    let quiet = std::time::Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(30)),
        "the mesh closes a connection idle for 1s"
    );
    assert!(
        quiet.elapsed() >= Duration::from_millis(900),
        "not before its time"
    );

    // Without a timeout (the default), a quiet connection stays open.
    let out = d.cli(&["service", "update", "echo", "--idle-timeout", "0"]);
    assert!(out.ok(), "{out:?}");
    assert!(wait_until(Duration::from_secs(20), || {
        let mut s = connect();
        echo(&mut s, b"probe");
        !closed_within(&mut s, Duration::from_secs(3))
    }));
    let mut s = connect();
    echo(&mut s, b"one");
    assert!(!closed_within(&mut s, Duration::from_secs(3)));
    echo(&mut s, b"two");
}

#[test]
fn a_canary_with_a_lower_weight_gets_its_share() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create_whoami(&d, "web", 2, port, &[]);
    // One task replaced, then the rollout waits: the new task is the canary.
    let out = d.cli(&[
        "service",
        "update",
        "web",
        "--lb-weight",
        "25",
        "--update-parallelism",
        "1",
        "--update-delay",
        "1h",
        "--detach",
    ]);
    assert!(out.ok(), "{out:?}");
    let weights = || -> Vec<u64> {
        let v = d.json(&["service", "endpoints", "web"]);
        let mut w: Vec<u64> = v["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| e["state"] == "ready")
            .filter_map(|e| e["weight"].as_u64())
            .collect();
        w.sort();
        w
    };
    assert!(
        wait_until(Duration::from_secs(60), || weights() == [25, 100]),
        "{:?}",
        weights()
    );
    let canary = d
        .running_tasks("web")
        .into_iter()
        .find(|t| t["spec"]["lb_weight"] == 25)
        .and_then(|t| {
            let slot = t["slot"].as_u64()?;
            Some(format!("web.{slot}.{}", t["id"].as_str()?))
        })
        .expect("the canary task");
    let seen = answers(port, 100);
    let share = seen.get(&canary).copied().unwrap_or(0);
    // Smooth weighted round-robin: 25 of 125 shares, 20 of 100 requests.
    assert!((12..=28).contains(&share), "canary {canary}: {seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 100);
}
