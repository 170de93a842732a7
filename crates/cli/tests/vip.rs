//! Service VIPs and the embedded DNS on a cluster whose nodes are network namespaces of
//! the test's own: the VIPs live on each namespace's VIP interface, never on the machine's.

use shoal_testkit::{wait_until, Cluster};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// The answer of an HTTP/1.0 GET of `/` at `ip:port`, sent from inside node `i`.
fn get_from(c: &Cluster, i: usize, ip: &str, port: u16) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/tcp/{ip}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
    );
    let out = c
        .net
        .command(i, "timeout")
        .args(["10", "bash", "-c", &script])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The task name a whoami answer names.
fn task_name(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Name: "))
        .map(str::to_string)
}

fn vip_of(c: &Cluster, service: &str) -> String {
    let svc = c.m().json(&["service", "inspect", service]);
    svc[0]["vip"]
        .as_str()
        .unwrap_or_else(|| panic!("no vip in {svc}"))
        .to_string()
}

#[test]
fn a_service_vip_reaches_its_tasks_from_every_node() {
    let c = Cluster::start(bin(), 1, 2);
    let m = c.m();
    let out = m.cli(&[
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
    assert!(out.ok(), "create: {out:?}");
    assert!(
        wait_until(Duration::from_secs(30), || m.running_tasks("web").len()
            == 2),
        "tasks did not start: {}",
        m.log()
    );
    let vip = vip_of(&c, "web");
    assert!(vip.starts_with("10.96."), "{vip}");
    for i in 0..3 {
        let mut seen = std::collections::HashSet::new();
        let ok = wait_until(Duration::from_secs(20), || {
            if let Some(name) = get_from(&c, i, &vip, 80).as_deref().and_then(task_name) {
                seen.insert(name);
            }
            seen.len() == 2
        });
        assert!(
            ok,
            "node {i}: VIP {vip}:80 reached only {seen:?}\n{}",
            c.nodes[i].log()
        );
    }
}
