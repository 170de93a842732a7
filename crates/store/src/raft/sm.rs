//! The state machine: the store itself.
//!
//! A batch of committed entries becomes one store transaction holding their ops, the last
//! applied log id and the last membership, so after a crash the store says exactly which
//! entries it holds and openraft replays the rest. Snapshots are the whole state as JSON in
//! a file next to the log, with their metadata in another; the data file is written first.

use super::{Peer, TypeConfig};
use crate::store::Meta;
use crate::{Op, Store};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, StoredMembership,
};
use shoal_api::ClusterState;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type SE = StorageError<u64>;
type Membership = StoredMembership<u64, Peer>;

const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";

fn any(e: impl std::fmt::Display) -> openraft::AnyError {
    openraft::AnyError::error(e.to_string())
}

fn sm_write(e: impl std::fmt::Display) -> SE {
    StorageIOError::write_state_machine(any(e)).into()
}

fn sm_read(e: impl std::fmt::Display) -> SE {
    StorageIOError::read_state_machine(any(e)).into()
}

fn snap_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::write_snapshot(None, any(e)).into()
}

#[derive(Debug, Clone)]
pub(crate) struct StateMachine {
    store: Arc<Store>,
    /// Snapshot files: `<dir>.json` (state) and `<dir>.meta.json`.
    base: PathBuf,
}

impl StateMachine {
    pub(crate) fn new(store: Arc<Store>, base: PathBuf) -> StateMachine {
        StateMachine { store, base }
    }

    fn data_path(&self) -> PathBuf {
        self.base.with_extension("json")
    }

    fn meta_path(&self) -> PathBuf {
        self.base.with_extension("meta.json")
    }

    /// Write the snapshot's state, sealed like the store's rows.
    fn write_data(&self, data: &[u8]) -> Result<(), SE> {
        let sealed =
            crate::seal::seal(self.store.sealer().as_ref(), data.to_vec()).map_err(snap_err)?;
        write_atomic(&self.data_path(), &sealed).map_err(snap_err)
    }
}

fn records(applied: &Option<LogId<u64>>, membership: &Membership) -> Result<Meta, SE> {
    let mut m = Meta::new();
    m.insert(
        APPLIED.into(),
        serde_json::to_vec(applied).map_err(sm_write)?,
    );
    m.insert(
        MEMBERSHIP.into(),
        serde_json::to_vec(membership).map_err(sm_write)?,
    );
    Ok(m)
}

fn read_records(meta: &Meta) -> Result<(Option<LogId<u64>>, Membership), SE> {
    let applied = match meta.get(APPLIED) {
        Some(b) => serde_json::from_slice(b).map_err(sm_read)?,
        None => None,
    };
    let membership = match meta.get(MEMBERSHIP) {
        Some(b) => serde_json::from_slice(b).map_err(sm_read)?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SE> {
        let (state, meta) = self.store.view();
        let (applied, membership) = read_records(&meta)?;
        let data = serde_json::to_vec(&*state).map_err(snap_err)?;
        let snapshot_id = format!(
            "{}-{}",
            applied.map_or(0, |l| l.index),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        self.write_data(&data)?;
        write_atomic(
            &self.meta_path(),
            &serde_json::to_vec(&meta).map_err(snap_err)?,
        )
        .map_err(snap_err)?;
        tracing::debug!(bytes = data.len(), index = ?applied.map(|l| l.index), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), SE> {
        let (_, meta) = self.store.view();
        read_records(&meta)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<u64>, SE>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (_, meta) = self.store.view();
        let (mut applied, mut membership) = read_records(&meta)?;
        let mut ops: Vec<Op> = Vec::new();
        let mut replies = Vec::new();
        let mut version = None;
        for e in entries {
            let id = *e.get_log_id();
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    ops.extend(batch.ops);
                    version = Some(id.index);
                }
                EntryPayload::Membership(m) => membership = StoredMembership::new(Some(id), m),
            }
            applied = Some(id);
            replies.push(id.index);
        }
        let recs = records(&applied, &membership)?;
        crate::disk::retry_while_full("state", || {
            self.store.apply_committed(&ops, recs.clone(), version)
        })
        .await
        .map_err(sm_write)?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SE> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Peer>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SE> {
        let data = snapshot.into_inner();
        let state: ClusterState = serde_json::from_slice(&data).map_err(snap_err)?;
        self.write_data(&data)?;
        write_atomic(
            &self.meta_path(),
            &serde_json::to_vec(meta).map_err(snap_err)?,
        )
        .map_err(snap_err)?;
        let recs = records(&meta.last_log_id, &meta.last_membership)?;
        self.store.replace(state, recs).map_err(sm_write)?;
        tracing::info!(bytes = data.len(), index = ?meta.last_log_id.map(|l| l.index), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SE> {
        let Ok(meta_bytes) = std::fs::read(self.meta_path()) else {
            return Ok(None);
        };
        let meta: SnapshotMeta<u64, Peer> = serde_json::from_slice(&meta_bytes).map_err(sm_read)?;
        let data = std::fs::read(self.data_path()).map_err(sm_read)?;
        let data = crate::seal::open(self.store.sealer().as_ref(), &data)
            .map_err(sm_read)?
            .into_owned();
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
