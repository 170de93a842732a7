//! `GET /events`: the cluster's changes as the Docker Engine reports them in swarm mode,
//! for `docker events` and the clients that follow it.
//!
//! [`EventLog::follow`] watches the store and diffs each committed state against the one
//! before, kind by kind ([`diff`]): an object that appears is a `create`, one that goes a
//! `remove`, one whose Docker-visible part changed an `update`. A kind takes part by
//! implementing [`EventSource`] (its Docker type name, its `name` attribute) and by one
//! line in [`diff`]. Tasks have events too (Swarm has none). The log keeps the last
//! [`HISTORY`] events for `since`; a request streams the ones its filters choose until
//! `until`, or until the client goes away. States the watch coalesces (two writes in quick
//! succession) are diffed as one change.

use crate::control::{ApiError, ControlState};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use shoal_api::{ClusterState, Node, Service};
use shoal_store::{Kind, Store};
use shoal_wire::docker::events::{event_filters, event_time, EventMessage};
use shoal_wire::docker::Filters;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Events kept for `since` (the Docker Engine keeps as many).
pub const HISTORY: usize = 256;
/// Events a slow reader may fall behind by before it misses some.
const LIVE_QUEUE: usize = 1024;

/// A kind of cluster object `docker events` reports.
pub trait EventSource: Kind {
    /// Docker's name for the type (`service`, `node`, `network`, `secret`, `config`).
    const TYPE: &'static str;
    /// The actor's `name` attribute.
    fn name(&self) -> std::borrow::Cow<'_, str>;
    /// Whether it changed from `old` in what a Docker client sees (an `update` event). By
    /// default any change counts.
    fn changed(&self, old: &Self) -> bool {
        serde_json::to_value(self).ok() != serde_json::to_value(old).ok()
    }
    /// What an `update` names as changed, beside `name` (`replicas.old`, `state.new`...).
    fn changes(&self, _old: &Self, _attributes: &mut BTreeMap<String, String>) {}
}

/// The events from `old` to `new`, at `time_nano`.
pub fn diff(old: &ClusterState, new: &ClusterState, time_nano: i64) -> Vec<EventMessage> {
    let mut out = Vec::new();
    diff_kind::<Node>(old, new, time_nano, &mut out);
    diff_kind::<Service>(old, new, time_nano, &mut out);
    diff_kind::<shoal_api::Task>(old, new, time_nano, &mut out);
    diff_kind::<shoal_api::Network>(old, new, time_nano, &mut out);
    diff_kind::<shoal_api::Secret>(old, new, time_nano, &mut out);
    diff_kind::<shoal_api::Config>(old, new, time_nano, &mut out);
    out
}

fn diff_kind<K: EventSource>(
    old: &ClusterState,
    new: &ClusterState,
    time_nano: i64,
    out: &mut Vec<EventMessage>,
) {
    let (before, after) = (K::map(old), K::map(new));
    let event = |action: &str, o: &K, attributes: BTreeMap<String, String>| {
        let mut attributes = attributes;
        attributes.insert("name".into(), o.name().into_owned());
        EventMessage::swarm(K::TYPE, action, o.id(), attributes, time_nano)
    };
    for (id, now) in after {
        match before.get(id) {
            None => out.push(event("create", now, BTreeMap::new())),
            Some(was) if now.changed(was) => {
                let mut attributes = BTreeMap::new();
                now.changes(was, &mut attributes);
                out.push(event("update", now, attributes));
            }
            Some(_) => {}
        }
    }
    for (id, was) in before {
        if !after.contains_key(id) {
            out.push(event("remove", was, BTreeMap::new()));
        }
    }
}

/// `x.old` and `x.new` when they differ.
fn changed_pair(attributes: &mut BTreeMap<String, String>, key: &str, old: &str, new: &str) {
    if old != new {
        attributes.insert(format!("{key}.old"), old.to_owned());
        attributes.insert(format!("{key}.new"), new.to_owned());
    }
}

impl EventSource for Service {
    const TYPE: &'static str = "service";

    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.spec.name.as_str().into()
    }

    /// Its spec (shoal's or the Docker one it was sent) or its rollout's state, not the
    /// bookkeeping of its tasks.
    fn changed(&self, old: &Self) -> bool {
        self.spec != old.spec
            || self.docker_spec != old.docker_spec
            || self.update_status.as_ref().map(|u| u.state)
                != old.update_status.as_ref().map(|u| u.state)
    }

    fn changes(&self, old: &Self, attributes: &mut BTreeMap<String, String>) {
        if let (Some(was), Some(now)) = (old.spec.task.image(), self.spec.task.image()) {
            changed_pair(attributes, "image", was, now);
        }
        if let (Some(was), Some(now)) = (old.spec.replicas(), self.spec.replicas()) {
            changed_pair(attributes, "replicas", &was.to_string(), &now.to_string());
        }
        let state = |s: &Service| s.update_status.as_ref().map(|u| u.state.as_str());
        match (state(old), state(self)) {
            (None, Some(now)) => {
                attributes.insert("updatestate.new".into(), now.into());
            }
            (Some(was), Some(now)) => changed_pair(attributes, "updatestate", was, now),
            _ => {}
        }
    }
}

/// Tasks have events too (Swarm reports their containers instead): a task's
/// name is `<service>.<slot>`, and an update is a move of its observed or desired state.
impl EventSource for shoal_api::Task {
    const TYPE: &'static str = "task";

    fn name(&self) -> std::borrow::Cow<'_, str> {
        format!("{}.{}", self.service_name, self.slot).into()
    }

    fn changed(&self, old: &Self) -> bool {
        (self.status.state, self.desired_state) != (old.status.state, old.desired_state)
    }

    fn changes(&self, old: &Self, attributes: &mut BTreeMap<String, String>) {
        attributes.insert("service.name".into(), self.service_name.clone());
        if let Some(node) = &self.node_id {
            attributes.insert("node.id".into(), node.clone());
        }
        changed_pair(
            attributes,
            "state",
            old.status.state.as_str(),
            self.status.state.as_str(),
        );
        changed_pair(
            attributes,
            "desiredstate",
            old.desired_state.as_str(),
            self.desired_state.as_str(),
        );
    }
}

impl EventSource for shoal_api::Network {
    const TYPE: &'static str = "network";

    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl<K: shoal_api::BlobKind> EventSource for shoal_api::Blob<K>
where
    shoal_api::Blob<K>: Kind,
{
    const TYPE: &'static str = K::NAME;

    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl EventSource for Node {
    const TYPE: &'static str = "node";

    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.hostname.as_str().into()
    }

    /// Its role, availability, state, labels or name, not its heartbeats and reports.
    fn changed(&self, old: &Self) -> bool {
        (
            self.role,
            self.availability,
            self.state,
            &self.labels,
            &self.hostname,
        ) != (
            old.role,
            old.availability,
            old.state,
            &old.labels,
            &old.hostname,
        )
    }

    fn changes(&self, old: &Self, attributes: &mut BTreeMap<String, String>) {
        let pairs = [
            (
                "availability",
                old.availability.as_str(),
                self.availability.as_str(),
            ),
            ("role", old.role.as_str(), self.role.as_str()),
            ("state", old.state.as_str(), self.state.as_str()),
        ];
        for (key, was, now) in pairs {
            changed_pair(attributes, key, was, now);
        }
    }
}

/// The cluster's recent events and a feed of new ones, one per daemon.
#[derive(Debug)]
pub struct EventLog {
    history: Mutex<VecDeque<EventMessage>>,
    live: broadcast::Sender<EventMessage>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(LIVE_QUEUE).0,
        }
    }
}

impl EventLog {
    /// A log fed by `store`'s changes, for as long as the log is in use.
    pub fn follow(store: &Store) -> Arc<EventLog> {
        let log = Arc::new(EventLog::default());
        tokio::spawn(feed(Arc::downgrade(&log), store.subscribe()));
        log
    }

    /// Record `events`: kept for `since`, and handed to every reader.
    pub fn record(&self, events: Vec<EventMessage>) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(e.clone());
            let _ = self.live.send(e);
        }
    }

    /// The kept events from `since` up to `until` (none when neither is given, as the
    /// Docker Engine answers), and the feed of those recorded from now on, with no gap.
    fn subscribe(
        &self,
        since: Option<i64>,
        until: Option<i64>,
    ) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.live.subscribe();
        if since.is_none() && until.is_none() {
            return (Vec::new(), live);
        }
        let past = history
            .iter()
            .filter(|e| since.is_none_or(|s| e.time_nano >= s))
            .filter(|e| until.is_none_or(|u| e.time_nano <= u))
            .cloned()
            .collect();
        (past, live)
    }
}

/// Diff each committed state against the previous one into `log`. The bulk of a state
/// installed when the node joins a cluster, or dropped when it leaves, is no event.
async fn feed(log: Weak<EventLog>, mut changes: tokio::sync::watch::Receiver<Arc<ClusterState>>) {
    let mut last = changes.borrow_and_update().clone();
    while changes.changed().await.is_ok() {
        let Some(log) = log.upgrade() else { return };
        let now = changes.borrow_and_update().clone();
        if last.cluster.is_some() && now.cluster.is_some() {
            log.record(diff(&last, &now, now_nanos()));
        }
        last = now;
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    filters: String,
}

fn line(e: &EventMessage) -> Bytes {
    let mut out = serde_json::to_vec(e).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// `GET /events[?since=T][&until=T][&filters=...]`: the kept events from `since`, then
/// new ones as they happen, one JSON message a line, until `until` passes or the client
/// goes away. An `until` already past answers the kept events only.
pub async fn events(
    State(s): State<ControlState>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    s.cluster()?;
    let filters = event_filters(&q.filters)?;
    let since = event_time("since", &q.since)?;
    let until = event_time("until", &q.until)?;
    if let (Some(a), Some(b)) = (since, until) {
        if b < a {
            return Err(ApiError::bad_request(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                q.since, q.until
            )));
        }
    }
    let (past, live) = s.events.subscribe(since, until);
    let left = until.map(|u| {
        std::time::Duration::from_nanos(u64::try_from(u.saturating_sub(now_nanos())).unwrap_or(0))
    });
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(stream(past, live, filters, left, tx));
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Send the chosen kept events, then the live ones for `left` (forever when `None`), until
/// the reader is gone.
async fn stream(
    past: Vec<EventMessage>,
    mut live: broadcast::Receiver<EventMessage>,
    filters: Filters,
    left: Option<std::time::Duration>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    for e in past.iter().filter(|e| e.matches(&filters)) {
        if tx.send(Ok(line(e))).await.is_err() {
            return;
        }
    }
    if left.is_some_and(|d| d.is_zero()) {
        // `until` is past: the kept events were all there is.
        return;
    }
    let deadline = async {
        match left {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        let e = tokio::select! {
            e = live.recv() => e,
            _ = tx.closed() => return,
            _ = &mut deadline => return,
        };
        match e {
            Ok(e) if e.matches(&filters) => {
                if tx.send(Ok(line(&e))).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "an events reader fell behind and missed events");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{Availability, NodeRole};

    fn state(nodes: &[Node], services: &[Service]) -> ClusterState {
        let mut s = ClusterState::default();
        for n in nodes {
            s.nodes.insert(n.id.clone(), n.clone());
        }
        for svc in services {
            s.services.insert(svc.id.clone(), svc.clone());
        }
        s
    }

    fn service(id: &str, name: &str, replicas: u64) -> Service {
        let spec: shoal_api::ServiceSpec = serde_json::from_value(serde_json::json!({
            "name": name, "mode": {"replicated": {"replicas": replicas}},
            "task": {"runtime": {"container": {"image": "nginx:1"}}}
        }))
        .expect("spec");
        serde_json::from_value(serde_json::json!({
            "id": id, "version": 1, "spec": spec, "ports": [], "created_at": 1, "updated_at": 1
        }))
        .expect("service")
    }

    fn summary(events: &[EventMessage]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let attrs: Vec<String> = e
                    .actor
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("{} {} {} {}", e.kind, e.action, e.actor.id, attrs.join(","))
            })
            .collect()
    }

    #[test]
    fn objects_that_appear_change_and_go_are_create_update_and_remove() {
        let node = Node::new(
            "n1".into(),
            "host-1".into(),
            NodeRole::Manager,
            "10.0.0.1".into(),
            1,
        );
        let before = state(
            std::slice::from_ref(&node),
            &[service("s1", "web", 1), service("s2", "db", 1)],
        );
        let mut drained = node.clone();
        drained.availability = Availability::Drain;
        let after = state(
            &[drained],
            &[service("s1", "web", 3), service("s3", "cache", 1)],
        );
        assert_eq!(
            summary(&diff(&before, &after, 5)),
            [
                "node update n1 availability.new=drain,availability.old=active,name=host-1",
                "service update s1 name=web,replicas.new=3,replicas.old=1",
                "service create s3 name=cache",
                "service remove s2 name=db",
            ]
        );
        assert!(diff(&after, &after, 5).is_empty());
    }

    #[test]
    fn a_task_reports_its_creation_and_each_move_of_its_state() {
        let task: shoal_api::Task = serde_json::from_value(serde_json::json!({
            "id": "t1", "service_id": "s1", "service_name": "web", "slot": 2, "node_id": "n1",
            "spec_version": 1, "spec": {}, "desired_state": "running", "created_at": 1,
            "status": {"state": "assigned", "timestamp": 1, "message": "assigned"},
        }))
        .expect("a task");
        let empty = ClusterState::default();
        let mut before = ClusterState::default();
        before.tasks.insert("t1".into(), task.clone());
        assert_eq!(
            summary(&diff(&empty, &before, 5)),
            ["task create t1 name=web.2"]
        );
        let mut running = task.clone();
        running.status.state = shoal_api::TaskState::Running;
        let mut after = ClusterState::default();
        after.tasks.insert("t1".into(), running.clone());
        assert_eq!(
            summary(&diff(&before, &after, 5)),
            ["task update t1 name=web.2,node.id=n1,service.name=web,state.new=running,state.old=assigned"]
        );
        running.status.message = "started".into();
        let mut same = ClusterState::default();
        same.tasks.insert("t1".into(), running);
        assert!(
            diff(&after, &same, 5).is_empty(),
            "a message alone is no event"
        );
    }

    #[test]
    fn heartbeats_and_task_bookkeeping_are_no_events() {
        let node = Node::new(
            "n1".into(),
            "h".into(),
            NodeRole::Worker,
            "10.0.0.1".into(),
            1,
        );
        let mut seen = node.clone();
        seen.updated_at = 99;
        seen.description.nano_cpus = 4_000_000_000;
        let mut svc = service("s1", "web", 1);
        let before = state(&[node], &[svc.clone()]);
        svc.updated_at = 42;
        let after = state(&[seen], &[svc]);
        assert!(diff(&before, &after, 5).is_empty());
    }

    #[tokio::test]
    async fn a_stream_ends_when_its_reader_goes_away() {
        let log = EventLog::default();
        let (past, live) = log.subscribe(None, None);
        let (tx, rx) = mpsc::channel(4);
        let streaming = tokio::spawn(stream(past, live, Filters::default(), None, tx));
        // No event to send: it notices the reader is gone while it waits for one.
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(30), streaming)
            .await
            .expect("the stream ended")
            .expect("no panic");
        assert_eq!(log.live.receiver_count(), 0, "its subscription is gone");
    }

    #[test]
    fn since_replays_kept_events_and_none_without_since_or_until() {
        let log = EventLog::default();
        let at = |t: i64| EventMessage::swarm("service", "create", "s", BTreeMap::new(), t);
        log.record((1..=HISTORY as i64 + 10).map(at).collect());
        let (past, _) = log.subscribe(None, None);
        assert!(past.is_empty());
        let (past, _) = log.subscribe(Some(HISTORY as i64), Some(HISTORY as i64 + 2));
        let times: Vec<i64> = past.iter().map(|e| e.time_nano).collect();
        assert_eq!(
            times,
            [HISTORY as i64, HISTORY as i64 + 1, HISTORY as i64 + 2]
        );
        let (past, _) = log.subscribe(Some(0), None);
        assert_eq!(past.len(), HISTORY, "only the last {HISTORY} are kept");
        assert_eq!(past[0].time_nano, 11);
    }
}
