//! Builds the data plane's endpoint table from cluster state.

use shoal_api::{ClusterState, PublishMode};
use shoal_balance::{Endpoint, EndpointSet, EndpointTable, PortKey};
use std::net::{IpAddr, SocketAddr};

/// Every ingress-published port with the ready tasks behind it, at `state.version`.
///
/// Only ready tasks appear (running, wanted, healthy if checked): a task whose desired state
/// moved past running has already left the table, which is what lets the agent wait for the
/// data plane to acknowledge before it signals the task.
pub fn endpoint_table(state: &ClusterState) -> EndpointTable {
    let mut table = EndpointTable {
        version: state.version,
        ..EndpointTable::default()
    };
    for service in state.services.values() {
        for port in service
            .ports
            .iter()
            .filter(|p| p.mode == PublishMode::Ingress)
        {
            let Some(published) = port.published else {
                continue;
            };
            let mut endpoints: Vec<Endpoint> = state
                .tasks_of(&service.id)
                .filter(|t| t.is_ready())
                .filter_map(|t| {
                    let ep = t.endpoint.as_ref()?;
                    let host_port = ep.host_port(port.target, port.protocol)?;
                    let ip: IpAddr = ep.addr.parse().ok()?;
                    Some(Endpoint {
                        task_id: t.id.clone(),
                        addr: SocketAddr::new(ip, host_port),
                    })
                })
                .collect();
            endpoints.sort();
            table.ports.insert(
                PortKey {
                    port: published,
                    protocol: port.protocol,
                },
                EndpointSet {
                    service_id: service.id.clone(),
                    service_name: service.spec.name.clone(),
                    endpoints,
                },
            );
        }
    }
    table
}
