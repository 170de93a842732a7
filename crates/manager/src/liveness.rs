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
    started: u64,
    beats: Mutex<HashMap<String, (u64, u64)>>,
}

impl Sessions {
    pub fn new(now: u64) -> Sessions {
        Sessions {
            started: now,
            beats: Mutex::new(HashMap::new()),
        }
    }

    pub fn beat(&self, node_id: &str, acked_version: u64, now: u64) {
        let mut b = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        b.insert(node_id.to_string(), (now, acked_version));
    }

    /// Last heartbeat of every node that sent one, and the start time for the others.
    pub fn snapshot(&self) -> (u64, HashMap<String, u64>) {
        let b = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        (
            self.started,
            b.iter().map(|(k, (t, _))| (k.clone(), *t)).collect(),
        )
    }
}

/// Nodes (other than `local`) not yet down whose last heartbeat is older than the limit.
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
            let seen = last.get(&n.id).copied().unwrap_or(started).max(started);
            now.saturating_sub(seen) > limit
        })
        .map(|n| n.id.clone())
        .collect()
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
                    tx.put_node(n);
                }
            }
            Ok::<_, StoreError>(())
        });
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
    fn nodes_get_a_grace_period_after_manager_start() {
        let s = state();
        let none = HashMap::new();
        assert!(overdue(&s, "me", 50_000, &none, 52_000).is_empty());
        let mut down = overdue(&s, "me", 50_000, &none, 53_500);
        down.sort();
        assert_eq!(down, vec!["a".to_string(), "b".to_string()]);
    }
}
