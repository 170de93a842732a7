//! Replication of the store through a Raft log (openraft 0.9). This module is the only
//! place that names openraft: the rest of shoal sees [`Replica`], [`Transport`] and
//! [`Rpc`].
//!
//! - Entries carry the [`Op`] lists [`Store::update`] records; the state machine is the
//!   store itself, applying ops, the last applied log id and the membership in one redb
//!   transaction ([`sm`]).
//! - The log, vote and committed index live in their own redb file ([`log`]); snapshots are
//!   files next to it, sent in chunks (openraft's chunked install), so no message limit
//!   caps them. Logs older than the snapshot are purged.
//! - Elections are driven here, not by openraft's timer: a voter that has not heard from a
//!   leader asks the others first (pre-vote) and starts an election only if a majority would
//!   vote for it, so a node cut off from the rest never bumps the term and disturbs the
//!   cluster when it comes back ([`election`]).
//! - Standard Raft terms (openraft's `single-term-leader`): at most one leader per term.
//! - Messages travel as JSON through a [`Transport`] the caller provides (gRPC over mTLS
//!   between managers, a simulated network in tests).

// openraft's traits fix the error type (`StorageError`, over 200 bytes); the helpers
// around them return it as is.
#![allow(clippy::result_large_err)]

mod election;
mod log;
mod network;
mod sm;

use crate::{Op, Store, StoreError};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Weak;
use std::sync::{Arc, Mutex};
use std::time::Duration;
// tokio time: openraft and the election loop run on it, so a paused or simulated clock
// drives all of them alike.
use tokio::sync::watch;
use tokio::time::Instant;

pub use election::PreVote;

#[cfg(test)]
mod tests;

/// A member of the Raft group: its node ID and control address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub node: String,
    pub addr: String,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.node, self.addr)
    }
}

/// One log entry's payload: the ops of one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub ops: Vec<Op>,
}

use std::io::Cursor;

openraft::declare_raft_types!(
    /// shoal's Raft types.
    pub TypeConfig:
        D = Batch,
        R = u64,
        NodeId = u64,
        Node = Peer,
);

type Raft = openraft::Raft<TypeConfig>;

/// The Raft ID of a node: a stable 64-bit hash of its node ID (FNV-1a).
pub fn raft_id(node: &str) -> u64 {
    node.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The calls replicas make to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rpc {
    Append,
    Vote,
    Snapshot,
    PreVote,
    /// Start an election now (leadership transfer).
    TimeoutNow,
}

impl Rpc {
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::Append => "append",
            Rpc::Vote => "vote",
            Rpc::Snapshot => "snapshot",
            Rpc::PreVote => "pre-vote",
            Rpc::TimeoutNow => "timeout-now",
        }
    }

    pub fn parse(s: &str) -> Option<Rpc> {
        [
            Rpc::Append,
            Rpc::Vote,
            Rpc::Snapshot,
            Rpc::PreVote,
            Rpc::TimeoutNow,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The log, vote and committed index, in the replica's directory.
const LOG_FILE: &str = "raft-log.redb";

/// How long a membership change may wait for a majority.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(5);

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Carries a serialized call to the replica at `addr` and returns its serialized answer.
pub trait Transport: Send + Sync + 'static {
    fn call(&self, addr: &str, rpc: Rpc, body: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>>;
}

/// Timing of the group. Defaults: heartbeats every 100 ms; a follower stops vouching for
/// a leader it has not heard from for 400 ms (its lease), and asks for votes after 500-800
/// ms, so a dead leader is replaced in well under 2 s.
#[derive(Debug, Clone)]
pub struct Timing {
    pub heartbeat: Duration,
    /// How long a follower keeps refusing votes after hearing from its leader.
    pub lease: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// Entries kept in the log behind the last snapshot.
    pub logs_kept: u64,
    pub snapshot_chunk: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(100),
            lease: Duration::from_millis(400),
            election_min: Duration::from_millis(500),
            election_max: Duration::from_millis(800),
            snapshot_every: 5000,
            logs_kept: 500,
            // Chunks travel as JSON (about 3.5 bytes per byte): keep a message well under the
            // transport's limit.
            snapshot_chunk: 512 << 10,
        }
    }
}

/// Where and who a replica is.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub node: String,
    pub addr: String,
    /// Directory for the log and snapshots.
    pub dir: PathBuf,
    pub timing: Timing,
}

/// Who is who, as this replica sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub leader: Option<Peer>,
    pub is_leader: bool,
    pub term: u64,
    pub voters: Vec<Peer>,
    pub learners: Vec<Peer>,
    /// Node IDs of members that answered the leader recently (leader's view; self included).
    pub reachable: Vec<String>,
    pub last_applied: u64,
    pub last_log: u64,
    pub snapshot: u64,
}

impl GroupStatus {
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// Last times heard: from a leader (followers) and from each peer (any role); and a
/// leader's request that this node take over.
#[derive(Debug)]
pub(crate) struct Contact {
    leader: Mutex<Option<Instant>>,
    peers: Mutex<HashMap<u64, Instant>>,
    transfer: Mutex<Option<Transfer>>,
}

/// Asked to take over from `from` (the leader then), until `until`.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    from: Option<u64>,
    until: Instant,
}

impl Contact {
    fn new() -> Contact {
        Contact {
            leader: Mutex::new(Some(Instant::now())),
            peers: Mutex::new(HashMap::new()),
            transfer: Mutex::new(None),
        }
    }

    /// The leader `from` asked this node to take over, for `within`.
    fn transfer_asked(&self, from: Option<u64>, within: Duration) {
        let until = Instant::now() + within;
        *self.transfer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Transfer { from, until });
        self.leader_lost();
    }

    /// Is this node still to take over, `leader` being the leader it knows now? Not once
    /// the time is up or another leader is elected.
    pub(crate) fn transfer_wanted(&self, leader: Option<u64>) -> bool {
        let mut t = self.transfer.lock().unwrap_or_else(|p| p.into_inner());
        let wanted =
            t.is_some_and(|t| Instant::now() < t.until && leader.is_none_or(|l| Some(l) == t.from));
        if !wanted {
            *t = None;
        }
        wanted
    }

    pub(crate) fn leader_seen(&self) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    pub(crate) fn leader_lost(&self) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Time since a leader was last heard from (`None`: told to consider it gone).
    pub(crate) fn since_leader(&self) -> Option<Duration> {
        self.leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    pub(crate) fn peer_ok(&self, id: u64) {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Instant::now());
    }

    fn peer_recent(&self, id: u64, within: Duration) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some_and(|t| t.elapsed() <= within)
    }
}

/// This node's member of the Raft group replicating its store.
pub struct Replica {
    raft: Raft,
    /// Weak: the store holds the replica while attached.
    store: Weak<Store>,
    log: log::LogStore,
    id: u64,
    me: Peer,
    timing: Timing,
    transport: Arc<dyn Transport>,
    contact: Arc<Contact>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("me", &self.me).finish()
    }
}

fn replication(e: impl std::fmt::Display) -> StoreError {
    StoreError::Replication(e.to_string())
}

impl Replica {
    /// Open the log in `cfg.dir`, attach to `store` and start taking part in the group.
    /// A node that has never been in a group waits for [`Replica::bootstrap`] or for a
    /// leader to add it.
    pub async fn start(
        cfg: ReplicaConfig,
        store: Arc<Store>,
        transport: Arc<dyn Transport>,
    ) -> Result<Arc<Replica>, StoreError> {
        std::fs::create_dir_all(&cfg.dir)
            .map_err(|e| StoreError::Write(format!("cannot create {}: {e}", cfg.dir.display())))?;
        let t = &cfg.timing;
        let config = Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: t.heartbeat.as_millis() as u64,
            // openraft's election timer is off; its maximum is the followers' lease.
            election_timeout_min: (t.lease.as_millis() as u64 * 3 / 4)
                .max(t.heartbeat.as_millis() as u64 + 1),
            election_timeout_max: t.lease.as_millis() as u64,
            // Covers the last chunk, whose answer waits for the whole state to be decoded and
            // written: for a large state on a busy machine that takes seconds, and a timeout
            // makes the leader send the snapshot again from the start.
            install_snapshot_timeout: 60_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_every),
            snapshot_max_chunk_size: t.snapshot_chunk,
            max_in_snapshot_log_to_keep: t.logs_kept,
            replication_lag_threshold: t.snapshot_every * 2,
            max_payload_entries: 300,
            // Elections are ours (pre-vote first): see `election`.
            enable_elect: false,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(replication)?);
        let id = raft_id(&cfg.node);
        let log = log::LogStore::open(&cfg.dir.join(LOG_FILE), store.sealer())?;
        let sm = sm::StateMachine::new(store.clone(), cfg.dir.join("snapshot"));
        let contact = Arc::new(Contact::new());
        let net = network::Network {
            transport: transport.clone(),
            contact: contact.clone(),
        };
        let raft = Raft::new(id, config, net, log.clone(), sm)
            .await
            .map_err(replication)?;
        let (stop, stop_rx) = watch::channel(false);
        let replica = Arc::new(Replica {
            raft,
            store: Arc::downgrade(&store),
            log,
            id,
            me: Peer {
                node: cfg.node.clone(),
                addr: cfg.addr.clone(),
            },
            timing: cfg.timing.clone(),
            transport,
            contact,
            stop,
        });
        store.attach(replica.clone())?;
        tokio::spawn(election::run(replica.clone(), stop_rx));
        Ok(replica)
    }

    /// Make this node the single voter of a new group (`shoal init`). Does nothing if the
    /// group already exists.
    pub async fn bootstrap(&self) -> Result<(), StoreError> {
        if self.raft.is_initialized().await.map_err(replication)? {
            return Ok(());
        }
        let mut members = BTreeMap::new();
        members.insert(self.id, self.me.clone());
        self.raft.initialize(members).await.map_err(replication)?;
        self.contact.leader_lost();
        Ok(())
    }

    pub fn me(&self) -> &Peer {
        &self.me
    }

    /// Is this replica the leader (as far as it knows)?
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Wakes when leadership or membership may have changed.
    pub fn changes(&self) -> watch::Receiver<impl Clone> {
        self.raft.metrics()
    }

    pub fn status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let peer = |id: &u64| membership.get_node(id).cloned();
        let voters: Vec<Peer> = membership.voter_ids().filter_map(|id| peer(&id)).collect();
        let learners: Vec<Peer> = membership
            .learner_ids()
            .filter_map(|id| peer(&id))
            .collect();
        let is_leader = m.state == ServerState::Leader;
        let within = self.timing.election_max * 2;
        let reachable = membership
            .nodes()
            .filter(|(id, _)| **id == self.id || self.contact.peer_recent(**id, within))
            .map(|(_, p)| p.node.clone())
            .collect();
        GroupStatus {
            leader: m.current_leader.and_then(|id| peer(&id)),
            is_leader,
            term: m.current_term,
            voters,
            learners,
            reachable,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            last_log: m.last_log_index.unwrap_or(0),
            snapshot: m.snapshot.map_or(0, |l| l.index),
        }
    }

    fn not_leader(&self) -> StoreError {
        StoreError::NotLeader {
            leader: self.status().leader.map(|p| p.addr),
        }
    }

    /// Fail fast when this leader has not heard from a majority for two election
    /// timeouts: it is cut off, and a write would hang. A leader just elected (no
    /// acknowledgement yet) gets that long to hear from one.
    async fn check_quorum(&self) -> Result<(), StoreError> {
        let limit = self.timing.election_max * 2;
        let deadline = Instant::now() + limit;
        loop {
            let m = self.raft.metrics().borrow().clone();
            if m.state != ServerState::Leader {
                return Err(self.not_leader());
            }
            let fresh = m
                .millis_since_quorum_ack
                .is_some_and(|ms| ms <= limit.as_millis() as u64);
            if fresh {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.no_quorum());
            }
            tokio::time::sleep(self.timing.heartbeat / 4).await;
        }
    }

    /// The error for a write that cannot be committed: no majority answers.
    pub fn no_quorum(&self) -> StoreError {
        let s = self.status();
        StoreError::NoQuorum {
            needed: s.quorum(),
            managers: s.voters.len(),
            reachable: s
                .voters
                .iter()
                .filter(|p| s.reachable.contains(&p.node))
                .map(|p| p.addr.clone())
                .collect(),
        }
    }

    /// Bring the local state up to every write committed before this call (read index),
    /// on the leader only.
    pub async fn linearize(&self) -> Result<(), StoreError> {
        self.check_quorum().await?;
        match tokio::time::timeout(
            self.timing.election_max * 2,
            self.raft.ensure_linearizable(),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(_))) => Err(self.not_leader()),
            Ok(Err(e)) => Err(replication(e)),
            Err(_) => Err(self.no_quorum()),
        }
    }

    /// Append `ops` as one entry; answers once it is committed and applied here.
    pub async fn propose(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        self.check_quorum().await?;
        match tokio::time::timeout(
            Duration::from_secs(5),
            self.raft.client_write(Batch { ops }),
        )
        .await
        {
            Ok(Ok(r)) => Ok(r.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(StoreError::NotLeader {
                    leader: f.leader_node.map(|p| p.addr),
                })
            }
            Ok(Err(e)) => Err(replication(e)),
            Err(_) if crate::disk::waiting() => Err(StoreError::Stalled),
            Err(_) => Err(self.no_quorum()),
        }
    }

    /// Add `node` as a learner: it receives the log but does not vote yet.
    pub async fn add_learner(&self, node: &str, addr: &str) -> Result<(), StoreError> {
        self.check_quorum().await?;
        let peer = Peer {
            node: node.into(),
            addr: addr.into(),
        };
        let add = self.raft.add_learner(raft_id(node), peer, false);
        match tokio::time::timeout(MEMBERSHIP_TIMEOUT, add).await {
            Ok(r) => r.map(drop).map_err(|e| self.membership_error(e)),
            Err(_) => Err(self.no_quorum()),
        }
    }

    /// Make learners voters, or voters learners, or remove members.
    pub async fn change(&self, change: Change) -> Result<(), StoreError> {
        self.check_quorum().await?;
        let ids = |nodes: &[String]| nodes.iter().map(|n| raft_id(n)).collect::<BTreeSet<u64>>();
        let changes = match &change {
            Change::Promote(n) => ChangeMembers::AddVoterIds(ids(n)),
            Change::Demote(n) => ChangeMembers::RemoveVoters(ids(n)),
            Change::Remove(n) => {
                let voters = self.status().voters;
                let ids = ids(n);
                if voters.iter().any(|p| ids.contains(&raft_id(&p.node))) {
                    self.change_membership(ChangeMembers::RemoveVoters(ids.clone()))
                        .await?;
                }
                ChangeMembers::RemoveNodes(ids)
            }
        };
        self.change_membership(changes).await
    }

    /// A membership change, given up (not undone) when it cannot commit in time.
    async fn change_membership(&self, c: ChangeMembers<u64, Peer>) -> Result<(), StoreError> {
        let change = self.raft.change_membership(c, false);
        match tokio::time::timeout(MEMBERSHIP_TIMEOUT, change).await {
            Ok(r) => r.map(drop).map_err(|e| self.membership_error(e)),
            Err(_) => Err(self.no_quorum()),
        }
    }

    fn membership_error(&self, e: RaftError<u64, ClientWriteError<u64, Peer>>) -> StoreError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => StoreError::NotLeader {
                leader: f.leader_node.map(|p| p.addr),
            },
            e => replication(e),
        }
    }

    /// How far `node` has caught up with the leader's log (leader only).
    pub fn matched(&self, node: &str) -> Option<u64> {
        let m = self.raft.metrics().borrow().clone();
        m.replication
            .as_ref()?
            .get(&raft_id(node))
            .cloned()
            .flatten()
            .map(|l| l.index)
    }

    /// On a graceful stop: stop campaigning and, if leading, hand leadership to a voter
    /// that holds the whole log. The replica still answers the others until
    /// [`Replica::shutdown`].
    pub async fn step_down(&self) {
        // A node on its way out must not run for leader: its log is the most complete, so
        // once the followers' leases run out it could win back the leadership it is handing
        // over, then leave the group without a leader.
        self.stop.send_replace(true);
        let alone = self.status().voters.iter().all(|p| p.node == self.me.node);
        if !self.is_leader() || alone {
            return;
        }
        // Only a voter with every entry this leader has can win: wait (briefly) for one to
        // catch up. Without one, just go quiet and let the others elect the most
        // up-to-date of them: a target whose log is behind would only raise the term.
        let target = self.caught_up_voter(self.timing.election_min).await;
        self.raft.runtime_config().heartbeat(false);
        if let Some(t) = &target {
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                self.transport
                    .call(&t.addr, Rpc::TimeoutNow, b"{}".to_vec()),
            )
            .await;
        }
        let wait = self.timing.election_max * 3;
        let deadline = Instant::now() + wait;
        let mut metrics = self.raft.metrics();
        while Instant::now() < deadline {
            let leader = metrics.borrow().current_leader;
            if let Some(l) = leader.filter(|l| *l != self.id) {
                let to = self
                    .status()
                    .leader
                    .map_or_else(|| format!("raft id {l}"), |p| p.to_string());
                tracing::info!(to = %to, "leadership transferred");
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), metrics.changed()).await;
        }
        tracing::warn!(
            asked = %target.map_or_else(|| "none caught up".to_string(), |t| t.to_string()),
            waited_ms = wait.as_millis() as u64,
            "no new leader seen before stopping; the other managers elect one"
        );
    }

    /// Another voter that has every entry of this leader's log, waiting up to `within`
    /// for one; the first found.
    async fn caught_up_voter(&self, within: Duration) -> Option<Peer> {
        let deadline = Instant::now() + within;
        let mut metrics = self.raft.metrics();
        loop {
            let last = metrics.borrow().last_log_index;
            let found = self
                .status()
                .voters
                .into_iter()
                .filter(|p| p.node != self.me.node)
                .find(|p| self.matched(&p.node) >= last);
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            let _ = tokio::time::timeout(self.timing.heartbeat, metrics.changed()).await;
        }
    }

    /// Stop taking part (the log stays on disk).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let _ = self.raft.shutdown().await;
        if let Some(s) = self.store.upgrade() {
            s.detach();
        }
    }

    /// Whether `from` (the node ID its certificate names) may send `rpc` claiming to be
    /// `claimed` (the Raft ID a message names as candidate or leader). Only current voters
    /// may ask for votes or hand over leadership; only members may replicate to this one,
    /// except to a replica that has no membership yet (a manager being added). A removed or
    /// demoted manager, or any other certificate, moves no term and no vote.
    fn admit(&self, from: &str, rpc: Rpc, claimed: Option<u64>) -> Result<(), String> {
        let sender = raft_id(from);
        if claimed.is_some_and(|c| c != sender) {
            return Err(format!(
                "raft {} from {from} refused: it speaks for another member",
                rpc.as_str()
            ));
        }
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voter = membership.voter_ids().any(|id| id == sender);
        let member = membership.get_node(&sender).is_some();
        let uninitialized = membership.nodes().next().is_none();
        let ok = match rpc {
            Rpc::Vote | Rpc::PreVote | Rpc::TimeoutNow => voter,
            Rpc::Append | Rpc::Snapshot => member || uninitialized,
        };
        if ok {
            Ok(())
        } else {
            tracing::warn!(
                from,
                rpc = rpc.as_str(),
                "raft message from a non-member refused"
            );
            Err(format!(
                "raft {} from {from} refused: not a {} of this group",
                rpc.as_str(),
                if matches!(rpc, Rpc::Append | Rpc::Snapshot) {
                    "member"
                } else {
                    "voter"
                }
            ))
        }
    }

    /// Answer a call from another replica, `from` being the node ID its certificate names.
    pub async fn handle(&self, from: &str, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
        fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
            serde_json::from_slice(body).map_err(|e| format!("bad raft message: {e}"))
        }
        fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
            serde_json::to_vec(v).map_err(|e| e.to_string())
        }
        match rpc {
            Rpc::Append => {
                let req: openraft::raft::AppendEntriesRequest<TypeConfig> = parse(body)?;
                self.admit(from, rpc, req.vote.leader_id().voted_for())?;
                let res = self.raft.append_entries(req).await;
                if matches!(&res, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)))
                {
                    self.contact.leader_seen();
                }
                encode(&res)
            }
            Rpc::Vote => {
                let req: openraft::raft::VoteRequest<u64> = parse(body)?;
                self.admit(from, rpc, req.vote.leader_id().voted_for())?;
                encode(&self.raft.vote(req).await)
            }
            Rpc::Snapshot => {
                let req: openraft::raft::InstallSnapshotRequest<TypeConfig> = parse(body)?;
                self.admit(from, rpc, req.vote.leader_id().voted_for())?;
                let res = self.raft.install_snapshot(req).await;
                if res.is_ok() {
                    self.contact.leader_seen();
                }
                encode(&res)
            }
            Rpc::PreVote => {
                let req: PreVote = parse(body)?;
                self.admit(from, rpc, Some(raft_id(&req.candidate)))?;
                encode(&election::answer(self, &req).await)
            }
            Rpc::TimeoutNow => {
                self.admit(from, rpc, None)?;
                let leader = self.raft.metrics().borrow().current_leader;
                self.contact
                    .transfer_asked(leader, self.timing.election_max * 3);
                encode(&true)
            }
        }
    }

    /// Rewrite the log in `dir` so that, when started, this node is the only voter: a new
    /// membership entry in a new term, committed by this node alone. Keeps the state.
    pub fn force_new_cluster(
        dir: &Path,
        node: &str,
        addr: &str,
        sealer: Option<crate::Sealer>,
    ) -> Result<(), StoreError> {
        log::force_single_voter(
            &dir.join(LOG_FILE),
            raft_id(node),
            Peer {
                node: node.into(),
                addr: addr.into(),
            },
            sealer,
        )
    }
}

/// A membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Promote(Vec<String>),
    Demote(Vec<String>),
    Remove(Vec<String>),
}
