//! A multi-node cluster: real daemons, each in its own network namespace of one
//! [`TestNet`], joined through the real CLI. Node 0 runs `shoal init`; the next nodes join
//! with the manager token, the rest with the worker token. Plus what the multi-node tests
//! ask of a cluster as a whole: ready nodes, manager status, the leader.

use crate::{netns, wait_until, Daemon, TestNet};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long [`Cluster::start`] waits for the managers to agree on a leader.
const MANAGERS_WITHIN: Duration = Duration::from_secs(20);
/// How long [`Cluster::start`] then waits for every node to be ready.
const READY_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Cluster {
    // Daemons first: they must stop before the namespaces go.
    pub nodes: Vec<Daemon>,
    pub net: TestNet,
    /// Node IDs by index (a node keeps its ID across restarts).
    ids: Vec<String>,
}

impl Cluster {
    /// `managers` managers (node 0 first) and `workers` workers, joined and ready, the
    /// daemons run from `bin`.
    pub fn start(bin: &Path, managers: usize, workers: usize) -> Cluster {
        Cluster::start_with(bin, managers, workers, &[])
    }

    /// Like [`Cluster::start`], with extra `shoal init` flags for node 0.
    pub fn start_with(bin: &Path, managers: usize, workers: usize, init: &[&str]) -> Cluster {
        assert!(managers >= 1, "a cluster needs a manager");
        assert!(
            netns::available(),
            "multi-node tests need root and iproute2 (network namespaces)"
        );
        let net = TestNet::create(managers + workers).expect("test network");
        let first = Daemon::start_in(bin, &net, 0);
        first.init_with(init);
        let tokens = [first.join_token("manager"), first.join_token("worker")];
        let remote = format!("{}:2377", net.ip(0));
        let mut nodes = vec![first];
        for i in 1..managers + workers {
            let d = Daemon::start_in(bin, &net, i);
            let token = &tokens[usize::from(i >= managers)];
            // Only a manager listens on it; a worker ignores it.
            let listen = format!("{}:2377", net.ip(i));
            let out = d.cli(&[
                "join",
                "--token",
                token,
                "--listen-addr",
                &listen,
                "--advertise-addr",
                &net.ip(i).to_string(),
                &remote,
            ]);
            assert!(out.ok(), "join failed: {out:?}\n{}", d.log());
            nodes.push(d);
        }
        let ids = nodes.iter().map(Daemon::node_id).collect();
        let c = Cluster { nodes, net, ids };
        c.wait_managers(managers, MANAGERS_WITHIN);
        let all = managers + workers;
        assert!(
            wait_until(READY_WITHIN, || c.ready(0) == all),
            "nodes ready: {}",
            c.m().cli(&["node", "ls"]).stdout
        );
        c
    }

    /// Node 0, the first manager.
    pub fn m(&self) -> &Daemon {
        &self.nodes[0]
    }

    /// Node `i`'s ID.
    pub fn node_id(&self, i: usize) -> String {
        self.ids[i].clone()
    }

    /// The answer to an HTTP/1.0 `GET /` at `ip:port`, sent from inside node `i`'s network
    /// namespace (`None` if the connection failed or nothing came back in 5 s).
    pub fn http_get_from(&self, i: usize, ip: &str, port: u16) -> Option<String> {
        self.bash_from(
            i,
            &format!(
                "exec 3<>/dev/tcp/{ip}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
            ),
        )
    }

    /// What a bash `script` run inside node `i`'s network namespace prints, if it succeeds
    /// within 10 s.
    pub fn bash_from(&self, i: usize, script: &str) -> Option<String> {
        let out = self
            .net
            .command(i, "timeout")
            .args(["10", "bash", "-c", script])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Node `i`'s address with `port` (a published port, say).
    pub fn addr(&self, i: usize, port: u16) -> SocketAddr {
        SocketAddr::from((self.net.ip(i), port))
    }

    /// Nodes in state ready, as node `via` reports them (0 if it does not answer).
    pub fn ready(&self, via: usize) -> usize {
        let out = self.nodes[via].cli(&["node", "ls", "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map_or(0, |a| a.iter().filter(|n| n["state"] == "ready").count())
    }

    /// MANAGER STATUS per node ID, as node `via` reports it (empty if it does not answer).
    pub fn manager_status(&self, via: usize) -> BTreeMap<String, String> {
        let out = self.nodes[via].cli(&["node", "ls", "--format", "json"]);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout) else {
            return BTreeMap::new();
        };
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| {
                Some((
                    n["id"].as_str()?.to_string(),
                    n["manager_status"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Wait until node 0 lists `n` managers, one leader and the others reachable; panics
    /// with the tail of every node's log otherwise.
    pub fn wait_managers(&self, n: usize, within: Duration) {
        let ok = wait_until(within, || {
            let s = self.manager_status(0);
            s.len() == n
                && s.values().filter(|v| *v == "Leader").count() == 1
                && s.values().filter(|v| *v == "Reachable").count() == n - 1
        });
        if ok {
            return;
        }
        let logs: Vec<String> = self
            .nodes
            .iter()
            .map(|d| {
                let log = d.log();
                let lines: Vec<&str> = log.lines().filter(|l| !l.contains("openraft")).collect();
                lines[lines.len().saturating_sub(25)..].join("\n")
            })
            .collect();
        panic!(
            "{n} managers, one leader: {}\n{}",
            self.m().cli(&["node", "ls"]).stdout,
            logs.join("\n-----\n")
        );
    }

    /// Index of the leader, as the first running node that names one sees it.
    pub fn leader(&self) -> Option<usize> {
        for (i, d) in self.nodes.iter().enumerate() {
            if !d.running() {
                continue;
            }
            let s = self.manager_status(i);
            if let Some((id, _)) = s.iter().find(|(_, v)| *v == "Leader") {
                return self.ids.iter().position(|x| x == id);
            }
        }
        None
    }
}
