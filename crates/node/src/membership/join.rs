//! `join`: verify the manager against the token, get a certificate, start the role the
//! token gives.

use super::error::MembershipError;
use super::first_contact;
use super::record::{Certs, Membership};
use super::state::Change;
use super::store;
use crate::addr;
use crate::runtime::Runtime;
use shoal_api::NodeRole;
use shoal_rpc::pki;
use shoal_rpc::proto::{IssueRequest, LocalNetwork};
use shoal_rpc::token::JoinToken;
use shoal_wire::v1::membership::{JoinRequest, JoinResponse};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use MembershipError as E;

impl Runtime {
    /// `shoal join`: verify the manager against the token, get a certificate, become a
    /// worker (or a manager, with a manager token).
    pub async fn join(self: &Arc<Self>, req: JoinRequest) -> Result<JoinResponse, E> {
        let mut roles = self.roles.lock().await;
        self.standing().check(Change::Join)?;
        let token = JoinToken::parse(&req.token).map_err(|e| E::Token(e.to_string()))?;
        let manager = addr::resolve(&req.remote_addr, "manager address").await?;
        let advertise: IpAddr = match req.advertise_addr.as_deref() {
            Some(a) => addr::advertise_ip(a)?,
            None => addr::local_ip_towards(manager).ok_or(E::NoAdvertiseAddr)?,
        };
        let root = first_contact::root_ca(manager, &token).await?;
        // A manager token makes this node a manager: it listens on its own control port.
        let listen = addr::listen_addr(req.listen_addr.as_deref())?;
        let control_addr = SocketAddr::new(advertise, listen.port()).to_string();
        let key = pki::new_node_key().map_err(E::internal)?;
        let issue = IssueRequest {
            token: req.token.trim().to_string(),
            csr_pem: key.csr_pem.clone(),
            node_id: self.node_id.clone(),
            hostname: self.hostname.clone(),
            addr: advertise.to_string(),
            control_addr,
            networks: self
                .local_networks()
                .into_iter()
                .map(|(addr, prefix, dev)| LocalNetwork {
                    addr: addr.to_string(),
                    prefix: u32::from(prefix),
                    dev,
                })
                .collect(),
        };
        let (resp, answered) = first_contact::issue(manager, &root, issue).await?;
        let role: NodeRole = resp.role.parse().map_err(E::internal)?;
        let m = joined(
            manager,
            advertise,
            listen,
            role,
            &resp.cluster_id,
            resp.managers,
        );
        let certs = Certs {
            ca_pem: root,
            cert_pem: resp.cert_pem,
            key_pem: key.key_pem,
        };
        let started = match role {
            NodeRole::Manager => {
                let listener = super::error::bind_listen(listen).await?;
                store::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
                    .map_err(E::internal)?;
                self.start_manager(&m, certs, listener, false, None).await
            }
            NodeRole::Worker => {
                store::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
                    .map_err(E::internal)?;
                self.start_worker(&m, certs, None).await
            }
        };
        *roles = Some(started.map_err(E::internal)?);
        self.set_membership(Some(m));
        self.watch_role();
        tracing::info!(cluster = %resp.cluster_id, manager = %answered, role = role.as_str(), "joined the cluster");
        Ok(JoinResponse {
            node_id: self.node_id.clone(),
            cluster_id: resp.cluster_id,
            role: role.as_str().into(),
        })
    }
}

/// The record of a node just admitted as `role`: the managers the leader named, and the
/// one it first contacted; a control port only for a manager.
fn joined(
    contacted: SocketAddr,
    advertise: IpAddr,
    listen: SocketAddr,
    role: NodeRole,
    cluster_id: &str,
    mut managers: Vec<String>,
) -> Membership {
    if !managers.contains(&contacted.to_string()) {
        managers.push(contacted.to_string());
    }
    Membership {
        role,
        cluster_id: cluster_id.to_string(),
        managers,
        advertise_addr: advertise.to_string(),
        listen_addr: (role == NodeRole::Manager).then(|| listen.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTACTED: &str = "10.0.0.1:2377";

    fn record(role: NodeRole, managers: &[&str]) -> Membership {
        joined(
            CONTACTED.parse().expect("addr"),
            IpAddr::from([10, 0, 0, 5]),
            SocketAddr::from(([0, 0, 0, 0], 4000)),
            role,
            "c1",
            managers.iter().map(|m| m.to_string()).collect(),
        )
    }

    #[test]
    fn the_contacted_manager_is_remembered_once() {
        let m = record(NodeRole::Worker, &["10.0.0.2:2377"]);
        assert_eq!(m.managers, ["10.0.0.2:2377", CONTACTED]);
        let m = record(NodeRole::Worker, &[CONTACTED, "10.0.0.2:2377"]);
        assert_eq!(m.managers, [CONTACTED, "10.0.0.2:2377"]);
    }

    #[test]
    fn only_a_manager_keeps_a_listen_address() {
        let w = record(NodeRole::Worker, &[]);
        assert_eq!((w.role, w.listen_addr), (NodeRole::Worker, None));
        let m = record(NodeRole::Manager, &[]);
        assert_eq!(m.listen_addr.as_deref(), Some("0.0.0.0:4000"));
        assert_eq!(m.advertise_addr, "10.0.0.5");
        assert_eq!(m.cluster_id, "c1");
    }
}
