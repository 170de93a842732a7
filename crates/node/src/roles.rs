//! The running roles of a cluster member.
//!
//! Manager: the control port (gRPC CA and dispatcher, and the JSON API for remote CLIs, on
//! one mTLS port), the reconciler, node liveness, and its own agent and mesh fed straight
//! from the store. Worker: a manager session feeding its agent and mesh.

use crate::dispatcher::LocalDispatcher;
use crate::membership::{Certs, Membership};
use crate::remote::{RemoteConfig, RemoteDispatcher};
use crate::renew;
use crate::DaemonConfig;
use anyhow::Context;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shoal_agent::launch::NodeIdentity;
use shoal_agent::{Agent, AgentConfig, Dispatcher, ProcessExecutor};
use shoal_api::NodeRole;
use shoal_balance::EndpointTable;
use shoal_manager::ca::CaService;
use shoal_manager::control::{router as control_router, ApiError, ControlState};
use shoal_manager::dispatcher::DispatcherService;
use shoal_manager::endpoints::endpoint_table;
use shoal_manager::liveness::{self, Sessions};
use shoal_manager::now_millis;
use shoal_manager::reconciler::Reconciler;
use shoal_mesh::Mesh;
use shoal_rpc::pki::CertRole;
use shoal_rpc::proto::{ca_server::CaServer, dispatcher_server::DispatcherServer};
use shoal_rpc::tls::{self, PeerIdentity};
use shoal_store::Store;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the health endpoint reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPlaneStatus {
    pub role: Option<NodeRole>,
    /// Endpoint-table version the mesh routes by (0: none yet).
    pub table_version: u64,
    pub published_ports: Vec<u16>,
}

/// Handles to stop a running role set, in order.
pub struct Roles {
    pub role: NodeRole,
    stop_decisions: watch::Sender<bool>,
    stop_agent: watch::Sender<bool>,
    stop_rest: watch::Sender<bool>,
    decisions: Vec<JoinHandle<()>>,
    agent: JoinHandle<()>,
    rest: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roles").field("role", &self.role).finish()
    }
}

impl Roles {
    /// Stop deciding first (so tasks stopped next are not replaced on the way out), then
    /// stop the tasks, then the sessions, servers and data plane.
    pub async fn stop(self) {
        self.stop_decisions.send_replace(true);
        for h in self.decisions {
            let _ = h.await;
        }
        self.stop_agent.send_replace(true);
        let _ = self.agent.await;
        // Give the last reports a moment to reach a manager.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.stop_rest.send_replace(true);
        for h in self.rest {
            h.abort();
        }
    }
}

struct Common<'a> {
    cfg: &'a DaemonConfig,
    node_id: &'a str,
    hostname: &'a str,
    membership: &'a Membership,
    status: watch::Sender<DataPlaneStatus>,
}

/// The agent, stopping tasks once `drained` (the cluster-wide acknowledged endpoint-table
/// version) has caught up with their removal.
fn agent<D: Dispatcher>(
    c: &Common<'_>,
    dispatcher: Arc<D>,
    drained: watch::Receiver<u64>,
) -> anyhow::Result<Agent<ProcessExecutor>> {
    let exe = std::env::current_exe().context("cannot find the shoal binary")?;
    Ok(Agent::new(
        AgentConfig {
            node: NodeIdentity {
                id: c.node_id.to_string(),
                hostname: c.hostname.to_string(),
                addr: c.membership.advertise_addr.clone(),
            },
            logs_dir: c.cfg.logs_dir(),
            drain_timeout: c.cfg.drain_timeout,
        },
        Arc::new(ProcessExecutor::new(exe)),
        dispatcher,
        drained,
    ))
}

/// Apply each table the `tables` watch yields to the mesh, and publish data-plane status.
async fn feed_mesh(
    mut tables: watch::Receiver<Arc<EndpointTable>>,
    mesh: Mesh,
    status: watch::Sender<DataPlaneStatus>,
    role: NodeRole,
) {
    loop {
        let table = tables.borrow_and_update().clone();
        let version = table.version;
        for e in mesh.apply(table).await {
            tracing::error!(error = %e, "routing mesh");
        }
        status.send_replace(DataPlaneStatus {
            role: Some(role),
            table_version: version,
            published_ports: mesh.listening(),
        });
        if tables.changed().await.is_err() {
            return;
        }
    }
}

/// Endpoint tables from the local store.
fn store_tables(store: Arc<Store>) -> (watch::Receiver<Arc<EndpointTable>>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(endpoint_table(&store.state())));
    let h = tokio::spawn(async move {
        let mut changes = store.subscribe();
        while changes.changed().await.is_ok() {
            let state = changes.borrow_and_update().clone();
            tx.send_replace(Arc::new(endpoint_table(&state)));
        }
    });
    (rx, h)
}

/// The control API over mTLS accepts managers' and clients' certificates only.
async fn require_operator(req: Request, next: Next) -> Response {
    let role = req
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.as_ref())
        .map(|i| i.role);
    match role {
        Some(CertRole::Manager | CertRole::Client) => next.run(req).await,
        _ => ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "a client certificate of this cluster is required (shoal client-cert on a manager)",
        )
        .into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn start_manager(
    cfg: &DaemonConfig,
    store: Arc<Store>,
    node_id: &str,
    hostname: &str,
    membership: &Membership,
    certs: Certs,
    listener: TcpListener,
    status: watch::Sender<DataPlaneStatus>,
) -> anyhow::Result<Roles> {
    let c = Common {
        cfg,
        node_id,
        hostname,
        membership,
        status,
    };
    let (stop_decisions, stop_decisions_rx) = watch::channel(false);
    let (stop_agent, stop_agent_rx) = watch::channel(false);
    let (stop_rest, stop_rest_rx) = watch::channel(false);

    let server_cfg = tls::server_config(&certs.ca_pem, &certs.cert_pem, &certs.key_pem)?;
    let (server_tls, server_tls_rx) = watch::channel(server_cfg);
    let sessions = Arc::new(Sessions::new(now_millis()));
    let mesh = Mesh::new(cfg.mesh_bind);
    let (cluster_acked, cluster_acked_rx) = watch::channel(0);
    let acks = tokio::spawn(liveness::track_acks(
        store.clone(),
        sessions.clone(),
        node_id.to_string(),
        mesh.acked(),
        cluster_acked,
        stop_rest_rx.clone(),
    ));
    let grpc = tonic::service::Routes::new(CaServer::new(CaService {
        store: store.clone(),
    }))
    .add_service(DispatcherServer::new(DispatcherService {
        store: store.clone(),
        sessions: sessions.clone(),
        cluster_acked: cluster_acked_rx.clone(),
    }))
    .into_axum_router();
    let api = control_router(ControlState {
        store: store.clone(),
        logs_dir: cfg.logs_dir(),
    })
    .layer(axum::middleware::from_fn(require_operator));
    let app = grpc.merge(api);
    let server = tokio::spawn(shoal_rpc::server::serve(
        listener,
        server_tls_rx,
        app,
        stop_rest_rx.clone(),
    ));

    let reconciler = tokio::spawn(Reconciler::new(store.clone()).run(stop_decisions_rx.clone()));
    let liveness = tokio::spawn(liveness::run(
        store.clone(),
        sessions,
        node_id.to_string(),
        stop_decisions_rx,
    ));

    let (tables, tables_task) = store_tables(store.clone());
    let feeder = tokio::spawn(feed_mesh(
        tables,
        mesh.clone(),
        c.status.clone(),
        NodeRole::Manager,
    ));
    let dispatcher = LocalDispatcher::start(store.clone(), node_id.to_string());
    let agent = tokio::spawn(agent(&c, dispatcher, cluster_acked_rx)?.run(stop_agent_rx));
    let renewal = tokio::spawn(renew::manager_loop(
        store,
        cfg.data_dir.clone(),
        node_id.to_string(),
        certs,
        server_tls,
        stop_rest_rx,
    ));
    Ok(Roles {
        role: NodeRole::Manager,
        stop_decisions,
        stop_agent,
        stop_rest,
        decisions: vec![reconciler, liveness],
        agent,
        rest: vec![server, feeder, tables_task, renewal, acks],
    })
}

pub fn start_worker(
    cfg: &DaemonConfig,
    node_id: &str,
    hostname: &str,
    membership: &Membership,
    certs: Certs,
    status: watch::Sender<DataPlaneStatus>,
) -> anyhow::Result<Roles> {
    let c = Common {
        cfg,
        node_id,
        hostname,
        membership,
        status,
    };
    let (stop_decisions, _) = watch::channel(false);
    let (stop_agent, stop_agent_rx) = watch::channel(false);
    let (stop_rest, stop_rest_rx) = watch::channel(false);
    let managers = membership
        .managers
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect::<Vec<std::net::SocketAddr>>();
    anyhow::ensure!(
        !managers.is_empty(),
        "no manager address in the membership file"
    );
    let client_cfg = tls::client_config(
        &certs.ca_pem,
        Some((&certs.cert_pem, &certs.key_pem)),
        &[b"h2"],
    )?;
    let (client_tls, client_tls_rx) = watch::channel(client_cfg);
    let mesh = Mesh::new(cfg.mesh_bind);
    let remote = RemoteDispatcher::start(
        RemoteConfig {
            managers: managers.clone(),
            hostname: hostname.to_string(),
            addr: membership.advertise_addr.clone(),
        },
        client_tls_rx,
        mesh.acked(),
        stop_rest_rx.clone(),
    );
    let feeder = tokio::spawn(feed_mesh(
        remote.endpoints(),
        mesh.clone(),
        c.status.clone(),
        NodeRole::Worker,
    ));
    let drained = remote.cluster_acked();
    let agent = tokio::spawn(agent(&c, remote, drained)?.run(stop_agent_rx));
    let renewal = tokio::spawn(renew::worker_loop(
        cfg.data_dir.clone(),
        managers,
        certs,
        client_tls,
        stop_rest_rx,
    ));
    Ok(Roles {
        role: NodeRole::Worker,
        stop_decisions,
        stop_agent,
        stop_rest,
        decisions: vec![],
        agent,
        rest: vec![feeder, renewal],
    })
}
