//! The running roles of a cluster member.
//!
//! Manager: the control port (gRPC CA and dispatcher, and the JSON API for remote CLIs, on
//! one mTLS port), the reconciler, node liveness, and, like every node, a session with the
//! leader (here or on another manager) feeding its agent and its data plane. Worker: that
//! session, agent and data plane only.

use crate::data_plane::{DataPlane, DataPlaneStatus};
use crate::describe::describe;
use crate::forward::{self, Forward};
use crate::membership::{Certs, Membership};
use crate::raft_net::{self, GrpcTransport};
use crate::remote::{RemoteConfig, RemoteDispatcher};
use crate::renew::{self, ManagerTls};
use crate::DaemonConfig;
use anyhow::Context;
use shoal_agent::launch::NodeIdentity;
use shoal_agent::{
    Agent, AgentConfig, AgentStop, ContainerExecutor, Dispatcher, LogRotation, ProcessExecutor,
    Registry,
};
use shoal_api::RuntimeKind;
use shoal_api::{EngineInfo, NodeRole};
use shoal_manager::ca::CaService;
use shoal_manager::control::{router as control_router, ControlState};
use shoal_manager::dispatcher::DispatcherService;
use shoal_manager::liveness::{self, Sessions};
use shoal_manager::log_broker::LogBroker;
use shoal_manager::now_millis;
use shoal_manager::reconciler::Reconciler;
use shoal_mesh::Mesh;
use shoal_rpc::proto::{ca_server::CaServer, dispatcher_server::DispatcherServer};
use shoal_rpc::tls;
use shoal_store::raft::{Replica, ReplicaConfig, Timing};
use shoal_store::Store;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Handles to stop a running role set, in order.
pub struct Roles {
    pub role: NodeRole,
    /// Managers: this node's member of the Raft group.
    pub replica: Option<Arc<Replica>>,
    /// The role the cluster wants this node to have, as its manager session says.
    pub wanted_role: watch::Receiver<Option<NodeRole>>,
    stop_decisions: watch::Sender<bool>,
    stop_agent: watch::Sender<AgentStop>,
    stop_rest: watch::Sender<bool>,
    decisions: Vec<JoinHandle<()>>,
    agent: JoinHandle<()>,
    /// Feeds the data plane from the session; let finish, not aborted (see [`Roles::stop`]).
    feeder: JoinHandle<()>,
    rest: Vec<JoinHandle<()>>,
    /// Stopped last, or handed to the next role set: see [`Roles::stop`].
    data_plane: DataPlane,
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roles").field("role", &self.role).finish()
    }
}

impl Roles {
    /// Stop deciding first (so tasks stopped next are not replaced on the way out), then
    /// stop the tasks, then the sessions and servers. The daemon stopping or changing role
    /// leaves containers running for the next agent to adopt; `Leave` stops and removes
    /// every task.
    ///
    /// The data plane is returned still routing by the last snapshot it had: dropping it
    /// stops it (the daemon stopping, leaving), and a role change hands it to the next role
    /// set, so the node's published ports, VIPs and DNS keep serving across the change.
    #[must_use = "dropping the data plane stops routing"]
    pub async fn stop(self, how: AgentStop) -> DataPlane {
        self.stop_decisions.send_replace(true);
        for h in self.decisions {
            let _ = h.await;
        }
        if let Some(r) = &self.replica {
            // Another manager takes over before this one's tasks stop.
            r.step_down().await;
        }
        self.stop_agent.send_replace(how);
        let _ = self.agent.await;
        // Give the last reports a moment to reach a manager.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.stop_rest.send_replace(true);
        // The feeder stops between snapshots, so the data plane it leaves routes by the last
        // one it acknowledged (a member cut off mid-write could keep rules it never
        // acknowledged); a write that hangs is cut off after a while all the same.
        let mut feeder = self.feeder;
        if tokio::time::timeout(std::time::Duration::from_secs(10), &mut feeder)
            .await
            .is_err()
        {
            feeder.abort();
            let _ = feeder.await;
        }
        for h in &self.rest {
            h.abort();
        }
        // Aborting only asks: a task lets go of what it holds (the control port's listener,
        // which the next role binds at once) when it is dropped, which awaiting it waits for.
        for h in self.rest {
            let _ = h.await;
        }
        if let Some(r) = self.replica {
            r.shutdown().await;
        }
        self.data_plane
    }
}

struct Common<'a> {
    cfg: &'a DaemonConfig,
    node_id: &'a str,
    hostname: &'a str,
    membership: &'a Membership,
    status: watch::Sender<DataPlaneStatus>,
    engine: Option<EngineInfo>,
    /// Where the data plane runs.
    data_plane: &'a tokio::runtime::Handle,
}

/// The session this node keeps with the leader, and what it tells it about itself.
fn session_config(c: &Common<'_>, managers: Vec<std::net::SocketAddr>) -> RemoteConfig {
    RemoteConfig {
        managers,
        hostname: c.hostname.to_string(),
        addr: c.membership.advertise_addr.clone(),
        description: describe(c.engine.clone()),
        logs_dir: c.cfg.logs_dir(),
    }
}

/// The agent, stopping tasks once `drained` (the cluster-wide acknowledged endpoint-table
/// version) has caught up with their removal. Processes always run; containers when the
/// node's Docker Engine answers.
async fn agent<D: Dispatcher>(
    c: &Common<'_>,
    dispatcher: Arc<D>,
    drained: watch::Receiver<u64>,
    resolver: watch::Receiver<Option<std::net::IpAddr>>,
) -> anyhow::Result<Agent> {
    let exe = std::env::current_exe().context("cannot find the shoal binary")?;
    let logs_dir = c.cfg.logs_dir();
    let registry = Registry::new().with(Arc::new(ProcessExecutor::new(exe)));
    let registry = match ContainerExecutor::connect(
        &c.cfg.docker_host,
        c.node_id,
        c.hostname,
        &logs_dir,
        LogRotation::default(),
    )
    .await
    {
        Ok(exec) => {
            tracing::info!(engine = %exec.engine_version(), host = %c.cfg.docker_host, "container engine found");
            registry.with(Arc::new(exec))
        }
        Err(why) => {
            tracing::info!(reason = %why, "no container engine: this node runs process tasks only");
            registry.without(RuntimeKind::Container, why)
        }
    };
    Ok(Agent::new(
        AgentConfig {
            node: NodeIdentity {
                id: c.node_id.to_string(),
                cluster_id: c.membership.cluster_id.clone(),
                hostname: c.hostname.to_string(),
                addr: c.membership.advertise_addr.clone(),
            },
            logs_dir,
            drain_timeout: c.cfg.drain_timeout,
            resolver,
            files_dir: shoal_agent::files::node_dir(c.node_id),
        },
        registry,
        dispatcher,
        drained,
    ))
}

/// The node's session with the leader, and its data plane fed by it (both roles): the
/// session acknowledges what the data plane routes by. The data plane is `kept` from the
/// role set this one replaces, or a new one.
fn session_and_data_plane(
    c: &Common<'_>,
    kept: Option<DataPlane>,
    managers: Vec<std::net::SocketAddr>,
    tls: watch::Receiver<Arc<rustls::ClientConfig>>,
    stop: watch::Receiver<bool>,
    role: NodeRole,
) -> (Arc<RemoteDispatcher>, DataPlane, JoinHandle<()>) {
    let plane = kept.unwrap_or_else(|| {
        DataPlane::start(
            c.data_plane,
            c.node_id,
            Mesh::new(c.cfg.mesh_bind),
            c.cfg.mesh_bind.caps,
            c.cfg.vip_interface.as_deref(),
            c.cfg.dns_upstreams.clone(),
        )
    });
    let remote = RemoteDispatcher::start(
        session_config(c, managers),
        tls,
        plane.acked(),
        stop.clone(),
    );
    let feeder = plane.feed(
        remote.data_plane(),
        c.status.clone(),
        role,
        c.node_id.to_string(),
        stop,
    );
    (remote, plane, feeder)
}

/// What a manager needs to start.
pub struct ManagerStart<'a> {
    pub cfg: &'a DaemonConfig,
    pub store: Arc<Store>,
    pub node_id: &'a str,
    pub hostname: &'a str,
    pub membership: &'a Membership,
    pub certs: Certs,
    pub listener: TcpListener,
    pub status: watch::Sender<DataPlaneStatus>,
    /// A new cluster (`shoal init`): this node becomes the group's only voter.
    pub bootstrap: bool,
    /// Where the client TLS for forwarding API calls to the leader is published.
    pub forward_tls: watch::Sender<Option<Arc<rustls::ClientConfig>>>,
    /// The node's container engine, if it has one.
    pub engine: Option<EngineInfo>,
    /// Log readers waiting for the nodes (shared with the daemon's own API).
    pub logs: Arc<LogBroker>,
    /// The cluster's recent changes as Docker events (shared with the daemon's own API).
    pub events: Arc<shoal_manager::docker::EventLog>,
    /// Where the data plane runs.
    pub data_plane: &'a tokio::runtime::Handle,
    /// The data plane of the role set this one replaces (a role change), to keep routing
    /// with; `None` starts a new one.
    pub kept_data_plane: Option<DataPlane>,
    /// The node's own Docker API routes (`/_ping`, `/version`, `/info`), served on the
    /// control port beside the swarm routes for a remote docker CLI.
    pub docker_about: axum::Router,
}

/// The control address other managers and agents reach this manager at.
pub fn control_addr(m: &Membership, listener: &TcpListener) -> anyhow::Result<String> {
    let ip: std::net::IpAddr = m
        .advertise_addr
        .parse()
        .with_context(|| format!("invalid advertise address {:?}", m.advertise_addr))?;
    Ok(std::net::SocketAddr::new(ip, listener.local_addr()?.port()).to_string())
}

/// A manager: its replica of the store, the control port, decisions while it leads, and
/// (like every node) an agent and data plane fed by a session with the leader.
pub async fn start_manager(s: ManagerStart<'_>) -> anyhow::Result<Roles> {
    let c = Common {
        cfg: s.cfg,
        node_id: s.node_id,
        hostname: s.hostname,
        membership: s.membership,
        status: s.status,
        engine: s.engine,
        data_plane: s.data_plane,
    };
    let store = s.store;
    let (stop_decisions, stop_decisions_rx) = watch::channel(false);
    let (stop_agent, stop_agent_rx) = watch::channel(AgentStop::Run);
    let (stop_rest, stop_rest_rx) = watch::channel(false);

    let addr = control_addr(s.membership, &s.listener)?;
    let tls_set = Arc::new(ManagerTls::new(&s.certs, s.forward_tls)?);
    let replica = Replica::start(
        ReplicaConfig {
            node: s.node_id.to_string(),
            addr: addr.clone(),
            dir: s.cfg.raft_dir(),
            timing: Timing::default(),
        },
        store.clone(),
        Arc::new(GrpcTransport::new(tls_set.grpc.subscribe())),
    )
    .await?;
    if s.bootstrap {
        replica.bootstrap().await?;
    }

    let sessions = Arc::new(Sessions::new(now_millis()));
    let (cluster_acked, cluster_acked_rx) = watch::channel(0);
    let grpc = tonic::service::Routes::new(CaServer::new(CaService::new(store.clone())))
        .add_service(DispatcherServer::new(DispatcherService {
            store: store.clone(),
            sessions: sessions.clone(),
            cluster_acked: cluster_acked_rx,
            logs: s.logs.clone(),
            snapshots: Default::default(),
        }))
        .add_service(raft_net::server(store.clone()))
        .into_axum_router();
    let control = ControlState {
        store: store.clone(),
        logs: s.logs.clone(),
        events: s.events,
    };
    // The Docker API's swarm routes too: a follower forwards them here (their version
    // prefix already gone). The node's own Docker routes answer here, not forwarded.
    let api = control_router(control.clone())
        .merge(shoal_manager::docker::router(control))
        .layer(axum::middleware::from_fn_with_state(
            Forward {
                store: store.clone(),
                tls: tls_set.http.subscribe(),
            },
            forward::to_leader,
        ))
        .merge(s.docker_about)
        .layer(axum::middleware::from_fn_with_state(
            store.clone(),
            shoal_manager::control::require_operator,
        ));
    let app = shoal_manager::docker::versioned(grpc.merge(api));
    let server = tokio::spawn(shoal_rpc::server::serve_with(
        s.listener,
        tls_set.server.subscribe(),
        app,
        stop_rest_rx.clone(),
        s.cfg.control_limits,
    ));

    let leading = tokio::spawn(lead_while_leader(
        store.clone(),
        replica.clone(),
        sessions.clone(),
        s.node_id.to_string(),
        stop_decisions_rx,
    ));

    // The agent talks to the leader like any other node's, here or on another manager.
    let mut managers = vec![addr.parse()?];
    managers.extend(
        s.membership
            .managers
            .iter()
            .filter_map(|m| m.parse::<std::net::SocketAddr>().ok())
            .filter(|m| m.to_string() != addr),
    );
    let (remote, data_plane, feeder) = session_and_data_plane(
        &c,
        s.kept_data_plane,
        managers,
        tls_set.grpc.subscribe(),
        stop_rest_rx.clone(),
        NodeRole::Manager,
    );
    let acks = tokio::spawn(liveness::track_acks(
        store.clone(),
        sessions.clone(),
        s.node_id.to_string(),
        data_plane.acked(),
        cluster_acked,
        stop_rest_rx.clone(),
    ));
    let wanted_role = remote.wanted_role();
    let drained = remote.cluster_acked();
    let agent = tokio::spawn(
        agent(&c, remote, drained, data_plane.resolver())
            .await?
            .run(stop_agent_rx),
    );
    let renewal = tokio::spawn(renew::manager_loop(
        store,
        s.cfg.data_dir.clone(),
        s.node_id.to_string(),
        s.certs,
        tls_set,
        stop_rest_rx,
    ));
    Ok(Roles {
        role: NodeRole::Manager,
        replica: Some(replica),
        wanted_role,
        stop_decisions,
        stop_agent,
        stop_rest,
        decisions: vec![leading],
        agent,
        feeder,
        rest: vec![server, renewal, acks],
        data_plane,
    })
}

/// Wait for tasks told to stop; those stuck in a write that cannot commit are aborted.
async fn stop_all(handles: Vec<JoinHandle<()>>) {
    for mut h in handles {
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut h)
            .await
            .is_err()
        {
            h.abort();
        }
    }
}

/// Run the decisions (reconciler, node liveness, manager membership) while this manager
/// leads; stop them as soon as it does not. Each new term starts with a fresh grace
/// period for every node's heartbeats.
async fn lead_while_leader(
    store: Arc<Store>,
    replica: Arc<Replica>,
    sessions: Arc<Sessions>,
    node_id: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = replica.changes();
    let mut running: Option<(watch::Sender<bool>, Vec<JoinHandle<()>>)> = None;
    loop {
        let leading = replica.is_leader() && !*stop.borrow();
        match (leading, running.is_some()) {
            (true, false) => {
                tracing::info!(node = %node_id, "leading: starting the orchestrator, scheduler and dispatcher");
                sessions.restart(now_millis());
                let (tx, rx) = watch::channel(false);
                let handles = vec![
                    tokio::spawn(Reconciler::new(store.clone()).run(rx.clone())),
                    tokio::spawn(liveness::run(
                        store.clone(),
                        sessions.clone(),
                        node_id.clone(),
                        rx.clone(),
                    )),
                    tokio::spawn(shoal_manager::managers::run(store.clone(), rx)),
                ];
                running = Some((tx, handles));
            }
            (false, true) => {
                if let Some((tx, handles)) = running.take() {
                    tracing::info!(node = %node_id, "no longer leading: decisions stopped");
                    tx.send_replace(true);
                    stop_all(handles).await;
                }
            }
            _ => {}
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.changed() => {},
        }
    }
}

/// What a worker needs to start.
pub struct WorkerStart<'a> {
    pub cfg: &'a DaemonConfig,
    pub node_id: &'a str,
    pub hostname: &'a str,
    pub membership: &'a Membership,
    pub certs: Certs,
    pub status: watch::Sender<DataPlaneStatus>,
    /// The node's container engine, if it has one.
    pub engine: Option<EngineInfo>,
    /// Where the data plane runs.
    pub data_plane: &'a tokio::runtime::Handle,
    /// The data plane of the role set this one replaces (a role change), to keep routing
    /// with; `None` starts a new one.
    pub kept_data_plane: Option<DataPlane>,
}

/// A worker: an agent and a data plane fed by a session with the leader.
pub async fn start_worker(s: WorkerStart<'_>) -> anyhow::Result<Roles> {
    let WorkerStart {
        cfg,
        node_id,
        hostname,
        membership,
        certs,
        status,
        engine,
        data_plane,
        kept_data_plane,
    } = s;
    let c = Common {
        cfg,
        node_id,
        hostname,
        membership,
        status,
        engine,
        data_plane,
    };
    let (stop_decisions, _) = watch::channel(false);
    let (stop_agent, stop_agent_rx) = watch::channel(AgentStop::Run);
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
    let (remote, data_plane, feeder) = session_and_data_plane(
        &c,
        kept_data_plane,
        managers.clone(),
        client_tls_rx,
        stop_rest_rx.clone(),
        NodeRole::Worker,
    );
    let drained = remote.cluster_acked();
    let wanted_role = remote.wanted_role();
    let agent = tokio::spawn(
        agent(&c, remote, drained, data_plane.resolver())
            .await?
            .run(stop_agent_rx),
    );
    let renewal = tokio::spawn(renew::worker_loop(
        cfg.data_dir.clone(),
        managers,
        certs,
        client_tls,
        stop_rest_rx,
    ));
    Ok(Roles {
        role: NodeRole::Worker,
        replica: None,
        wanted_role,
        stop_decisions,
        stop_agent,
        stop_rest,
        decisions: vec![],
        agent,
        feeder,
        rest: vec![renewal],
        data_plane,
    })
}
