//! Service VIPs on this node: the data-plane member that keeps every service's VIP (and the
//! DNS resolver address) on the node's VIP interface, has the kernel redirect TCP
//! connections to any VIP of the pool to one listener of the node (nat REDIRECT: chain
//! `SHOAL-VIP`, jumped to from OUTPUT for the host and its process tasks and from
//! PREROUTING for its containers), and routes each by its original destination — VIP and
//! target port — over the service's ready tasks on any node.
//!
//! The VIPs are never bound, so a program on the node listening on the same port number of
//! a wildcard address is never in the way; a VIP gets what a published port gets: the
//! service's balancer, fall-through and ejection on a refused connect, splice proxying,
//! and a connection cap (its own, the per-port cap of the mesh).

use crate::data_plane::{BoxFuture, Member};
use crate::vip_iface::{run, VipInterface};
use shoal_api::{Protocol, VipPool};
use shoal_balance::DataPlaneSnapshot;
use shoal_mesh::{ConnectionCaps, VipProxy};
use std::collections::BTreeSet;
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
    /// The pool and listener port the redirect rules were last written for.
    redirect: Mutex<Option<(VipPool, u16)>>,
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
                if key.protocol == Protocol::Tcp {
                    routes.push((SocketAddrV4::new(vip, key.port), set));
                }
            }
        }
        // Routes before addresses: a VIP answers from the moment it exists.
        proxy.apply(routes);
        let mut wanted = vips.clone();
        wanted.insert(pool.resolver());
        let port = proxy.port();
        let iface = self.iface.clone();
        let redirect = *self.redirect.lock().unwrap_or_else(PoisonError::into_inner);
        let rules_wanted = redirect != Some((pool, port));
        let result = tokio::task::spawn_blocking(move || {
            let mut errors = Vec::new();
            if let Err(e) = iface
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set(pool, &wanted)
            {
                errors.push(e);
            }
            if rules_wanted {
                if let Err(e) = redirect_rules(pool, port) {
                    errors.push(e);
                }
            }
            errors
        })
        .await;
        match result {
            Ok(e) if e.is_empty() => {
                if rules_wanted {
                    *self.redirect.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some((pool, port));
                }
            }
            Ok(e) => errors.extend(e),
            Err(e) => errors.push(format!("VIP interface: {e}")),
        }
        errors
    }
}

/// Redirect TCP connections to the pool (but the resolver's own) to `port` of this node.
fn redirect_rules(pool: VipPool, port: u16) -> Result<(), String> {
    let net = pool.to_string();
    let resolver = format!("{}/32", pool.resolver());
    let port = port.to_string();
    // A chain of our own (created if missing, emptied, filled), jumped to once from each hook.
    let _ = iptables(&["-t", "nat", "-N", CHAIN]);
    iptables(&["-t", "nat", "-F", CHAIN])?;
    iptables(&["-t", "nat", "-A", CHAIN, "-d", &resolver, "-j", "RETURN"])?;
    // Containers reach a VIP from their bridge; REDIRECT sends them to its address.
    iptables(&[
        "-t",
        "nat",
        "-A",
        CHAIN,
        "-d",
        &net,
        "-p",
        "tcp",
        "-j",
        "REDIRECT",
        "--to-ports",
        &port,
    ])?;
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

/// `iptables -w 5 ARGS...` (waiting up to 5 s for the xtables lock).
fn iptables(args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-w", "5"];
    all.extend_from_slice(args);
    run("iptables", &all)
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
