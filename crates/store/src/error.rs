#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
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
