//! A container task reaching another service by name over its VIP, on a cluster whose nodes
//! are network namespaces of the test's own, with the real Docker Engine of this machine.
//! Without an engine the test skips and says why, unless `SHOAL_REQUIRE_DOCKER=1` (set by
//! `.ci/run`).
//!
//! In a real deployment the daemon and the engine's bridge share the machine's network
//! namespace, so a container's packets to the VIP pool and to the resolver meet the node's
//! `PREROUTING` redirect and DNS server as they are. Here the daemons run in namespaces while
//! the engine's containers sit on `docker0` in the root namespace; the test routes what the
//! container sends to the pool into the namespace of the node that runs it
//! ([`shoal_testkit::TestNet::route_into`]: a policy rule for that container's address only),
//! where it arrives through the node's interface and meets the same redirect and DNS server
//! (docs/load-balancing.md#container-tasks).

use shoal_testkit::docker;
use shoal_testkit::netns::RouteInto;
use shoal_testkit::{run_within, wait_until, whoami_name, Cluster};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// The cluster's VIP pool (the default).
const POOL: &str = "10.96.0.0/16";
/// The resolver every task is given: the pool's first address.
const RESOLVER: &str = "10.96.0.1";
/// Generous: image work and a container start on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// What the test made outside its namespaces, removed however it ends. Made before the
/// cluster and so dropped after it: the daemons stop first (none can start a container
/// again), then the containers go, then the route that led them into a node.
#[derive(Default)]
struct Cleanup {
    nodes: Vec<String>,
    route: Option<RouteInto>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in &self.nodes {
            docker::remove_node_containers(id);
        }
        self.route = None;
    }
}

/// `docker exec CONTAINER bash -c SCRIPT`, given up after 20 s: its output when it succeeded.
fn bash_in(id: &str, script: &str) -> Option<String> {
    let mut cmd = Command::new("docker");
    cmd.args(["exec", id, "bash", "-c", script]);
    run_within(&mut cmd, Duration::from_secs(20))
        .filter(|out| out.ok())
        .map(|out| out.stdout)
}

/// The addresses `getent ahostsv4 NAME` gives inside the container, through its resolver.
fn resolve_in(id: &str, name: &str) -> BTreeSet<String> {
    bash_in(id, &format!("getent ahostsv4 {name}"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// An HTTP/1.0 GET of `http://HOST:PORT/` from inside the container (bash's `/dev/tcp`
/// resolves HOST through the container's resolver too): the answer.
fn get_in(id: &str, host: &str, port: u16) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && \
         while IFS= read -r -t 5 line <&3; do printf '%s\\n' \"$line\"; done"
    );
    bash_in(id, &script)
}

#[test]
fn a_container_task_reaches_a_service_by_name_over_its_vip() {
    if !docker::available() {
        return;
    }
    let images = docker::images(bin());
    let mut cleanup = Cleanup::default();
    let c = Cluster::start(bin(), 1, 2);
    cleanup.nodes = (0..3).map(|i| c.node_id(i)).collect();
    let m = c.m();
    let web = [
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "2",
        "--publish",
        "80",
        "--",
        "shoal",
        "whoami",
    ];
    let out = m.cli(&web);
    assert!(out.ok(), "create web: {out:?}");
    let out = m.cli(&["service", "create", "--name", "client", &images.tools]);
    assert!(out.ok(), "create client: {out:?}\n{}", m.log());
    assert!(
        wait_until(WAIT, || m.running_tasks("web").len() == 2
            && m.running_tasks("client").len() == 1),
        "tasks did not start: {}\n{}",
        m.cli(&["service", "ps", "client"]).stdout,
        m.log()
    );
    let vip = m.json(&["service", "inspect", "web"])[0]["vip"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(vip.starts_with("10.96."), "web's VIP {vip:?}");

    let task = m.running_tasks("client").remove(0);
    let id = task["status"]["runtime"]["container"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no container in {task}"))
        .to_string();
    let node = (0..3)
        .find(|&i| task["node_id"] == c.node_id(i).as_str())
        .unwrap_or_else(|| panic!("the client runs on no node of the cluster: {task}"));
    let container = docker::inspect(&id);
    assert_eq!(
        container["HostConfig"]["Dns"],
        serde_json::json!([RESOLVER]),
        "the container's resolver is the node's DNS server"
    );
    let addr: Ipv4Addr = container["NetworkSettings"]["IPAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address for container {id}"));
    // From here on, what the container sends to the pool reaches node `node`, as it would
    // reach its own host in a real deployment; before this it sends nothing there.
    cleanup.route = Some(
        c.net
            .route_into(node, addr, POOL)
            .expect("route the pool into the node"),
    );
    let resolv = bash_in(
        &id,
        "while IFS= read -r l; do echo \"$l\"; done </etc/resolv.conf",
    )
    .unwrap_or_default();
    assert!(
        resolv
            .lines()
            .any(|l| l.trim() == format!("nameserver {RESOLVER}")),
        "/etc/resolv.conf of the container:\n{resolv}"
    );

    let want = BTreeSet::from([vip.clone()]);
    assert!(
        wait_until(WAIT, || resolve_in(&id, "web") == want),
        "web resolved to {:?} in the container (VIP {vip}), on node {node}\n{}",
        resolve_in(&id, "web"),
        c.nodes[node].log()
    );
    let tasks_web = || -> BTreeSet<String> {
        m.running_tasks("web")
            .iter()
            .filter_map(|t| t["endpoint"]["addr"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        wait_until(WAIT, || resolve_in(&id, "tasks.web") == tasks_web()),
        "tasks.web resolved to {:?} in the container, want {:?}",
        resolve_in(&id, "tasks.web"),
        tasks_web()
    );

    // By name, over the VIP: the node's VIP listener balances over both tasks.
    let mut seen = BTreeSet::new();
    let both = wait_until(WAIT, || {
        if let Some(name) = get_in(&id, "web", 80).as_deref().and_then(whoami_name) {
            seen.insert(name);
        }
        seen.len() == 2
    });
    assert!(
        both,
        "http://web:80/ from the container reached only {seen:?}\n{}",
        c.nodes[node].log()
    );
    assert!(
        seen.iter().all(|n| n.starts_with("web.")),
        "answers of web's tasks: {seen:?}"
    );
    let by_vip = get_in(&id, &vip, 80).as_deref().and_then(whoami_name);
    assert!(
        by_vip.as_deref().is_some_and(|n| n.starts_with("web.")),
        "http://{vip}:80/ from the container: {by_vip:?}"
    );
}
