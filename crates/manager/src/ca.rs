//! The cluster CA: making a cluster, join tokens, and the `Ca` gRPC service.

use crate::leader::require_leader;
use crate::now_millis;
use shoal_api::{Cluster, Node, NodeRole, NodeState};
use shoal_rpc::pki::{self, CaMaterial, CertRole};
use shoal_rpc::proto::{
    ca_server, Empty, IssueRequest, IssueResponse, LocalNetwork, RenewRequest, RootCa,
};
use shoal_rpc::tls::PeerIdentity;
use shoal_rpc::token::{self, JoinToken};
use shoal_store::{Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// A new cluster: root CA, join-token secrets, settings.
pub fn new_cluster(
    heartbeat_period_ms: u64,
    cert_lifetime: Duration,
    manager_addr: &str,
) -> Result<Cluster, pki::PkiError> {
    let id = shoal_api::id::new_id();
    let ca = pki::new_root_ca(&id)?;
    Ok(Cluster {
        vip_pool: None,
        id,
        ca_cert_pem: ca.cert_pem,
        ca_key_pem: ca.key_pem,
        worker_secret: token::new_secret(),
        manager_secret: token::new_secret(),
        heartbeat_period_ms,
        cert_lifetime_secs: cert_lifetime.as_secs(),
        managers: vec![manager_addr.to_string()],
        created_at: now_millis(),
        clients: Vec::new(),
        autolock_key: None,
    })
}

pub fn ca_material(c: &Cluster) -> CaMaterial {
    CaMaterial {
        cert_pem: c.ca_cert_pem.clone(),
        key_pem: c.ca_key_pem.clone(),
    }
}

/// The join token for `role`: `SWMTKN-1-<CA digest>-<secret>`.
pub fn join_token(c: &Cluster, role: NodeRole) -> Result<String, pki::PkiError> {
    let der = pki::pem_to_der(&c.ca_cert_pem)?;
    let secret = match role {
        NodeRole::Worker => c.worker_secret.clone(),
        NodeRole::Manager => c.manager_secret.clone(),
    };
    Ok(JoinToken {
        ca_digest: token::digest(&der),
        secret,
    }
    .to_string())
}

/// Give `role`'s join token a new secret: the old token is refused from now on.
pub fn rotate_join_token(c: &mut Cluster, role: NodeRole) {
    let secret = token::new_secret();
    match role {
        NodeRole::Worker => c.worker_secret = secret,
        NodeRole::Manager => c.manager_secret = secret,
    }
    tracing::info!(role = role.as_str(), "join token rotated");
}

/// Sign a certificate for `node_id` with the cluster CA; a manager's names `ips`, the
/// addresses its control port is reached at (see [`manager_ips`]).
pub fn issue(
    c: &Cluster,
    csr_pem: &str,
    node_id: &str,
    role: CertRole,
    ips: &[IpAddr],
) -> Result<String, pki::PkiError> {
    pki::sign_node_cert(
        &ca_material(c),
        csr_pem,
        node_id,
        role,
        &c.id,
        Duration::from_secs(c.cert_lifetime_secs),
        ips,
    )
}

/// The addresses a manager's certificate names: its node address and its control
/// address's IP, so a client that checks the address it dialled against the certificate
/// (the docker CLI with `--tlsverify -H tcp://IP:2377`) accepts it.
pub fn manager_ips(addr: &str, control_addr: Option<&str>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = addr.parse().ok().into_iter().collect();
    if let Some(ip) = control_addr.and_then(|a| a.parse::<std::net::SocketAddr>().ok()) {
        ips.push(ip.ip().to_canonical());
    }
    ips.dedup();
    ips
}

/// Which role a token grants, or why it grants none.
pub fn check_token(c: &Cluster, text: &str) -> Result<NodeRole, String> {
    let t = JoinToken::parse(text).map_err(|e| e.to_string())?;
    let der = pki::pem_to_der(&c.ca_cert_pem).map_err(|e| e.to_string())?;
    if t.ca_digest != token::digest(&der) {
        return Err(
            "invalid join token: it belongs to another cluster (CA digest does not match)".into(),
        );
    }
    if token::secrets_equal(&t.secret, &c.worker_secret) {
        Ok(NodeRole::Worker)
    } else if token::secrets_equal(&t.secret, &c.manager_secret) {
        Ok(NodeRole::Manager)
    } else {
        Err("invalid join token: unknown or rotated secret".into())
    }
}

/// The verified identity of a gRPC caller, required to be a current member of this cluster.
pub fn member<T>(store: &Store, req: &Request<T>) -> Result<Node, Status> {
    let id = req
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.clone())
        .ok_or_else(|| Status::unauthenticated("a node certificate is required"))?;
    let state = store.state();
    let cluster = state
        .cluster
        .as_ref()
        .ok_or_else(|| Status::unavailable("no cluster"))?;
    if id.cluster_id != cluster.id {
        return Err(Status::permission_denied("certificate of another cluster"));
    }
    state.nodes.get(&id.node_id).cloned().ok_or_else(|| {
        Status::permission_denied(format!(
            "node {} has been removed from the cluster",
            id.node_id
        ))
    })
}

/// The address a node is reached at: the one its connection comes from, so that no node
/// can make the mesh route to an address it does not hold (a manager's loopback, another
/// host). An advertised address that differs is logged and ignored. Without a socket (tests)
/// the advertised address is taken if it is an IP address.
pub fn reachable_addr<T>(req: &Request<T>, advertised: &str) -> Option<String> {
    let observed = req
        .extensions()
        .get::<shoal_rpc::tls::PeerAddr>()
        .map(|a| a.0.ip().to_canonical());
    match observed {
        Some(ip) => {
            if !advertised.is_empty() && advertised != ip.to_string() {
                tracing::warn!(advertised, observed = %ip, "node advertises another address than it connects from: using the observed one");
            }
            Some(ip.to_string())
        }
        None => advertised
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| ip.to_string()),
    }
}

/// Pause before answering a failed join, one at a time cluster-wide, so that guessing tokens
/// runs at most one guess per this long.
const FAILED_JOIN_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct CaService {
    pub store: Arc<Store>,
    /// Held while a failed join waits out [`FAILED_JOIN_PAUSE`].
    failed_joins: Arc<tokio::sync::Mutex<()>>,
}

impl CaService {
    pub fn new(store: Arc<Store>) -> CaService {
        CaService {
            store,
            failed_joins: Arc::default(),
        }
    }

    /// Log a refused join and answer it only after the pause.
    async fn refuse_join<T>(&self, req: &Request<T>, why: Status) -> Status {
        let from = req
            .extensions()
            .get::<shoal_rpc::tls::PeerAddr>()
            .map(|a| a.0.to_string())
            .unwrap_or_default();
        tracing::warn!(%from, reason = %why.message(), "join refused");
        let _one_at_a_time = self.failed_joins.lock().await;
        tokio::time::sleep(FAILED_JOIN_PAUSE).await;
        why
    }
}

fn cluster_of(store: &Store) -> Result<Cluster, Status> {
    store
        .state()
        .cluster
        .clone()
        .ok_or_else(|| Status::unavailable("this node is not a manager of a cluster"))
}

#[tonic::async_trait]
impl ca_server::Ca for CaService {
    async fn get_root_ca(&self, _req: Request<Empty>) -> Result<Response<RootCa>, Status> {
        let c = cluster_of(&self.store)?;
        Ok(Response::new(RootCa {
            cert_pem: c.ca_cert_pem,
        }))
    }

    async fn issue_node_certificate(
        &self,
        req: Request<IssueRequest>,
    ) -> Result<Response<IssueResponse>, Status> {
        require_leader(&self.store)?;
        let c = cluster_of(&self.store)?;
        let role = match check_token(&c, &req.get_ref().token) {
            Ok(role) => role,
            Err(e) => return Err(self.refuse_join(&req, Status::permission_denied(e)).await),
        };
        let advertised = reachable_addr(&req, &req.get_ref().addr);
        let r = req.into_inner();
        if let Some(reason) = pool_overlap(&c.vip_pool(), &r.networks) {
            return Err(Status::failed_precondition(reason));
        }
        let control_addr = if role == NodeRole::Manager {
            let a: std::net::SocketAddr = r.control_addr.parse().map_err(|_| {
                Status::invalid_argument(format!(
                    "invalid control address {:?}: expected IP:PORT",
                    r.control_addr
                ))
            })?;
            Some(a.to_string())
        } else {
            None
        };
        if r.node_id.is_empty()
            || r.node_id.len() > 64
            || !r.node_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Status::invalid_argument("invalid node id"));
        }
        let ip = advertised.ok_or_else(|| {
            Status::invalid_argument(format!(
                "invalid advertise address {:?}: expected an IP address",
                r.addr
            ))
        })?;
        let hostname = shoal_api::node::clean_hostname(&r.hostname);
        let cert_role = match role {
            NodeRole::Manager => CertRole::Manager,
            NodeRole::Worker => CertRole::Worker,
        };
        let ips = match cert_role {
            CertRole::Manager => manager_ips(&ip, control_addr.as_deref()),
            _ => Vec::new(),
        };
        let cert_pem = issue(&c, &r.csr_pem, &r.node_id, cert_role, &ips)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let now = now_millis();
        self.store
            .update(|tx| {
                if tx.state().nodes.contains_key(&r.node_id) {
                    return Err(StatusError(Status::already_exists(format!(
                        "node {} is already part of this cluster (run `shoal leave` on it, then `shoal node rm` here)",
                        r.node_id
                    ))));
                }
                let mut node = Node::new(r.node_id.clone(), hostname.clone(), role, ip.clone(), now);
                node.state = NodeState::Unknown;
                node.control_addr = control_addr.clone();
                tx.put(node);
                Ok(())
            })
            .await
            .map_err(|e| e.0)?;
        // The leader's membership loop (`managers`) adds a manager node to the Raft group
        // as a learner, and makes it a voter once it has caught up.
        tracing::info!(node = %r.node_id, %hostname, role = role.as_str(), "node joined");
        Ok(Response::new(IssueResponse {
            cert_pem,
            role: role.as_str().to_string(),
            cluster_id: c.id,
            managers: c.managers,
        }))
    }

    async fn renew_node_certificate(
        &self,
        req: Request<RenewRequest>,
    ) -> Result<Response<IssueResponse>, Status> {
        require_leader(&self.store)?;
        let node = member(&self.store, &req)?;
        let c = cluster_of(&self.store)?;
        let role = match node.role {
            NodeRole::Manager => CertRole::Manager,
            NodeRole::Worker => CertRole::Worker,
        };
        let ips = manager_ips(&node.addr, node.control_addr.as_deref());
        let cert_pem = issue(&c, &req.get_ref().csr_pem, &node.id, role, &ips)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(node = %node.id, "node certificate renewed");
        Ok(Response::new(IssueResponse {
            cert_pem,
            role: role.as_str().to_string(),
            cluster_id: c.id,
            managers: c.managers,
        }))
    }
}

/// Why a node with these networks cannot join a cluster whose VIPs come from `pool`, if
/// it cannot: a network of its overlaps the pool, so the cluster's VIPs would shadow the
/// hosts there. A network that does not parse is not one the node has: it is ignored.
fn pool_overlap(pool: &shoal_api::VipPool, networks: &[LocalNetwork]) -> Option<String> {
    let n = networks.iter().find(|n| {
        let addr = n.addr.parse::<std::net::Ipv4Addr>();
        matches!((addr, u8::try_from(n.prefix)), (Ok(a), Ok(len)) if len <= 32 && pool.overlaps(a, len))
    })?;
    Some(format!(
        "this node has {}/{} on {}, which overlaps the cluster's vip-pool {pool}: \
         its VIPs would shadow that network (move the address, or start the cluster with \
         another --vip-pool)",
        n.addr, n.prefix, n.dev
    ))
}

/// A gRPC status usable as the error of a store write.
#[derive(Debug)]
pub struct StatusError(pub Status);

impl From<StoreError> for StatusError {
    fn from(e: StoreError) -> Self {
        StatusError(crate::leader::store_status(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_inside_the_vip_pool_is_refused_naming_its_network() {
        let pool = shoal_api::VipPool::parse("10.96.0.0/16").expect("pool");
        let net = |addr: &str, prefix: u32| LocalNetwork {
            addr: addr.into(),
            prefix,
            dev: "eth1".into(),
        };
        assert_eq!(pool_overlap(&pool, &[]), None);
        assert_eq!(
            pool_overlap(&pool, &[net("192.168.1.5", 24), net("10.97.0.1", 16)]),
            None
        );
        let why =
            pool_overlap(&pool, &[net("192.168.1.5", 24), net("10.96.3.7", 24)]).expect("overlap");
        assert!(
            why.starts_with("this node has 10.96.3.7/24 on eth1, which overlaps the cluster's vip-pool 10.96.0.0/16"),
            "{why}"
        );
        // A network that does not parse is none the node has.
        assert_eq!(
            pool_overlap(&pool, &[net("x", 24), net("10.96.0.1", 99)]),
            None
        );
    }

    /// `Session` let a worker set its address to anything, so the mesh routed to it.
    #[test]
    fn worker_cannot_choose_its_address() {
        let mut req = Request::new(());
        req.extensions_mut().insert(shoal_rpc::tls::PeerAddr(
            "10.0.0.5:40000".parse().expect("addr"),
        ));
        assert_eq!(
            reachable_addr(&req, "127.0.0.1").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(reachable_addr(&req, "").as_deref(), Some("10.0.0.5"));
        // Over IPv6 sockets, IPv4 peers show as mapped addresses.
        let mut req = Request::new(());
        req.extensions_mut().insert(shoal_rpc::tls::PeerAddr(
            "[::ffff:10.0.0.6]:40000".parse().expect("addr"),
        ));
        assert_eq!(
            reachable_addr(&req, "10.0.0.6").as_deref(),
            Some("10.0.0.6")
        );
    }

    #[test]
    fn tokens_grant_roles_and_reject_others() {
        let c = new_cluster(1000, Duration::from_secs(3600), "127.0.0.1:2377").unwrap();
        let other = new_cluster(1000, Duration::from_secs(3600), "127.0.0.1:2377").unwrap();
        assert_eq!(
            check_token(&c, &join_token(&c, NodeRole::Worker).unwrap()),
            Ok(NodeRole::Worker)
        );
        assert_eq!(
            check_token(&c, &join_token(&c, NodeRole::Manager).unwrap()),
            Ok(NodeRole::Manager)
        );
        let foreign = check_token(&c, &join_token(&other, NodeRole::Worker).unwrap()).unwrap_err();
        assert!(foreign.contains("another cluster"), "{foreign}");
        let mut rotated = c.clone();
        rotated.worker_secret = token::new_secret();
        let old = check_token(&rotated, &join_token(&c, NodeRole::Worker).unwrap()).unwrap_err();
        assert!(old.contains("rotated"), "{old}");
        assert!(check_token(&c, "garbage")
            .unwrap_err()
            .contains("invalid join token"));
    }
}
