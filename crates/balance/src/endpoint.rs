//! Versioned endpoint sets, one per published port.

use shoal_api::Protocol;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One ready task reachable at an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub task_id: String,
    pub addr: SocketAddr,
}

/// The ready endpoints behind one published port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSet {
    pub service_id: String,
    pub service_name: String,
    pub endpoints: Vec<Endpoint>,
}

/// A published port: number and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub port: u16,
    pub protocol: Protocol,
}

/// Every published port of the cluster with its endpoints, at one store version.
///
/// The data plane applies tables whole and acknowledges `version` once it routes by it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointTable {
    pub version: u64,
    pub ports: BTreeMap<PortKey, EndpointSet>,
}

impl EndpointTable {
    pub fn get(&self, port: u16, protocol: Protocol) -> Option<&EndpointSet> {
        self.ports.get(&PortKey { port, protocol })
    }
}
