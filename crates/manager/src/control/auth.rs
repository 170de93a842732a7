//! Who may use the control API over the control port: operators, that is managers that the
//! store (not their certificate) says are managers, and client certificates the cluster
//! issued and has not revoked. Checked on every request, so a removal, demotion or
//! revocation takes effect at once.

use super::ApiError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shoal_api::{ClusterState, NodeRole};
use shoal_rpc::pki::{CertIdentity, CertRole};
use shoal_rpc::tls::PeerIdentity;
use shoal_store::Store;
use std::sync::Arc;

fn refused(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, m)
}

/// Whether the holder of `peer` may act as an operator in `state`.
pub fn authorize(state: &ClusterState, peer: Option<&CertIdentity>) -> Result<(), ApiError> {
    let Some(id) = peer else {
        return Err(refused(
            "a client certificate of this cluster is required (shoal client-cert on a manager)",
        ));
    };
    let cluster = state.cluster.as_ref().ok_or_else(|| {
        ApiError::unavailable("this node is not part of a cluster: run `shoal init` first")
    })?;
    if id.cluster_id != cluster.id {
        return Err(refused("certificate of another cluster"));
    }
    match id.role {
        CertRole::Client => match cluster.valid_client(&id.node_id) {
            Some(_) => Ok(()),
            None => Err(refused(format!(
                "client certificate {} was revoked or not issued by this cluster",
                id.node_id
            ))),
        },
        CertRole::Manager | CertRole::Worker => match state.nodes.get(&id.node_id) {
            Some(n) if n.role == NodeRole::Manager => Ok(()),
            Some(_) => Err(refused(format!(
                "node {} is not a manager: its certificate gives no operator rights",
                id.node_id
            ))),
            None => Err(refused(format!(
                "node {} is not a member of this cluster",
                id.node_id
            ))),
        },
    }
}

/// Middleware for the control port's JSON API: refuses anyone [`authorize`] refuses.
pub async fn require_operator(
    State(store): State<Arc<Store>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.as_ref());
    match authorize(&store.state(), peer) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(peer = ?peer.map(|p| &p.node_id), reason = %e.message, "control API call refused");
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{ClientRecord, Cluster, Node};

    fn state() -> ClusterState {
        let mut s = ClusterState {
            cluster: Some(Cluster {
                vip_pool: None,
                id: "c1".into(),
                ca_cert_pem: String::new(),
                ca_key_pem: String::new(),
                worker_secret: "w".into(),
                manager_secret: "m".into(),
                heartbeat_period_ms: 1000,
                cert_lifetime_secs: 3600,
                managers: vec![],
                created_at: 0,
                clients: vec![
                    ClientRecord {
                        id: "ok".into(),
                        name: "ci".into(),
                        created_at: 0,
                        expires_at: 1,
                        revoked_at: None,
                    },
                    ClientRecord {
                        id: "gone".into(),
                        name: "laptop".into(),
                        created_at: 0,
                        expires_at: 1,
                        revoked_at: Some(1),
                    },
                ],
                autolock_key: None,
            }),
            ..ClusterState::default()
        };
        for (id, role) in [("m1", NodeRole::Manager), ("w1", NodeRole::Worker)] {
            s.nodes.insert(
                id.into(),
                Node::new(id.into(), id.into(), role, "10.0.0.1".into(), 0),
            );
        }
        s
    }

    fn cert(node: &str, role: CertRole, cluster: &str) -> CertIdentity {
        CertIdentity {
            node_id: node.into(),
            role,
            cluster_id: cluster.into(),
            not_before: 0,
            not_after: i64::MAX,
        }
    }

    #[test]
    fn current_managers_and_issued_clients_are_operators() {
        let s = state();
        assert!(authorize(&s, Some(&cert("m1", CertRole::Manager, "c1"))).is_ok());
        assert!(authorize(&s, Some(&cert("client-ok", CertRole::Client, "c1"))).is_ok());
    }

    /// `node demote` left the old manager certificate its rights: the store's role decides.
    #[test]
    fn demoted_manager_certificate_has_no_operator_rights() {
        let s = state();
        let e = authorize(&s, Some(&cert("w1", CertRole::Manager, "c1"))).expect_err("demoted");
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.message.contains("not a manager"), "{}", e.message);
    }

    /// `node rm --force` left the removed manager's certificate working, and a certificate
    /// minted with a stolen CA key for a node that does not exist was accepted.
    #[test]
    fn removed_or_unknown_node_certificate_is_refused() {
        let s = state();
        let e = authorize(&s, Some(&cert("ghost", CertRole::Manager, "c1"))).expect_err("unknown");
        assert!(e.message.contains("not a member"), "{}", e.message);
    }

    #[test]
    fn revoked_or_unknown_client_certificate_is_refused() {
        let s = state();
        for cn in ["client-gone", "client-forged"] {
            let e = authorize(&s, Some(&cert(cn, CertRole::Client, "c1"))).expect_err(cn);
            assert!(e.message.contains("revoked or not issued"), "{}", e.message);
        }
        assert!(authorize(&s, Some(&cert("client-ok", CertRole::Client, "c2"))).is_err());
        assert!(authorize(&s, None).is_err());
    }
}
