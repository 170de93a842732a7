//! Services forwarded by the kernel (`--lb-mode nat`): the data-plane member that writes,
//! for every TCP port such a service publishes and every TCP port of its VIP, an nftables
//! NAT rule sending each new connection straight to a ready task, with no process in the
//! way. The rule picks a slot of the service's kernel table (round-robin by a counter,
//! random, or by a hash of the client's address for source-hash and maglev; see
//! `shoal_balance::kernel`); the connection keeps its task in the kernel's connection
//! tracking until it closes.
//!
//! All of it is one table, `ip shoal`, rewritten whole in one nftables transaction at each
//! change (so no connection sees half of it), and the snapshot is acknowledged only once it
//! is in: a task on its way out is in no rule before it is told to stop, and the
//! connections it already has may finish. The table's chains run just before the other
//! NAT rules of their hook (Docker's, and the VIP chain that redirects to the proxy), and
//! the first NAT rule a connection matches is the one it gets.
//!
//! Three chains, by where a connection comes from, because the kernel routes a rewritten
//! connection by its source as well:
//! - `from_net` (prerouting: other hosts and this node's containers) sends to every ready
//!   task but those at a loopback address, which only the node itself can reach;
//! - `from_host` (output, from this node's own addresses) sends to every ready task but
//!   those at a loopback address on other nodes;
//! - `from_lo` (output, from 127.0.0.0/8) sends only to tasks on this node, since the kernel
//!   does not route a loopback source to another host.
//!
//! Only IPv4 tasks are in the table. A port whose chain has no task for it is left to the proxy, which listens on it still
//! (published ports) or takes it through the VIP redirect. Connections the rules send to
//! another node are marked (connection mark [`MARK`]), masqueraded as the node's own
//! address on the way out, so the answers come back through it, and accepted by the filter
//! table's FORWARD chain (Docker sets its policy to drop); the node turns on IPv4
//! forwarding for them. A connection to a task on the node itself keeps the client's
//! address.

use crate::data_plane::{BoxFuture, Member};
use crate::vip_iface::{iptables, run, run_with_input};
use shoal_api::{LbMode, Protocol, PublishMode, VipPool};
use shoal_balance::kernel::{kernel_table, SlotPick};
use shoal_balance::{DataPlaneSnapshot, Endpoint, ServiceEntry};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// The nftables table (family `ip`) the rules live in.
const TABLE: &str = "shoal";

/// The connection-mark bits set on every connection the rules rewrite.
pub const MARK: u32 = 0x0053_0000;

/// [`MARK`] as iptables' connmark match takes it (value/mask).
const MARK_MATCH: &str = "0x530000/0x530000";

/// The hash seed for source-hash and maglev: every node sends a client to the same task.
const SEED: u32 = 0x5348_4c42;

/// Priority of the table's NAT chains: just before the standard NAT priorities (-100 for
/// destination NAT, 100 for source NAT), so their rules come first.
const DNAT_PRIORITY: i32 = -105;
const SNAT_PRIORITY: i32 = 95;

/// Set once the table is taken away for good ([`remove`]); a new member clears it.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// One nftables change at a time, and none after [`remove`].
static NFT: Mutex<()> = Mutex::new(());

/// The NAT member of a node's data plane.
#[derive(Debug)]
pub struct Nat {
    node_id: String,
    /// The ruleset last written (`Some("")`: the table removed); `None` before the first.
    written: Mutex<Option<String>>,
    acked: watch::Sender<u64>,
}

impl Nat {
    /// The NAT rules of node `node_id`.
    pub fn new(node_id: &str) -> Nat {
        CLOSED.store(false, Ordering::SeqCst);
        Nat {
            node_id: node_id.to_string(),
            written: Mutex::new(None),
            acked: watch::Sender::new(0),
        }
    }

    /// Puts the snapshot's table in (or checks that the one written still is, with its
    /// FORWARD rule). `Err((why, settled))`: it could not; `settled` when no rule is left
    /// that could send a connection somewhere the snapshot does not (the table is gone, so
    /// the proxy takes every connection), which lets the snapshot be acknowledged.
    async fn write(&self, snapshot: &DataPlaneSnapshot) -> Result<(), (String, bool)> {
        let rules = ruleset(snapshot, &self.node_id);
        let unchanged = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            == Some(rules.text.as_str());
        let text = rules.text.clone();
        let forwards = rules.forwards;
        let removal = rules.is_removal();
        // Unknown until the write is done (a write cut off half way leaves it unknown).
        *self.written.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let result = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = NFT.lock().unwrap_or_else(PoisonError::into_inner);
            if CLOSED.load(Ordering::SeqCst) {
                // The node is on its way out: its table is gone for good.
                return Ok(());
            }
            let done = if unchanged {
                still_in(&text, forwards, removal)
            } else {
                apply(&text, forwards)
            };
            done.or_else(|e| {
                // A machine without nftables has no table to remove: no service asks for one,
                // so nothing is wrong.
                if removal && e.starts_with(NO_NFT) {
                    return Ok(());
                }
                Err(e)
            })
            .map_err(|e| {
                // Rules that are not the snapshot's could send connections to a task on its
                // way out: none at all leaves every connection to the proxy instead.
                match remove_table() {
                    Ok(()) => (
                        format!("{e} (services forwarded by the kernel go through the proxy)"),
                        true,
                    ),
                    Err(r) => (format!("{e}; and the old table stays: {r}"), false),
                }
            })
        })
        .await
        .unwrap_or_else(|e| Err((format!("NAT rules: {e}"), false)));
        *self.written.lock().unwrap_or_else(PoisonError::into_inner) = match &result {
            Ok(()) => Some(rules.text),
            Err(_) => None,
        };
        result
    }
}

impl Member for Nat {
    fn name(&self) -> &'static str {
        "kernel NAT"
    }

    fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            match self.write(&snapshot).await {
                Ok(()) => {
                    self.acked.send_replace(snapshot.version);
                    Vec::new()
                }
                Err((e, settled)) => {
                    // Not acknowledged while rules the snapshot does not want may be in: a
                    // task they send to must not be told to stop yet (the manager waits
                    // for its drain timeout at most). The next snapshot tries again.
                    if settled {
                        self.acked.send_replace(snapshot.version);
                    }
                    vec![e]
                }
            }
        })
    }

    fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }
}

/// The table's contents for a snapshot.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rules {
    /// An nftables script that replaces the table whole (or removes it: no service is
    /// forwarded by the kernel).
    text: String,
    /// Whether a rule sends connections from other hosts on to another node.
    forwards: bool,
}

impl Rules {
    /// Whether the script only removes the table.
    fn is_removal(&self) -> bool {
        !self.text.contains('{')
    }
}

/// How a failure to start `nft` begins (`run_with_input`'s words).
const NO_NFT: &str = "cannot run nft:";

/// Where connections come from: each has its chain and its choice of tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Net,
    Host,
    Lo,
}

impl Source {
    const ALL: [Source; 3] = [Source::Net, Source::Host, Source::Lo];

    fn chain(self) -> &'static str {
        match self {
            Source::Net => "from_net",
            Source::Host => "from_host",
            Source::Lo => "from_lo",
        }
    }

    /// Whether a connection from here may go to an endpoint at `addr`, `local` when it
    /// runs on this node.
    fn reaches(self, addr: IpAddr, local: bool) -> bool {
        match self {
            Source::Net => !addr.is_loopback(),
            // A loopback address is this node's only for a task on it.
            Source::Host => local || !addr.is_loopback(),
            Source::Lo => local,
        }
    }
}

/// The ruleset for `snapshot` as node `node_id` routes it.
fn ruleset(snapshot: &DataPlaneSnapshot, node_id: &str) -> Rules {
    let mut chains: [String; 3] = Default::default();
    let mut forwards = false;
    for s in snapshot
        .services
        .iter()
        .filter(|s| s.lb_mode == LbMode::Nat)
    {
        // Its tasks on this node.
        let local: BTreeSet<&str> = s
            .endpoints
            .iter()
            .filter(|e| e.node_id == node_id)
            .map(|e| e.task_id.as_str())
            .collect();
        let is_local = |e: &Endpoint| local.contains(e.task_id.as_str());
        for (matches, target) in destinations(s, snapshot.vip_pool) {
            let endpoints = s.ready_endpoints(target, Protocol::Tcp);
            for (k, from) in Source::ALL.into_iter().enumerate() {
                let usable: Vec<Endpoint> = endpoints
                    .iter()
                    .filter(|e| e.addr.is_ipv4() && from.reaches(e.addr.ip(), is_local(e)))
                    .cloned()
                    .collect();
                let Some(rule) = rule(s, &matches, &usable) else {
                    continue;
                };
                if from == Source::Net && !usable.iter().all(is_local) {
                    forwards = true;
                }
                chains[k].push_str(&rule);
            }
        }
    }
    let mut text = removal_script();
    if chains.iter().all(String::is_empty) {
        return Rules {
            text,
            forwards: false,
        };
    }
    let _ = write!(
        text,
        "table ip {TABLE} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority {DNAT_PRIORITY}; policy accept;\n\
         \t\tjump from_net\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority {DNAT_PRIORITY}; policy accept;\n\
         \t\tip saddr 127.0.0.0/8 goto from_lo\n\
         \t\tjump from_host\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority {SNAT_PRIORITY}; policy accept;\n\
         \t\tct mark and {MARK:#010x} == {MARK:#010x} oifname != \"lo\" masquerade\n\
         \t}}\n"
    );
    for (from, rules) in Source::ALL.iter().zip(&chains) {
        let _ = write!(text, "\tchain {} {{\n{rules}\t}}\n", from.chain());
    }
    text.push_str("}\n");
    Rules { text, forwards }
}

/// The nftables script that removes the table, whether it exists or not.
fn removal_script() -> String {
    format!("add table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// What a service's connections are addressed to: each TCP port of its VIP and each TCP
/// port it publishes on the routing mesh (on the node's own addresses, outside the VIP
/// pool), with the target port the tasks listen on.
fn destinations(s: &ServiceEntry, pool: Option<VipPool>) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let tcp = s.ports.iter().filter(|p| p.protocol == Protocol::Tcp);
    if let (Some(IpAddr::V4(vip)), Some(pool)) = (s.vip, pool) {
        if pool.contains(vip) {
            let mut targets: Vec<u16> = tcp.clone().map(|p| p.target).collect();
            targets.sort_unstable();
            targets.dedup();
            for t in targets {
                out.push((format!("ip daddr {vip} tcp dport {t}"), t));
            }
        }
    }
    for p in tcp.filter(|p| p.mode == PublishMode::Ingress) {
        let Some(published) = p.published else {
            continue;
        };
        let outside = pool
            .map(|pool| format!("ip daddr != {pool} "))
            .unwrap_or_default();
        out.push((
            format!("{outside}fib daddr type local tcp dport {published}"),
            p.target,
        ));
    }
    out
}

/// The rule sending connections `matches` describes to `endpoints` as `s` balances them,
/// one line; `None` without an endpoint.
fn rule(s: &ServiceEntry, matches: &str, endpoints: &[Endpoint]) -> Option<String> {
    let table = kernel_table(s.policy, endpoints)?;
    let mark = format!("ct mark set ct mark or {MARK:#010x}");
    if let [only] = endpoints {
        return Some(format!("\t\t{matches} {mark} dnat to {}\n", only.addr));
    }
    let n = table.slots.len();
    let pick = match table.pick {
        SlotPick::Counter => format!("numgen inc mod {n}"),
        SlotPick::Random => format!("numgen random mod {n}"),
        SlotPick::ClientHash => format!("jhash ip saddr mod {n} seed {SEED:#x}"),
    };
    let map: Vec<String> = table
        .slots
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let a = endpoints[i].addr;
            format!("{k} : {} . {}", a.ip(), a.port())
        })
        .collect();
    Some(format!(
        "\t\t{matches} {mark} dnat to {pick} map {{ {} }}\n",
        map.join(", ")
    ))
}

/// Writes the table, and lets the node forward what the rules send to other nodes.
fn apply(text: &str, forwards: bool) -> Result<(), String> {
    if forwards {
        allow_forwarding()?;
    }
    run_with_input("nft", &["-f", "-"], text)
}

/// The filter rule that accepts forwarded packets of rewritten connections, with `op`
/// (`-C`, `-I` or `-D`).
fn forward_rule(op: &str) -> [&str; 8] {
    [
        op, "FORWARD", "-m", "connmark", "--mark", MARK_MATCH, "-j", "ACCEPT",
    ]
}

/// IPv4 forwarding on, and the FORWARD rule in.
fn allow_forwarding() -> Result<(), String> {
    const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
    let on = std::fs::read_to_string(FORWARDING)
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    if !on {
        std::fs::write(FORWARDING, "1")
            .map_err(|e| format!("cannot turn on IPv4 forwarding ({FORWARDING}): {e}"))?;
        tracing::info!("IPv4 forwarding turned on, for services forwarded by the kernel");
    }
    if iptables(&forward_rule("-C")).is_err() {
        iptables(&forward_rule("-I"))?;
    }
    Ok(())
}

/// Removes the table, if there is one (a machine without nftables has none).
fn remove_table() -> Result<(), String> {
    run_with_input("nft", &["-f", "-"], &removal_script()).or_else(|e| {
        if e.starts_with(NO_NFT) {
            Ok(())
        } else {
            Err(e)
        }
    })
}

/// Whether the table written last is still in, with the FORWARD rule it needs (a firewall
/// reload may have taken either away); puts back what is missing.
fn still_in(text: &str, forwards: bool, removal: bool) -> Result<(), String> {
    if removal {
        return Ok(());
    }
    if run("nft", &["list", "table", "ip", TABLE]).is_err() {
        return apply(text, forwards);
    }
    if forwards {
        allow_forwarding()?;
    }
    Ok(())
}

/// Take the table and the FORWARD rule away for good: the node leaves its cluster, or its
/// daemon stops or starts (a table a killed daemon left would forward by rules nobody keeps
/// up). No table is written again until the node's next data plane starts.
pub fn remove() {
    let _one_at_a_time = NFT.lock().unwrap_or_else(PoisonError::into_inner);
    CLOSED.store(true, Ordering::SeqCst);
    if let Err(e) = remove_table() {
        tracing::error!(error = %e, "cannot remove the NAT table");
    }
    while iptables(&forward_rule("-D")).is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::task::EndpointPort;
    use shoal_api::PortConfig;
    use shoal_balance::snapshot::{EndpointState, ServiceEndpoint};
    use shoal_balance::Policy;

    fn endpoint(task: &str, node: &str, addr: [u8; 4], port: u16) -> ServiceEndpoint {
        ServiceEndpoint {
            task_id: task.into(),
            addr: IpAddr::from(addr),
            ports: vec![EndpointPort {
                target: 80,
                host_port: port,
                protocol: Protocol::Tcp,
            }],
            node_id: node.into(),
            ..ServiceEndpoint::default()
        }
    }

    fn service(mode: LbMode, policy: Policy, endpoints: Vec<ServiceEndpoint>) -> ServiceEntry {
        ServiceEntry {
            id: "s1".into(),
            name: "web".into(),
            vip: Some(IpAddr::from([10, 96, 0, 2])),
            policy,
            lb_mode: mode,
            ports: vec![PortConfig {
                published: Some(8080),
                target: 80,
                protocol: Protocol::Tcp,
                mode: PublishMode::Ingress,
                proxy_protocol: None,
            }],
            endpoints,
            ..ServiceEntry::default()
        }
    }

    fn snapshot(services: Vec<ServiceEntry>) -> DataPlaneSnapshot {
        DataPlaneSnapshot {
            version: 3,
            services,
            vip_pool: Some(VipPool::parse("10.96.0.0/16").expect("pool")),
        }
    }

    #[test]
    fn the_connmark_match_is_the_mark() {
        assert_eq!(MARK_MATCH, format!("{MARK:#x}/{MARK:#x}"));
    }

    #[test]
    fn without_a_kernel_forwarded_service_the_table_goes() {
        let s = service(
            LbMode::Proxy,
            Policy::RoundRobin,
            vec![endpoint("t1", "n1", [10, 0, 0, 1], 30001)],
        );
        let r = ruleset(&snapshot(vec![s]), "n1");
        assert_eq!(r.text, "add table ip shoal\ndelete table ip shoal\n");
        assert!(r.is_removal());
        assert!(!r.forwards);
    }

    #[test]
    fn each_source_gets_the_tasks_it_can_reach() {
        let mut t3 = endpoint("t3", "n1", [10, 0, 0, 1], 30003);
        t3.state = EndpointState::Terminating;
        let s = service(
            LbMode::Nat,
            Policy::RoundRobin,
            vec![
                endpoint("t1", "n1", [10, 0, 0, 1], 30001),
                endpoint("t2", "n2", [10, 0, 0, 2], 30002),
                t3,
            ],
        );
        let r = ruleset(&snapshot(vec![s]), "n1");
        assert!(r.forwards);
        assert!(!r.is_removal());
        let mark = "ct mark set ct mark or 0x00530000";
        let both = "map { 0 : 10.0.0.1 . 30001, 1 : 10.0.0.2 . 30002 }";
        let vip = "ip daddr 10.96.0.2 tcp dport 80";
        let published = "ip daddr != 10.96.0.0/16 fib daddr type local tcp dport 8080";
        let expected = format!(
            "\tchain from_net {{\n\
             \t\t{vip} {mark} dnat to numgen inc mod 2 {both}\n\
             \t\t{published} {mark} dnat to numgen inc mod 2 {both}\n\
             \t}}\n\
             \tchain from_host {{\n\
             \t\t{vip} {mark} dnat to numgen inc mod 2 {both}\n\
             \t\t{published} {mark} dnat to numgen inc mod 2 {both}\n\
             \t}}\n\
             \tchain from_lo {{\n\
             \t\t{vip} {mark} dnat to 10.0.0.1:30001\n\
             \t\t{published} {mark} dnat to 10.0.0.1:30001\n\
             \t}}\n}}\n"
        );
        assert!(r.text.ends_with(&expected), "{}", r.text);
        assert!(r
            .text
            .starts_with("add table ip shoal\ndelete table ip shoal\ntable ip shoal {"));
    }

    #[test]
    fn loopback_tasks_are_reached_from_the_node_only_and_hashes_pick_by_client() {
        let s = service(
            LbMode::Nat,
            Policy::SourceHash,
            vec![
                endpoint("t1", "n1", [127, 0, 0, 1], 30001),
                endpoint("t2", "n1", [127, 0, 0, 1], 30002),
                // Another node's loopback is not this one's.
                endpoint("t3", "n2", [127, 0, 0, 1], 30003),
            ],
        );
        let r = ruleset(&snapshot(vec![s]), "n1");
        assert!(!r.forwards);
        assert!(r.text.contains("\tchain from_net {\n\t}\n"), "{}", r.text);
        assert!(!r.text.contains("30003"), "{}", r.text);
        assert!(
            r.text.contains(
                "dnat to jhash ip saddr mod 2 seed 0x53484c42 map { 0 : 127.0.0.1 . 30001, 1 : 127.0.0.1 . 30002 }"
            ),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_port_without_a_ready_task_is_left_to_the_proxy() {
        let mut t1 = endpoint("t1", "n1", [10, 0, 0, 1], 30001);
        t1.state = EndpointState::Terminating;
        let s = service(LbMode::Nat, Policy::Maglev, vec![t1]);
        let r = ruleset(&snapshot(vec![s]), "n1");
        assert_eq!(r.text, "add table ip shoal\ndelete table ip shoal\n");
    }
}
