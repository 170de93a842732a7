//! Start-up, role composition and shutdown of one node.

use crate::api::{router as node_router, NodeApiState};
use crate::dispatcher::LocalDispatcher;
use crate::identity;
use crate::DaemonConfig;
use anyhow::{bail, Context};
use shoal_agent::launch::NodeIdentity;
use shoal_agent::{Agent, AgentConfig, ProcessExecutor};
use shoal_api::NodeState;
use shoal_manager::control::{router as control_router, ControlState};
use shoal_manager::endpoints::endpoint_table;
use shoal_manager::now_millis;
use shoal_manager::reconciler::Reconciler;
use shoal_mesh::Mesh;
use shoal_store::{Store, StoreError};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Run a node until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(cfg.logs_dir())
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
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
    let store = Arc::new(Store::open(&cfg.state_path())?);
    let listener = bind_socket(&cfg.socket).await?;

    let (joined, mut joined_rx) = watch::channel(store.state().cluster_id.is_some());
    let (stop_api, stop_api_rx) = watch::channel(false);
    let app = control_router(ControlState {
        store: store.clone(),
        logs_dir: cfg.logs_dir(),
    })
    .merge(node_router(NodeApiState {
        store: store.clone(),
        node_id: node_id.clone(),
        hostname: hostname.clone(),
        joined,
    }));
    let mut api_stop = stop_api_rx.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "control API stopped");
        }
    });
    tracing::info!(node = %node_id, socket = %cfg.socket.display(), "daemon listening");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    };
    tokio::pin!(shutdown);

    // Wait for `shoal init` (or find the cluster already there), unless told to stop.
    tokio::select! {
        r = joined_rx.wait_for(|j| *j) => { r?; }
        _ = &mut shutdown => {
            finish(&cfg, stop_api, server).await;
            return Ok(());
        }
    }
    let roles = Roles::start(&cfg, store.clone(), &node_id, &hostname)?;
    shutdown.await;
    tracing::info!("shutting down: stopping tasks");
    roles.stop().await;
    finish(&cfg, stop_api, server).await;
    Ok(())
}

async fn finish(
    cfg: &DaemonConfig,
    stop_api: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
) {
    stop_api.send_replace(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(&cfg.socket);
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

/// The running roles of a cluster member: manager, data plane and agent.
struct Roles {
    stop_manager: watch::Sender<bool>,
    stop_agent: watch::Sender<bool>,
    manager: tokio::task::JoinHandle<()>,
    agent: tokio::task::JoinHandle<()>,
    feeder: tokio::task::JoinHandle<()>,
}

impl Roles {
    fn start(
        cfg: &DaemonConfig,
        store: Arc<Store>,
        node_id: &str,
        hostname: &str,
    ) -> anyhow::Result<Roles> {
        let addr = store.update(|tx| {
            let Some(mut node) = tx.state().nodes.get(node_id).cloned() else {
                return Ok::<_, StoreError>("127.0.0.1".to_string());
            };
            node.state = NodeState::Ready;
            node.hostname = hostname.to_string();
            node.updated_at = now_millis();
            let addr = node.addr.clone();
            tx.put_node(node);
            Ok(addr)
        })?;

        let mesh = Mesh::new(cfg.mesh_bind);
        let feeder = tokio::spawn(feed_mesh(store.clone(), mesh.clone()));

        let (stop_manager, stop_manager_rx) = watch::channel(false);
        let manager = tokio::spawn(Reconciler::new(store.clone()).run(stop_manager_rx));

        let dispatcher = LocalDispatcher::start(store, node_id.to_string());
        let exe = std::env::current_exe().context("cannot find the shoal binary")?;
        let agent = Agent::new(
            AgentConfig {
                node: NodeIdentity {
                    id: node_id.to_string(),
                    hostname: hostname.to_string(),
                    addr,
                },
                logs_dir: cfg.logs_dir(),
                drain_timeout: cfg.drain_timeout,
            },
            Arc::new(ProcessExecutor::new(exe)),
            dispatcher,
            mesh.acked(),
        );
        let (stop_agent, stop_agent_rx) = watch::channel(false);
        let agent = tokio::spawn(agent.run(stop_agent_rx));
        Ok(Roles {
            stop_manager,
            stop_agent,
            manager,
            agent,
            feeder,
        })
    }

    /// Stop deciding first, so the tasks stopped next are not replaced on the way out.
    async fn stop(self) {
        self.stop_manager.send_replace(true);
        let _ = self.manager.await;
        self.stop_agent.send_replace(true);
        let _ = self.agent.await;
        self.feeder.abort();
    }
}

/// Apply a fresh endpoint table to the mesh on every state change.
async fn feed_mesh(store: Arc<Store>, mesh: Mesh) {
    let mut rx = store.subscribe();
    loop {
        let state = rx.borrow_and_update().clone();
        let table = Arc::new(endpoint_table(&state));
        for e in mesh.apply(table).await {
            tracing::error!(error = %e, "routing mesh");
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
