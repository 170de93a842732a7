//! `--lb-local-first` on a two-node cluster whose nodes are network namespaces of the test's
//! own: a node with a ready task of the service keeps its connections, through the
//! published port and the VIP alike; without the setting they spread over both nodes.

use shoal_testkit::{wait_until, whoami_name, Cluster};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// The task name of a whoami answer to `GET /` at `ip:port`, asked from inside node `i`.
fn answer_from(c: &Cluster, i: usize, ip: &str, port: u16) -> Option<String> {
    whoami_name(&c.http_get_from(i, ip, port)?)
}

/// The tasks that answered `n` requests to `ip:port` from node `i`.
fn answers(c: &Cluster, i: usize, ip: &str, port: u16, n: usize) -> HashSet<String> {
    (0..n).filter_map(|_| answer_from(c, i, ip, port)).collect()
}

#[test]
fn local_first_keeps_connections_on_the_receiving_node() {
    let c = Cluster::start(bin(), 1, 1);
    let m = c.m();
    let out = m.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--mode",
        "global",
        "--publish",
        "80",
        "--lb-local-first",
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
    let (published, vip) = m.published_and_vip("web");
    let task_on = |i: usize| -> String {
        let node = c.node_id(i);
        m.running_tasks("web")
            .into_iter()
            .find(|t| t["node_id"] == node.as_str())
            .and_then(|t| {
                Some(format!(
                    "web.{}.{}",
                    t["node_id"].as_str()?,
                    t["id"].as_str()?
                ))
            })
            .expect("a task on the node")
    };
    for i in 0..2 {
        let local = task_on(i);
        let node_ip = c.net.ip(i).to_string();
        // Wait until the node routes by the service (its first answer), then count.
        assert!(
            wait_until(Duration::from_secs(20), || answer_from(
                &c, i, &node_ip, published
            )
            .is_some()),
            "node {i} does not answer on {published}"
        );
        for (what, ip, port) in [
            ("published port", node_ip.as_str(), published),
            ("VIP", &vip, 80),
        ] {
            let seen = answers(&c, i, ip, port, 12);
            assert_eq!(
                seen,
                HashSet::from([local.clone()]),
                "node {i}, {what}: only its own task answers"
            );
        }
    }

    // Without the setting, node 0's connections reach both tasks.
    let out = m.cli(&["service", "update", "web", "--lb-local-first=false"]);
    assert!(out.ok(), "update: {out:?}");
    let node_ip = c.net.ip(0).to_string();
    let mut seen = HashSet::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            seen.extend(answers(&c, 0, &node_ip, published, 4));
            seen.len() == 2
        }),
        "both tasks answer without local-first: {seen:?}"
    );
}
