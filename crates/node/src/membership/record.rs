//! A node's membership record: what it is in which cluster, and its TLS material.

use serde::{Deserialize, Serialize};
use shoal_api::NodeRole;
use shoal_rpc::DEFAULT_CONTROL_PORT;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub role: NodeRole,
    pub cluster_id: String,
    /// Control addresses of the managers (`ip:port`).
    pub managers: Vec<String>,
    /// Address other nodes reach this node's tasks at.
    pub advertise_addr: String,
    /// Control port listen address (managers).
    #[serde(default)]
    pub listen_addr: Option<String>,
}

impl Membership {
    /// The record after a demotion: a worker, following `managers`, with no control port.
    pub fn demoted(self, managers: Vec<String>) -> Membership {
        Membership {
            role: NodeRole::Worker,
            managers,
            listen_addr: None,
            ..self
        }
    }

    /// The record after a promotion: a manager listening where it did before, or on every
    /// address at the control port.
    pub fn promoted(self) -> Membership {
        let listen = self
            .listen_addr
            .clone()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONTROL_PORT)).to_string());
        Membership {
            role: NodeRole::Manager,
            listen_addr: Some(listen),
            ..self
        }
    }

    /// The record of the only manager left, at `addr` (`--force-new-cluster`).
    pub fn sole_manager(self, addr: String) -> Membership {
        Membership {
            managers: vec![addr],
            ..self
        }
    }
}

/// The node's TLS material, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Certs {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> Membership {
        Membership {
            role: NodeRole::Worker,
            cluster_id: "c1".into(),
            managers: vec!["10.0.0.1:2377".into()],
            advertise_addr: "10.0.0.2".into(),
            listen_addr: None,
        }
    }

    #[test]
    fn promoted_worker_listens_on_the_control_port_by_default() {
        let m = worker().promoted();
        assert_eq!(m.role, NodeRole::Manager);
        assert_eq!(m.listen_addr.as_deref(), Some("0.0.0.0:2377"));
        assert_eq!(m.managers, worker().managers);
    }

    #[test]
    fn promoted_keeps_a_listen_address_it_had() {
        let m = Membership {
            listen_addr: Some("10.0.0.2:4000".into()),
            ..worker()
        }
        .promoted();
        assert_eq!(m.listen_addr.as_deref(), Some("10.0.0.2:4000"));
    }

    #[test]
    fn demoted_manager_drops_its_control_port_and_follows_the_managers_given() {
        let m = worker().promoted().demoted(vec!["10.0.0.9:2377".into()]);
        assert_eq!(m.role, NodeRole::Worker);
        assert_eq!(m.listen_addr, None);
        assert_eq!(m.managers, vec!["10.0.0.9:2377".to_string()]);
        assert_eq!(m.cluster_id, "c1");
    }

    #[test]
    fn sole_manager_names_only_itself() {
        let m = worker().promoted().sole_manager("10.0.0.2:2377".into());
        assert_eq!(m.managers, vec!["10.0.0.2:2377".to_string()]);
    }
}
