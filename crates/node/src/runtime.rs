//! `Runtime`: everything a node is, shared by its API handlers, its membership changes and
//! the tasks that follow the cluster; it starts, resumes and stops the node's roles.

use crate::daemon::bind_control;
use crate::data_plane::{DataPlane, DataPlaneStatus, DataPlaneThreads};
use crate::membership::{store, Certs, Membership, Standing};
use crate::roles::{self, Roles};
use crate::state_key::{self, DataKey};
use crate::DaemonConfig;
use shoal_agent::AgentStop;
use shoal_api::{EngineInfo, NodeRole};
use shoal_store::Store;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub struct Runtime {
    pub cfg: DaemonConfig,
    pub store: Arc<Store>,
    pub node_id: String,
    pub hostname: String,
    /// The node's container engine, reported to the leader with the node's description.
    pub(crate) engine: Option<EngineInfo>,
    /// Where this node stands in a cluster (read without the roles lock; changed under it).
    pub(crate) standing: Mutex<Standing>,
    /// The running roles; held across a membership change, so changes run one at a time.
    pub(crate) roles: tokio::sync::Mutex<Option<Roles>>,
    pub(crate) status: watch::Sender<DataPlaneStatus>,
    /// Generation of the task following wanted-role changes (one at a time).
    pub(crate) role_watch: AtomicU64,
    /// Client TLS for forwarding API calls to the leader (managers).
    pub(crate) forward_tls: watch::Sender<Option<Arc<rustls::ClientConfig>>>,
    /// The key sealing this node's state on disk; `None` while locked.
    pub(crate) data_key: Mutex<Option<DataKey>>,
    /// Held while a failed unlock waits, so guesses run one at a time.
    pub(crate) failed_unlocks: tokio::sync::Mutex<()>,
    /// Readers of task logs waiting for the nodes (while this node leads).
    pub(crate) logs: Arc<shoal_manager::log_broker::LogBroker>,
    /// The cluster's changes as Docker events, kept while the daemon runs.
    pub(crate) events: Arc<shoal_manager::docker::EventLog>,
    /// The threads the data plane runs on, kept across role changes.
    pub(crate) data_plane: DataPlaneThreads,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl Runtime {
    /// A node in no cluster yet, with the data key it opened (`None` while locked).
    pub fn new(
        cfg: DaemonConfig,
        store: Arc<Store>,
        node_id: String,
        hostname: String,
        engine: Option<EngineInfo>,
        status: watch::Sender<DataPlaneStatus>,
        data_key: Option<DataKey>,
    ) -> anyhow::Result<Runtime> {
        let data_plane = DataPlaneThreads::start(cfg.data_plane_threads)
            .map_err(|e| anyhow::anyhow!("cannot start the data plane's threads: {e}"))?;
        let events = shoal_manager::docker::EventLog::follow(&store);
        Ok(Runtime {
            cfg,
            store,
            node_id,
            hostname,
            engine,
            standing: Mutex::new(Standing::Detached),
            roles: tokio::sync::Mutex::new(None),
            status,
            role_watch: AtomicU64::new(0),
            forward_tls: watch::channel(None).0,
            data_key: Mutex::new(data_key),
            failed_unlocks: tokio::sync::Mutex::new(()),
            logs: Arc::default(),
            events,
            data_plane,
        })
    }

    /// Where this node stands now.
    pub fn standing(&self) -> Standing {
        self.standing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn membership(&self) -> Option<Membership> {
        self.standing().membership().cloned()
    }

    pub(crate) fn set_membership(&self, m: Option<Membership>) {
        *self.standing.lock().unwrap_or_else(|p| p.into_inner()) = Standing::from_membership(m);
    }

    /// The IPv4 networks this node has an address in, outside its VIP interface: a VIP
    /// pool must stay clear of them. Empty (and logged) when they cannot be listed.
    pub(crate) fn local_networks(&self) -> Vec<(std::net::Ipv4Addr, u8, String)> {
        let iface = self
            .cfg
            .vip_interface
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_VIP_INTERFACE);
        crate::vip_iface::local_networks(iface).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the VIP pool is not checked against this node's networks");
            Vec::new()
        })
    }

    /// What seals the node key on disk (see `state_key::node_key_sealer`).
    pub(crate) fn key_sealer(&self) -> Option<shoal_store::Sealer> {
        state_key::node_key_sealer(&self.store)
    }

    pub(crate) async fn start_manager(
        self: &Arc<Self>,
        m: &Membership,
        certs: Certs,
        listener: tokio::net::TcpListener,
        bootstrap: bool,
        kept_data_plane: Option<DataPlane>,
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
            events: self.events.clone(),
            data_plane: self.data_plane.handle(),
            kept_data_plane,
            docker_about: crate::docker::about_router(self.clone()),
        })
        .await
    }

    pub(crate) async fn start_worker(
        &self,
        m: &Membership,
        certs: Certs,
        kept_data_plane: Option<DataPlane>,
    ) -> anyhow::Result<Roles> {
        roles::start_worker(roles::WorkerStart {
            cfg: &self.cfg,
            node_id: &self.node_id,
            hostname: &self.hostname,
            membership: m,
            certs,
            status: self.status.clone(),
            engine: self.engine.clone(),
            data_plane: self.data_plane.handle(),
            kept_data_plane,
        })
        .await
    }

    /// After a restart: resume the roles the node had.
    pub(crate) async fn resume(self: &Arc<Self>) -> anyhow::Result<()> {
        let Some((m, certs)) = store::load(&self.cfg.data_dir, self.store.sealer().as_ref())?
        else {
            return Ok(());
        };
        let mut roles = self.roles.lock().await;
        let started = match m.role {
            NodeRole::Manager => {
                let listener = bind_control(&m).await?;
                self.start_manager(&m, certs, listener, false, None).await?
            }
            NodeRole::Worker => self.start_worker(&m, certs, None).await?,
        };
        tracing::info!(role = m.role.as_str(), cluster = %m.cluster_id, "resumed cluster membership");
        self.set_membership(Some(m));
        *roles = Some(started);
        drop(roles);
        self.watch_role();
        Ok(())
    }

    /// Stop the roles (the daemon is stopping; tasks that survive it keep running).
    pub(crate) async fn shutdown(&self) {
        if let Some(r) = self.roles.lock().await.take() {
            drop(r.stop(AgentStop::Daemon).await);
        }
    }
}
