//! Start-up, membership changes (init, join, leave) and shutdown of one node.

use crate::api::{
    router as node_router, worker_guard, InitRequest, InitResponse, JoinRequest, JoinResponse,
};
use crate::data_plane::DataPlaneStatus;
use crate::forward::{self, Forward};
use crate::health;
use crate::identity;
use crate::membership::{self, Certs, Membership};
use crate::roles::{self, Roles};
use crate::state_key::{self, DataKey};
use crate::DaemonConfig;
use anyhow::{bail, Context};
use shoal_agent::AgentStop;
use shoal_api::{EngineInfo, Node, NodeRole};
use shoal_manager::ca::{self, join_token};
use shoal_manager::control::{router as control_router, ApiError, ControlState};
use shoal_manager::leader::leader_of;
use shoal_manager::now_millis;
use shoal_rpc::pki::{self, CertRole};
use shoal_rpc::proto::ca_client::CaClient;
use shoal_rpc::proto::{Empty, IssueRequest};
use shoal_rpc::token::{self, JoinToken};
use shoal_rpc::{tls, DEFAULT_CONTROL_PORT};
use shoal_store::raft::Replica;
use shoal_store::{Op, Store};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Everything a node is, shared by its API handlers.
pub struct Runtime {
    pub cfg: DaemonConfig,
    pub store: Arc<Store>,
    pub node_id: String,
    pub hostname: String,
    /// The node's container engine, reported to the leader with the node's description.
    engine: Option<EngineInfo>,
    membership: Mutex<Option<Membership>>,
    roles: tokio::sync::Mutex<Option<Roles>>,
    status: watch::Sender<DataPlaneStatus>,
    /// Generation of the task following wanted-role changes (one at a time).
    role_watch: std::sync::atomic::AtomicU64,
    /// Client TLS for forwarding API calls to the leader (managers).
    forward_tls: watch::Sender<Option<Arc<rustls::ClientConfig>>>,
    /// The key sealing this node's state on disk; `None` while locked.
    data_key: Mutex<Option<DataKey>>,
    /// Held while a failed unlock waits, so guesses run one at a time.
    failed_unlocks: tokio::sync::Mutex<()>,
    /// Readers of task logs waiting for the nodes (while this node leads).
    logs: Arc<shoal_manager::log_broker::LogBroker>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node_id", &self.node_id)
            .finish()
    }
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// `HOST[:PORT]` to a socket address (port 2377 by default).
async fn resolve(text: &str, what: &str) -> Result<SocketAddr, ApiError> {
    let with_port = if text.parse::<SocketAddr>().is_ok()
        || text
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        text.to_string()
    } else {
        format!("{text}:{DEFAULT_CONTROL_PORT}")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ApiError::bad_request(format!("invalid {what} {text:?}: expected HOST[:PORT]"))
        })
}

/// A control-port `--listen-addr` (`IP:PORT`; all addresses, port 2377 by default).
fn listen_addr(text: Option<&str>) -> Result<SocketAddr, ApiError> {
    match text {
        None => Ok(SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONTROL_PORT))),
        Some(t) => t
            .parse()
            .map_err(|_| bad(format!("invalid listen address {t:?}: expected IP:PORT"))),
    }
}

/// The IP of an `--advertise-addr` (`IP` or `IP:PORT`).
fn advertise_ip(text: &str) -> Result<IpAddr, ApiError> {
    text.split(':').next().unwrap_or("").parse().map_err(|_| {
        bad(format!(
            "invalid advertise address {text:?}: expected an IP address"
        ))
    })
}

/// The local address used to reach `remote` (no packet is sent).
fn local_ip_towards(remote: SocketAddr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

fn status_error(manager: SocketAddr, s: tonic::Status) -> ApiError {
    use tonic::Code;
    let msg = s.message().to_string();
    match s.code() {
        Code::PermissionDenied | Code::InvalidArgument | Code::FailedPrecondition => {
            ApiError::bad_request(msg)
        }
        Code::AlreadyExists => ApiError::conflict(msg),
        _ => ApiError::unavailable(format!("cannot reach the manager at {manager}: {msg}")),
    }
}

impl Runtime {
    pub fn membership(&self) -> Option<Membership> {
        self.membership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_membership(&self, m: Option<Membership>) {
        *self.membership.lock().unwrap_or_else(|p| p.into_inner()) = m;
    }

    /// Refuse a VIP pool that overlaps a network this node has an address in: its VIPs
    /// would shadow real hosts.
    fn check_vip_pool(&self, pool: &shoal_api::VipPool) -> Result<(), ApiError> {
        let iface = self
            .cfg
            .vip_interface
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_VIP_INTERFACE);
        match crate::vip_iface::local_networks(iface) {
            Ok(networks) => {
                if let Some((addr, len, dev)) = networks
                    .iter()
                    .find(|(addr, len, _)| pool.overlaps(*addr, *len))
                {
                    return Err(bad(format!(
                        "invalid vip-pool \"{pool}\": overlaps {addr}/{len} on {dev} of this node; \
                         choose another with --vip-pool"
                    )));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the VIP pool is not checked against this node's networks")
            }
        }
        Ok(())
    }

    /// `shoal init`: a new cluster with this node as its manager.
    pub async fn init(self: &Arc<Self>, req: InitRequest) -> Result<InitResponse, ApiError> {
        if req.force_new_cluster {
            return self.force_new_cluster().await;
        }
        let mut roles = self.roles.lock().await;
        if let Some(m) = self.membership() {
            return Err(ApiError::conflict(format!(
                "this node is already part of a cluster ({}) as a {}: nothing to do",
                m.cluster_id,
                m.role.as_str()
            )));
        }
        let listen = listen_addr(req.listen_addr.as_deref())?;
        let advertise_ip: IpAddr = match req.advertise_addr.as_deref() {
            Some(a) => advertise_ip(a)?,
            None if !listen.ip().is_unspecified() => listen.ip(),
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let heartbeat = req
            .heartbeat_ms
            .unwrap_or(shoal_api::cluster::DEFAULT_HEARTBEAT_MS);
        if !(50..=60_000).contains(&heartbeat) {
            return Err(bad(format!(
                "invalid dispatcher heartbeat {heartbeat}ms: use 50ms to 1m"
            )));
        }
        let expiry = Duration::from_secs(
            req.cert_expiry_secs
                .unwrap_or(pki::DEFAULT_CERT_LIFETIME.as_secs()),
        );
        if expiry < Duration::from_secs(10) {
            return Err(bad("invalid certificate expiry: at least 10s"));
        }
        let vip_pool = match req.vip_pool.as_deref() {
            Some(text) => shoal_api::VipPool::parse(text).map_err(|e| bad(e.to_string()))?,
            None => shoal_api::VipPool::default(),
        };
        self.check_vip_pool(&vip_pool)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| ApiError::conflict(format!("cannot listen on {listen}: {e}")))?;
        let manager_addr = SocketAddr::new(
            advertise_ip,
            listener.local_addr().map_err(internal)?.port(),
        )
        .to_string();
        let mut cluster = ca::new_cluster(heartbeat, expiry, &manager_addr).map_err(internal)?;
        cluster.vip_pool = Some(vip_pool);
        if req.autolock {
            cluster.autolock_key = Some(shoal_store::seal::new_unlock_key().map_err(internal)?);
        }
        let unlock_key = cluster.autolock_key.clone();
        let key = pki::new_node_key().map_err(internal)?;
        let certs = Certs {
            ca_pem: cluster.ca_cert_pem.clone(),
            cert_pem: ca::issue(&cluster, &key.csr_pem, &self.node_id, CertRole::Manager)
                .map_err(internal)?,
            key_pem: key.key_pem,
        };
        let m = Membership {
            role: NodeRole::Manager,
            cluster_id: cluster.id.clone(),
            managers: vec![manager_addr.clone()],
            advertise_addr: advertise_ip.to_string(),
            listen_addr: Some(listen.to_string()),
        };
        let worker_token = join_token(&cluster, NodeRole::Worker).map_err(internal)?;
        membership::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
            .map_err(internal)?;
        let cluster_id = cluster.id.clone();
        // The group starts with this node as its only voter; the cluster's first records
        // are its first entries.
        let started = async {
            let r = self.start_manager(&m, certs, listener, true).await?;
            let mut node = Node::new(
                self.node_id.clone(),
                self.hostname.clone(),
                NodeRole::Manager,
                advertise_ip.to_string(),
                now_millis(),
            );
            node.control_addr = Some(manager_addr.clone());
            let written = async {
                wait_leader(&self.store).await?;
                self.store
                    .update(|tx| {
                        tx.push(Op::SetCluster(Box::new(cluster)));
                        tx.put(node);
                        Ok::<_, shoal_store::StoreError>(())
                    })
                    .await
                    .map_err(anyhow::Error::from)
            };
            match written.await {
                Ok(()) => Ok(r),
                Err(e) => {
                    r.stop(AgentStop::Daemon).await;
                    Err(e)
                }
            }
        };
        match started.await {
            Ok(r) => *roles = Some(r),
            Err(e) => {
                // Nothing of the half-made cluster stays behind.
                let _ = membership::remove(&self.cfg.data_dir);
                let _ = std::fs::remove_dir_all(self.cfg.raft_dir());
                let _ = self.store.forget();
                return Err(internal(format!("cannot start the cluster: {e:#}")));
            }
        }
        self.set_membership(Some(m.clone()));
        self.watch_role();
        tracing::info!(cluster = %cluster_id, node = %self.node_id, addr = %manager_addr, "cluster initialised");
        Ok(InitResponse {
            cluster_id,
            node_id: self.node_id.clone(),
            worker_token,
            manager_addr,
            unlock_key,
        })
    }

    /// `shoal join`: verify the manager against the token, get a certificate, become a worker.
    pub async fn join(self: &Arc<Self>, req: JoinRequest) -> Result<JoinResponse, ApiError> {
        let mut roles = self.roles.lock().await;
        if let Some(m) = self.membership() {
            return Err(ApiError::conflict(format!(
                "this node is already part of a cluster ({}) as a {}: run `shoal leave` first",
                m.cluster_id,
                m.role.as_str()
            )));
        }
        let token = JoinToken::parse(&req.token).map_err(bad)?;
        let manager = resolve(&req.remote_addr, "manager address").await?;
        let advertise: IpAddr = match req.advertise_addr.as_deref() {
            Some(a) => advertise_ip(a)?,
            None => local_ip_towards(manager)
                .ok_or_else(|| bad("cannot tell this node's address: use --advertise-addr"))?,
        };
        // First contact: take the root CA on trust, then check it against the token.
        let first = tls::channel(manager, tls::first_contact_config().map_err(internal)?)
            .map_err(internal)?;
        let root = CaClient::new(first)
            .get_root_ca(Empty {})
            .await
            .map_err(|s| status_error(manager, s))?
            .into_inner()
            .cert_pem;
        let der = pki::pem_to_der(&root).map_err(internal)?;
        if token::digest(&der) != token.ca_digest {
            return Err(bad(format!(
                "invalid join token: the manager at {manager} belongs to another cluster (CA digest does not match)"
            )));
        }
        // A manager token makes this node a manager: it listens on its own control port.
        let listen = listen_addr(req.listen_addr.as_deref())?;
        let control_addr = SocketAddr::new(advertise, listen.port()).to_string();
        let key = pki::new_node_key().map_err(internal)?;
        let client = tls::client_config(&root, None, &[b"h2"]).map_err(internal)?;
        let issue = IssueRequest {
            token: req.token.trim().to_string(),
            csr_pem: key.csr_pem.clone(),
            node_id: self.node_id.clone(),
            hostname: self.hostname.clone(),
            addr: advertise.to_string(),
            control_addr: control_addr.clone(),
        };
        // Only the leader admits nodes: follow it if the manager named another.
        let mut target = manager;
        let mut hops = 0;
        let resp = loop {
            let channel = tls::channel(target, client.clone()).map_err(internal)?;
            match CaClient::new(channel)
                .issue_node_certificate(issue.clone())
                .await
            {
                Ok(r) => break r.into_inner(),
                Err(s) => match leader_of(&s).and_then(|l| l.parse().ok()) {
                    Some(leader) if hops < 3 => {
                        hops += 1;
                        target = leader;
                    }
                    _ => return Err(status_error(target, s)),
                },
            }
        };
        let role: NodeRole = resp.role.parse().map_err(internal)?;
        let mut managers = resp.managers.clone();
        if !managers.contains(&manager.to_string()) {
            managers.push(manager.to_string());
        }
        let m = Membership {
            role,
            cluster_id: resp.cluster_id.clone(),
            managers,
            advertise_addr: advertise.to_string(),
            listen_addr: (role == NodeRole::Manager).then(|| listen.to_string()),
        };
        let certs = Certs {
            ca_pem: root,
            cert_pem: resp.cert_pem,
            key_pem: key.key_pem,
        };
        let started = match role {
            NodeRole::Manager => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| ApiError::conflict(format!("cannot listen on {listen}: {e}")))?;
                membership::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
                    .map_err(internal)?;
                self.start_manager(&m, certs, listener, false).await
            }
            NodeRole::Worker => {
                membership::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
                    .map_err(internal)?;
                self.start_worker(&m, certs).await
            }
        };
        *roles = Some(started.map_err(internal)?);
        self.set_membership(Some(m.clone()));
        self.watch_role();
        tracing::info!(cluster = %resp.cluster_id, manager = %target, role = role.as_str(), "joined the cluster");
        Ok(JoinResponse {
            node_id: self.node_id.clone(),
            cluster_id: resp.cluster_id,
            role: role.as_str().into(),
        })
    }

    /// `shoal leave`: stop this node's tasks and forget the cluster.
    pub async fn leave(&self, force: bool) -> Result<(), ApiError> {
        let mut roles = self.roles.lock().await;
        let Some(m) = self.membership() else {
            return Err(ApiError::conflict("this node is not part of a cluster"));
        };
        if m.role == NodeRole::Manager && !force {
            let others = self
                .store
                .replica()
                .map_or(0, |r| r.status().voters.len().saturating_sub(1));
            return Err(ApiError::conflict(if others == 0 {
                "this node is the cluster's only manager: leaving destroys the cluster and its services (use --force)".to_string()
            } else {
                format!("this node is a manager: demote it first (`shoal node demote` on a manager) so the {others} other manager(s) keep a quorum, or use --force")
            }));
        }
        if let Some(r) = roles.take() {
            r.stop(AgentStop::Leave).await;
        }
        if m.role == NodeRole::Manager {
            self.forget_cluster_state().await?;
        }
        membership::remove(&self.cfg.data_dir).map_err(internal)?;
        // The cluster's VIPs and resolver address go with it.
        if self.cfg.vip_interface.is_some() {
            let _ = tokio::task::spawn_blocking(|| {
                crate::vip_iface::remove();
                crate::vips::remove_redirect_rules();
            })
            .await;
        }
        self.set_membership(None);
        self.status.send_replace(DataPlaneStatus::default());
        tracing::info!(cluster = %m.cluster_id, "left the cluster");
        Ok(())
    }

    /// Drop this node's copy of the cluster state and its Raft log (roles are stopped).
    async fn forget_cluster_state(&self) -> Result<(), ApiError> {
        let dir = self.cfg.raft_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| internal(format!("cannot remove {}: {e}", dir.display())))?;
        }
        self.store.forget().map_err(internal)
    }

    async fn start_manager(
        &self,
        m: &Membership,
        certs: Certs,
        listener: tokio::net::TcpListener,
        bootstrap: bool,
    ) -> anyhow::Result<Roles> {
        roles::start_manager(roles::ManagerStart {
            cfg: &self.cfg,
            store: self.store.clone(),
            node_id: &self.node_id,
            hostname: &self.hostname,
            membership: m,
            certs,
            listener,
            status: self.status.clone(),
            bootstrap,
            forward_tls: self.forward_tls.clone(),
            engine: self.engine.clone(),
            logs: self.logs.clone(),
        })
        .await
    }

    async fn start_worker(&self, m: &Membership, certs: Certs) -> anyhow::Result<Roles> {
        roles::start_worker(
            &self.cfg,
            &self.node_id,
            &self.hostname,
            m,
            certs,
            self.status.clone(),
            self.engine.clone(),
        )
        .await
    }

    /// After a restart: resume the roles the node had.
    async fn resume(self: &Arc<Self>) -> anyhow::Result<()> {
        let Some((m, certs)) = membership::load(&self.cfg.data_dir, self.store.sealer().as_ref())?
        else {
            return Ok(());
        };
        let mut roles = self.roles.lock().await;
        let started = match m.role {
            NodeRole::Manager => {
                let listener = bind_control(&m).await?;
                self.start_manager(&m, certs, listener, false).await?
            }
            NodeRole::Worker => self.start_worker(&m, certs).await?,
        };
        tracing::info!(role = m.role.as_str(), cluster = %m.cluster_id, "resumed cluster membership");
        self.set_membership(Some(m));
        *roles = Some(started);
        drop(roles);
        self.watch_role();
        Ok(())
    }

    /// `shoal init --force-new-cluster`: this manager's log gets a membership naming it
    /// alone, and it starts again as the only manager, with every service and task.
    async fn force_new_cluster(self: &Arc<Self>) -> Result<InitResponse, ApiError> {
        let mut roles = self.roles.lock().await;
        let m = self
            .membership()
            .filter(|m| m.role == NodeRole::Manager)
            .ok_or_else(|| {
                ApiError::conflict(
                    "--force-new-cluster needs a node that was a manager of a cluster",
                )
            })?;
        let (_, certs) = membership::load(&self.cfg.data_dir, self.store.sealer().as_ref())
            .map_err(internal)?
            .ok_or_else(|| internal("membership file vanished"))?;
        if let Some(r) = roles.take() {
            r.stop(AgentStop::Daemon).await;
        }
        let listener = bind_control(&m).await.map_err(internal)?;
        let addr = roles::control_addr(&m, &listener).map_err(internal)?;
        Replica::force_new_cluster(
            &self.cfg.raft_dir(),
            &self.node_id,
            &addr,
            self.store.sealer(),
        )
        .map_err(internal)?;
        let m = Membership {
            managers: vec![addr.clone()],
            ..m
        };
        membership::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
            .map_err(internal)?;
        *roles = Some(
            self.start_manager(&m, certs, listener, false)
                .await
                .map_err(internal)?,
        );
        self.set_membership(Some(m.clone()));
        drop(roles);
        self.watch_role();
        wait_leader(&self.store).await.map_err(internal)?;
        // The other managers are gone for good: they become workers, left to be removed.
        let now = now_millis();
        let me = self.node_id.clone();
        let cluster = self
            .store
            .update(|tx| {
                let others: Vec<Node> = tx
                    .state()
                    .nodes
                    .values()
                    .filter(|n| n.role == NodeRole::Manager && n.id != me)
                    .cloned()
                    .collect();
                for mut n in others {
                    n.role = NodeRole::Worker;
                    n.control_addr = None;
                    n.state = shoal_api::NodeState::Down;
                    n.updated_at = now;
                    tx.put(n);
                }
                let mut c = tx
                    .state()
                    .cluster
                    .clone()
                    .ok_or_else(|| internal("the local state holds no cluster"))?;
                c.managers = vec![addr.clone()];
                tx.push(Op::SetCluster(Box::new(c.clone())));
                Ok::<_, ApiError>(c)
            })
            .await?;
        tracing::warn!(cluster = %cluster.id, "forced a new cluster from the local state: this node is its only manager");
        Ok(InitResponse {
            cluster_id: cluster.id.clone(),
            node_id: self.node_id.clone(),
            worker_token: join_token(&cluster, NodeRole::Worker).map_err(internal)?,
            manager_addr: addr,
            unlock_key: None,
        })
    }

    /// Follow the role the cluster wants this node to have (`node promote`/`demote`).
    fn watch_role(self: &Arc<Self>) {
        let generation = self
            .role_watch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let rt = self.clone();
        tokio::spawn(async move {
            loop {
                let current = rt.role_watch.load(std::sync::atomic::Ordering::SeqCst);
                if current != generation {
                    return;
                }
                let wanted = match rt.roles.lock().await.as_ref() {
                    Some(r) => r.wanted_role.clone(),
                    None => return,
                };
                let Some(target) =
                    wait_for_other_role(wanted, rt.membership().map(|m| m.role)).await
                else {
                    // Roles were replaced or stopped: look again.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                if let Err(e) = rt.switch_role(target).await {
                    tracing::error!(error = %format!("{e:#}"), role = target.as_str(), "changing role failed; will retry");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        });
    }

    async fn switch_role(&self, target: NodeRole) -> anyhow::Result<()> {
        let mut roles = self.roles.lock().await;
        let Some(m) = self.membership() else {
            return Ok(());
        };
        if m.role == target {
            return Ok(());
        }
        let (_, certs) = membership::load(&self.cfg.data_dir, self.store.sealer().as_ref())?
            .context("the membership file vanished")?;
        tracing::info!(
            from = m.role.as_str(),
            to = target.as_str(),
            "the cluster changed this node's role"
        );
        match target {
            NodeRole::Worker => {
                let managers = self
                    .store
                    .state()
                    .cluster
                    .as_ref()
                    .map(|c| c.managers.clone())
                    .unwrap_or_else(|| m.managers.clone());
                if let Some(r) = roles.take() {
                    r.stop(AgentStop::Daemon).await;
                }
                self.forget_cluster_state()
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                let m = Membership {
                    role: NodeRole::Worker,
                    managers,
                    listen_addr: None,
                    ..m
                };
                membership::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())?;
                *roles = Some(self.start_worker(&m, certs).await?);
                self.set_membership(Some(m));
            }
            NodeRole::Manager => {
                let managers: Vec<SocketAddr> =
                    m.managers.iter().filter_map(|a| a.parse().ok()).collect();
                let certs = crate::renew::renew_from(&managers, &certs).await?;
                let m = Membership {
                    role: NodeRole::Manager,
                    listen_addr: Some(m.listen_addr.clone().unwrap_or_else(|| {
                        SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONTROL_PORT)).to_string()
                    })),
                    ..m
                };
                let listener = bind_control(&m).await?;
                if let Some(r) = roles.take() {
                    r.stop(AgentStop::Daemon).await;
                }
                membership::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())?;
                *roles = Some(self.start_manager(&m, certs, listener, false).await?);
                self.set_membership(Some(m));
            }
        }
        Ok(())
    }

    /// `shoal unlock`: open the data key with the cluster's unlock key, load the state and
    /// start the roles. A wrong key is answered after a pause, one guess at a time.
    pub async fn unlock(self: &Arc<Self>, unlock_key: &str) -> Result<(), ApiError> {
        if !self.store.is_locked() {
            return Err(ApiError::conflict("this node is not locked: nothing to do"));
        }
        let key = match state_key::unlock(&self.cfg.data_dir, unlock_key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(reason = %e, "unlock refused");
                let _one_at_a_time = self.failed_unlocks.lock().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Err(bad(e));
            }
        };
        self.store
            .unlock(key.sealer().map_err(internal)?)
            .map_err(internal)?;
        *self.data_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        tracing::info!("unlocked: starting the roles");
        self.resume().await.map_err(|e| internal(format!("{e:#}")))
    }

    /// What seals the node key on disk (see `state_key::node_key_sealer`).
    fn key_sealer(&self) -> Option<shoal_store::Sealer> {
        state_key::node_key_sealer(&self.store)
    }

    /// Keep the data key wrapped or in the clear as the cluster's autolock setting says,
    /// following rotations of the unlock key, and the node key sealed with it or not.
    async fn keep_data_key(self: Arc<Self>) {
        let mut changes = self.store.subscribe();
        let mut kept: Option<Option<String>> = None;
        loop {
            let wanted = changes
                .borrow_and_update()
                .cluster
                .as_ref()
                .and_then(|c| c.autolock_key.clone());
            let key = self
                .data_key
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(key) = key {
                if kept.as_ref() != Some(&wanted) {
                    match self.keep_keys(&key, wanted.as_deref()).await {
                        Ok(()) => kept = Some(wanted),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "cannot store the data key")
                        }
                    }
                }
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    async fn keep_keys(&self, key: &DataKey, unlock_key: Option<&str>) -> anyhow::Result<()> {
        // Under the roles lock: role changes and init write the certificates too.
        let _roles = self.roles.lock().await;
        let sealer = key.sealer()?;
        if let Some((_, certs)) = membership::load(&self.cfg.data_dir, Some(&sealer))? {
            let node_key = unlock_key.map(|_| &sealer);
            membership::save_certs(&self.cfg.data_dir, &certs, node_key)?;
        }
        state_key::keep(&self.cfg.data_dir, key, unlock_key)
    }

    async fn shutdown(&self) {
        if let Some(r) = self.roles.lock().await.take() {
            r.stop(AgentStop::Daemon).await;
        }
    }
}

/// Run a node until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    crate::private::restrict_new_files();
    let cfg = crate::limits::apply(cfg);
    std::fs::create_dir_all(cfg.logs_dir())
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    crate::private::tighten(&cfg.data_dir)?;
    let lock_path = cfg.data_dir.join("daemon.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another shoal daemon is using data dir {}: stop it first",
            cfg.data_dir.display()
        );
    }
    let node_id = identity::node_id(&cfg.data_dir)?;
    let hostname = identity::hostname();
    let (store, data_key) = match state_key::load_or_create(&cfg.data_dir)? {
        state_key::Found::Open(k) => (
            Store::open_with(&cfg.state_path(), Some(k.sealer()?))?,
            Some(k),
        ),
        state_key::Found::Locked { kek_id } => {
            tracing::warn!(unlock_key_id = %kek_id, "this manager is locked (autolock): run `shoal unlock` to start it");
            (Store::open_locked(&cfg.state_path())?, None)
        }
    };
    let store = Arc::new(store);
    store.set_min_free(cfg.min_free_disk);
    let listener = bind_socket(&cfg.socket).await?;
    let health_listener = match cfg.health_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on health address {a}"))?,
        ),
        None => None,
    };
    let (status, status_rx) = watch::channel(DataPlaneStatus::default());
    let rt = Arc::new(Runtime {
        cfg: cfg.clone(),
        store: store.clone(),
        node_id: node_id.clone(),
        hostname,
        // Reported with the node's description; the agent connects its own container
        // executor to the same engine.
        engine: shoal_agent::engine_version(&cfg.docker_host)
            .await
            .ok()
            .map(|version| EngineInfo { version }),
        membership: Mutex::new(None),
        roles: tokio::sync::Mutex::new(None),
        status,
        role_watch: std::sync::atomic::AtomicU64::new(0),
        forward_tls: watch::channel(None).0,
        data_key: Mutex::new(data_key),
        failed_unlocks: tokio::sync::Mutex::new(()),
        logs: Arc::default(),
    });
    if !store.is_locked() {
        rt.resume().await?;
    }
    tokio::spawn(rt.clone().keep_data_key());

    let app = control_router(ControlState {
        store: store.clone(),
        logs: rt.logs.clone(),
    })
    .layer(axum::middleware::from_fn_with_state(
        Forward {
            store: store.clone(),
            tls: rt.forward_tls.subscribe(),
        },
        forward::to_leader,
    ))
    .merge(node_router(rt.clone()))
    .layer(axum::middleware::from_fn_with_state(
        rt.clone(),
        worker_guard,
    ))
    .layer(axum::middleware::from_fn_with_state(
        rt.clone(),
        crate::api::locked_guard,
    ));
    let (stop_api, mut stop_api_rx) = watch::channel(false);
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_api_rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    if let Some(l) = health_listener {
        tokio::spawn(health::serve(l, status_rx));
    }
    tracing::info!(node = %node_id, socket = %cfg.socket.display(), "daemon listening");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down: stopping tasks");
    rt.shutdown().await;
    stop_api.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(&cfg.socket);
    Ok(())
}

/// Wait (up to 5 s) until this manager leads its group.
async fn wait_leader(store: &Store) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if store.replica().is_some_and(|r| r.is_leader()) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("this manager did not become the leader of its group within 5s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next wanted role different from `current` (None when the roles stopped).
async fn wait_for_other_role(
    mut wanted: watch::Receiver<Option<NodeRole>>,
    current: Option<NodeRole>,
) -> Option<NodeRole> {
    loop {
        let w = *wanted.borrow_and_update();
        if w.is_some() && w != current {
            return w;
        }
        wanted.changed().await.ok()?;
    }
}

/// Bind a manager's control port.
async fn bind_control(m: &Membership) -> anyhow::Result<tokio::net::TcpListener> {
    let listen = listen_addr(m.listen_addr.as_deref()).map_err(|e| anyhow::anyhow!(e.message))?;
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// Bind the API socket, refusing to steal it from a live daemon.
async fn bind_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!("another shoal daemon is listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))
}
