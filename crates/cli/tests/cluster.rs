//! Multi-node clusters: one manager and two workers, each in its own network namespace
//! with its own address, driven through the real CLI.

use shoal_testkit::{
    http_get_at, processes_with_env, wait_until, whoami_names, ClientKind, Cluster, Daemon, Load,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

const PORT: u16 = 8080;

/// A manager (node 0) and `workers` workers, joined.
fn cluster(workers: usize) -> Cluster {
    Cluster::start(bin(), 1, workers)
}

/// Running tasks of `service` per node ID.
fn per_node(c: &Cluster, service: &str) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    for t in c.m().running_tasks(service) {
        *per.entry(t["node_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    per
}

fn create_web(c: &Cluster, replicas: u32) {
    let publish = format!("{PORT}:80");
    let r = replicas.to_string();
    let out = c.m().cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        &r,
        "--publish",
        &publish,
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create: {out:?}\n{}", c.m().log());
}

#[test]
fn join_spread_and_mesh_on_every_node() {
    let c = cluster(2);
    let m = c.m();
    let ls = m.cli(&["node", "ls"]).stdout;
    assert_eq!(ls.matches("Ready").count(), 3, "{ls}");
    assert!(ls.contains("Leader"), "{ls}");

    // Bad joins: garbage, a rotated token, a token of another cluster, joining twice.
    let other = Daemon::start_cluster(bin());
    let foreign = other.worker_token();
    let old = m.worker_token();
    assert!(m.cli(&["join-token", "worker", "--rotate"]).ok());
    let remote = format!("{}:2377", c.net.ip(0));
    let w1 = &c.nodes[1];
    for token in ["SWMTKN-1-bad", old.as_str()] {
        let want = "already part of a cluster";
        let out = w1.cli(&["join", "--token", token, &remote]);
        assert!(!out.ok() && out.stderr.contains(want), "{token}: {out:?}");
    }
    let fresh = Daemon::start(bin());
    for (token, want) in [
        (old.as_str(), "rotated"),
        (foreign.as_str(), "another cluster"),
        ("SWMTKN-1-x", "invalid join token"),
    ] {
        let out = fresh.cli(&["join", "--token", token, &remote]);
        assert!(!out.ok() && out.stderr.contains(want), "{token}: {out:?}");
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    }
    assert_eq!(c.ready(0), 3, "rejected joins changed nothing");
    let live_rm = m.cli(&["node", "rm", &c.node_id(1)]);
    assert!(
        !live_rm.ok() && live_rm.stderr.contains("not down"),
        "{live_rm:?}"
    );
    let typo = m.cli(&[
        "service",
        "create",
        "--name",
        "x",
        "--constraint",
        "node.lables.zone==a",
        "--",
        "true",
    ]);
    assert!(!typo.ok() && typo.stderr.contains("constraint"), "{typo:?}");
    let unknown = m.cli(&["node", "inspect", "nosuchnode"]);
    assert!(
        !unknown.ok() && unknown.stderr.contains("not found"),
        "{unknown:?}"
    );
    let on_worker = w1.cli(&["service", "ls"]);
    assert!(
        !on_worker.ok() && on_worker.stderr.contains("worker"),
        "{on_worker:?}"
    );

    // Six replicas spread 2/2/2, reachable through every node's mesh.
    create_web(&c, 6);
    let spread = per_node(&c, "web");
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(spread.values().all(|n| *n == 2), "{spread:?}");
    let mut all = HashSet::new();
    for i in 0..3 {
        let seen = whoami_names(c.addr(i, PORT), 18);
        assert_eq!(
            seen.len(),
            6,
            "node {i}'s mesh reaches all six tasks: {seen:?}"
        );
        all.extend(seen);
    }
    assert_eq!(all.len(), 6);

    // The health endpoint for external load balancers.
    for i in 0..3 {
        let h = http_get_at(SocketAddr::from((c.net.ip(i), 2378)), "/healthz").expect("healthz");
        assert!(h.contains("\"ready\":true"), "{h}");
    }
    // A remote CLI with a client certificate.
    let certs = m.dir.path().join("client");
    assert!(m
        .cli(&[
            "client-cert",
            "--name",
            "ci",
            "--out",
            certs.to_str().unwrap_or_default()
        ])
        .ok());
    let host = format!("tcp://{}:2377", c.net.ip(0));
    let remote_ls = std::process::Command::new(bin())
        .args(["--host", &host, "--tls-dir"])
        .arg(&certs)
        .args(["service", "ls"])
        .output()
        .expect("remote cli");
    let out = String::from_utf8_lossy(&remote_ls.stdout);
    assert!(
        remote_ls.status.success() && out.contains("6/6"),
        "{out} {}",
        String::from_utf8_lossy(&remote_ls.stderr)
    );
    let no_cert = std::process::Command::new(bin())
        .args(["--host", &host, "service", "ls"])
        .output()
        .expect("cli");
    assert!(!no_cert.status.success());

    // Revoked: refused at the next call, on every manager's control port.
    let ls = m.cli(&["client-cert", "ls"]);
    assert!(
        ls.ok() && ls.stdout.contains("ci") && ls.stdout.contains("Valid"),
        "{ls:?}"
    );
    assert!(m.cli(&["client-cert", "revoke", "ci"]).ok());
    let revoked = std::process::Command::new(bin())
        .args(["--host", &host, "--tls-dir"])
        .arg(&certs)
        .args(["service", "ls"])
        .output()
        .expect("remote cli");
    let err = String::from_utf8_lossy(&revoked.stderr);
    assert!(
        !revoked.status.success() && err.contains("revoked"),
        "{err}"
    );
    assert!(m.cli(&["client-cert", "ls"]).stdout.contains("Revoked"));
}

#[test]
fn killed_worker_tasks_are_replaced() {
    let mut c = cluster(2);
    create_web(&c, 6);
    let victim = c.node_id(2);
    let t0 = Instant::now();
    c.nodes[2].kill9();
    // The time it takes is printed, not bounded tightly: it is measured by
    // bench/node-failure; this bound only catches a replacement that never comes.
    let replaced = wait_until(Duration::from_secs(30), || {
        let spread = per_node(&c, "web");
        spread.values().sum::<usize>() == 6 && !spread.contains_key(&victim)
    });
    let took = t0.elapsed();
    assert!(
        replaced,
        "tasks replaced: {:?}\n{}",
        per_node(&c, "web"),
        c.m().log()
    );
    eprintln!("node kill -9 to 6 running replacements: {took:?}");
    let ls = c.m().cli(&["node", "ls"]).stdout;
    assert!(ls.contains("Down"), "{ls}");
    assert_eq!(whoami_names(c.addr(0, PORT), 24).len(), 6);
}

/// A node that dies mid-traffic (its link cut, so connections to it time out instead of
/// being refused, and its daemon and tasks killed) fails no connection made after it died:
/// the other nodes' meshes move on to a live task within the connect timeout, and stop
/// trying the dead one. Requests already under way to its tasks may fail; they are not
/// counted.
#[test]
fn a_node_killed_mid_traffic_fails_no_new_connection() {
    let mut c = cluster(2);
    create_web(&c, 6);
    let spread = wait_until(Duration::from_secs(20), || per_node(&c, "web").len() == 3);
    assert!(spread, "tasks on every node: {:?}", per_node(&c, "web"));
    let loads = [
        Load::start_at(c.addr(0, PORT)),
        Load::start_at(c.addr(1, PORT)),
    ];
    let victim = c.node_id(2);
    // Traffic before the death too.
    std::thread::sleep(Duration::from_millis(500));
    c.net.cut(2).expect("cut");
    c.nodes[2].kill9();
    // From here on no connection may fail; one made while the link went down may.
    let died = Instant::now();
    let replaced = wait_until(Duration::from_secs(30), || {
        let spread = per_node(&c, "web");
        spread.values().sum::<usize>() == 6 && !spread.contains_key(&victim)
    });
    assert!(replaced, "tasks replaced: {:?}", per_node(&c, "web"));
    // Traffic on the replacements too.
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<usize> = loads.iter().map(|l| l.failed_since(died)).collect();
    let reports: Vec<_> = loads.into_iter().map(Load::finish).collect();
    eprintln!("node died mid-traffic: {reports:?}, failures started after: {after:?}");
    assert!(reports.iter().all(|r| r.sent > 50), "{reports:?}");
    assert_eq!(
        after,
        [0, 0],
        "connections made after the node died failed: {reports:?}"
    );
}

#[test]
fn cut_link_marks_node_down_and_heals_to_one_task_per_slot() {
    let c = cluster(2);
    create_web(&c, 6);
    let cut = c.node_id(1);
    c.net.cut(1).expect("cut");
    let moved = wait_until(Duration::from_secs(10), || {
        let spread = per_node(&c, "web");
        spread.values().sum::<usize>() == 6 && !spread.contains_key(&cut)
    });
    assert!(
        moved,
        "tasks moved off the cut node: {:?}",
        per_node(&c, "web")
    );
    assert!(c.m().cli(&["node", "ls"]).stdout.contains("Down"));
    assert_eq!(
        whoami_names(c.addr(0, PORT), 24).len(),
        6,
        "the mesh routes only to reachable tasks"
    );
    c.net.restore(1).expect("restore");
    let healed = wait_until(Duration::from_secs(10), || c.ready(0) == 3);
    assert!(healed);
    // The node's old tasks are shut down; never two live tasks in a slot.
    let settled = wait_until(Duration::from_secs(10), || {
        let per = c.m().wanted_per_slot("web");
        per.len() == 6 && per.values().all(|n| *n == 1)
    });
    assert!(settled, "{:?}", c.m().wanted_per_slot("web"));
    let old_live = c
        .m()
        .tasks("web")
        .into_iter()
        .filter(|t| t["node_id"] == cut.as_str() && t["status"]["state"] == "running")
        .count();
    assert!(
        wait_until(Duration::from_secs(10), || {
            c.m()
                .tasks("web")
                .into_iter()
                .filter(|t| {
                    t["node_id"] == cut.as_str()
                        && t["status"]["state"] == "running"
                        && t["desired_state"] != "running"
                })
                .count()
                == 0
        }),
        "old tasks on the healed node were stopped (had {old_live})"
    );
}

#[test]
fn drain_under_load_fails_no_request() {
    let c = cluster(2);
    create_web(&c, 6);
    let loads = both_loads(&c);
    std::thread::sleep(Duration::from_millis(500));
    let drained = c.node_id(2);
    let out = c
        .m()
        .cli(&["node", "update", "--availability", "drain", &drained]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("drained"), "{}", out.stdout);
    std::thread::sleep(Duration::from_millis(500));
    let spread = per_node(&c, "web");
    assert!(
        !spread.contains_key(&drained) && spread.values().sum::<usize>() == 6,
        "{spread:?}"
    );
    assert_no_failures(loads);
    // pause places nothing new; active takes tasks again (scale up lands there).
    assert!(c
        .m()
        .cli(&["node", "update", "--availability", "active", &drained])
        .ok());
    assert!(c.m().cli(&["service", "scale", "web=9"]).ok());
    assert!(per_node(&c, "web").contains_key(&drained));
}

#[test]
fn removed_node_is_refused_and_its_tasks_orphaned() {
    let mut c = cluster(2);
    create_web(&c, 3);
    let gone = c.node_id(2);
    c.nodes[2].kill9();
    assert!(wait_until(Duration::from_secs(10), || c
        .m()
        .cli(&["node", "ls"])
        .stdout
        .contains("Down")));
    let out = c.m().cli(&["node", "rm", &gone]);
    assert!(out.ok(), "{out:?}");
    assert!(c
        .m()
        .tasks("web")
        .iter()
        .filter(|t| t["node_id"] == gone.as_str())
        .all(|t| t["status"]["state"] == "orphaned"));
    // Its certificate no longer opens a session: the restarted daemon is refused at once.
    c.nodes[2].restart();
    let refused = wait_until(Duration::from_secs(20), || {
        c.nodes[2]
            .log()
            .contains("has been removed from the cluster")
    });
    assert!(refused, "{}", c.nodes[2].log());
    let nodes = c.m().json(&["node", "ls", "--format", "json"]);
    assert_eq!(
        nodes.as_array().map(|a| a.len()),
        Some(2),
        "the removed node did not come back"
    );
}

/// HAProxy (Debian's) in front of the three nodes' published port, health-checking each
/// node's /healthz, round-robin across nodes: the classic Swarm edge setup.
#[test]
fn haproxy_in_front_of_the_nodes() {
    let haproxy = std::process::Command::new("haproxy").arg("-v").output();
    assert!(
        haproxy.is_ok(),
        "haproxy is required (scripts/test installs it)"
    );
    let c = cluster(2);
    create_web(&c, 3);
    let front = shoal_testkit::free_port();
    let cfg = c.m().dir.path().join("haproxy.cfg");
    let mut servers = String::new();
    for i in 0..3 {
        servers.push_str(&format!(
            "    server node{i} {}:{PORT} check port 2378 inter 200ms fall 2 rise 1\n",
            c.net.ip(i)
        ));
    }
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 1000\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend web\n    bind 127.0.0.1:{front}\n    default_backend nodes\n\
             backend nodes\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}"
        ),
    )
    .expect("haproxy config");
    let mut proxy = std::process::Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start haproxy");
    let up = wait_until(Duration::from_secs(5), || {
        shoal_testkit::http_get(front, "/").is_ok()
    });
    // Which node's mesh took each request: the RemoteAddr whoami sees is the entry node.
    let mut entry = HashMap::new();
    for _ in 0..30 {
        if let Ok(body) = shoal_testkit::http_get(front, "/") {
            let from = body
                .lines()
                .find_map(|l| l.strip_prefix("RemoteAddr: "))
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            *entry.entry(from).or_insert(0usize) += 1;
        }
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(up, "haproxy answers");
    assert_eq!(
        entry.values().sum::<usize>(),
        30,
        "every request answered: {entry:?}"
    );
    assert_eq!(
        entry.len(),
        3,
        "requests entered through all three nodes: {entry:?}"
    );
    assert!(
        entry.values().all(|n| *n == 10),
        "round-robin across nodes: {entry:?}"
    );
}

#[test]
fn manager_restart_does_not_restart_worker_tasks() {
    let mut c = cluster(2);
    let publish = format!("{PORT}:80");
    let out = c.m().cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "4",
        "--publish",
        &publish,
        "--constraint",
        "node.role==worker",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "{out:?}");
    let before: Vec<String> = c
        .m()
        .running_tasks("web")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(before.len(), 4);
    let pids: Vec<Vec<u32>> = before
        .iter()
        .map(|id| processes_with_env("SHOAL_TASK_ID", id))
        .collect();
    assert!(pids.iter().all(|p| p.len() == 1), "{pids:?}");

    c.nodes[0].kill9();
    // Without a manager the workers keep their tasks and their meshes keep routing.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        whoami_names(c.addr(1, PORT), 16).len(),
        4,
        "worker mesh serves its last table"
    );
    c.nodes[0].restart();
    assert!(
        wait_until(Duration::from_secs(10), || c.ready(0) == 3),
        "workers reconnected"
    );
    let mut after: Vec<String> = c
        .m()
        .running_tasks("web")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut want = before.clone();
    after.sort();
    want.sort();
    assert_eq!(after, want, "the same tasks, not replacements");
    let pids_after: Vec<Vec<u32>> = before
        .iter()
        .map(|id| processes_with_env("SHOAL_TASK_ID", id))
        .collect();
    assert_eq!(pids_after, pids, "same processes");
    assert_eq!(c.m().tasks("web").len(), 4, "no task was created meanwhile");
}

#[test]
fn certificates_renew_before_they_expire() {
    let c = Cluster::start_with(bin(), 1, 1, &["--cert-expiry", "12s"]);
    let cert = |i: usize| {
        std::fs::read_to_string(c.nodes[i].data_dir().join("certs/node.pem")).unwrap_or_default()
    };
    let (worker0, manager0) = (cert(1), cert(0));
    let t0 = Instant::now();
    // Renewal happens between 50% and 80% of the 12 s life.
    assert!(
        wait_until(Duration::from_secs(11), || cert(1) != worker0),
        "worker certificate renewed"
    );
    assert!(
        wait_until(Duration::from_secs(11), || cert(0) != manager0),
        "manager certificate renewed"
    );
    // Past the first certificates' expiry, the worker still talks to the manager.
    std::thread::sleep(Duration::from_secs(13).saturating_sub(t0.elapsed()));
    assert!(wait_until(Duration::from_secs(3), || c.ready(0) == 2));
    let out = c.m().cli(&[
        "service", "create", "--name", "g", "--mode", "global", "--", "sleep", "100000",
    ]);
    assert!(
        out.ok(),
        "a worker with a renewed certificate takes tasks: {out:?}"
    );
}

#[test]
fn global_services_follow_nodes_and_host_ports_bind_where_tasks_run() {
    let c = cluster(2);
    let out = c.m().cli(&[
        "service", "create", "--name", "g", "--mode", "global", "--", "sleep", "100000",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.m().running_tasks("g").len(), 3);
    let w2 = c.node_id(2);
    assert!(c
        .m()
        .cli(&["node", "update", "--availability", "drain", &w2])
        .ok());
    assert_eq!(c.m().running_tasks("g").len(), 2);
    assert!(c
        .m()
        .cli(&["node", "update", "--availability", "active", &w2])
        .ok());
    assert!(wait_until(Duration::from_secs(10), || c
        .m()
        .running_tasks("g")
        .len()
        == 3));

    let host_port = 9090u16;
    let publish = format!("published={host_port},target=80,mode=host");
    let out = c.m().cli(&[
        "service",
        "create",
        "--name",
        "h",
        "--replicas",
        "3",
        "--publish",
        &publish,
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "{out:?}");
    let nodes: HashSet<String> = c
        .m()
        .running_tasks("h")
        .iter()
        .map(|t| t["node_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(nodes.len(), 3, "host ports force one task per node");
    for i in 0..3 {
        let addr = SocketAddr::from((c.net.ip(i), host_port));
        assert!(
            http_get_at(addr, "/").is_ok(),
            "node {i} answers on its host port"
        );
    }
    let out = c.m().cli(&["service", "scale", "h=4", "--timeout", "3s"]);
    assert!(!out.ok(), "a fourth host-mode task cannot be placed");
    let ps = c.m().cli(&["service", "ps", "h", "--no-trunc"]).stdout;
    assert!(ps.contains("already in use"), "{ps}");
}

/// Steady traffic of both client kinds, through two different nodes' meshes.
fn both_loads(c: &Cluster) -> (Load, Load) {
    (
        Load::start_kind(c.addr(0, PORT), ClientKind::PerRequest),
        Load::start_kind(c.addr(1, PORT), ClientKind::KeepAlive),
    )
}

fn assert_no_failures(loads: (Load, Load)) {
    let (per_request, keep_alive) = (loads.0.finish(), loads.1.finish());
    eprintln!("per-request: {per_request:?}, keep-alive: {keep_alive:?}");
    assert!(
        per_request.sent > 50 && keep_alive.sent > 50,
        "{per_request:?} {keep_alive:?}"
    );
    assert_eq!(per_request.failed, 0, "per-request client: {per_request:?}");
    assert_eq!(keep_alive.failed, 0, "keep-alive client: {keep_alive:?}");
}

fn create_web5(c: &Cluster, extra: &[&str]) {
    let publish = format!("{PORT}:80");
    let mut args = vec![
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "5",
        "--publish",
        &publish,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "shoal", "whoami"]);
    let out = c.m().cli(&args);
    assert!(out.ok(), "create: {out:?}");
}

fn versions(c: &Cluster) -> Vec<u64> {
    c.m()
        .running_tasks("web")
        .iter()
        .filter_map(|t| t["spec_version"].as_u64())
        .collect()
}

/// A five-replica rolling update under both client kinds: no request may fail.
fn rolling_update_under_load(create_flags: &[&str]) {
    let c = cluster(2);
    create_web5(&c, create_flags);
    let loads = both_loads(&c);
    std::thread::sleep(Duration::from_millis(300));
    let out = c.m().cli(&[
        "service",
        "update",
        "--env-add",
        "RELEASE=2",
        "--update-monitor",
        "500ms",
        "web",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        out.ok() && out.stdout.contains("verify: Service converged"),
        "{out:?}"
    );
    assert_no_failures(loads);
    assert_eq!(versions(&c), vec![2; 5], "every task runs the new spec");
    let inspect = c.m().json(&["service", "inspect", "web"]);
    assert_eq!(inspect[0]["update_status"]["state"], "completed");
}

#[test]
fn rolling_update_stop_first_under_load_fails_no_request() {
    rolling_update_under_load(&[]);
}

#[test]
fn rolling_update_start_first_under_load_fails_no_request() {
    rolling_update_under_load(&["--update-order", "start-first", "--update-parallelism", "2"]);
}

#[test]
fn failing_update_rolls_back_by_itself_and_the_cli_exits_non_zero() {
    let c = cluster(2);
    create_web5(
        &c,
        &[
            "--health-http",
            "/health",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
        ],
    );
    let loads = both_loads(&c);
    std::thread::sleep(Duration::from_millis(300));
    let out = c.m().cli(&[
        "service",
        "update",
        "--args",
        "whoami --unhealthy",
        "--update-failure-action",
        "rollback",
        "--update-monitor",
        "1s",
        "--update-progress-deadline",
        "3s",
        "web",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(loads);
    let inspect = c.m().json(&["service", "inspect", "web"]);
    assert_eq!(inspect[0]["update_status"]["state"], "rollback_completed");
    assert_eq!(
        inspect[0]["spec"]["task"]["runtime"]["process"]["args"],
        serde_json::json!(["whoami"])
    );
    let running = c.m().running_tasks("web");
    assert_eq!(running.len(), 5);
    assert!(
        running
            .iter()
            .all(|t| t["spec"]["runtime"]["process"]["args"] == serde_json::json!(["whoami"])),
        "{running:?}"
    );
}

/// `service logs` lines as (task ID, text), for a service whose task IDs are known.
fn log_lines(out: &str, tasks: &[serde_json::Value]) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (prefix, text) = l.split_once("    | ")?;
            let short = prefix.split('@').next()?.rsplit('.').next()?;
            let task = tasks
                .iter()
                .filter_map(|t| t["id"].as_str())
                .find(|id| id.starts_with(short))?;
            Some((task.to_string(), text.to_string()))
        })
        .collect()
}

#[test]
fn logs_come_from_every_node() {
    let mut c = cluster(2);
    let out = c.m().cli(&[
        "service",
        "create",
        "--name",
        "talk",
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
        "--env",
        "SLOT={{.Task.Slot}}",
        "--",
        "sh",
        "-c",
        "echo hello from $SLOT; while sleep 0.2; do echo tick $SLOT; done",
    ]);
    assert!(out.ok(), "create: {out:?}");
    let tasks = c.m().running_tasks("talk");
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    let node_of: HashMap<String, String> = tasks
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("node_id"))
        })
        .collect();

    // Every task's first line, whichever node it runs on, read through the manager.
    let mut lines = Vec::new();
    let all_there = wait_until(Duration::from_secs(30), || {
        let out = c.m().cli(&["service", "logs", "talk"]);
        lines = log_lines(&out.stdout, &tasks);
        out.ok() && lines.iter().filter(|(_, l)| l.starts_with("hello")).count() == 3
    });
    assert!(all_there, "{lines:?}\n{}", c.m().log());
    let nodes: HashSet<&String> = lines.iter().map(|(t, _)| &node_of[t]).collect();
    assert_eq!(nodes.len(), 3, "lines from every node: {lines:?}");

    // One task's log, by task ID: a task on a worker.
    let (on_worker, _) = node_of
        .iter()
        .find(|(_, n)| **n == c.node_id(2))
        .expect("a task on worker 2");
    let one = c
        .m()
        .cli(&["service", "logs", &on_worker[..12], "--tail", "1"]);
    assert!(one.ok(), "{one:?}");
    let only = log_lines(&one.stdout, &tasks);
    assert_eq!(only.len(), 1, "{}", one.stdout);
    assert_eq!(&only[0].0, on_worker);

    // --raw: the output alone; --timestamps: the time first.
    let raw = c
        .m()
        .cli(&["service", "logs", "talk", "--raw", "--tail", "1"]);
    assert!(raw.ok(), "{raw:?}");
    assert_eq!(raw.stdout.lines().count(), 3, "{}", raw.stdout);
    assert!(
        raw.stdout.lines().all(|l| l.starts_with("tick ")),
        "{}",
        raw.stdout
    );
    let stamped = c.m().cli(&["service", "logs", "talk", "-t", "--tail", "1"]);
    assert!(stamped.ok(), "{stamped:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    for l in stamped.stdout.lines() {
        let (time, rest) = l.split_once(' ').expect("time first");
        let t = shoal_api::task_log::parse_time(time).expect("an RFC 3339 time");
        assert!((now - t).abs() < 600_000_000_000, "{l}");
        assert!(rest.starts_with("talk."), "{l}");
    }

    // --since: a time to come shows nothing; ten minutes back shows the first lines.
    let future = shoal_api::task_log::format_time(now + 3_600_000_000_000);
    let none = c.m().cli(&["service", "logs", "talk", "--since", &future]);
    assert!(none.ok() && none.stdout.is_empty(), "{none:?}");
    let recent = c.m().cli(&["service", "logs", "talk", "--since", "10m"]);
    let recent = log_lines(&recent.stdout, &tasks);
    assert_eq!(
        recent
            .iter()
            .filter(|(_, l)| l.starts_with("hello"))
            .count(),
        3
    );

    // -f: tasks started after the follower (a forced update replaces each) show up too;
    // with --since now, a first line can only come from a new task.
    let mut follower = std::process::Command::new(bin())
        .arg("-H")
        .arg(c.m().socket())
        .args(["service", "logs", "-f", "--raw", "--since", "0s", "talk"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("follower");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let out = c.m().cli(&["service", "update", "--force", "-d", "talk"]);
    assert!(out.ok(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("hello from") => {
                seen = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let _ = reader.join();
    assert!(seen, "the follower never saw the new task's output");

    // A node that is down: the others' lines, and one error naming it; exit status 1.
    c.nodes[2].kill9();
    assert!(
        wait_until(Duration::from_secs(30), || c
            .m()
            .cli(&["node", "ls"])
            .stdout
            .contains("Down")),
        "{}",
        c.m().cli(&["node", "ls"]).stdout
    );
    let partial = c.m().cli(&["service", "logs", "talk", "--tail", "1"]);
    assert_eq!(partial.code, 1, "{partial:?}");
    assert!(
        partial.stderr.contains("cannot read the logs on node"),
        "{}",
        partial.stderr
    );
    let rest = log_lines(&partial.stdout, &c.m().tasks("talk"));
    assert!(rest.len() >= 2, "{}", partial.stdout);
}
