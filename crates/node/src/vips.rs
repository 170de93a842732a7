//! Service VIPs on this node: the data-plane member that keeps every service's VIP (and the
//! DNS resolver address) on the node's VIP interface, has the kernel redirect TCP
//! connections to any VIP of the pool to one listener of the node (nat REDIRECT: chain
//! `SHOAL-VIP`, jumped to from OUTPUT for the host and its process tasks and from
//! PREROUTING for its containers), and routes each by its original destination — VIP and
//! target port — over the service's ready tasks on any node.
//!
//! UDP cannot be routed by its original destination once redirected, so each UDP port of a
//! VIP has a socket of its own on a free port Q of the node, and a rule of its own in the
//! chain, `-d VIP/32 -p udp --dport P -j REDIRECT --to-ports Q`. The chain is rewritten
//! whole (`iptables-restore --noflush`, one atomic commit) whenever its rules change, and
//! the snapshot is acknowledged only once they are in. Its flows behave as on a published
//! UDP port: affinity, the service's UDP idle timeout, ended at once when their task leaves.
//!
//! The VIPs are never bound, so a program on the node listening on the same port number of
//! a wildcard address is never in the way; a VIP gets what a published port gets: the
//! service's balancer, fall-through and ejection on a refused connect, splice proxying,
//! and a connection cap (its own, the per-port cap of the mesh).

use crate::data_plane::{BoxFuture, Member};
use crate::vip_iface::{iptables, run_with_input, VipInterface};
use shoal_api::{Protocol, VipPool};
use shoal_balance::DataPlaneSnapshot;
use shoal_mesh::{ConnectionCaps, VipProxy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// The nat chain that redirects VIP connections to the node's VIP listener.
const CHAIN: &str = "SHOAL-VIP";

/// The VIP member of a node's data plane.
#[derive(Debug)]
pub struct Vips {
    iface: Arc<Mutex<VipInterface>>,
    caps: ConnectionCaps,
    proxy: tokio::sync::Mutex<Option<VipProxy>>,
    /// The redirect rules last written.
    redirect: Mutex<Option<Redirects>>,
    acked: watch::Sender<u64>,
}

impl Vips {
    /// VIPs on the interface `iface`, capped at the per-port cap of `caps`.
    pub fn new(iface: &str, caps: ConnectionCaps) -> Vips {
        Vips {
            iface: Arc::new(Mutex::new(VipInterface::new(iface))),
            caps: ConnectionCaps {
                total: caps.per_port,
                per_port: caps.per_port,
            },
            proxy: tokio::sync::Mutex::new(None),
            redirect: Mutex::new(None),
            acked: watch::Sender::new(0),
        }
    }

    async fn route(&self, snapshot: &DataPlaneSnapshot) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(pool) = snapshot.vip_pool else {
            return errors;
        };
        let mut proxy = self.proxy.lock().await;
        let proxy = match &mut *proxy {
            Some(p) => &*p,
            empty => match VipProxy::bind(self.caps) {
                Ok(p) => &*empty.insert(p),
                Err(e) => return vec![format!("VIP listener: {e}")],
            },
        };
        let mut routes = Vec::new();
        let mut udp_routes = Vec::new();
        let mut vips = BTreeSet::new();
        for s in &snapshot.services {
            let Some(IpAddr::V4(vip)) = s.vip else {
                continue;
            };
            if !pool.contains(vip) {
                continue;
            }
            vips.insert(vip);
            for (key, set) in s.vip_table(snapshot.version).ports {
                let to = SocketAddrV4::new(vip, key.port);
                match key.protocol {
                    Protocol::Tcp => routes.push((to, set)),
                    Protocol::Udp => udp_routes.push((to, set)),
                }
            }
        }
        // Routes before addresses: a VIP answers from the moment it exists.
        proxy.apply(routes);
        let mut udp = BTreeMap::new();
        for (to, redirect) in proxy.apply_udp(udp_routes) {
            match redirect {
                Ok(port) => {
                    udp.insert(to, port);
                }
                Err(e) => errors.push(format!("VIP {to}/udp not routed: {e}")),
            }
        }
        let mut wanted = vips.clone();
        wanted.insert(pool.resolver());
        let rules = Redirects {
            pool,
            tcp: proxy.port(),
            udp,
        };
        let iface = self.iface.clone();
        let rules_wanted = self
            .redirect
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            != Some(&rules);
        let written = rules.clone();
        if rules_wanted {
            // Unknown until the write is done (a write cut off half way leaves it unknown).
            *self.redirect.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        let result = tokio::task::spawn_blocking(move || {
            let mut errors = Vec::new();
            // Held for the rules too: one write at a time, so a write left running by a
            // cancelled apply cannot land after the next one.
            let mut iface = iface.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = iface.set(pool, &wanted) {
                errors.push(e);
            }
            if rules_wanted {
                if let Err(e) = redirect_rules(&written) {
                    errors.push(e);
                }
            }
            errors
        })
        .await;
        match result {
            Ok(e) if e.is_empty() => {
                if rules_wanted {
                    *self.redirect.lock().unwrap_or_else(PoisonError::into_inner) = Some(rules);
                }
            }
            Ok(e) => errors.extend(e),
            Err(e) => errors.push(format!("VIP interface: {e}")),
        }
        errors
    }
}

/// What the chain redirects where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Redirects {
    pool: VipPool,
    /// The VIP listener's port, for TCP to any VIP.
    tcp: u16,
    /// Each VIP UDP port's own socket port.
    udp: BTreeMap<SocketAddrV4, u16>,
}

/// The chain's rules as `iptables-restore` reads them: declaring the chain empties it (or
/// creates it), and the commit replaces it whole, so no datagram or connection ever sees
/// half a chain.
fn chain_rules(r: &Redirects) -> String {
    let mut rules = format!(
        "*nat\n:{CHAIN} - [0:0]\n-A {CHAIN} -d {}/32 -j RETURN\n",
        r.pool.resolver()
    );
    // Containers reach a VIP from their bridge; REDIRECT sends them to its address.
    rules.push_str(&format!(
        "-A {CHAIN} -d {} -p tcp -j REDIRECT --to-ports {}\n",
        r.pool, r.tcp
    ));
    for (to, port) in &r.udp {
        rules.push_str(&format!(
            "-A {CHAIN} -d {}/32 -p udp --dport {} -j REDIRECT --to-ports {port}\n",
            to.ip(),
            to.port()
        ));
    }
    rules.push_str("COMMIT\n");
    rules
}

/// Redirect TCP connections to the pool (but the resolver's own) to the VIP listener, and
/// each VIP UDP port to its socket.
fn redirect_rules(r: &Redirects) -> Result<(), String> {
    let net = r.pool.to_string();
    run_with_input(
        "iptables-restore",
        &["-w", "5", "--noflush"],
        &chain_rules(r),
    )?;
    // Jumped to once from each hook.
    for hook in ["OUTPUT", "PREROUTING"] {
        let jump = ["-t", "nat", "-C", hook, "-d", &net, "-j", CHAIN];
        if iptables(&jump).is_err() {
            let mut insert = jump;
            insert[2] = "-I";
            iptables(&insert)?;
        }
    }
    Ok(())
}

/// Take the redirect rules away again (the node leaves its cluster).
pub fn remove_redirect_rules() {
    if let Ok(rules) = iptables(&["-t", "nat", "-S"]) {
        for line in rules.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["-A", hook, rest @ ..] = &words[..] {
                if rest.ends_with(&["-j", CHAIN]) {
                    let mut args = vec!["-t", "nat", "-D", hook];
                    args.extend(rest);
                    let _ = iptables(&args);
                }
            }
        }
    }
    let _ = iptables(&["-t", "nat", "-F", CHAIN]);
    let _ = iptables(&["-t", "nat", "-X", CHAIN]);
}

impl Member for Vips {
    fn name(&self) -> &'static str {
        "service VIPs"
    }

    fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let errors = self.route(&snapshot).await;
            self.acked.send_replace(snapshot.version);
            errors
        })
    }

    fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_redirects_tcp_to_the_listener_and_each_udp_port_to_its_socket() {
        let pool = VipPool::parse("10.96.0.0/16").expect("pool");
        let r = Redirects {
            pool,
            tcp: 40000,
            udp: BTreeMap::from([
                (SocketAddrV4::new([10, 96, 0, 2].into(), 53), 40001),
                (SocketAddrV4::new([10, 96, 0, 3].into(), 5000), 40002),
            ]),
        };
        assert_eq!(
            chain_rules(&r),
            "*nat\n\
             :SHOAL-VIP - [0:0]\n\
             -A SHOAL-VIP -d 10.96.0.1/32 -j RETURN\n\
             -A SHOAL-VIP -d 10.96.0.0/16 -p tcp -j REDIRECT --to-ports 40000\n\
             -A SHOAL-VIP -d 10.96.0.2/32 -p udp --dport 53 -j REDIRECT --to-ports 40001\n\
             -A SHOAL-VIP -d 10.96.0.3/32 -p udp --dport 5000 -j REDIRECT --to-ports 40002\n\
             COMMIT\n"
        );
    }
}
