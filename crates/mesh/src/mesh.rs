//! The mesh handle: applies endpoint tables and reports what it routes by.

use crate::caps::ConnectionCaps;
use crate::error::MeshError;
use crate::listener::Listener;
use crate::shared::Shared;
use crate::stats::MeshStats;
use crate::udp::UdpPort;
use shoal_api::Protocol;
use shoal_balance::EndpointTable;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Where the mesh listens and how many connections it holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshConfig {
    /// The address published ports are listened on: `0.0.0.0` in the daemon, `127.0.0.1`
    /// in tests.
    pub bind_ip: IpAddr,
    pub caps: ConnectionCaps,
}

impl MeshConfig {
    /// Listens on `bind_ip` with no connection caps ([`ConnectionCaps::UNCAPPED`]).
    pub fn new(bind_ip: IpAddr) -> MeshConfig {
        MeshConfig {
            bind_ip,
            caps: ConnectionCaps::UNCAPPED,
        }
    }
}

/// The routing mesh of one node. Cheap to clone; every clone drives the same listeners.
/// Dropping the last clone closes the listeners; accepted connections run to their end.
#[derive(Debug, Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bind_ip: IpAddr,
    shared: Arc<Shared>,
    listeners: Mutex<BTreeMap<u16, Listener>>,
    udp: Mutex<BTreeMap<u16, UdpPort>>,
    /// One `apply` at a time, so listener changes and acks follow table order.
    applying: tokio::sync::Mutex<()>,
    acked: watch::Sender<u64>,
}

impl Mesh {
    /// A mesh with no ports yet.
    pub fn new(config: MeshConfig) -> Mesh {
        Mesh {
            inner: Arc::new(Inner {
                bind_ip: config.bind_ip,
                shared: Arc::new(Shared::new(config.caps)),
                listeners: Mutex::new(BTreeMap::new()),
                udp: Mutex::new(BTreeMap::new()),
                applying: tokio::sync::Mutex::new(()),
                acked: watch::Sender::new(0),
            }),
        }
    }

    /// Routes by `table` from now on: swaps in its endpoint sets at once for every port,
    /// listens on its new TCP ports, closes ports no longer in it (their accepted connections
    /// run on), binds its new UDP ports and closes the UDP ports no longer in it (their flows
    /// end), ends the UDP flows whose endpoint is no longer ready, then publishes
    /// `table.version` on [`Mesh::acked`].
    ///
    /// Returns one error per port that could not be listened on; every other port routes.
    /// A failed port is tried again by the next `apply`.
    pub async fn apply(&self, table: Arc<EndpointTable>) -> Vec<MeshError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.applying.lock().await;
        let wanted: BTreeSet<u16> = table
            .ports
            .keys()
            .filter(|key| key.protocol == Protocol::Tcp)
            .map(|key| key.port)
            .collect();
        let wanted_udp: BTreeSet<u16> = table
            .ports
            .keys()
            .filter(|key| key.protocol == Protocol::Udp)
            .map(|key| key.port)
            .collect();
        let version = table.version;
        let udp_table = table.clone();

        // Sets first, so a port opened below routes by its set from its first connection.
        inner.shared.set_table(table);

        let mut errors = Vec::new();
        let closing: Vec<Listener> = {
            let mut listeners = inner
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &port in &wanted {
                if listeners.contains_key(&port) {
                    continue;
                }
                match Listener::bind(inner.bind_ip, port, Arc::clone(&inner.shared)) {
                    Ok(listener) => {
                        listeners.insert(port, listener);
                    }
                    Err(e) => {
                        tracing::warn!(port, error = %e, "published port not routed");
                        errors.push(e);
                    }
                }
            }
            let gone: Vec<u16> = listeners
                .keys()
                .copied()
                .filter(|port| !wanted.contains(port))
                .collect();
            gone.iter()
                .filter_map(|port| listeners.remove(port))
                .collect()
        };
        for listener in closing {
            listener.close().await;
        }
        errors.extend(self.apply_udp(&udp_table, &wanted_udp).await);

        inner.acked.send_replace(version);
        tracing::debug!(version, errors = errors.len(), "endpoint table applied");
        errors
    }

    /// Binds the table's new UDP ports, routes every UDP port by its set, closes the others.
    async fn apply_udp(&self, table: &EndpointTable, wanted: &BTreeSet<u16>) -> Vec<MeshError> {
        let inner = &self.inner;
        let mut errors = Vec::new();
        let closing: Vec<UdpPort> = {
            let mut ports = inner.udp.lock().unwrap_or_else(PoisonError::into_inner);
            for &port in wanted {
                if ports.contains_key(&port) {
                    continue;
                }
                let addr = std::net::SocketAddr::new(inner.bind_ip, port);
                match UdpPort::bind(addr, port, Arc::clone(&inner.shared)) {
                    Ok(udp) => {
                        ports.insert(port, udp);
                    }
                    Err(source) => {
                        let e = MeshError::BindUdp { port, source };
                        tracing::warn!(port, error = %e, "published UDP port not routed");
                        errors.push(e);
                    }
                }
            }
            for (&port, udp) in ports.iter() {
                udp.route(table.get(port, Protocol::Udp).cloned());
            }
            let gone: Vec<u16> = ports
                .keys()
                .copied()
                .filter(|port| !wanted.contains(port))
                .collect();
            gone.iter().filter_map(|port| ports.remove(port)).collect()
        };
        for udp in closing {
            udp.close().await;
        }
        errors
    }

    /// The version of the last table applied (0 before the first).
    pub fn acked(&self) -> watch::Receiver<u64> {
        self.inner.acked.subscribe()
    }

    /// Published TCP ports listened on now, ascending.
    pub fn listening(&self) -> Vec<u16> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Published UDP ports received on now, ascending.
    pub fn listening_udp(&self) -> Vec<u16> {
        self.inner
            .udp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Connection and flow counters since the mesh was created.
    pub fn stats(&self) -> MeshStats {
        let flows = UdpPort::flows_of(&self.inner.udp);
        self.inner.shared.stats.snapshot(flows)
    }
}
