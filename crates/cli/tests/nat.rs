//! `--lb-mode nat` on a two-node cluster whose nodes are network namespaces of the test's
//! own: the kernel forwards the service's published port and VIP to its tasks on both
//! nodes, keeps the client's address on the way to a task on the receiving node (no proxy
//! in between), and a rolling update under traffic fails no request.

use shoal_testkit::{wait_until, whoami_name, Cluster};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// The task name and the client address a whoami answer reports.
fn name_and_client(answer: &str) -> Option<(String, String)> {
    let client = answer
        .lines()
        .find_map(|l| l.strip_prefix("RemoteAddr: "))?
        .trim()
        .rsplit_once(':')?
        .0
        .to_string();
    Some((whoami_name(answer)?, client))
}

#[test]
fn the_kernel_forwards_a_nat_service_and_its_updates_fail_no_request() {
    let mut c = Cluster::start(bin(), 1, 1);
    let out = c.m().cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--mode",
        "global",
        "--publish",
        "80",
        "--lb-mode",
        "nat",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create: {out:?}");
    let m = c.m();
    assert!(
        wait_until(Duration::from_secs(30), || m.running_tasks("web").len()
            == 2),
        "tasks did not start: {}",
        m.log()
    );
    let svc = m.json(&["service", "inspect", "web"]);
    assert_eq!(svc[0]["spec"]["lb_mode"], "nat", "{svc}");
    let (published, vip) = m.published_and_vip("web");
    let task_node: HashMap<String, String> = m
        .running_tasks("web")
        .into_iter()
        .filter_map(|t| {
            let node = t["node_id"].as_str()?.to_string();
            Some((format!("web.{node}.{}", t["id"].as_str()?), node))
        })
        .collect();
    let (ip0, ip1) = (c.net.ip(0).to_string(), c.net.ip(1).to_string());

    // From node 1, node 0's published port reaches both tasks. Node 0's own task sees node
    // 1's address (the kernel rewrote only the destination); node 1's task, reached back
    // through node 0, sees node 0's (masqueraded so that its answers return that way).
    let mut clients: HashMap<String, String> = HashMap::new();
    let reached = wait_until(Duration::from_secs(30), || {
        if let Some((name, client)) = c
            .http_get_from(1, &ip0, published)
            .as_deref()
            .and_then(name_and_client)
        {
            clients.insert(name, client);
        }
        clients.len() == 2
    });
    assert!(reached, "only {clients:?} answered\n{}", m.log());
    for (name, client) in &clients {
        let on = task_node.get(name).expect("a task of web");
        let want = if *on == c.node_id(0) { &ip1 } else { &ip0 };
        assert_eq!(client, want, "{name} on {on} saw {client}");
    }
    let rules = c
        .bash_from(0, "nft list table ip shoal")
        .expect("node 0 has the table");
    assert!(rules.contains("dnat"), "{rules}");

    // From node 0 itself, the VIP reaches both tasks.
    let mut seen = std::collections::HashSet::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            if let Some(name) = c
                .http_get_from(0, &vip, 80)
                .as_deref()
                .and_then(whoami_name)
            {
                seen.insert(name);
            }
            seen.len() == 2
        }),
        "VIP {vip}:80 reached only {seen:?}"
    );

    // A rolling update while node 1 keeps asking node 0: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match c
                    .http_get_from(1, &ip0, published)
                    .as_deref()
                    .and_then(whoami_name)
                {
                    Some(_) => ok += 1,
                    None => failed.push(ok),
                }
            }
            (ok, failed)
        });
        let out = m.cli(&["service", "update", "--env-add", "RELEASE=2", "web"]);
        // Requests after the last task is replaced reach the new ones.
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (out, load.join().expect("load thread"))
    });
    let (out, (ok, failed)) = traffic;
    assert!(out.ok(), "update: {out:?}\n{}", m.log());
    assert!(
        failed.is_empty(),
        "failed requests after {failed:?} of {ok} good ones"
    );
    assert!(ok >= 5, "only {ok} requests during the update");

    // Back to the proxy: the table goes, and the port still answers.
    let out = m.cli(&["service", "update", "--lb-mode", "proxy", "web"]);
    assert!(out.ok(), "update: {out:?}");
    assert!(
        wait_until(Duration::from_secs(20), || c
            .bash_from(0, "nft list table ip shoal")
            .is_none()),
        "the table stays"
    );
    assert!(c
        .http_get_from(1, &ip0, published)
        .as_deref()
        .and_then(whoami_name)
        .is_some());

    // A daemon that stops takes its table with it (nobody would keep it up).
    let out = m.cli(&["service", "update", "--lb-mode", "nat", "web"]);
    assert!(out.ok(), "update: {out:?}");
    assert!(
        wait_until(Duration::from_secs(20), || c
            .bash_from(1, "nft list table ip shoal")
            .is_some()),
        "node 1 has no table"
    );
    c.nodes[1].stop();
    assert!(
        c.bash_from(1, "nft list table ip shoal").is_none(),
        "the stopped daemon left its table"
    );
}
