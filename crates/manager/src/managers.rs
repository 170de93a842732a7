//! The Raft group follows the nodes' roles (leader only).
//!
//! `node promote` and `node demote` (and joins with the manager token) only change a node's
//! role in the store; this loop makes the replication group match: a new manager is added
//! as a learner, promoted to voter once its log has caught up, and a demoted or removed
//! one leaves the group. A leader that is itself demoted hands leadership over first. The
//! cluster's manager list, which agents reconnect with, is kept to the voters' addresses.

use shoal_api::NodeRole;
use shoal_store::raft::{Change, Replica};
use shoal_store::{Op, Store, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const PASS: Duration = Duration::from_millis(300);
/// A learner this close to the leader's last log index is caught up.
const CAUGHT_UP: u64 = 20;

pub async fn run(store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PASS) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        let Some(r) = store.replica() else { continue };
        if !r.is_leader() {
            continue;
        }
        if let Err(e) = pass(&store, &r).await {
            tracing::warn!(error = %e, "manager membership change failed; will retry");
        }
    }
}

async fn pass(store: &Store, r: &Replica) -> Result<(), StoreError> {
    let status = r.status();
    let state = store.state();
    let wanted: Vec<(String, String)> = state
        .nodes
        .values()
        .filter(|n| n.role == NodeRole::Manager)
        .filter_map(|n| Some((n.id.clone(), n.control_addr.clone()?)))
        .collect();
    let wanted_ids: BTreeSet<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
    let voters: BTreeSet<&str> = status.voters.iter().map(|p| p.node.as_str()).collect();
    let learners: BTreeSet<&str> = status.learners.iter().map(|p| p.node.as_str()).collect();

    for (id, addr) in &wanted {
        if !voters.contains(id.as_str()) && !learners.contains(id.as_str()) {
            tracing::info!(node = %id, addr = %addr, "adding manager as a learner");
            r.add_learner(id, addr).await?;
        }
    }
    for id in &learners {
        let caught_up = r
            .matched(id)
            .is_some_and(|m| m + CAUGHT_UP >= status.last_log);
        if wanted_ids.contains(id) && caught_up && status.reachable.iter().any(|n| n == id) {
            tracing::info!(node = %id, "manager caught up: promoting to voter");
            r.change(Change::Promote(vec![id.to_string()])).await?;
        }
    }
    for id in voters.iter().chain(learners.iter()) {
        if wanted_ids.contains(id) {
            continue;
        }
        if *id == r.me().node {
            tracing::info!("this manager was demoted: handing leadership over");
            r.step_down().await;
            return Ok(());
        }
        tracing::info!(node = %id, "removing manager from the group");
        r.change(Change::Remove(vec![id.to_string()])).await?;
    }

    let addrs: Vec<String> = r.status().voters.into_iter().map(|p| p.addr).collect();
    if let Some(c) = &state.cluster {
        if c.managers != addrs && !addrs.is_empty() {
            let mut c = c.clone();
            c.managers = addrs;
            store
                .update(|tx| {
                    tx.push(Op::SetCluster(Box::new(c)));
                    Ok::<_, StoreError>(())
                })
                .await?;
        }
    }
    Ok(())
}
