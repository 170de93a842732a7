//! Elections with pre-vote.
//!
//! openraft's own election timer is off. A voter that has not heard from a leader for a
//! randomized election timeout first asks every voter whether it would vote for it in the
//! next term (its log at least as new, and no leader heard from recently). Only with a
//! majority of yeses does it start a real election. A node cut off from the majority thus
//! never raises its term, and does not depose a healthy leader when it comes back.
//!
//! A leader that stops hands over by asking one voter to take over (timeout-now): that
//! voter's loop then runs at once, and again once per lease until a leader is elected,
//! with pre-votes in which recent contact does not count. It stays the only driver of the
//! node's elections meanwhile, so one attempt never cuts short another whose votes are
//! still on their way, and a voter whose log is behind never raises the term.

use super::{Replica, Rpc};
use openraft::{LogId, ServerState};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// "Would you vote for me in `term`?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVote {
    pub term: u64,
    pub last_log: Option<LogId<u64>>,
    pub candidate: String,
    /// A leadership transfer: the leader asked for it, so recent contact does not count.
    pub transfer: bool,
}

fn random_timeout(r: &Replica) -> Duration {
    let (lo, hi) = (
        r.timing.election_min.as_millis() as u64,
        r.timing.election_max.as_millis() as u64,
    );
    Duration::from_millis(rand::rng().random_range(lo..=hi.max(lo)))
}

async fn last_log(r: &Replica) -> Option<LogId<u64>> {
    r.log.last_log_id().ok().flatten()
}

/// The answer to a pre-vote.
pub(crate) async fn answer(r: &Replica, req: &PreVote) -> bool {
    let m = r.raft.metrics().borrow().clone();
    if req.term <= m.current_term {
        return false;
    }
    if req.last_log < last_log(r).await {
        return false;
    }
    if req.transfer {
        return true;
    }
    let fresh = r.timing.lease;
    if m.state == ServerState::Leader {
        // A leader still in touch with a majority (or just elected) is alive.
        return m
            .millis_since_quorum_ack
            .is_some_and(|ms| ms > r.timing.election_max.as_millis() as u64);
    }
    r.contact.since_leader().is_none_or(|d| d >= fresh)
}

/// Ask the other voters; true when a majority (this node included) would vote for it.
async fn pre_vote(r: &Replica, transfer: bool) -> bool {
    let m = r.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: Vec<u64> = membership.voter_ids().collect();
    if !voters.contains(&r.id) {
        return false;
    }
    let req = PreVote {
        term: m.current_term + 1,
        last_log: last_log(r).await,
        candidate: r.me.node.clone(),
        transfer,
    };
    let Ok(body) = serde_json::to_vec(&req) else {
        return false;
    };
    let wait = r.timing.election_min;
    let mut calls = tokio::task::JoinSet::new();
    for peer in voters
        .iter()
        .filter(|id| **id != r.id)
        .filter_map(|id| membership.get_node(id))
    {
        let call = r.transport.call(&peer.addr, Rpc::PreVote, body.clone());
        calls.spawn(async move {
            match tokio::time::timeout(wait, call).await {
                Ok(Ok(reply)) => serde_json::from_slice::<bool>(&reply).unwrap_or(false),
                _ => false,
            }
        });
    }
    // Decided as soon as the answers so far settle it: a slow or unreachable voter does
    // not hold up the others' yes.
    let (mut yes, mut no) = (1, 0);
    while let Some(granted) = calls.join_next().await {
        if granted.unwrap_or(false) {
            yes += 1;
        } else {
            no += 1;
        }
        if yes * 2 > voters.len() || no * 2 >= voters.len() {
            break;
        }
    }
    yes * 2 > voters.len()
}

async fn elect(r: &Replica) {
    if let Err(e) = r.raft.trigger().elect().await {
        tracing::warn!(error = %e, "cannot start an election");
    }
}

/// The election loop of a voter.
pub(crate) async fn run(r: Arc<Replica>, mut stop: watch::Receiver<bool>) {
    let tick = (r.timing.heartbeat / 2).max(Duration::from_millis(10));
    let mut timeout = random_timeout(&r);
    // The last attempt, kept apart from leader contact: a failed attempt must not make
    // this node turn down the others' pre-votes.
    let mut last_try: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        let m = r.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            r.contact.leader_seen();
            continue;
        }
        let transfer = r.contact.transfer_wanted(m.current_leader);
        if transfer {
            // Once per lease: a vote is answered or timed out by then, and the other
            // voters' leases on the old leader have run out.
            if last_try.is_some_and(|t| t.elapsed() < r.timing.lease) {
                continue;
            }
        } else {
            let quiet = |d: Option<Duration>| d.is_none_or(|d| d >= timeout);
            if !quiet(r.contact.since_leader()) || !quiet(last_try.map(|t| t.elapsed())) {
                continue;
            }
        }
        timeout = random_timeout(&r);
        last_try = Some(Instant::now());
        // Stopped while asking (a graceful stop): do not run after all.
        if pre_vote(&r, transfer).await && !*stop.borrow() {
            if transfer {
                tracing::info!(node = %r.me.node, "asked to take over leadership: starting an election");
            } else {
                tracing::info!(node = %r.me.node, "no leader heard from: starting an election");
            }
            elect(&r).await;
        }
    }
}
