//! A worker's dispatcher: a session with a manager over mTLS.
//!
//! One loop keeps a session open (reconnecting with backoff, trying each known manager),
//! turns its messages into assignments and data-plane snapshots, and sends heartbeats with the
//! endpoint version the local data plane routes by. Reports are queued and sent in order,
//! retried until a manager takes them, so nothing is lost across reconnects. Tasks keep
//! running and the mesh keeps its last table while no manager answers. Beside the session,
//! the node listens for log subscriptions and serves each from its own log files.

use rustls::ClientConfig;
use shoal_agent::{Assignments, Dispatcher, TaskReport};
use shoal_api::task_log::LogRequest;
use shoal_api::{NodeDescription, NodeRole};
use shoal_balance::DataPlaneSnapshot;
use shoal_manager::leader::leader_of;
use shoal_rpc::proto::dispatcher_client::DispatcherClient;
use shoal_rpc::proto::{
    Empty, HeartbeatRequest, LogChunk, LogSubscription, SessionRequest, StatusReport,
};
use shoal_rpc::session::Session;
use shoal_rpc::tls;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Where this node's task logs are, served to log subscriptions.
    pub logs_dir: PathBuf,
}

#[derive(Debug)]
pub struct RemoteDispatcher {
    assignments: watch::Sender<Arc<Assignments>>,
    /// Managers to try, as last told by one (the initial list until then).
    managers: std::sync::Mutex<Vec<SocketAddr>>,
    /// The role the cluster wants this node to have.
    role: watch::Sender<Option<NodeRole>>,
    data_plane: watch::Sender<Arc<DataPlaneSnapshot>>,
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
        let (data_plane, _) = watch::channel(Arc::new(DataPlaneSnapshot::default()));
        let (cluster_acked, _) = watch::channel(0);
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let d = Arc::new(RemoteDispatcher {
            assignments,
            managers: std::sync::Mutex::new(cfg.managers.clone()),
            role: watch::channel(None).0,
            data_plane,
            cluster_acked,
            reports,
        });
        let (channel_tx, channel_rx) = watch::channel::<Option<Channel>>(None);
        tokio::spawn(log_loop(
            cfg.logs_dir.clone(),
            channel_rx.clone(),
            stop.clone(),
        ));
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

    /// The data plane's snapshot of the services, as last received.
    pub fn data_plane(&self) -> watch::Receiver<Arc<DataPlaneSnapshot>> {
        self.data_plane.subscribe()
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
            let session = Session::decode(&msg).map_err(|e| SessionError::Other(e.into()))?;
            let managers: Vec<SocketAddr> = session
                .managers
                .iter()
                .filter_map(|m| m.parse().ok())
                .collect();
            if !managers.is_empty() {
                *d.managers.lock().unwrap_or_else(|p| p.into_inner()) = managers;
            }
            if let Some(role) = session.role {
                d.role.send_if_modified(|r| {
                    let changed = *r != Some(role);
                    *r = Some(role);
                    changed
                });
            }
            period_tx.send_replace(session.heartbeat_period.max(Duration::from_millis(50)));
            d.data_plane.send_replace(session.data_plane);
            d.cluster_acked.send_replace(session.cluster_acked);
            d.assignments.send_replace(Arc::new(Assignments {
                version: session.version,
                tasks: session.tasks,
                files: session.files,
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

/// Listen for log subscriptions on the current session's channel, serving each from this
/// node's log files; over again whenever the session moves (to a new leader).
async fn log_loop(
    dir: PathBuf,
    mut channel: watch::Receiver<Option<Channel>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let current = channel.borrow_and_update().clone();
        if let Some(ch) = current {
            tokio::select! {
                r = serve_subscriptions(&dir, ch) => {
                    if let Err(s) = r {
                        tracing::debug!(error = %s.message(), "log subscriptions ended");
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        // A new session (or, after an error, a short pause) before listening again.
        tokio::select! {
            r = channel.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(BACKOFF_MAX) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One subscriptions stream: each subscription is served by its own task, told about more
/// tasks while following, stopped when the leader closes it or the stream ends.
async fn serve_subscriptions(dir: &std::path::Path, ch: Channel) -> Result<(), tonic::Status> {
    let mut subs = DispatcherClient::new(ch.clone())
        .log_subscriptions(Empty {})
        .await?
        .into_inner();
    let mut serving: HashMap<String, (watch::Sender<Vec<String>>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let result = loop {
        let sub = match subs.message().await {
            Ok(Some(sub)) => sub,
            Ok(None) => break Ok(()),
            Err(s) => break Err(s),
        };
        serving.retain(|_, (_, task)| !task.is_finished());
        if sub.close {
            if let Some((_, task)) = serving.remove(&sub.id) {
                task.abort();
            }
            continue;
        }
        if let Some((tasks, _)) = serving.get(&sub.id) {
            tasks.send_replace(sub.task_ids);
            continue;
        }
        let (tasks, tasks_rx) = watch::channel(sub.task_ids.clone());
        let task = tokio::spawn(publish_logs(
            dir.to_path_buf(),
            ch.clone(),
            sub.clone(),
            tasks_rx,
        ));
        serving.insert(sub.id, (tasks, task));
    };
    for (_, (_, task)) in serving {
        task.abort();
    }
    result
}

/// Send one subscription's lines to the leader, as they are read.
async fn publish_logs(
    dir: PathBuf,
    ch: Channel,
    sub: LogSubscription,
    tasks: watch::Receiver<Vec<String>>,
) {
    let request = LogRequest {
        tail: usize::try_from(sub.tail).ok(),
        since: (sub.since_unix_nanos != 0).then_some(sub.since_unix_nanos),
        follow: sub.follow,
    };
    let (lines_tx, lines_rx) = mpsc::channel(4);
    let reader = tokio::spawn(shoal_agent::serve_logs(dir, tasks, request, lines_tx));
    let id = sub.id;
    // The first message names the subscription, even when there is nothing to send.
    let first = LogChunk {
        subscription_id: id.clone(),
        lines: Vec::new(),
    };
    let chunks = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(lines_rx),
        move |batch: Vec<shoal_api::task_log::LogLine>| LogChunk {
            subscription_id: id.clone(),
            lines: batch
                .into_iter()
                .map(|l| shoal_rpc::proto::LogLine {
                    task_id: l.task_id,
                    time_unix_nanos: l.time.unwrap_or(0),
                    line: l.line,
                })
                .collect(),
        },
    );
    let stream = tokio_stream::StreamExt::chain(tokio_stream::once(first), chunks);
    if let Err(s) = DispatcherClient::new(ch).publish_logs(stream).await {
        tracing::debug!(error = %s.message(), "publishing logs failed");
    }
    reader.abort();
}
