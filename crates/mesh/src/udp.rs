//! A UDP port: a published UDP port, or one UDP port of a service VIP. Datagrams are
//! relayed per flow, a flow being one client address and port:
//!
//! 1. A client's first datagram picks an endpoint with the port's balancer (the service's
//!    policy with ejections) and opens the flow: a UDP socket of its own, connected to that
//!    endpoint, under one slot of the port's cap and one of the mesh's. At either cap the
//!    datagram is dropped (flows already open carry on), logged at most every 10 s.
//! 2. Later datagrams of the client go to the same endpoint (affinity); the endpoint's
//!    replies go back to the client from the address the client sent to.
//! 3. The flow ends — its socket closes — after the set's UDP idle timeout without a
//!    datagram either way, when an ICMP port unreachable comes back for it (a passive-health
//!    failure of the endpoint: it is ejected as a refused connect would be), or when a new
//!    endpoint set no longer has its endpoint among the ready ones. The client's next
//!    datagram then starts a new flow.

use crate::datagram::{Front, Received};
use crate::flows::{Flow, Flows};
use crate::listener::PortBalancer;
use crate::shared::Shared;
use crate::splice::Activity;
use nix::sys::socket::{getsockopt, sockopt};
use shoal_balance::{Balancer, EndpointSet, Failure, PickCx, Throttle, WARN_INTERVAL};
use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Largest UDP payload (65,535 minus the IPv4 and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// Pause after a receive error that is not about one client, so the loop does not spin.
const RECV_BACKOFF: Duration = Duration::from_millis(50);

thread_local! {
    /// Where a flow's relay reads a reply before sending it on: one buffer per worker
    /// thread, not one per flow.
    static REPLY: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// What a UDP port routes to.
#[derive(Debug)]
struct Route {
    set: EndpointSet,
    /// Kept across route changes while the policy holds.
    balancer: Arc<PortBalancer>,
}

#[derive(Debug)]
struct PortState {
    /// The port clients send to, for logs.
    label: u16,
    front: Front,
    route: RwLock<Option<Arc<Route>>>,
    flows: Flows,
    /// One permit per flow this port may hold.
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
    at_cap: Throttle,
}

/// An open UDP port. Dropping or closing it ends its flows.
#[derive(Debug)]
pub(crate) struct UdpPort {
    state: Arc<PortState>,
    recv: JoinHandle<()>,
}

impl UdpPort {
    /// Binds `addr` (port 0: a free one) and starts relaying; `label` names the port in
    /// logs. Routes nothing until [`UdpPort::route`]. Must be called within a tokio runtime.
    pub(crate) fn bind(addr: SocketAddr, label: u16, shared: Arc<Shared>) -> io::Result<UdpPort> {
        let front = Front::bind(addr)?;
        let state = Arc::new(PortState {
            label,
            front,
            route: RwLock::new(None),
            flows: Flows::default(),
            slots: Arc::new(Semaphore::new(shared.caps.per_port)),
            shared,
            at_cap: Throttle::new(WARN_INTERVAL),
        });
        let recv = tokio::spawn(recv_loop(state.clone()));
        Ok(UdpPort { state, recv })
    }

    /// The port the socket is bound to.
    pub(crate) fn local_port(&self) -> u16 {
        self.state.front.local_addr().map_or(0, |a| a.port())
    }

    /// Route new flows over `set` from now on (none: drop new clients' datagrams), and end
    /// the flows whose endpoint is not in it.
    pub(crate) fn route(&self, set: Option<EndpointSet>) {
        let state = &self.state;
        let new = set.map(|set| {
            let balancer = match &*state.route.read().unwrap_or_else(PoisonError::into_inner) {
                Some(r) if r.balancer.policy == set.policy => r.balancer.clone(),
                _ => Arc::new(PortBalancer::new(set.policy)),
            };
            Arc::new(Route { set, balancer })
        });
        let ended = state
            .flows
            .keep_only(new.as_ref().map_or(&[][..], |r| &r.set.endpoints));
        if ended > 0 {
            tracing::debug!(
                port = state.label,
                flows = ended,
                "UDP flows of endpoints no longer ready ended"
            );
        }
        *state.route.write().unwrap_or_else(PoisonError::into_inner) = new;
    }

    /// Flows open now.
    pub(crate) fn flows(&self) -> usize {
        self.state.flows.len()
    }

    /// Flows open now over all of `ports`.
    pub(crate) fn flows_of<K>(
        ports: &std::sync::Mutex<std::collections::BTreeMap<K, UdpPort>>,
    ) -> u64 {
        let ports = ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ports.values().map(|p| p.flows() as u64).sum()
    }

    /// Stops receiving and ends every flow.
    pub(crate) async fn close(mut self) {
        self.recv.abort();
        let _ = (&mut self.recv).await;
        self.state.flows.clear();
    }
}

impl Drop for UdpPort {
    fn drop(&mut self) {
        self.recv.abort();
        // The relays hold the port's state: end them, or they would keep each other alive.
        self.state.flows.clear();
    }
}

async fn recv_loop(port: Arc<PortState>) {
    tracing::info!(port = port.label, "receiving on UDP port");
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let received = match port.front.recv(&mut buf).await {
            Ok(r) => r,
            Err(e) if is_per_client(&e) => continue,
            Err(e) => {
                tracing::warn!(port = port.label, error = %e, "UDP receive failed; backing off");
                tokio::time::sleep(RECV_BACKOFF).await;
                continue;
            }
        };
        let payload = &buf[..received.len];
        forward(&port, payload, received);
    }
}

/// Sends one client datagram on: on the client's flow, or on a new one.
fn forward(port: &Arc<PortState>, payload: &[u8], from: Received) {
    if let Some((upstream, endpoint, id)) = port.flows.get(&from.client) {
        match send_now(&upstream, payload) {
            Ok(_) => return,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                // An ICMP port unreachable came back: the endpoint is gone. This datagram
                // starts a new flow.
                if port.flows.remove(&from.client, id) {
                    if let Some(route) = port.current() {
                        route.balancer.inner.failed(&endpoint, Failure::Refused);
                    }
                    port.shared.stats.connect_failed();
                }
            }
            Err(e) => {
                // Full socket buffer and the like: this datagram is lost, as UDP allows.
                tracing::trace!(port = port.label, client = %from.client, error = %e, "datagram dropped");
                port.shared.stats.datagram_dropped();
                return;
            }
        }
    }
    open(port, payload, from);
}

impl PortState {
    fn current(&self) -> Option<Arc<Route>> {
        self.route
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Opens a flow for `from.client` with its first datagram, trying the endpoints in the
/// balancer's order until one takes the datagram.
fn open(port: &Arc<PortState>, payload: &[u8], from: Received) {
    let shared = &port.shared;
    let Some(route) = port.current().filter(|r| !r.set.endpoints.is_empty()) else {
        shared.stats.no_endpoint();
        shared.stats.datagram_dropped();
        return;
    };
    let Some(slots) = take_slots(port) else {
        shared.stats.datagram_dropped();
        return;
    };
    let set = &route.set;
    let balancer = &route.balancer.inner;
    let cx = PickCx {
        client: Some(from.client.ip()),
    };
    for i in balancer.order(&set.endpoints, &cx) {
        let endpoint = &set.endpoints[i];
        let sent = connect(endpoint.addr).and_then(|upstream| {
            send_now(&upstream, payload)?;
            Ok(upstream)
        });
        let upstream = match sent {
            Ok(upstream) => Arc::new(upstream),
            Err(e) => {
                balancer.failed(endpoint, Failure::of(&e));
                shared.stats.connect_failed();
                tracing::debug!(port = port.label, service = %set.service_name, task = %endpoint.task_id, endpoint = %endpoint.addr, error = %e, "UDP flow to endpoint failed; trying the next");
                continue;
            }
        };
        let activity = Arc::new(Activity::new());
        let id = port.flows.next_id();
        let relay = tokio::spawn(relay(
            port.clone(),
            from,
            id,
            upstream.clone(),
            activity.clone(),
            set.udp_idle_timeout(),
            route.clone(),
            i,
        ));
        port.flows.insert(
            from.client,
            Flow {
                id,
                endpoint: endpoint.clone(),
                upstream,
                activity,
                relay: Some(relay),
                _in_flight: balancer.opened(endpoint),
                _slots: slots,
            },
        );
        shared.stats.flow_opened();
        return;
    }
    shared.stats.no_endpoint();
    shared.stats.datagram_dropped();
    tracing::warn!(port = port.label, service = %set.service_name, endpoints = set.endpoints.len(), "no endpoint reachable; UDP datagram dropped");
}

/// A slot of the port and one of the mesh, without waiting: a datagram cannot wait.
fn take_slots(port: &PortState) -> Option<[OwnedSemaphorePermit; 2]> {
    let shared = &port.shared;
    let Ok(own) = port.slots.clone().try_acquire_owned() else {
        if port.at_cap.ready(std::time::Instant::now()) {
            tracing::warn!(
                port = port.label,
                cap = shared.caps.per_port,
                "UDP port at its flow cap; datagrams of new clients are dropped until a flow ends"
            );
        }
        return None;
    };
    let Ok(mesh) = shared.slots.clone().try_acquire_owned() else {
        if shared.at_cap.ready(std::time::Instant::now()) {
            tracing::warn!(
                cap = shared.caps.total,
                "routing mesh at its connection cap; datagrams of new UDP clients are dropped until a flow ends"
            );
        }
        return None;
    };
    Some([own, mesh])
}

/// A UDP socket of its own, connected to `addr`: the kernel then hands it only `addr`'s
/// datagrams, and reports an ICMP port unreachable from it as `ECONNREFUSED`.
fn connect(addr: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Carries the endpoint's replies to the client until the flow ends; then removes it.
#[allow(clippy::too_many_arguments)]
async fn relay(
    port: Arc<PortState>,
    from: Received,
    id: u64,
    upstream: Arc<UdpSocket>,
    activity: Arc<Activity>,
    idle: Duration,
    route: Arc<Route>,
    index: usize,
) {
    let endpoint = &route.set.endpoints[index];
    let balancer = &route.balancer.inner;
    let mut answered = false;
    let why = loop {
        tokio::select! {
            ready = upstream.ready(Interest::READABLE | Interest::ERROR) => {
                let ready = match ready {
                    Ok(ready) => ready,
                    Err(e) => break e.to_string(),
                };
                if ready.is_error() {
                    // An ICMP error for the flow: reading it clears it.
                    let errno = getsockopt(&*upstream, sockopt::SocketError).unwrap_or(0);
                    let e = io::Error::from_raw_os_error(errno);
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        balancer.failed(endpoint, Failure::Refused);
                        port.shared.stats.connect_failed();
                        break "the endpoint refused it (ICMP port unreachable)".to_owned();
                    }
                    break format!("socket error: {e}");
                }
                let relayed = REPLY.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    let len = upstream.try_recv(&mut buf)?;
                    // A reply that finds the client's path full is lost, as UDP allows.
                    if let Err(e) = port.front.try_send(&buf[..len], from.client, from.local) {
                        tracing::trace!(port = port.label, client = %from.client, error = %e, "reply dropped");
                        port.shared.stats.datagram_dropped();
                    }
                    Ok::<(), io::Error>(())
                });
                match relayed {
                    Ok(()) => {
                        activity.touch();
                        if !answered {
                            answered = true;
                            balancer.succeeded(endpoint);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        balancer.failed(endpoint, Failure::Refused);
                        port.shared.stats.connect_failed();
                        break "the endpoint refused it (ICMP port unreachable)".to_owned();
                    }
                    Err(e) if is_per_client(&e) => {}
                    Err(e) => break e.to_string(),
                }
            }
            () = activity.quiet(idle) => break "idle".to_owned(),
        }
    };
    tracing::debug!(port = port.label, client = %from.client, task = %endpoint.task_id, why, "UDP flow ended");
    port.flows.remove(&from.client, id);
}

/// Sends `payload` on a connected socket at once, without asking tokio whether it is
/// writable: a UDP send does not wait, and a new socket's readiness is not known yet. A
/// datagram that finds the buffer full is lost, as UDP allows.
fn send_now(socket: &UdpSocket, payload: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    nix::sys::socket::send(
        socket.as_raw_fd(),
        payload,
        nix::sys::socket::MsgFlags::empty(),
    )?;
    Ok(())
}

fn is_per_client(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
