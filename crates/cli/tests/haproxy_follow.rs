//! The documented way to keep HAProxy in step with a service (`examples/haproxy-follow`):
//! the endpoint watch drives HAProxy's runtime API, and HAProxy sends requests to exactly the
//! service's ready tasks as it scales.

use shoal_testkit::{free_port, wait_until, whoami_names, Daemon};
use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/haproxy-follow")
}

/// Kills the child, and the process group it leads if it was started as one, on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The task names that answered `n` requests through HAProxy.
fn names(front: u16, n: usize) -> HashSet<String> {
    whoami_names(std::net::SocketAddr::from(([127, 0, 0, 1], front)), n)
}

#[test]
fn haproxy_follows_the_endpoint_watch() {
    assert!(
        Command::new("haproxy").arg("-v").output().is_ok(),
        "haproxy is required (scripts/test installs it)"
    );
    let d = Daemon::start_cluster(bin());
    let out = d.cli(&[
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
    ]);
    assert!(out.ok(), "{out:?}");

    let (front, admin) = (free_port(), free_port());
    let cfg = d.dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 1000\n    stats socket ipv4@127.0.0.1:{admin} level admin\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend web\n    bind 127.0.0.1:{front}\n    default_backend web\n\
             backend web\n    balance roundrobin\n    server-template s 1-4 127.0.0.1:9 disabled\n"
        ),
    )
    .expect("haproxy config");
    let _haproxy = Running(
        Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    let _follow = Running(
        Command::new(script())
            .args(["web", "80", "web", "4", &format!("127.0.0.1:{admin}")])
            // Its own process group: the watch and jq it runs go with it.
            .process_group(0)
            .env("SHOAL", bin())
            .env("SHOAL_HOST", &d.socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("start haproxy-follow"),
    );

    let follows = |want: usize| {
        let mut seen = HashSet::new();
        let ok = wait_until(Duration::from_secs(30), || {
            seen = names(front, 4 * want);
            let running: HashSet<String> = d
                .running_tasks("web")
                .iter()
                .filter_map(|t| Some(format!("web.{}.{}", t["slot"].as_u64()?, t["id"].as_str()?)))
                .collect();
            running.len() == want && seen == running
        });
        assert!(
            ok,
            "HAProxy sends to the {want} running tasks, saw {seen:?}"
        );
    };
    follows(2);
    assert!(d.cli(&["service", "scale", "web=3"]).ok());
    follows(3);
    assert!(d.cli(&["service", "scale", "web=1"]).ok());
    follows(1);
}
