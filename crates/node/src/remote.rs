//! A worker's dispatcher: a session with a manager over mTLS.
//!
//! One loop keeps a session open (reconnecting with backoff, trying each known manager),
//! turns its messages into assignments and endpoint tables, and sends heartbeats with the
//! endpoint version the local data plane routes by. Reports are queued and sent in order,
//! retried until a manager takes them, so nothing is lost across reconnects. Tasks keep
//! running and the mesh keeps its last table while no manager answers.

use rustls::ClientConfig;
use shoal_agent::{Assignments, Dispatcher, TaskReport};
use shoal_api::{NodeDescription, NodeRole, Task};
use shoal_balance::EndpointTable;
use shoal_manager::leader::leader_of;
use shoal_rpc::proto::dispatcher_client::DispatcherClient;
use shoal_rpc::proto::{HeartbeatRequest, SessionRequest, StatusReport};
use shoal_rpc::tls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A report batch that could not be delivered is retried after this long.
const REPORT_RETRY: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub managers: Vec<SocketAddr>,
    pub hostname: String,
    pub addr: String,
    /// What the node tells the leader about itself when a session opens.
    pub description: NodeDescription,
}

#[derive(Debug)]
pub struct RemoteDispatcher {
    assignments: watch::Sender<Arc<Assignments>>,
    /// Managers to try, as last told by one (the initial list until then).
    managers: std::sync::Mutex<Vec<SocketAddr>>,
    /// The role the cluster wants this node to have.
    role: watch::Sender<Option<NodeRole>>,
    endpoints: watch::Sender<Arc<EndpointTable>>,
    cluster_acked: watch::Sender<u64>,
    reports: mpsc::UnboundedSender<TaskReport>,
}

impl RemoteDispatcher {
    pub fn start(
        cfg: RemoteConfig,
        tls: watch::Receiver<Arc<ClientConfig>>,
        acked: watch::Receiver<u64>,
        stop: watch::Receiver<bool>,
    ) -> Arc<RemoteDispatcher> {
        let (assignments, _) = watch::channel(Arc::new(Assignments::default()));
        let (endpoints, _) = watch::channel(Arc::new(EndpointTable::default()));
        let (cluster_acked, _) = watch::channel(0);
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let d = Arc::new(RemoteDispatcher {
            assignments,
            managers: std::sync::Mutex::new(cfg.managers.clone()),
            role: watch::channel(None).0,
            endpoints,
            cluster_acked,
            reports,
        });
        let (channel_tx, channel_rx) = watch::channel::<Option<Channel>>(None);
        tokio::spawn(session_loop(
            d.clone(),
            cfg,
            tls,
            acked,
            channel_tx,
            stop.clone(),
        ));
        tokio::spawn(report_loop(reports_rx, channel_rx, stop));
        d
    }

    /// The endpoint-table version every reachable node routes by, as last received: what
    /// the agent waits for before it stops a task.
    pub fn cluster_acked(&self) -> watch::Receiver<u64> {
        self.cluster_acked.subscribe()
    }

    /// The role the cluster wants this node to have (`node promote` / `node demote`).
    pub fn wanted_role(&self) -> watch::Receiver<Option<NodeRole>> {
        self.role.subscribe()
    }

    /// The cluster's endpoint table, as last received.
    pub fn endpoints(&self) -> watch::Receiver<Arc<EndpointTable>> {
        self.endpoints.subscribe()
    }
}

impl Dispatcher for RemoteDispatcher {
    fn assignments(&self) -> watch::Receiver<Arc<Assignments>> {
        self.assignments.subscribe()
    }

    fn report(&self, reports: Vec<TaskReport>) -> anyhow::Result<()> {
        for r in reports {
            self.reports
                .send(r)
                .map_err(|_| anyhow::anyhow!("the manager session has stopped"))?;
        }
        Ok(())
    }
}

async fn session_loop(
    d: Arc<RemoteDispatcher>,
    cfg: RemoteConfig,
    tls: watch::Receiver<Arc<ClientConfig>>,
    acked: watch::Receiver<u64>,
    channel_tx: watch::Sender<Option<Channel>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0usize;
    let mut hint: Option<SocketAddr> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let known = d.managers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(addr) = hint
            .take()
            .or_else(|| known.get(attempt % known.len().max(1)).copied())
        else {
            tracing::error!("no manager address known");
            return;
        };
        attempt += 1;
        let tls_cfg = tls.borrow().clone();
        let outcome = tokio::select! {
            r = run_session(&d, &cfg, addr, tls_cfg, acked.clone(), &channel_tx) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match outcome {
            Ok(()) => {
                tracing::warn!(manager = %addr, "manager session ended; reconnecting");
                backoff = BACKOFF_MIN;
            }
            Err(SessionError::Redirect(leader)) => {
                // Not the leader: go straight to the one it names.
                tracing::info!(manager = %addr, leader = %leader, "following the leader");
                hint = Some(leader);
                backoff = BACKOFF_MIN;
                continue;
            }
            Err(SessionError::Other(e)) => {
                tracing::warn!(manager = %addr, error = %e, "manager session failed; retrying");
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Why a session ended: a manager that is not the leader names the leader.
enum SessionError {
    Redirect(SocketAddr),
    Other(anyhow::Error),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Redirect(a) => write!(f, "the leader is at {a}"),
            SessionError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl From<tonic::Status> for SessionError {
    fn from(s: tonic::Status) -> Self {
        match leader_of(&s).and_then(|l| l.parse().ok()) {
            Some(a) => SessionError::Redirect(a),
            None => SessionError::Other(anyhow::anyhow!("{}", s.message())),
        }
    }
}

async fn run_session(
    d: &RemoteDispatcher,
    cfg: &RemoteConfig,
    addr: SocketAddr,
    tls_cfg: Arc<ClientConfig>,
    acked: watch::Receiver<u64>,
    channel_tx: &watch::Sender<Option<Channel>>,
) -> Result<(), SessionError> {
    let channel = tls::channel(addr, tls_cfg).map_err(|e| SessionError::Other(e.into()))?;
    let mut client = DispatcherClient::new(channel.clone());
    let mut stream = client
        .session(SessionRequest {
            hostname: cfg.hostname.clone(),
            addr: cfg.addr.clone(),
            // Plain data always encodes; empty would read as "not reported".
            description_json: serde_json::to_vec(&cfg.description).unwrap_or_default(),
        })
        .await
        .map_err(SessionError::from)?
        .into_inner();
    tracing::info!(manager = %addr, "manager session established");
    channel_tx.send_replace(Some(channel.clone()));
    let (period_tx, period_rx) = watch::channel(Duration::from_secs(1));
    let beats = tokio::spawn(heartbeat_loop(
        DispatcherClient::new(channel),
        acked,
        period_rx,
    ));
    let result = async {
        while let Some(msg) = stream.message().await.map_err(SessionError::from)? {
            let tasks: Vec<Task> = serde_json::from_slice(&msg.tasks_json)
                .map_err(|e| SessionError::Other(e.into()))?;
            let mut table: EndpointTable = serde_json::from_slice(&msg.endpoints_json)
                .map_err(|e| SessionError::Other(e.into()))?;
            let managers: Vec<SocketAddr> =
                msg.managers.iter().filter_map(|m| m.parse().ok()).collect();
            if !managers.is_empty() {
                *d.managers.lock().unwrap_or_else(|p| p.into_inner()) = managers;
            }
            if let Ok(role) = msg.role.parse::<NodeRole>() {
                d.role.send_if_modified(|r| {
                    let changed = *r != Some(role);
                    *r = Some(role);
                    changed
                });
            }
            table.version = msg.version;
            period_tx.send_replace(Duration::from_millis(msg.heartbeat_period_ms.max(50)));
            d.endpoints.send_replace(Arc::new(table));
            d.cluster_acked.send_replace(msg.cluster_acked_version);
            d.assignments.send_replace(Arc::new(Assignments {
                version: msg.version,
                tasks,
            }));
        }
        Ok(())
    }
    .await;
    beats.abort();
    result
}

/// Heartbeats every period, and at once when the local mesh acknowledges a new table
/// version (the manager waits for every node's acknowledgement before tasks stop).
async fn heartbeat_loop(
    mut client: DispatcherClient<Channel>,
    mut acked: watch::Receiver<u64>,
    period: watch::Receiver<Duration>,
) {
    loop {
        let acked_version = *acked.borrow_and_update();
        if let Err(s) = client.heartbeat(HeartbeatRequest { acked_version }).await {
            tracing::debug!(error = %s.message(), "heartbeat failed");
        }
        let wait = *period.borrow();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            r = acked.changed() => if r.is_err() { return },
        }
    }
}

async fn report_loop(
    mut rx: mpsc::UnboundedReceiver<TaskReport>,
    mut channel: watch::Receiver<Option<Channel>>,
    stop: watch::Receiver<bool>,
) {
    let mut pending: Vec<TaskReport> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(r) => pending.push(r),
                None => return,
            }
        }
        while let Ok(r) = rx.try_recv() {
            pending.push(r);
        }
        let current = channel.borrow_and_update().clone();
        let Some(ch) = current else {
            if *stop.borrow() {
                return;
            }
            let _ = tokio::time::timeout(REPORT_RETRY, channel.changed()).await;
            continue;
        };
        let body = match serde_json::to_vec(&pending) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encoding task reports failed");
                pending.clear();
                continue;
            }
        };
        match DispatcherClient::new(ch)
            .report_status(StatusReport { reports_json: body })
            .await
        {
            Ok(_) => pending.clear(),
            Err(s) => {
                tracing::debug!(error = %s.message(), "status report failed; will retry");
                tokio::time::sleep(REPORT_RETRY).await;
            }
        }
    }
}
