//! The Raft log, vote and committed index, in their own redb file.
//!
//! Entries are JSON under their index. Every append is one redb transaction, durable when
//! openraft is told it is flushed; the vote is durable before it is answered.

use super::{Peer, TypeConfig};
use crate::StoreError;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, OptionalSend, StorageError,
    StorageIOError, Vote,
};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// The logs open in this process, by path: see [`LogStore::open`] and [`Db`].
static OPEN: Mutex<BTreeMap<PathBuf, Weak<Database>>> = Mutex::new(BTreeMap::new());

type SE = StorageError<u64>;

fn any(e: impl std::fmt::Display) -> openraft::AnyError {
    openraft::AnyError::error(e.to_string())
}

fn read_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::read_logs(any(e)).into()
}

fn write_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::write_logs(any(e)).into()
}

#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    db: Db,
    /// Seals entries on disk (they carry the cluster's secrets).
    sealer: Option<crate::Sealer>,
}

/// A handle on a shared log database. Any task may hold the last one (openraft's
/// replication tasks keep a log reader past `Raft::shutdown`), and redb's `Database::drop`
/// writes to the file before it releases the file's lock. The last handle is dropped under
/// `OPEN`, so [`LogStore::open`] finds a log either still shared or wholly closed, never
/// half closed (`Database already open`).
#[derive(Debug, Clone)]
struct Db(Option<Arc<Database>>);

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0
            .as_deref()
            .expect("a log handle holds its database until it is dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.0.take());
    }
}

impl LogStore {
    /// Open the log at `path`. A log still open in this process (a replica being shut
    /// down while its roles restart) is shared rather than locked out; one being closed on
    /// another thread is waited for.
    pub(crate) fn open(path: &Path, sealer: Option<crate::Sealer>) -> Result<LogStore, StoreError> {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, db| db.strong_count() > 0);
        if let Some(db) = open.get(path).and_then(Weak::upgrade) {
            return Ok(LogStore {
                db: Db(Some(db)),
                sealer,
            });
        }
        let db = crate::store::open_db(path)?;
        let w = db.begin_write()?;
        w.open_table(LOG)?;
        w.open_table(META)?;
        w.commit()?;
        let db = Arc::new(db);
        open.insert(path.to_path_buf(), Arc::downgrade(&db));
        Ok(LogStore {
            db: Db(Some(db)),
            sealer,
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SE> {
        let r = self.db.begin_read().map_err(read_err)?;
        let t = r.open_table(META).map_err(read_err)?;
        let Some(v) = t.get(key).map_err(read_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(read_err)
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), SE> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        let w = self.db.begin_write().map_err(write_err)?;
        {
            let mut t = w.open_table(META).map_err(write_err)?;
            t.insert(key, bytes.as_slice()).map_err(write_err)?;
        }
        w.commit().map_err(write_err)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, SE> {
        let r = self.db.begin_read().map_err(read_err)?;
        let t = r.open_table(LOG).map_err(read_err)?;
        let Some((_, v)) = t.last().map_err(read_err)? else {
            return Ok(None);
        };
        let plain = crate::seal::open(self.sealer.as_ref(), v.value()).map_err(read_err)?;
        serde_json::from_slice(&plain).map(Some).map_err(read_err)
    }

    /// The id of the last entry (or of the last purged one).
    pub(crate) fn last_log_id(&self) -> Result<Option<LogId<u64>>, SE> {
        let purged: Option<LogId<u64>> = self.get_meta("purged")?;
        Ok(self.last_entry()?.map(|e| e.log_id).or(purged))
    }

    fn remove_range(&self, range: impl RangeBounds<u64>) -> Result<(), SE> {
        let w = self.db.begin_write().map_err(write_err)?;
        {
            let mut t = w.open_table(LOG).map_err(write_err)?;
            let keys: Vec<u64> = t
                .range(range)
                .map_err(write_err)?
                .map(|row| row.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(write_err)?;
            for k in keys {
                t.remove(k).map_err(write_err)?;
            }
        }
        w.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SE> {
        let r = self.db.begin_read().map_err(read_err)?;
        let t = r.open_table(LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for row in t.range(range).map_err(read_err)? {
            let (_, v) = row.map_err(read_err)?;
            let plain = crate::seal::open(self.sealer.as_ref(), v.value()).map_err(read_err)?;
            out.push(serde_json::from_slice(&plain).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SE> {
        Ok(LogState {
            last_purged_log_id: self.get_meta("purged")?,
            last_log_id: self.last_log_id()?,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SE> {
        self.put_meta("vote", vote)
            .map_err(|e| StorageIOError::write_vote(any(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SE> {
        self.get_meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SE> {
        self.put_meta("committed", &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SE> {
        Ok(self.get_meta::<Option<LogId<u64>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SE>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let res = crate::disk::retry_while_full("raft log", || {
            let w = self.db.begin_write().map_err(write_err)?;
            {
                let mut t = w.open_table(LOG).map_err(write_err)?;
                for e in &entries {
                    let bytes = serde_json::to_vec(e).map_err(write_err)?;
                    let bytes =
                        crate::seal::seal(self.sealer.as_ref(), bytes).map_err(write_err)?;
                    t.insert(e.log_id.index, bytes.as_slice())
                        .map_err(write_err)?;
                }
            }
            w.commit().map_err(write_err)
        })
        .await;
        match &res {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        res
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SE> {
        self.remove_range(log_id.index..)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SE> {
        self.put_meta("purged", &log_id)?;
        self.remove_range(..=log_id.index)
    }
}

/// `--force-new-cluster`: append a membership entry naming only `me`, in a term above any
/// seen, and vote for ourselves in it. On start the node is the only voter and commits alone.
pub(crate) fn force_single_voter(
    path: &Path,
    me: u64,
    peer: Peer,
    sealer: Option<crate::Sealer>,
) -> Result<(), StoreError> {
    let store = LogStore::open(path, sealer)?;
    let fail = |e: SE| StoreError::Write(e.to_string());
    let vote: Option<Vote<u64>> = store.get_meta("vote").map_err(fail)?;
    let last = store.last_entry().map_err(fail)?;
    let purged: Option<LogId<u64>> = store.get_meta("purged").map_err(fail)?;
    let last_id = last.map(|e| e.log_id).or(purged);
    let term = vote
        .map(|v| v.leader_id().term)
        .max(last_id.map(|l| l.leader_id.term))
        .unwrap_or(0)
        + 1;
    let index = last_id.map_or(0, |l| l.index + 1);
    let mut nodes = BTreeMap::new();
    nodes.insert(me, peer);
    let entry: Entry<TypeConfig> = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, me), index),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([me])], nodes)),
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| StoreError::Write(e.to_string()))?;
    let bytes = crate::seal::seal(store.sealer.as_ref(), bytes)?;
    let w = store.db.begin_write()?;
    {
        let mut t = w.open_table(LOG)?;
        t.insert(index, bytes.as_slice())?;
        let mut m = w.open_table(META)?;
        let vote = serde_json::to_vec(&Vote::new(term, me))
            .map_err(|e| StoreError::Write(e.to_string()))?;
        m.insert("vote", vote.as_slice())?;
    }
    w.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last handle closes on another thread (as openraft's replication task does after
    /// `Raft::shutdown`) while the log is opened again at once.
    #[test]
    fn reopen_while_the_last_handle_closes_elsewhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raft-log.redb");
        for i in 0..20u64 {
            let log = LogStore::open(&path, None).expect("open");
            // The close then has allocator state to write.
            log.put_meta("vote", &i).expect("write");
            let weak = Arc::downgrade(log.db.0.as_ref().expect("held"));
            let last = std::thread::spawn(move || drop(log));
            while weak.strong_count() > 0 {
                std::hint::spin_loop();
            }
            LogStore::open(&path, None).expect("reopened while the last handle closes");
            last.join().expect("closing thread");
        }
    }
}
