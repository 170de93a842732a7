//! Versioned endpoint sets, one per published port.

use serde::{Deserialize, Serialize};
use shoal_api::{Protocol, ProxyProtocol};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One ready task reachable at an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub task_id: String,
    pub addr: SocketAddr,
    /// Share of new connections against the set's other endpoints; 0: only when no endpoint
    /// of weight above 0 is left. Left out of the JSON when 1, so a table reads as before
    /// to nodes that know no weights.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
}

impl Endpoint {
    /// An endpoint of weight 1.
    pub fn new(task_id: impl Into<String>, addr: impl Into<SocketAddr>) -> Endpoint {
        Endpoint::weighted(task_id, addr, 1)
    }

    pub fn weighted(
        task_id: impl Into<String>,
        addr: impl Into<SocketAddr>,
        weight: u32,
    ) -> Endpoint {
        Endpoint {
            task_id: task_id.into(),
            addr: addr.into(),
            weight,
        }
    }
}

pub(crate) fn one() -> u32 {
    1
}

fn is_one(weight: &u32) -> bool {
    *weight == 1
}

/// The ready endpoints behind one published port (or one target port of a VIP).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EndpointSet {
    pub service_id: String,
    pub service_name: String,
    pub endpoints: Vec<Endpoint>,
    /// How new connections are spread over them (left out when round-robin, so a node one
    /// version behind reads the set as before).
    #[serde(default, skip_serializing_if = "is_round_robin")]
    pub policy: crate::Policy,
    /// Milliseconds without traffic after which a TCP connection is closed or a UDP flow
    /// forgotten; 0: TCP never, UDP after [`shoal_api::service::UDP_IDLE_DEFAULT`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub idle_timeout_ms: u64,
    /// The header each connection relayed to an endpoint starts with, naming the client
    /// (left out when none, so a node one version behind reads the set as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl EndpointSet {
    /// How long a TCP connection of this set may go without traffic; `None`: forever.
    pub fn tcp_idle_timeout(&self) -> Option<std::time::Duration> {
        (self.idle_timeout_ms > 0).then(|| std::time::Duration::from_millis(self.idle_timeout_ms))
    }

    /// How long a UDP flow of this set lives without traffic.
    pub fn udp_idle_timeout(&self) -> std::time::Duration {
        self.tcp_idle_timeout()
            .unwrap_or(shoal_api::service::UDP_IDLE_DEFAULT)
    }
}

fn is_round_robin(p: &crate::Policy) -> bool {
    *p == crate::Policy::RoundRobin
}

/// A published port: number and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortKey {
    pub port: u16,
    pub protocol: Protocol,
}

/// Every published port of the cluster with its endpoints, at one store version.
///
/// The data plane applies tables whole and acknowledges `version` once it routes by it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EndpointTable {
    pub version: u64,
    /// Sent as a list of pairs: JSON maps need string keys.
    #[serde(with = "port_pairs")]
    pub ports: BTreeMap<PortKey, EndpointSet>,
}

impl EndpointTable {
    pub fn get(&self, port: u16, protocol: Protocol) -> Option<&EndpointSet> {
        self.ports.get(&PortKey { port, protocol })
    }
}

mod port_pairs {
    use super::{EndpointSet, PortKey};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        ports: &BTreeMap<PortKey, EndpointSet>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(ports.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<PortKey, EndpointSet>, D::Error> {
        Ok(Vec::<(PortKey, EndpointSet)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_through_json() {
        let mut t = EndpointTable {
            version: 7,
            ..Default::default()
        };
        t.ports.insert(
            PortKey {
                port: 8080,
                protocol: Protocol::Tcp,
            },
            EndpointSet {
                service_id: "s".into(),
                service_name: "web".into(),
                endpoints: vec![
                    Endpoint::new("t", ([10, 0, 0, 1], 3000)),
                    Endpoint::weighted("u", ([10, 0, 0, 2], 3000), 0),
                ],
                policy: Default::default(),
                idle_timeout_ms: 0,
                proxy_protocol: Some(ProxyProtocol::V2),
            },
        );
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<EndpointTable>(&json).unwrap(), t);
    }

    #[test]
    fn an_endpoint_of_weight_one_reads_as_before_weights() {
        let before = r#"{"task_id":"t","addr":"10.0.0.1:3000"}"#;
        let e: Endpoint = serde_json::from_str(before).unwrap();
        assert_eq!(e, Endpoint::new("t", ([10, 0, 0, 1], 3000)));
        assert_eq!(serde_json::to_string(&e).unwrap(), before);
        let heavy = Endpoint::weighted("t", ([10, 0, 0, 1], 3000), 3);
        assert_eq!(
            serde_json::to_string(&heavy).unwrap(),
            r#"{"task_id":"t","addr":"10.0.0.1:3000","weight":3}"#
        );
    }
}
