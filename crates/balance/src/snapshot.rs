//! The data plane's view of the cluster at one store version, by service: its name, its
//! ports, how it is reached and balanced, and its endpoints.
//!
//! The leader builds one per store version. Each data-plane member derives what it routes
//! by: the routing mesh its table of published ports ([`DataPlaneSnapshot::ingress`]);
//! the VIPs each service's own table ([`ServiceEntry::vip_table`]), the DNS server the
//! services themselves.

use crate::balancer::Balancer;
use crate::endpoint::{Endpoint, EndpointSet, EndpointTable, PortKey};
use crate::{LeastConn, Maglev, P2c, Random, RoundRobin, SourceHash};
use serde::{Deserialize, Serialize};
use shoal_api::task::EndpointPort;
use shoal_api::{PortConfig, Protocol, PublishMode, VipPool};
use std::net::{IpAddr, SocketAddr};

/// Every service the data plane serves, at one store version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataPlaneSnapshot {
    /// The store version it was built from.
    #[serde(default)]
    pub version: u64,
    /// Sorted by service ID.
    #[serde(default)]
    pub services: Vec<ServiceEntry>,
    /// Where the services' VIPs come from; its first address is the nodes' DNS resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_pool: Option<VipPool>,
}

pub use shoal_api::{EndpointMode, LbMode, Policy};

fn is_proxy(mode: &LbMode) -> bool {
    *mode == LbMode::Proxy
}

/// A fresh balancer of `policy`.
pub fn balancer_for(policy: Policy) -> Box<dyn Balancer> {
    match policy {
        Policy::RoundRobin => Box::new(RoundRobin::new()),
        Policy::LeastConn => Box::new(LeastConn::new()),
        Policy::P2c => Box::new(P2c::new()),
        Policy::SourceHash => Box::new(SourceHash::new()),
        Policy::Maglev => Box::new(Maglev::new()),
        Policy::Random => Box::new(Random::new()),
    }
}

/// One service as the data plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub id: String,
    pub name: String,
    /// Further names the service answers to (its aliases on the networks it is attached
    /// to); a service's own name wins over another's alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The service's virtual address, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<IpAddr>,
    #[serde(default)]
    pub endpoint_mode: EndpointMode,
    #[serde(default)]
    pub policy: Policy,
    /// Who forwards its TCP connections: the proxy, or the kernel's NAT.
    #[serde(default, skip_serializing_if = "crate::snapshot::is_proxy")]
    pub lb_mode: LbMode,
    /// Prefer a ready endpoint on the node that received the connection
    /// ([`DataPlaneSnapshot::for_node`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_first: bool,
    /// Milliseconds without traffic after which a TCP connection is closed or a UDP flow
    /// forgotten; 0: TCP never, UDP after the default.
    #[serde(default, skip_serializing_if = "crate::endpoint::is_zero")]
    pub idle_timeout_ms: u64,
    /// Its ports as published (ingress with the published port assigned, or host mode).
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Sorted by task ID.
    #[serde(default)]
    pub endpoints: Vec<ServiceEndpoint>,
}

/// Whether an endpoint takes new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointState {
    /// Ready: new connections go to it.
    #[default]
    Ready,
    /// On its way out: connections already open may finish, no new one goes to it.
    Terminating,
}

/// One task of a service, where it can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    pub task_id: String,
    pub addr: IpAddr,
    /// Target port → host port on `addr`.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
    #[serde(default)]
    pub state: EndpointState,
    /// Share of new connections against the service's other endpoints.
    #[serde(default = "crate::endpoint::one")]
    pub weight: u32,
    /// The node it runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_id: String,
}

impl Default for ServiceEndpoint {
    fn default() -> Self {
        ServiceEndpoint {
            task_id: String::new(),
            addr: IpAddr::from([0, 0, 0, 0]),
            ports: Vec::new(),
            state: EndpointState::Ready,
            weight: 1,
            node_id: String::new(),
        }
    }
}

impl ServiceEntry {
    /// The ready endpoints of target port `target`, each at its host port, sorted.
    pub fn ready_endpoints(&self, target: u16, protocol: Protocol) -> Vec<Endpoint> {
        let mut endpoints: Vec<Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.state == EndpointState::Ready)
            .filter_map(|e| {
                let host_port = e
                    .ports
                    .iter()
                    .find(|p| p.target == target && p.protocol == protocol)?
                    .host_port;
                Some(Endpoint::weighted(
                    e.task_id.clone(),
                    SocketAddr::new(e.addr, host_port),
                    e.weight,
                ))
            })
            .collect();
        endpoints.sort();
        endpoints
    }

    /// The set a port with target `target` routes over, balanced by the service's policy,
    /// with the PROXY header that target port expects (whether reached by a published port
    /// or by the VIP: the task's port either expects it or not).
    pub fn endpoint_set(&self, target: u16, protocol: Protocol) -> EndpointSet {
        EndpointSet {
            service_id: self.id.clone(),
            service_name: self.name.clone(),
            endpoints: self.ready_endpoints(target, protocol),
            policy: self.policy,
            idle_timeout_ms: self.idle_timeout_ms,
            proxy_protocol: self
                .ports
                .iter()
                .filter(|p| p.target == target && p.protocol == protocol)
                .find_map(|p| p.proxy_protocol),
        }
    }

    /// What the service's VIP routes by: every target port of the service (published or
    /// not) with its ready endpoints, at `version`.
    pub fn vip_table(&self, version: u64) -> EndpointTable {
        let mut table = EndpointTable {
            version,
            ..EndpointTable::default()
        };
        for p in &self.ports {
            table
                .ports
                .entry(PortKey {
                    port: p.target,
                    protocol: p.protocol,
                })
                .or_insert_with(|| self.endpoint_set(p.target, p.protocol));
        }
        table
    }
}

impl DataPlaneSnapshot {
    /// The snapshot a table of published ports stands for, as far as it tells (from a
    /// leader that sends no snapshot): one entry per service, each published port routed to
    /// the same host ports, so that [`DataPlaneSnapshot::ingress`] gives the table back.
    pub fn from_table(table: &EndpointTable) -> DataPlaneSnapshot {
        let mut services: std::collections::BTreeMap<String, ServiceEntry> = Default::default();
        for (key, set) in &table.ports {
            let entry = services
                .entry(set.service_id.clone())
                .or_insert_with(|| ServiceEntry {
                    id: set.service_id.clone(),
                    name: set.service_name.clone(),
                    policy: set.policy,
                    idle_timeout_ms: set.idle_timeout_ms,
                    ..ServiceEntry::default()
                });
            entry.ports.push(PortConfig {
                published: Some(key.port),
                target: key.port,
                protocol: key.protocol,
                mode: PublishMode::Ingress,
                proxy_protocol: set.proxy_protocol,
            });
            for e in &set.endpoints {
                let port = EndpointPort {
                    target: key.port,
                    host_port: e.addr.port(),
                    protocol: key.protocol,
                };
                match entry.endpoints.iter_mut().find(|x| x.task_id == e.task_id) {
                    Some(x) => x.ports.push(port),
                    None => entry.endpoints.push(ServiceEndpoint {
                        task_id: e.task_id.clone(),
                        addr: e.addr.ip(),
                        ports: vec![port],
                        state: EndpointState::Ready,
                        weight: e.weight,
                        node_id: String::new(),
                    }),
                }
            }
        }
        DataPlaneSnapshot {
            version: table.version,
            services: services.into_values().collect(),
            vip_pool: None,
        }
    }

    /// The snapshot as node `node_id` routes by it: in every service that prefers local
    /// tasks and has a ready one on this node, the ready tasks of other nodes get weight 0,
    /// so they are picked only when no local one can be reached. Everything else as is.
    pub fn for_node(&self, node_id: &str) -> DataPlaneSnapshot {
        let mut snapshot = self.clone();
        for s in snapshot.services.iter_mut().filter(|s| s.local_first) {
            let local = |e: &ServiceEndpoint| {
                e.state == EndpointState::Ready && e.node_id == node_id && e.weight > 0
            };
            if !s.endpoints.iter().any(local) {
                continue;
            }
            for e in s.endpoints.iter_mut().filter(|e| e.node_id != node_id) {
                e.weight = 0;
            }
        }
        snapshot
    }

    /// Whether any service prefers local tasks (then each node routes by
    /// [`DataPlaneSnapshot::for_node`]).
    pub fn has_local_first(&self) -> bool {
        self.services.iter().any(|s| s.local_first)
    }

    /// The same services, whatever the version: what a node routes by is unchanged.
    pub fn same_routes(&self, other: &DataPlaneSnapshot) -> bool {
        self.services == other.services
    }

    /// The routing mesh's table: every ingress-published port with the ready endpoints
    /// behind it (sorted), at this snapshot's version.
    pub fn ingress(&self) -> EndpointTable {
        let mut table = EndpointTable {
            version: self.version,
            ..EndpointTable::default()
        };
        for s in &self.services {
            for port in s.ports.iter().filter(|p| p.mode == PublishMode::Ingress) {
                let Some(published) = port.published else {
                    continue;
                };
                table.ports.insert(
                    PortKey {
                        port: published,
                        protocol: port.protocol,
                    },
                    s.endpoint_set(port.target, port.protocol),
                );
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{Protocol, ProxyProtocol};

    #[test]
    fn a_table_stands_for_a_snapshot_that_gives_it_back() {
        let mut table = EndpointTable {
            version: 4,
            ..EndpointTable::default()
        };
        let ep = |task: &str, port: u16| Endpoint::new(task, ([10, 0, 0, 2], port));
        for (port, protocol, eps) in [
            (8080, Protocol::Tcp, vec![ep("a", 30001), ep("b", 30002)]),
            (8081, Protocol::Tcp, vec![ep("a", 30003)]),
            (53, Protocol::Udp, vec![]),
        ] {
            table.ports.insert(
                PortKey { port, protocol },
                EndpointSet {
                    service_id: "s1".into(),
                    service_name: "web".into(),
                    endpoints: eps,
                    policy: Default::default(),
                    idle_timeout_ms: 0,
                    proxy_protocol: (port == 8081).then_some(ProxyProtocol::V2),
                },
            );
        }
        let snap = DataPlaneSnapshot::from_table(&table);
        assert_eq!(snap.services.len(), 1);
        assert_eq!(snap.services[0].endpoints.len(), 2);
        assert_eq!(snap.ingress(), table);
        let later = DataPlaneSnapshot {
            version: 5,
            ..snap.clone()
        };
        assert!(snap.same_routes(&later));
    }

    #[test]
    fn every_policy_makes_its_balancer() {
        for p in Policy::ALL {
            assert!(format!("{:?}", balancer_for(p)).contains(&format!("{p:?}")));
        }
    }

    #[test]
    fn a_service_entry_without_a_policy_balances_round_robin() {
        let entry: ServiceEntry = serde_json::from_str(r#"{"id":"s","name":"web"}"#).unwrap();
        assert_eq!(entry.policy, Policy::RoundRobin);
        let entry: ServiceEntry =
            serde_json::from_str(r#"{"id":"s","name":"web","policy":"maglev"}"#).unwrap();
        assert_eq!(entry.policy, Policy::Maglev);
    }

    #[test]
    fn ingress_endpoints_carry_their_weights() {
        let snap = DataPlaneSnapshot {
            version: 1,
            vip_pool: None,
            services: vec![ServiceEntry {
                id: "s".into(),
                name: "web".into(),
                ports: vec![PortConfig {
                    published: Some(8080),
                    target: 80,
                    protocol: Protocol::Tcp,
                    mode: PublishMode::Ingress,
                    proxy_protocol: None,
                }],
                endpoints: vec![ServiceEndpoint {
                    task_id: "t".into(),
                    addr: IpAddr::from([10, 0, 0, 3]),
                    ports: vec![EndpointPort {
                        target: 80,
                        host_port: 30080,
                        protocol: Protocol::Tcp,
                    }],
                    state: EndpointState::Ready,
                    weight: 3,
                    node_id: String::new(),
                }],
                ..ServiceEntry::default()
            }],
        };
        let table = snap.ingress();
        let set = table.get(8080, Protocol::Tcp).unwrap();
        assert_eq!(
            set.endpoints,
            [Endpoint::weighted("t", ([10, 0, 0, 3], 30080), 3)]
        );
        assert_eq!(DataPlaneSnapshot::from_table(&table).ingress(), table);
    }

    fn local_first_entry(local_first: bool, nodes: &[(&str, &str, EndpointState)]) -> ServiceEntry {
        ServiceEntry {
            id: "s".into(),
            name: "web".into(),
            local_first,
            endpoints: nodes
                .iter()
                .map(|(task, node, state)| ServiceEndpoint {
                    task_id: (*task).into(),
                    node_id: (*node).into(),
                    state: *state,
                    weight: 100,
                    ..ServiceEndpoint::default()
                })
                .collect(),
            ..ServiceEntry::default()
        }
    }

    fn weights(snap: &DataPlaneSnapshot) -> Vec<u32> {
        snap.services[0]
            .endpoints
            .iter()
            .map(|e| e.weight)
            .collect()
    }

    #[test]
    fn local_first_leaves_other_nodes_as_fall_through_while_a_local_task_is_ready() {
        use EndpointState::{Ready, Terminating};
        let snap = |local_first, eps: &[(&str, &str, EndpointState)]| DataPlaneSnapshot {
            version: 1,
            vip_pool: None,
            services: vec![local_first_entry(local_first, eps)],
        };
        let both = [("a", "n1", Ready), ("b", "n2", Ready), ("c", "n2", Ready)];
        assert_eq!(weights(&snap(true, &both).for_node("n1")), [100, 0, 0]);
        assert_eq!(weights(&snap(true, &both).for_node("n2")), [0, 100, 100]);
        // A node without a ready task of its own spreads over all of them.
        assert_eq!(weights(&snap(true, &both).for_node("n3")), [100, 100, 100]);
        let leaving = [("a", "n1", Terminating), ("b", "n2", Ready)];
        assert_eq!(weights(&snap(true, &leaving).for_node("n1")), [100, 100]);
        // Without the setting, nothing changes.
        assert!(!snap(false, &both).has_local_first());
        assert_eq!(weights(&snap(false, &both).for_node("n1")), [100, 100, 100]);
    }

    #[test]
    fn a_target_port_with_proxy_protocol_asks_for_it_on_ingress_and_vip() {
        let port = |published: u16, target: u16, proxy: Option<ProxyProtocol>| PortConfig {
            published: Some(published),
            target,
            protocol: Protocol::Tcp,
            mode: PublishMode::Ingress,
            proxy_protocol: proxy,
        };
        let snap = DataPlaneSnapshot {
            version: 1,
            vip_pool: None,
            services: vec![ServiceEntry {
                id: "s".into(),
                name: "web".into(),
                ports: vec![
                    port(8080, 80, Some(ProxyProtocol::V2)),
                    port(8081, 81, None),
                ],
                ..ServiceEntry::default()
            }],
        };
        let ingress = snap.ingress();
        let proxy_of = |t: &EndpointTable, port: u16| {
            t.get(port, Protocol::Tcp)
                .map(|set| set.proxy_protocol)
                .unwrap()
        };
        assert_eq!(proxy_of(&ingress, 8080), Some(ProxyProtocol::V2));
        assert_eq!(proxy_of(&ingress, 8081), None);
        let vip = snap.services[0].vip_table(1);
        assert_eq!(proxy_of(&vip, 80), Some(ProxyProtocol::V2));
        assert_eq!(proxy_of(&vip, 81), None);
    }
}
