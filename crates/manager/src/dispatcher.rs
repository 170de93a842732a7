//! The `Dispatcher` gRPC service: agent sessions.
//!
//! A session streams the node's assignments and the cluster's endpoint table whenever they
//! change (full snapshots, idempotent), so a reconnecting agent simply picks up the current
//! state without restarting its tasks. What the node says when its session opens (address,
//! hostname, description: see [`crate::announcement`]) updates its record. Heartbeats feed [`crate::liveness`]; status reports
//! are applied to the store, each node only for its own tasks.

use crate::announcement::Announcement;
use crate::ca::{member, reachable_addr};
use crate::endpoints::SnapshotCache;
use crate::leader::{require_leader, store_status};
use crate::liveness::Sessions;
use crate::log_broker::{LogBroker, LogEvent, Subscribed};
use crate::now_millis;
use std::time::Duration;

/// How often an idle session checks that this manager still leads.
const LEADERSHIP_CHECK: Duration = Duration::from_millis(500);
use crate::reports::apply_reports;
use shoal_api::task_log::LogLine;
use shoal_api::{ClusterState, NodeRole, NodeState, Task, TaskReport, TaskState};
use shoal_balance::DataPlaneSnapshot;
use shoal_rpc::proto::{
    self, dispatcher_server, Empty, HeartbeatRequest, HeartbeatResponse, LogChunk, LogSubscription,
    SessionMessage, SessionRequest, StatusReport,
};
use shoal_rpc::session::Session;
use shoal_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct DispatcherService {
    pub store: Arc<Store>,
    pub sessions: Arc<Sessions>,
    /// The endpoint-table version every reachable node routes by (see `liveness::track_acks`).
    pub cluster_acked: tokio::sync::watch::Receiver<u64>,
    /// Log readers waiting for lines from the nodes.
    pub logs: Arc<LogBroker>,
    /// The data plane's snapshot, built once per store version for every session.
    pub snapshots: Arc<SnapshotCache>,
}

/// The tasks a node's agent is given: those assigned to it, from `assigned` on.
fn assigned_tasks(state: &ClusterState, node_id: &str) -> Vec<Task> {
    state
        .tasks
        .values()
        .filter(|t| t.node_id.as_deref() == Some(node_id) && t.status.state >= TaskState::Assigned)
        .cloned()
        .collect()
}

async fn mark_ready(store: &Store, node_id: &str, now: u64) -> Result<(), StoreError> {
    store
        .update(|tx| {
            if let Some(mut n) = tx.state().nodes.get(node_id).cloned() {
                if n.state != NodeState::Ready {
                    n.state = NodeState::Ready;
                    n.updated_at = now;
                    tx.put(n);
                }
            }
            Ok(())
        })
        .await
}

type SessionStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<SessionMessage, Status>> + Send>>;
type LogSubscriptionsStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<LogSubscription, Status>> + Send>>;

/// What changed for `node` between the subscriptions it was sent and `now`: new or grown
/// ones to send, and the IDs of those gone.
fn subscription_changes(
    node: &str,
    sent: &BTreeMap<String, Vec<String>>,
    now: &BTreeMap<String, Subscribed>,
) -> (Vec<LogSubscription>, Vec<String>) {
    let mut send = Vec::new();
    for s in now.values() {
        let Some(tasks) = s.tasks.get(node) else {
            continue;
        };
        if sent.get(&s.id) != Some(tasks) {
            send.push(LogSubscription {
                id: s.id.clone(),
                task_ids: tasks.clone(),
                tail: s
                    .request
                    .tail
                    .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
                since_unix_nanos: s.request.since.unwrap_or(0),
                follow: s.request.follow,
                close: false,
            });
        }
    }
    let gone = sent
        .keys()
        .filter(|id| now.get(*id).is_none_or(|s| !s.tasks.contains_key(node)))
        .cloned()
        .collect();
    (send, gone)
}

fn log_lines(lines: Vec<proto::LogLine>) -> Vec<LogLine> {
    lines
        .into_iter()
        .map(|l| LogLine {
            task_id: l.task_id,
            time: (l.time_unix_nanos != 0).then_some(l.time_unix_nanos),
            line: l.line,
        })
        .collect()
}

#[tonic::async_trait]
impl dispatcher_server::Dispatcher for DispatcherService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        require_leader(&self.store)?;
        let node = member(&self.store, &req)?;
        let said = Announcement {
            addr: reachable_addr(&req, &req.get_ref().addr),
            hostname: shoal_api::node::clean_hostname(&req.get_ref().hostname),
            description: Announcement::description(&node.id, &req.get_ref().description_json),
        };
        let now = now_millis();
        self.sessions.beat(&node.id, None, now);
        let node_id = node.id.clone();
        self.store
            .update(|tx| {
                let changed = tx
                    .state()
                    .nodes
                    .get(&node_id)
                    .and_then(|n| said.apply(n, now));
                if let Some(n) = changed {
                    tx.put(n);
                }
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(store_status)?;
        tracing::info!(node = %node.id, hostname = %node.hostname, "agent session started");

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let mut acked = self.cluster_acked.clone();
        let snapshots = self.snapshots.clone();
        tokio::spawn(async move {
            let mut changes = store.subscribe();
            let mut last: Option<(
                Vec<Task>,
                Arc<DataPlaneSnapshot>,
                shoal_api::Node,
                u64,
                NodeRole,
            )> = None;
            loop {
                if let Err(s) = require_leader(&store) {
                    // Leadership moved: the agent reconnects to the new leader.
                    let _ = tx.send(Err(s)).await;
                    return;
                }
                let state = changes.borrow_and_update().clone();
                let Some(me) = state.nodes.get(&node_id).cloned() else {
                    let _ = tx
                        .send(Err(Status::permission_denied(format!(
                            "node {node_id} has been removed from the cluster"
                        ))))
                        .await;
                    return;
                };
                // A demoted manager is told so only once the Raft group has let it go: a node
                // that stopped its replica first could take with it the vote the group needs
                // to remove it (two managers, one demoted).
                let in_group = store.replica().is_some_and(|r| {
                    let g = r.status();
                    g.voters
                        .iter()
                        .chain(&g.learners)
                        .any(|p| p.node == node_id)
                });
                let role = match me.role {
                    NodeRole::Worker if in_group => NodeRole::Manager,
                    r => r,
                };
                let tasks = assigned_tasks(&state, &node_id);
                let built = snapshots.get(&state);
                let version = built.snapshot.version;
                let cluster_acked = *acked.borrow_and_update();
                // The snapshot's version moves with every write: a session is sent again
                // when what it routes by changes, not its number.
                let changed = last.as_ref().is_none_or(|(t, d, n, a, r)| {
                    *t != tasks
                        || !d.same_routes(&built.snapshot)
                        || *n != me
                        || *a != cluster_acked
                        || *r != role
                });
                if changed {
                    let cluster = state.cluster.as_ref();
                    let session = Session {
                        version,
                        files: shoal_api::TaskFiles::for_tasks(&state, &tasks),
                        tasks,
                        data_plane: built.snapshot,
                        endpoints: built.ingress,
                        heartbeat_period: Duration::from_millis(
                            cluster.map_or(1000, |c| c.heartbeat_period_ms),
                        ),
                        managers: cluster.map(|c| c.managers.clone()).unwrap_or_default(),
                        cluster_acked,
                        role: Some(role),
                    };
                    let msg = session
                        .encode()
                        .map_err(|e| Status::internal(e.to_string()));
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                    let Session {
                        tasks, data_plane, ..
                    } = session;
                    last = Some((tasks, data_plane, me, cluster_acked, role));
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    r = acked.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(LEADERSHIP_CHECK) => {},
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        require_leader(&self.store)?;
        let node = member(&self.store, &req)?;
        let now = now_millis();
        self.sessions
            .beat(&node.id, Some(req.get_ref().acked_version), now);
        if node.state != NodeState::Ready {
            // A node marked down (missed beats: a slow network or manager) whose session
            // survived is back as soon as it beats again.
            mark_ready(&self.store, &node.id, now)
                .await
                .map_err(store_status)?;
            tracing::info!(node = %node.id, hostname = %node.hostname, "node ready again");
        }
        let period_ms = self
            .store
            .state()
            .cluster
            .as_ref()
            .map_or(1000, |c| c.heartbeat_period_ms);
        Ok(Response::new(HeartbeatResponse { period_ms }))
    }

    type LogSubscriptionsStream = LogSubscriptionsStream;

    async fn log_subscriptions(
        &self,
        req: Request<Empty>,
    ) -> Result<Response<Self::LogSubscriptionsStream>, Status> {
        require_leader(&self.store)?;
        let node = member(&self.store, &req)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let broker = self.logs.clone();
        let (n, mut subs) = broker.listen(&node.id);
        tokio::spawn(async move {
            let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
            loop {
                if let Err(s) = require_leader(&store) {
                    let _ = tx.send(Err(s)).await;
                    break;
                }
                // A node marked down (missed heartbeats: a cut link shows no close) sends
                // nothing more; readers waiting for it hear so.
                let down = store
                    .state()
                    .nodes
                    .get(&node.id)
                    .is_none_or(|n| n.state == NodeState::Down);
                if down {
                    break;
                }
                let now = subs.borrow_and_update().clone();
                let (send, gone) = subscription_changes(&node.id, &sent, &now);
                for id in gone {
                    sent.remove(&id);
                    let close = LogSubscription {
                        id,
                        close: true,
                        ..LogSubscription::default()
                    };
                    if tx.send(Ok(close)).await.is_err() {
                        break;
                    }
                }
                for s in send {
                    sent.insert(s.id.clone(), s.task_ids.clone());
                    if tx.send(Ok(s)).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    r = subs.changed() => if r.is_err() { break },
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(LEADERSHIP_CHECK) => {},
                }
            }
            broker.unlisten(&node.id, n);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn publish_logs(
        &self,
        req: Request<tonic::Streaming<LogChunk>>,
    ) -> Result<Response<Empty>, Status> {
        let node = member(&self.store, &req)?;
        let mut chunks = req.into_inner();
        let Some(first) = chunks.message().await? else {
            return Ok(Response::new(Empty {}));
        };
        let id = first.subscription_id;
        let Some(to) = self.logs.sender(&id, &node.id) else {
            // The reader has gone: ending the call tells the node to stop.
            return Ok(Response::new(Empty {}));
        };
        let mut lines = first.lines;
        loop {
            if !lines.is_empty() {
                let event = LogEvent::Lines {
                    node: node.id.clone(),
                    lines: log_lines(std::mem::take(&mut lines)),
                };
                if to.send(event).await.is_err() {
                    return Ok(Response::new(Empty {}));
                }
            }
            match chunks.message().await {
                Ok(Some(chunk)) => lines = chunk.lines,
                Ok(None) => {
                    self.logs.finished(&id, &node.id, None);
                    return Ok(Response::new(Empty {}));
                }
                Err(s) => {
                    let why = format!("the node stopped sending: {}", s.message());
                    self.logs.finished(&id, &node.id, Some(why));
                    return Err(s);
                }
            }
        }
    }

    async fn report_status(&self, req: Request<StatusReport>) -> Result<Response<Empty>, Status> {
        require_leader(&self.store)?;
        let node = member(&self.store, &req)?;
        let reports: Vec<TaskReport> = serde_json::from_slice(&req.get_ref().reports_json)
            .map_err(|e| Status::invalid_argument(format!("reports: {e}")))?;
        apply_reports(&self.store, &reports, &node.id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(Empty {}))
    }
}
