//! Service VIPs: one listener for every VIP of the node. The kernel redirects connections
//! to a VIP (nat REDIRECT, set up by the node) to this listener's port; the connection's
//! original destination (`SO_ORIGINAL_DST`) names the VIP and port, whose endpoint set and
//! balancer it is routed by. Nothing binds the VIPs themselves, so a program on the node
//! that listens on a wildcard address and the same port number is never in the way.
//!
//! UDP has no original destination to read once redirected, so each UDP port of a VIP gets
//! a socket of its own on a free port, which [`VipProxy::apply_udp`] names for the node's
//! redirect rules (one per VIP and port); its flows behave as on a published UDP port, the
//! replies leaving from the address the kernel redirected the client's datagrams to, so
//! conntrack turns them back into the VIP's.

use crate::connection::{self, Route};
use crate::listener::{accept, listen, take, PortBalancer};
use crate::shared::Shared;
use crate::udp::UdpPort;
use crate::ConnectionCaps;
use shoal_balance::EndpointSet;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// What a VIP port routes to.
#[derive(Debug)]
struct VipRoute {
    set: EndpointSet,
    /// Kept across `apply` while the policy holds, so rotation and ejections carry on.
    balancer: Arc<PortBalancer>,
}

type Routes = HashMap<SocketAddrV4, Arc<VipRoute>>;

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    routes: RwLock<Arc<Routes>>,
}

/// The node's VIP listener. Dropping it stops accepting; connections run to their end.
#[derive(Debug)]
pub struct VipProxy {
    inner: Arc<Inner>,
    port: u16,
    accept: JoinHandle<()>,
    /// One socket per VIP UDP port, kept while the route lasts (its redirect port with it).
    udp: Mutex<BTreeMap<SocketAddrV4, UdpPort>>,
}

impl VipProxy {
    /// Listens on a free port of every address, within `caps` (its own, apart from the
    /// published ports'). Every address, because a connection redirected in `PREROUTING`
    /// arrives at the first address of the interface it came in on: a container bridge's
    /// gateway, or the node's own interface. Must be called within a tokio runtime.
    pub fn bind(caps: ConnectionCaps) -> io::Result<VipProxy> {
        let listener = listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            shared: Arc::new(Shared::new(caps)),
            routes: RwLock::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(VipProxy {
            inner,
            port,
            accept,
            udp: Mutex::new(BTreeMap::new()),
        })
    }

    /// The port the kernel is to redirect VIP connections to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Route by `routes` (VIP:port → its endpoints) from now on.
    pub fn apply(&self, routes: Vec<(SocketAddrV4, EndpointSet)>) {
        let old = self
            .inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let new: Routes = routes
            .into_iter()
            .map(|(to, set)| {
                let balancer = match old.get(&to) {
                    Some(r) if r.balancer.policy == set.policy => r.balancer.clone(),
                    _ => Arc::new(PortBalancer::new(set.policy)),
                };
                (to, Arc::new(VipRoute { set, balancer }))
            })
            .collect();
        *self
            .inner
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
    }

    /// Route the UDP ports of VIPs by `routes` (VIP:port → its endpoints) from now on: a
    /// socket on a free port of every address for each new VIP:port, closed for each one
    /// no longer routed (its flows end), and the flows of endpoints no longer ready ended.
    ///
    /// Returns, per VIP:port routed, the port the kernel is to redirect its datagrams to,
    /// or why no socket could be bound for it.
    pub fn apply_udp(
        &self,
        routes: Vec<(SocketAddrV4, EndpointSet)>,
    ) -> Vec<(SocketAddrV4, io::Result<u16>)> {
        let mut ports = self.udp.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: std::collections::BTreeSet<SocketAddrV4> =
            routes.iter().map(|(to, _)| *to).collect();
        ports.retain(|to, _| wanted.contains(to));
        let mut redirects = Vec::new();
        for (to, set) in routes {
            let port = match ports.entry(to) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
                    match UdpPort::bind(any, to.port(), self.inner.shared.clone()) {
                        Ok(p) => v.insert(p),
                        Err(e) => {
                            redirects.push((to, Err(e)));
                            continue;
                        }
                    }
                }
            };
            port.route(Some(set));
            redirects.push((to, Ok(port.local_port())));
        }
        redirects
    }

    /// Connection and flow counters since the listener started.
    pub fn stats(&self) -> crate::MeshStats {
        self.inner
            .shared
            .stats
            .snapshot(UdpPort::flows_of(&self.udp))
    }
}

impl Drop for VipProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, inner: Arc<Inner>) {
    let shared = &inner.shared;
    loop {
        let slot = take(&shared.slots, || {
            if shared.at_cap.ready(std::time::Instant::now()) {
                tracing::warn!(
                    cap = shared.caps.total,
                    "service VIPs at their connection cap; new connections wait until one ends"
                );
            }
        })
        .await;
        let (stream, peer) = accept(&listener, 0).await;
        shared.stats.accepted();
        let Some(to) = original_destination(&stream) else {
            tracing::debug!(%peer, "VIP connection without an original destination; closing");
            shared.stats.no_endpoint();
            continue;
        };
        let route = inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&to)
            .cloned();
        let Some(route) = route else {
            tracing::debug!(%peer, vip = %to, "no service on this VIP and port; closing");
            shared.stats.no_endpoint();
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let via = Route {
                label: to.port(),
                destination: SocketAddr::V4(to),
                set: &route.set,
                balancer: &route.balancer.inner,
            };
            connection::proxy(stream, peer, &via, &inner.shared).await;
            drop(slot);
        });
    }
}

/// Where the client meant to connect, before the kernel redirected it here.
fn original_destination(stream: &TcpStream) -> Option<SocketAddrV4> {
    let addr = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::OriginalDst).ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}
