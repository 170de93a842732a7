#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("state file {path} is damaged (truncated or overwritten): restore it from a backup, or remove it to rejoin the cluster (docs/operations.md)")]
    Damaged { path: String },
    #[error("state store write failed: {0}")]
    Write(String),
    #[error("state store read failed: {0}")]
    Read(String),
    /// This manager is not the Raft leader; `leader` is the leader's control address, if known.
    #[error("this manager is not the leader{}", leader.as_ref().map(|l| format!(" (the leader is at {l})")).unwrap_or_default())]
    NotLeader { leader: Option<String> },
    /// No majority of managers answers: the write was not committed.
    #[error("no quorum: {needed} of {managers} managers must be reachable, reachable now: {}", if reachable.is_empty() { "none".to_string() } else { reachable.join(", ") })]
    NoQuorum {
        needed: usize,
        managers: usize,
        reachable: Vec<String>,
    },
    /// Refused before anything was written: the data dir's disk is nearly full.
    #[error("not enough disk space for the cluster state: {} free in {dir}, {} kept free (--min-free-disk): free some space and retry; nothing was written", crate::disk::mib(*free), crate::disk::mib(*min))]
    DiskFull { dir: String, free: u64, min: u64 },
    /// Committed to the log, but the state cannot be written until the disk has room.
    #[error("the disk holding the cluster state is full: the write is in the log and will be applied once there is room")]
    Stalled,
    /// Encryption at rest failed.
    #[error("state encryption: {0}")]
    Sealed(String),
    /// The state is encrypted and this manager is locked: `shoal unlock` first.
    #[error("this manager is locked: run `shoal unlock` and give the cluster's unlock key")]
    Locked,
    #[error("replication failed: {0}")]
    Replication(String),
    #[error("state store record {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::$variant(e.to_string())
            }
        })*
    };
}

from_redb!(
    redb::TransactionError => Write,
    redb::TableError => Write,
    redb::StorageError => Write,
    redb::CommitError => Write,
);
