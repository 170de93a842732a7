//! The store: an in-memory `ClusterState` mirrored to redb, with a watch channel.

use crate::seal::{self, Sealer};
use crate::{apply_op, Op, StoreError};
use redb::{Database, ReadableTable, TableDefinition};
use shoal_api::ClusterState;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
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

    pub fn put_task(&mut self, task: shoal_api::Task) {
        self.push(Op::PutTask(Box::new(task)));
    }

    pub fn put_service(&mut self, service: shoal_api::Service) {
        self.push(Op::PutService(Box::new(service)));
    }

    pub fn put_node(&mut self, node: shoal_api::Node) {
        self.push(Op::PutNode(Box::new(node)));
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
        ops.extend(
            state
                .nodes
                .values()
                .map(|n| Op::PutNode(Box::new(n.clone()))),
        );
        ops.extend(
            state
                .services
                .values()
                .map(|s| Op::PutService(Box::new(s.clone()))),
        );
        ops.extend(
            state
                .tasks
                .values()
                .map(|t| Op::PutTask(Box::new(t.clone()))),
        );
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
        let mut nodes = w.open_table(NODES)?;
        let mut services = w.open_table(SERVICES)?;
        let mut tasks = w.open_table(TASKS)?;
        let mut meta = w.open_table(META)?;
        for op in ops {
            match op {
                Op::SetCluster(c) => {
                    meta.insert("cluster", seal::seal(sealer, encode(c)?)?.as_slice())?;
                }
                Op::Reset => {
                    meta.remove("cluster")?;
                    clear(&mut nodes)?;
                    clear(&mut services)?;
                    clear(&mut tasks)?;
                }
                Op::PutNode(n) => {
                    nodes.insert(n.id.as_str(), seal::seal(sealer, encode(n)?)?.as_slice())?;
                }
                Op::DeleteNode(id) => {
                    nodes.remove(id.as_str())?;
                }
                Op::PutService(s) => {
                    services.insert(s.id.as_str(), seal::seal(sealer, encode(s)?)?.as_slice())?;
                }
                Op::DeleteService(id) => {
                    services.remove(id.as_str())?;
                }
                Op::PutTask(t) => {
                    tasks.insert(t.id.as_str(), seal::seal(sealer, encode(t)?)?.as_slice())?;
                }
                Op::DeleteTask(id) => {
                    tasks.remove(id.as_str())?;
                }
            }
        }
        meta.insert("version", version.to_le_bytes().as_slice())?;
        for (k, v) in records {
            meta.insert(format!("raft.{k}").as_str(), v.as_slice())?;
        }
    }
    w.commit()?;
    Ok(())
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
    for t in [NODES, SERVICES, TASKS, META] {
        w.open_table(t)?;
    }
    w.commit()?;

    let r = db
        .begin_read()
        .map_err(|e| StoreError::Read(e.to_string()))?;
    let mut state = ClusterState::default();
    load_table(&r, NODES, &mut state.nodes, sealer)?;
    load_table(&r, SERVICES, &mut state.services, sealer)?;
    load_table(&r, TASKS, &mut state.tasks, sealer)?;
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

fn load_table<T: serde::de::DeserializeOwned>(
    r: &redb::ReadTransaction,
    def: TableDefinition<&str, &[u8]>,
    into: &mut std::collections::BTreeMap<String, T>,
    sealer: Option<&Sealer>,
) -> Result<(), StoreError> {
    let table = r.open_table(def)?;
    for row in table.iter()? {
        let (k, v) = row?;
        let value = serde_json::from_slice(&seal::open(sealer, v.value())?).map_err(|source| {
            StoreError::Corrupt {
                key: k.value().to_string(),
                source,
            }
        })?;
        into.insert(k.value().to_string(), value);
    }
    Ok(())
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
                    tx.put_node(node(&format!("n{i}")));
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
                tx.put_node(node("n1"));
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
                    tx.put_node(node("n1"));
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
                tx.put_node(node("n1"));
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
                tx.put_node(node("n1"));
                assert!(tx.state().nodes.contains_key("n1"));
                tx.push(Op::DeleteNode("n1".into()));
                tx.put_node(node("n2"));
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert!(rx.has_changed().unwrap());
        let s = store.state();
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), vec!["n2"]);
    }
}
