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
