//! The store: an in-memory `ClusterState` mirrored to redb, with a watch channel.

use crate::kind::{Kind, KindVisitor, OpVisitor};
use crate::op::each_kind;
use crate::seal::{self, Sealer};
use crate::{apply_op, Op, StoreError};
use redb::{Database, ReadableTable, TableDefinition};
use shoal_api::{Cluster, ClusterState};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A write in progress: reads see the writes made so far.
#[derive(Debug)]
pub struct Txn {
    state: ClusterState,
    ops: Vec<Op>,
}

impl Txn {
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    pub fn push(&mut self, op: Op) {
        apply_op(&mut self.state, &op);
        self.ops.push(op);
    }

    /// Write `object` (a node, service, task, ...), replacing the one with its ID.
    pub fn put<K: Kind>(&mut self, object: K) {
        self.push(object.put_op());
    }

    /// Delete the `K` with ID `id`, if there is one.
    pub fn delete<K: Kind>(&mut self, id: impl Into<String>) {
        self.push(K::delete_op(id.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Records kept next to the state by the replication layer (last applied log id,
/// membership), written in the same transaction as the ops they cover.
pub(crate) type Meta = BTreeMap<String, Vec<u8>>;

/// The cluster state store of one node.
pub struct Store {
    db: Database,
    /// Serialises writers; readers never take it.
    write_lock: tokio::sync::Mutex<()>,
    current: watch::Sender<Arc<ClusterState>>,
    /// Replication records, changed together with `current` under this lock.
    meta: Mutex<Meta>,
    /// Set on managers: writes go through the Raft log instead of straight to disk.
    replica: RwLock<Option<Arc<crate::raft::Replica>>>,
    /// The state is (or was) replicated: without a replica attached, writes are refused
    /// rather than made outside the log, until [`Store::forget`].
    replicated: std::sync::atomic::AtomicBool,
    /// The directory holding the state file, whose disk [`Store::update`] checks for room.
    dir: std::path::PathBuf,
    /// Bytes kept free on that disk: a write is refused below it.
    min_free: std::sync::atomic::AtomicU64,
    /// Seals what is written to disk (encryption at rest).
    sealer: RwLock<Option<Sealer>>,
    /// Opened without its data key: the state is not loaded yet.
    locked: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("version", &self.current.borrow().version)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open (or create) the store at `path` and load its state, unencrypted.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, None)
    }

    /// Open (or create) the store at `path` and load its state; what it writes is sealed
    /// with `sealer` (see [`crate::seal`]).
    pub fn open_with(path: &Path, sealer: Option<Sealer>) -> Result<Store, StoreError> {
        let db = open_db(path)?;
        let (state, meta) = load(&db, sealer.as_ref())?;
        Ok(Store::new(db, path, state, meta, sealer))
    }

    /// Open the store at `path` without reading its state, which needs the data key that
    /// [`Store::unlock`] brings: until then the state is empty and writes are refused.
    pub fn open_locked(path: &Path) -> Result<Store, StoreError> {
        let db = open_db(path)?;
        let store = Store::new(db, path, ClusterState::default(), Meta::new(), None);
        store
            .locked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(store)
    }

    fn new(
        db: Database,
        path: &Path,
        state: ClusterState,
        meta: Meta,
        sealer: Option<Sealer>,
    ) -> Store {
        let (current, _) = watch::channel(Arc::new(state));
        Store {
            db,
            write_lock: tokio::sync::Mutex::new(()),
            current,
            meta: Mutex::new(meta),
            replica: RwLock::new(None),
            replicated: std::sync::atomic::AtomicBool::new(false),
            dir: path
                .parent()
                .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf),
            min_free: std::sync::atomic::AtomicU64::new(crate::disk::DEFAULT_MIN_FREE),
            sealer: RwLock::new(sealer),
            locked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Load the state of a store opened locked, with the data key it was sealed with.
    pub fn unlock(&self, sealer: Sealer) -> Result<(), StoreError> {
        let (state, records) = load(&self.db, Some(&sealer))?;
        *self.meta.lock().unwrap_or_else(|p| p.into_inner()) = records;
        *self.sealer.write().unwrap_or_else(|p| p.into_inner()) = Some(sealer);
        self.current.send_replace(Arc::new(state));
        self.locked
            .store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether the store waits for [`Store::unlock`].
    pub fn is_locked(&self) -> bool {
        self.locked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The sealer of what this store (and its Raft log) writes, if encrypted.
    pub fn sealer(&self) -> Option<Sealer> {
        self.sealer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keep `bytes` free on the state's disk: writes are refused below it.
    pub fn set_min_free(&self, bytes: u64) {
        self.min_free
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
    }

    /// Refuse a write, before anything of it is written, while the disk is nearly full.
    fn check_room(&self) -> Result<(), StoreError> {
        let min = self.min_free.load(std::sync::atomic::Ordering::SeqCst);
        let free = crate::disk::free_bytes(&self.dir).map_err(|e| {
            StoreError::Write(format!(
                "cannot read free space of {}: {e}",
                self.dir.display()
            ))
        })?;
        if free < min {
            return Err(StoreError::DiskFull {
                dir: self.dir.display().to_string(),
                free,
                min,
            });
        }
        Ok(())
    }

    /// The replica this store's writes go through, once started.
    pub fn replica(&self) -> Option<Arc<crate::raft::Replica>> {
        self.replica
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn attach(&self, replica: Arc<crate::raft::Replica>) -> Result<(), StoreError> {
        let mut r = self.replica.write().unwrap_or_else(|p| p.into_inner());
        if r.is_some() {
            return Err(StoreError::Write("the store is already replicated".into()));
        }
        *r = Some(replica);
        self.replicated
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Forget the whole state and its replication records, locally (this node leaves the
    /// cluster or stops being a manager; its replica is shut down).
    pub fn forget(&self) -> Result<(), StoreError> {
        let _guard = self
            .write_lock
            .try_lock()
            .map_err(|_| StoreError::Write("the store is busy with a write; try again".into()))?;
        let mut meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let base = self.state();
        let cleared: Meta = meta.keys().map(|k| (k.clone(), Vec::new())).collect();
        persist(&self.db, &[Op::Reset], base.version + 1, &Meta::new(), None)?;
        remove_records(&self.db, cleared.keys())?;
        meta.clear();
        self.replicated
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.current.send_replace(Arc::new(ClusterState {
            version: base.version + 1,
            ..ClusterState::default()
        }));
        Ok(())
    }

    /// Stop routing writes through the replica (it was shut down).
    pub(crate) fn detach(&self) {
        *self.replica.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// State and replication records, consistent with each other.
    pub(crate) fn view(&self) -> (Arc<ClusterState>, Meta) {
        let meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        (self.state(), meta.clone())
    }

    /// Apply committed ops (replication): persist them with `records` in one transaction,
    /// then publish the new state. `version` is the log index of the last entry.
    pub(crate) fn apply_committed(
        &self,
        ops: &[Op],
        records: Meta,
        version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let base = self.state();
        let next = if ops.is_empty() {
            None
        } else {
            let mut state = (*base).clone();
            for op in ops {
                apply_op(&mut state, op);
            }
            state.version = version.unwrap_or(base.version + 1).max(base.version + 1);
            Some(state)
        };
        let v = next.as_ref().map_or(base.version, |s| s.version);
        persist(&self.db, ops, v, &records, self.sealer().as_ref())?;
        meta.extend(records);
        if let Some(state) = next {
            self.current.send_replace(Arc::new(state));
        }
        Ok(())
    }

    /// Replace the whole state (a snapshot from the leader), with its records.
    pub(crate) fn replace(&self, mut state: ClusterState, records: Meta) -> Result<(), StoreError> {
        let mut meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let base = self.state();
        state.version = state.version.max(base.version + 1);
        let mut ops = vec![Op::Reset];
        if let Some(c) = &state.cluster {
            ops.push(Op::SetCluster(Box::new(c.clone())));
        }
        let Ok(()) = each_kind(&mut PutAll {
            state: &state,
            ops: &mut ops,
        });
        persist(
            &self.db,
            &ops,
            state.version,
            &records,
            self.sealer().as_ref(),
        )?;
        meta.extend(records);
        self.current.send_replace(Arc::new(state));
        Ok(())
    }

    /// The latest committed state.
    pub fn state(&self) -> Arc<ClusterState> {
        self.current.borrow().clone()
    }

    /// Wakes on every committed write.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.current.subscribe()
    }

    /// Run `f` against the current state and commit what it recorded, all or nothing.
    ///
    /// On a replicated store this runs on the leader only: the state is first brought up to
    /// every committed write (read index), and the ops are answered once committed by a
    /// majority and applied here. Elsewhere it fails with [`StoreError::NotLeader`].
    pub async fn update<T, E>(&self, f: impl FnOnce(&mut Txn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let _guard = self.write_lock.lock().await;
        if self.is_locked() {
            return Err(StoreError::Locked.into());
        }
        if let Some(r) = self.replica() {
            r.linearize().await?;
            let mut txn = Txn {
                state: (*self.state()).clone(),
                ops: Vec::new(),
            };
            let out = f(&mut txn)?;
            if !txn.ops.is_empty() {
                self.check_room()?;
                r.propose(txn.ops).await?;
            }
            return Ok(out);
        }
        if self.replicated.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::NotLeader { leader: None }.into());
        }
        let base = self.state();
        let mut txn = Txn {
            state: (*base).clone(),
            ops: Vec::new(),
        };
        let out = f(&mut txn)?;
        if txn.ops.is_empty() {
            return Ok(out);
        }
        self.check_room()?;
        let mut state = txn.state;
        state.version = base.version + 1;
        persist(
            &self.db,
            &txn.ops,
            state.version,
            &Meta::new(),
            self.sealer().as_ref(),
        )?;
        self.current.send_replace(Arc::new(state));
        Ok(out)
    }
}

fn persist(
    db: &Database,
    ops: &[Op],
    version: u64,
    records: &Meta,
    sealer: Option<&Sealer>,
) -> Result<(), StoreError> {
    let w = db.begin_write()?;
    {
        let mut rows = Rows {
            w: &w,
            tables: BTreeMap::new(),
            meta: w.open_table(META)?,
            sealer,
        };
        for op in ops {
            op.visit(&mut rows)?;
        }
        rows.meta
            .insert("version", version.to_le_bytes().as_slice())?;
        for (k, v) in records {
            rows.meta
                .insert(format!("raft.{k}").as_str(), v.as_slice())?;
        }
    }
    w.commit()?;
    Ok(())
}

/// The table a kind's records are kept in.
fn table<K: Kind>() -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(K::TABLE)
}

/// Writes ops as rows of one write transaction, each kind's table opened once.
struct Rows<'w> {
    w: &'w redb::WriteTransaction,
    tables: BTreeMap<&'static str, redb::Table<'w, &'static str, &'static [u8]>>,
    meta: redb::Table<'w, &'static str, &'static [u8]>,
    sealer: Option<&'w Sealer>,
}

impl<'w> Rows<'w> {
    fn table<K: Kind>(
        &mut self,
    ) -> Result<&mut redb::Table<'w, &'static str, &'static [u8]>, StoreError> {
        Ok(match self.tables.entry(K::TABLE) {
            std::collections::btree_map::Entry::Occupied(t) => t.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(self.w.open_table(table::<K>())?)
            }
        })
    }
}

impl OpVisitor for Rows<'_> {
    type Error = StoreError;

    fn set_cluster(&mut self, cluster: &Cluster) -> Result<(), StoreError> {
        self.meta.insert(
            "cluster",
            seal::seal(self.sealer, encode(cluster)?)?.as_slice(),
        )?;
        Ok(())
    }

    fn reset(&mut self) -> Result<(), StoreError> {
        self.meta.remove("cluster")?;
        each_kind(&mut ClearTables(self))
    }

    fn put<K: Kind>(&mut self, object: &K) -> Result<(), StoreError> {
        let row = seal::seal(self.sealer, encode(object)?)?;
        self.table::<K>()?.insert(object.id(), row.as_slice())?;
        Ok(())
    }

    fn delete<K: Kind>(&mut self, id: &str) -> Result<(), StoreError> {
        self.table::<K>()?.remove(id)?;
        Ok(())
    }
}

/// Empties every kind's table ([`Op::Reset`]).
struct ClearTables<'r, 'w>(&'r mut Rows<'w>);

impl KindVisitor for ClearTables<'_, '_> {
    type Error = StoreError;

    fn visit<K: Kind>(&mut self) -> Result<(), StoreError> {
        clear(self.0.table::<K>()?)
    }
}

/// The ops that write every object of a state.
struct PutAll<'a> {
    state: &'a ClusterState,
    ops: &'a mut Vec<Op>,
}

impl KindVisitor for PutAll<'_> {
    type Error = std::convert::Infallible;

    fn visit<K: Kind>(&mut self) -> Result<(), Self::Error> {
        self.ops
            .extend(K::map(self.state).values().map(|o| o.clone().put_op()));
        Ok(())
    }
}

fn remove_records<'a>(
    db: &Database,
    keys: impl Iterator<Item = &'a String>,
) -> Result<(), StoreError> {
    let w = db.begin_write()?;
    {
        let mut meta = w.open_table(META)?;
        for k in keys {
            meta.remove(format!("raft.{k}").as_str())?;
        }
    }
    w.commit()?;
    Ok(())
}

fn clear(table: &mut redb::Table<&str, &[u8]>) -> Result<(), StoreError> {
    let keys: Vec<String> = table
        .iter()?
        .map(|row| row.map(|(k, _)| k.value().to_string()))
        .collect::<Result<_, _>>()?;
    for k in keys {
        table.remove(k.as_str())?;
    }
    Ok(())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Write(e.to_string()))
}

fn load(db: &Database, sealer: Option<&Sealer>) -> Result<(ClusterState, Meta), StoreError> {
    // Create the tables on first open so reads below never miss them.
    let w = db.begin_write()?;
    each_kind(&mut CreateTable(&w))?;
    w.open_table(META)?;
    w.commit()?;

    let r = db
        .begin_read()
        .map_err(|e| StoreError::Read(e.to_string()))?;
    let mut state = ClusterState::default();
    each_kind(&mut LoadTable {
        r: &r,
        state: &mut state,
        sealer,
    })?;
    let meta = r.open_table(META)?;
    if let Some(v) = meta.get("version")? {
        let bytes: [u8; 8] = v
            .value()
            .try_into()
            .map_err(|_| StoreError::Read("version record is not 8 bytes".into()))?;
        state.version = u64::from_le_bytes(bytes);
    }
    let mut records = Meta::new();
    for row in meta.range::<&str>("raft."..)? {
        let (k, v) = row?;
        match k.value().strip_prefix("raft.") {
            Some(key) => records.insert(key.to_string(), v.value().to_vec()),
            None => break,
        };
    }
    if let Some(c) = meta.get("cluster")? {
        state.cluster = Some(
            serde_json::from_slice(&seal::open(sealer, c.value())?).map_err(|source| {
                StoreError::Corrupt {
                    key: "cluster".into(),
                    source,
                }
            })?,
        );
    }
    Ok((state, records))
}

struct CreateTable<'w>(&'w redb::WriteTransaction);

impl KindVisitor for CreateTable<'_> {
    type Error = StoreError;

    fn visit<K: Kind>(&mut self) -> Result<(), StoreError> {
        self.0.open_table(table::<K>())?;
        Ok(())
    }
}

/// Reads every row of a kind's table into its map.
struct LoadTable<'a> {
    r: &'a redb::ReadTransaction,
    state: &'a mut ClusterState,
    sealer: Option<&'a Sealer>,
}

impl KindVisitor for LoadTable<'_> {
    type Error = StoreError;

    fn visit<K: Kind>(&mut self) -> Result<(), StoreError> {
        let table = self.r.open_table(table::<K>())?;
        let into = K::map_mut(self.state);
        for row in table.iter()? {
            let (k, v) = row?;
            let value =
                serde_json::from_slice(&seal::open(self.sealer, v.value())?).map_err(|source| {
                    StoreError::Corrupt {
                        key: k.value().to_string(),
                        source,
                    }
                })?;
            into.insert(k.value().to_string(), value);
        }
        Ok(())
    }
}

/// Open (or create) the redb file at `path`. redb panics on some damaged files (a
/// truncated one): that becomes an error naming the file, so the daemon says what to restore.
pub(crate) fn open_db(path: &Path) -> Result<Database, StoreError> {
    match std::panic::catch_unwind(|| Database::create(path)) {
        Ok(r) => r.map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        }),
        Err(_) => Err(StoreError::Damaged {
            path: path.display().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{Node, NodeRole};

    fn cluster(id: &str) -> shoal_api::Cluster {
        shoal_api::Cluster {
            vip_pool: None,
            id: id.into(),
            ca_cert_pem: String::new(),
            ca_key_pem: String::new(),
            worker_secret: "w".into(),
            manager_secret: "m".into(),
            heartbeat_period_ms: 1000,
            cert_lifetime_secs: 3600,
            managers: vec![],
            created_at: 0,
            clients: vec![],
            autolock_key: None,
        }
    }

    /// A truncated state file made the daemon panic at start instead of naming the file.
    #[tokio::test]
    async fn truncated_state_file_is_named_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path).unwrap();
        for i in 0..20 {
            store
                .update(|tx| {
                    tx.put(node(&format!("n{i}")));
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
        }
        drop(store);
        let len = std::fs::metadata(&path).unwrap().len();
        for cut in [len / 2, 4096, 100, 0] {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(cut).unwrap();
            drop(f);
            // Opened (redb repaired what it could) or refused naming the file: no panic.
            if let Err(e) = Store::open(&path) {
                assert!(e.to_string().contains("s.redb"), "{cut}: {e}");
            }
        }
    }

    #[tokio::test]
    async fn reset_forgets_everything_but_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path).unwrap();
        store
            .update(|tx| {
                tx.push(Op::SetCluster(Box::new(cluster("c1"))));
                tx.put(node("n1"));
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        store
            .update(|tx| {
                tx.push(Op::Reset);
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let s = store.state();
        assert!(s.cluster.is_none() && s.nodes.is_empty());
        assert_eq!(s.version, 2);
    }

    fn node(id: &str) -> Node {
        Node::new(
            id.into(),
            "h".into(),
            NodeRole::Manager,
            "127.0.0.1".into(),
            1,
        )
    }

    #[tokio::test]
    async fn writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .update(|tx| {
                    tx.push(Op::SetCluster(Box::new(cluster("c1"))));
                    tx.put(node("n1"));
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
            assert_eq!(store.state().version, 1);
        }
        let store = Store::open(&path).unwrap();
        let state = store.state();
        assert_eq!(state.version, 1);
        assert_eq!(state.cluster_id(), Some("c1"));
        assert!(state.nodes.contains_key("n1"));
    }

    #[tokio::test]
    async fn failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut rx = store.subscribe();
        rx.mark_unchanged();
        let res: Result<(), StoreError> = store
            .update(|tx| {
                tx.put(node("n1"));
                Err(StoreError::Write("refused".into()))
            })
            .await;
        assert!(res.is_err());
        assert!(store.state().nodes.is_empty());
        assert_eq!(store.state().version, 0);
        assert!(!rx.has_changed().unwrap());
        drop(store);
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(store.state().nodes.is_empty());
    }

    #[tokio::test]
    async fn txn_reads_its_own_writes_and_watchers_wake() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut rx = store.subscribe();
        rx.mark_unchanged();
        store
            .update(|tx| {
                tx.put(node("n1"));
                assert!(tx.state().nodes.contains_key("n1"));
                tx.delete::<Node>("n1");
                tx.put(node("n2"));
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert!(rx.has_changed().unwrap());
        let s = store.state();
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), vec!["n2"]);
    }

    fn service(id: &str) -> shoal_api::Service {
        serde_json::from_value(serde_json::json!({
            "id": id, "version": 1, "ports": [], "created_at": 1, "updated_at": 1,
            "spec": {"name": id, "mode": {"replicated": {"replicas": 1}},
                     "task": {"runtime": {"process": {"command": ["shoal", "whoami"]}}}}
        }))
        .unwrap()
    }

    fn task(id: &str) -> shoal_api::Task {
        serde_json::from_value(serde_json::json!({
            "id": id, "service_id": "s1", "service_name": "s1", "slot": 1, "spec_version": 1,
            "spec": {"runtime": {"process": {"command": ["shoal", "whoami"]}}},
            "desired_state": "running", "status": {"state": "new", "timestamp": 1},
            "created_at": 1
        }))
        .unwrap()
    }

    /// The disk format: each kind's rows in its table of old ("nodes", "services", "tasks"),
    /// keyed by ID, holding the object's JSON; a snapshot install writes the same rows.
    #[tokio::test]
    async fn rows_keep_their_tables_and_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path).unwrap();
        store
            .update(|tx| {
                tx.put(node("n1"));
                tx.put(service("s1"));
                tx.put(task("t1"));
                tx.put(task("t2"));
                tx.delete::<shoal_api::Task>("t2");
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let written = store.state();
        drop(store);
        let rows = |path: &Path| {
            let db = Database::open(path).unwrap();
            let r = db.begin_read().unwrap();
            let mut rows = BTreeMap::new();
            for name in ["nodes", "services", "tasks"] {
                let def: TableDefinition<&str, &[u8]> = TableDefinition::new(name);
                for row in r.open_table(def).unwrap().iter().unwrap() {
                    let (k, v) = row.unwrap();
                    rows.insert((name, k.value().to_string()), v.value().to_vec());
                }
            }
            rows
        };
        let expected = BTreeMap::from([
            (
                ("nodes", "n1".to_string()),
                serde_json::to_vec(&node("n1")).unwrap(),
            ),
            (
                ("services", "s1".to_string()),
                serde_json::to_vec(&service("s1")).unwrap(),
            ),
            (
                ("tasks", "t1".to_string()),
                serde_json::to_vec(&task("t1")).unwrap(),
            ),
        ]);
        assert_eq!(rows(&path), expected);

        let other = dir.path().join("other.redb");
        let store = Store::open(&other).unwrap();
        store.replace((*written).clone(), Meta::new()).unwrap();
        drop(store);
        assert_eq!(rows(&other), expected);
        let reopened = Store::open(&other).unwrap().state();
        assert_eq!(reopened.nodes, written.nodes);
        assert_eq!(reopened.services, written.services);
        assert_eq!(reopened.tasks, written.tasks);
    }
}
