//! The store: an in-memory `ClusterState` mirrored to redb, with a watch channel.

use crate::{apply_op, Op, StoreError};
use redb::{Database, ReadableTable, TableDefinition};
use shoal_api::ClusterState;
use std::path::Path;
use std::sync::{Arc, Mutex};
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

/// The cluster state store of one node.
#[derive(Debug)]
pub struct Store {
    db: Database,
    /// Serialises writers; readers never take it.
    write_lock: Mutex<()>,
    current: watch::Sender<Arc<ClusterState>>,
}

impl Store {
    /// Open (or create) the store at `path` and load its state.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let state = load(&db)?;
        let (current, _) = watch::channel(Arc::new(state));
        Ok(Store {
            db,
            write_lock: Mutex::new(()),
            current,
        })
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
    pub fn update<T, E>(&self, f: impl FnOnce(&mut Txn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let base = self.state();
        let mut txn = Txn {
            state: (*base).clone(),
            ops: Vec::new(),
        };
        let out = f(&mut txn)?;
        if txn.ops.is_empty() {
            return Ok(out);
        }
        let mut state = txn.state;
        state.version = base.version + 1;
        persist(&self.db, &txn.ops, state.version)?;
        self.current.send_replace(Arc::new(state));
        Ok(out)
    }
}

fn persist(db: &Database, ops: &[Op], version: u64) -> Result<(), StoreError> {
    let w = db.begin_write()?;
    {
        let mut nodes = w.open_table(NODES)?;
        let mut services = w.open_table(SERVICES)?;
        let mut tasks = w.open_table(TASKS)?;
        let mut meta = w.open_table(META)?;
        for op in ops {
            match op {
                Op::SetCluster(c) => {
                    meta.insert("cluster", encode(c)?.as_slice())?;
                }
                Op::Reset => {
                    meta.remove("cluster")?;
                    clear(&mut nodes)?;
                    clear(&mut services)?;
                    clear(&mut tasks)?;
                }
                Op::PutNode(n) => {
                    nodes.insert(n.id.as_str(), encode(n)?.as_slice())?;
                }
                Op::DeleteNode(id) => {
                    nodes.remove(id.as_str())?;
                }
                Op::PutService(s) => {
                    services.insert(s.id.as_str(), encode(s)?.as_slice())?;
                }
                Op::DeleteService(id) => {
                    services.remove(id.as_str())?;
                }
                Op::PutTask(t) => {
                    tasks.insert(t.id.as_str(), encode(t)?.as_slice())?;
                }
                Op::DeleteTask(id) => {
                    tasks.remove(id.as_str())?;
                }
            }
        }
        meta.insert("version", version.to_le_bytes().as_slice())?;
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

fn load(db: &Database) -> Result<ClusterState, StoreError> {
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
    load_table(&r, NODES, &mut state.nodes)?;
    load_table(&r, SERVICES, &mut state.services)?;
    load_table(&r, TASKS, &mut state.tasks)?;
    let meta = r.open_table(META)?;
    if let Some(v) = meta.get("version")? {
        let bytes: [u8; 8] = v
            .value()
            .try_into()
            .map_err(|_| StoreError::Read("version record is not 8 bytes".into()))?;
        state.version = u64::from_le_bytes(bytes);
    }
    if let Some(c) = meta.get("cluster")? {
        state.cluster =
            Some(
                serde_json::from_slice(c.value()).map_err(|source| StoreError::Corrupt {
                    key: "cluster".into(),
                    source,
                })?,
            );
    }
    Ok(state)
}

fn load_table<T: serde::de::DeserializeOwned>(
    r: &redb::ReadTransaction,
    def: TableDefinition<&str, &[u8]>,
    into: &mut std::collections::BTreeMap<String, T>,
) -> Result<(), StoreError> {
    let table = r.open_table(def)?;
    for row in table.iter()? {
        let (k, v) = row?;
        let value = serde_json::from_slice(v.value()).map_err(|source| StoreError::Corrupt {
            key: k.value().to_string(),
            source,
        })?;
        into.insert(k.value().to_string(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{Node, NodeRole};

    fn cluster(id: &str) -> shoal_api::Cluster {
        shoal_api::Cluster {
            id: id.into(),
            ca_cert_pem: String::new(),
            ca_key_pem: String::new(),
            worker_secret: "w".into(),
            manager_secret: "m".into(),
            heartbeat_period_ms: 1000,
            cert_lifetime_secs: 3600,
            managers: vec![],
            created_at: 0,
        }
    }

    #[test]
    fn reset_forgets_everything_but_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path).unwrap();
        store
            .update(|tx| {
                tx.push(Op::SetCluster(Box::new(cluster("c1"))));
                tx.put_node(node("n1"));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        store
            .update(|tx| {
                tx.push(Op::Reset);
                Ok::<_, StoreError>(())
            })
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

    #[test]
    fn writes_survive_reopen() {
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
                .unwrap();
            assert_eq!(store.state().version, 1);
        }
        let store = Store::open(&path).unwrap();
        let state = store.state();
        assert_eq!(state.version, 1);
        assert_eq!(state.cluster_id(), Some("c1"));
        assert!(state.nodes.contains_key("n1"));
    }

    #[test]
    fn failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut rx = store.subscribe();
        rx.mark_unchanged();
        let res: Result<(), StoreError> = store.update(|tx| {
            tx.put_node(node("n1"));
            Err(StoreError::Write("refused".into()))
        });
        assert!(res.is_err());
        assert!(store.state().nodes.is_empty());
        assert_eq!(store.state().version, 0);
        assert!(!rx.has_changed().unwrap());
        drop(store);
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(store.state().nodes.is_empty());
    }

    #[test]
    fn txn_reads_its_own_writes_and_watchers_wake() {
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
            .unwrap();
        assert!(rx.has_changed().unwrap());
        let s = store.state();
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), vec!["n2"]);
    }
}
