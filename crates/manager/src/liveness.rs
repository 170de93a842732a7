//! Node liveness: heartbeats in, `down` decisions out.
//!
//! The session table is in memory (not replicated: after a manager restart every node gets
//! a fresh grace period). [`overdue`] is the pure decision; [`run`] the driver that writes
//! `NodeState::Down` for nodes that missed [`MISSED_HEARTBEATS_DOWN`] beats.

use crate::now_millis;
use shoal_api::cluster::MISSED_HEARTBEATS_DOWN;
use shoal_api::{ClusterState, NodeState};
use shoal_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Last heartbeat (Unix ms) and acknowledged endpoint version per node.
#[derive(Debug)]
pub struct Sessions {
    started: std::sync::atomic::AtomicU64,
    beats: Mutex<HashMap<String, (u64, u64)>>,
    /// Woken when a node acknowledges a new endpoint-table version.
    acks_changed: tokio::sync::Notify,
}

impl Sessions {
    pub fn new(now: u64) -> Sessions {
        Sessions {
            started: std::sync::atomic::AtomicU64::new(now),
            beats: Mutex::new(HashMap::new()),
            acks_changed: tokio::sync::Notify::new(),
        }
    }

    /// Forget every session and start a new grace period (this manager became the leader:
    /// what it saw while following is stale).
    pub fn restart(&self, now: u64) {
        let mut b = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        b.clear();
        self.started.store(now, std::sync::atomic::Ordering::SeqCst);
        self.acks_changed.notify_one();
    }

    /// A heartbeat; `acked_version` is the table version the node's mesh routes by (None at
    /// session start: keep what it acknowledged before).
    pub fn beat(&self, node_id: &str, acked_version: Option<u64>, now: u64) {
        let mut b = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        let entry = b.entry(node_id.to_string()).or_insert((now, 0));
        entry.0 = now;
        if let Some(v) = acked_version {
            if v != entry.1 {
                entry.1 = v;
                self.acks_changed.notify_one();
            }
        }
    }

    /// The endpoint-table version each node last acknowledged.
    pub fn acks(&self) -> HashMap<String, u64> {
        let b = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        b.iter().map(|(k, (_, v))| (k.clone(), *v)).collect()
    }

    /// Last heartbeat of every node that sent one, and the start time for the others.
    pub fn snapshot(&self) -> (u64, HashMap<String, u64>) {
        let b = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        (
            self.started.load(std::sync::atomic::Ordering::SeqCst),
            b.iter().map(|(k, (t, _))| (k.clone(), *t)).collect(),
        )
    }
}

/// Extra time a node not heard from since this manager started (or began to lead) has to
/// come back: its agent retries with a backoff of up to 2 s, and a manager that just
/// started must not take a reconnect still under way for a dead node and replace its tasks.
pub const RECONNECT_GRACE_MS: u64 = 3_000;

/// Nodes (other than `local`) not yet down whose last heartbeat is older than the limit
/// (plus [`RECONNECT_GRACE_MS`] for a node not heard from since `started`).
pub fn overdue(
    state: &ClusterState,
    local: &str,
    started: u64,
    last: &HashMap<String, u64>,
    now: u64,
) -> Vec<String> {
    let period = state
        .cluster
        .as_ref()
        .map_or(1000, |c| c.heartbeat_period_ms);
    let limit = period * MISSED_HEARTBEATS_DOWN;
    state
        .nodes
        .values()
        .filter(|n| n.id != local && n.state != NodeState::Down)
        .filter(|n| {
            // A node is timed from its last beat, the manager's start or its own join,
            // whichever is latest: a node that just joined is not overdue yet.
            let beat = last.get(&n.id).copied().filter(|b| *b >= started);
            let seen = beat.unwrap_or(started).max(n.created_at);
            let grace = if beat.is_none() {
                RECONNECT_GRACE_MS
            } else {
                0
            };
            now.saturating_sub(seen) > limit + grace
        })
        .map(|n| n.id.clone())
        .collect()
}

/// The lowest endpoint-table version every reachable node routes by: the local node's mesh
/// and every other node that is ready. A task removed at version `v` receives no new
/// connection anywhere once this reaches `v` — the signal agents wait for before stopping it.
pub fn cluster_acked(
    state: &ClusterState,
    local: &str,
    local_ack: u64,
    acks: &HashMap<String, u64>,
) -> u64 {
    state
        .nodes
        .values()
        .filter(|n| n.id != local && n.state == NodeState::Ready)
        .map(|n| acks.get(&n.id).copied().unwrap_or(0))
        .fold(local_ack, u64::min)
}

/// Keep `out` at [`cluster_acked`] as heartbeats, the local mesh and node states change.
pub async fn track_acks(
    store: Arc<Store>,
    sessions: Arc<Sessions>,
    local: String,
    mut local_ack: watch::Receiver<u64>,
    out: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = store.subscribe();
    loop {
        let state = changes.borrow_and_update().clone();
        let v = cluster_acked(
            &state,
            &local,
            *local_ack.borrow_and_update(),
            &sessions.acks(),
        );
        out.send_if_modified(|cur| {
            let changed = *cur != v;
            *cur = v;
            changed
        });
        tokio::select! {
            _ = sessions.acks_changed.notified() => {},
            r = local_ack.changed() => if r.is_err() { return },
            r = changes.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Check every half period; mark overdue nodes down.
pub async fn run(
    store: Arc<Store>,
    sessions: Arc<Sessions>,
    local: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let period = store
            .state()
            .cluster
            .as_ref()
            .map_or(1000, |c| c.heartbeat_period_ms);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis((period / 2).max(50))) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        let (started, last) = sessions.snapshot();
        let now = now_millis();
        let down = overdue(&store.state(), &local, started, &last, now);
        if down.is_empty() {
            continue;
        }
        let res = store.update(|tx| {
            for id in &down {
                if let Some(mut n) = tx.state().nodes.get(id).cloned() {
                    n.state = NodeState::Down;
                    n.updated_at = now;
                    tracing::warn!(node = %id, hostname = %n.hostname, "node down: heartbeats missed");
                    tx.put(n);
                }
            }
            Ok::<_, StoreError>(())
        }).await;
        if let Err(e) = res {
            tracing::error!(error = %e, "marking nodes down failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{Node, NodeRole};

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for id in ["me", "a", "b", "c"] {
            s.nodes.insert(
                id.into(),
                Node::new(
                    id.into(),
                    id.into(),
                    NodeRole::Worker,
                    "127.0.0.1".into(),
                    0,
                ),
            );
        }
        if let Some(c) = s.nodes.get_mut("c") {
            c.state = NodeState::Down;
        }
        s
    }

    #[test]
    fn three_missed_beats_make_a_node_down() {
        let s = state();
        let last = HashMap::from([("a".to_string(), 10_000u64), ("b".to_string(), 12_500u64)]);
        // Period 1 s: limit 3 s. At 13.1 s, a (last 10 s) is overdue, b is not, c already
        // down, the local node is never judged by heartbeats.
        let mut down = overdue(&s, "me", 0, &last, 13_100);
        down.sort();
        assert_eq!(down, vec!["a".to_string()]);
    }

    #[test]
    fn a_node_that_just_joined_is_not_overdue() {
        let mut s = state();
        if let Some(a) = s.nodes.get_mut("a") {
            a.created_at = 100_000;
        }
        let none = HashMap::new();
        let down = overdue(&s, "me", 0, &none, 101_000);
        assert!(!down.contains(&"a".to_string()), "{down:?}");
        assert!(down.contains(&"b".to_string()), "{down:?}");
    }

    #[test]
    fn cluster_ack_is_the_lowest_of_reachable_nodes() {
        let s = state();
        // c is down: it does not hold anything up. me (local) acked 9, a 7, b nothing yet.
        let acks = HashMap::from([("a".to_string(), 7u64), ("c".to_string(), 1u64)]);
        assert_eq!(
            cluster_acked(&s, "me", 9, &acks),
            0,
            "b has acknowledged nothing"
        );
        let acks = HashMap::from([
            ("a".to_string(), 7u64),
            ("b".to_string(), 8u64),
            ("c".to_string(), 1u64),
        ]);
        assert_eq!(cluster_acked(&s, "me", 9, &acks), 7);
        assert_eq!(cluster_acked(&s, "me", 5, &acks), 5);
    }

    #[test]
    fn nodes_get_a_grace_period_after_manager_start() {
        let s = state();
        let none = HashMap::new();
        // Not heard from since the start: three beats plus the time to reconnect.
        assert!(overdue(&s, "me", 50_000, &none, 55_500).is_empty());
        let mut down = overdue(&s, "me", 50_000, &none, 56_500);
        down.sort();
        assert_eq!(down, vec!["a".to_string(), "b".to_string()]);
        // Heard from since: three beats only; b, never heard from, still has time.
        let a = HashMap::from([("a".to_string(), 51_000u64)]);
        assert_eq!(overdue(&s, "me", 50_000, &a, 54_500), vec!["a".to_string()]);
        assert!(overdue(&s, "me", 50_000, &a, 53_900).is_empty());
    }
}
