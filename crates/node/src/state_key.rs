//! This node's data key: it seals the state, the Raft log and snapshots on disk
//! (`shoal_store::seal`), and a manager's node key under autolock. It lives in
//! `<data dir>/state-key`, readable by root only; on a cluster with autolock it is kept
//! instead wrapped with the cluster's unlock key in `state-key.locked`, so a manager that
//! restarts cannot read its own state nor its key until an operator runs `shoal unlock`. It
//! stays when the node leaves its cluster (the state it sealed stays too).

use anyhow::Context;
use shoal_store::seal::KEY_LEN;
#[cfg(test)]
use shoal_store::seal::{new_unlock_key, UNLOCK_KEY_PREFIX};
use shoal_store::Sealer;
use std::path::{Path, PathBuf};

/// What a node finds at start.
#[derive(Debug)]
pub enum Found {
    /// The data key, in the clear (no autolock).
    Open(DataKey),
    /// Wrapped with the unlock key whose ID is given: `shoal unlock` needed.
    Locked { kek_id: String },
}

/// A data key held in memory.
#[derive(Clone)]
pub struct DataKey(pub [u8; KEY_LEN]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey")
    }
}

impl DataKey {
    pub fn sealer(&self) -> anyhow::Result<Sealer> {
        Ok(Sealer::new(&self.0)?)
    }
}

fn plain_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state-key")
}

fn locked_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state-key.locked")
}

/// The key-encryption key an unlock key stands for.
fn kek(unlock_key: &str) -> anyhow::Result<Sealer> {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, unlock_key.trim().as_bytes());
    Ok(Sealer::new(d.as_ref())?)
}

/// A short public ID of an unlock key (which key wrapped a file), not the key.
pub fn kek_id(unlock_key: &str) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("kek-id:{}", unlock_key.trim()).as_bytes(),
    );
    hex(&d.as_ref()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The node's data key, made on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Found> {
    let plain = plain_path(data_dir);
    if let Ok(bytes) = std::fs::read(&plain) {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!("{} is damaged: not a {KEY_LEN}-byte key", plain.display())
        })?;
        return Ok(Found::Open(DataKey(key)));
    }
    let locked = locked_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&locked) {
        let (id, _) = text
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("{} is damaged", locked.display()))?;
        return Ok(Found::Locked {
            kek_id: id.to_string(),
        });
    }
    let key = DataKey(Sealer::new_key()?);
    write_atomic(&plain, &key.0)?;
    Ok(Found::Open(key))
}

/// What seals a manager's node key: the store's data key while its cluster is autolocked.
pub fn node_key_sealer(store: &shoal_store::Store) -> Option<Sealer> {
    let autolocked = store
        .state()
        .cluster
        .as_ref()
        .is_some_and(|c| c.autolock_key.is_some());
    store.sealer().filter(|_| autolocked)
}

/// The data key from its locked file, with the unlock key given by an operator.
pub fn unlock(data_dir: &Path, unlock_key: &str) -> Result<DataKey, String> {
    let locked = locked_path(data_dir);
    let text =
        std::fs::read_to_string(&locked).map_err(|_| "this node is not locked".to_string())?;
    let wrapped = text
        .split_once(':')
        .and_then(|(_, w)| unhex(w.trim()))
        .ok_or_else(|| format!("{} is damaged", locked.display()))?;
    let sealer = kek(unlock_key).map_err(|e| e.to_string())?;
    let key = sealer
        .open_sealed(&wrapped)
        .map_err(|_| "invalid unlock key: it does not open this manager's state".to_string())?;
    let key: [u8; KEY_LEN] = key
        .try_into()
        .map_err(|_| format!("{} is damaged", locked.display()))?;
    Ok(DataKey(key))
}

/// Keep the data key as the cluster wants it: wrapped with `unlock_key` (autolock), or in the
/// clear (`None`). Does nothing when the files already say so.
pub fn keep(data_dir: &Path, key: &DataKey, unlock_key: Option<&str>) -> anyhow::Result<()> {
    let plain = plain_path(data_dir);
    let locked = locked_path(data_dir);
    match unlock_key {
        Some(k) => {
            let id = kek_id(k);
            let current = std::fs::read_to_string(&locked).ok();
            if current
                .as_deref()
                .and_then(|t| t.split_once(':'))
                .map(|(i, _)| i)
                == Some(id.as_str())
                && !plain.exists()
            {
                return Ok(());
            }
            let wrapped = kek(k)?.seal(&key.0)?;
            write_atomic(&locked, format!("{id}:{}", hex(&wrapped)).as_bytes())?;
            if plain.exists() {
                std::fs::remove_file(&plain)
                    .with_context(|| format!("cannot remove {}", plain.display()))?;
            }
            tracing::info!("data key wrapped with the cluster's unlock key (autolock)");
        }
        None => {
            if plain.exists() && !locked.exists() {
                return Ok(());
            }
            write_atomic(&plain, &key.0)?;
            if locked.exists() {
                std::fs::remove_file(&locked)
                    .with_context(|| format!("cannot remove {}", locked.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_data_key_opens_with_its_unlock_key_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Found::Open(key) = load_or_create(dir.path()).expect("create") else {
            panic!("a new node is not locked");
        };
        let unlock_key = new_unlock_key().expect("unlock key");
        assert!(unlock_key.starts_with(UNLOCK_KEY_PREFIX));
        keep(dir.path(), &key, Some(&unlock_key)).expect("lock");
        assert!(
            !plain_path(dir.path()).exists(),
            "the clear key must be gone"
        );
        match load_or_create(dir.path()).expect("load") {
            Found::Locked { kek_id: id } => assert_eq!(id, kek_id(&unlock_key)),
            Found::Open(_) => panic!("not locked"),
        }
        let wrong = new_unlock_key().expect("unlock key");
        assert!(unlock(dir.path(), &wrong).is_err_and(|e| e.contains("invalid unlock key")));
        let back = unlock(dir.path(), &format!(" {unlock_key}\n")).expect("unlock");
        assert_eq!(back.0, key.0);
        // Rotation rewraps; turning autolock off stores the key in the clear again.
        keep(dir.path(), &key, Some(&wrong)).expect("rotate");
        assert!(unlock(dir.path(), &unlock_key).is_err());
        assert_eq!(unlock(dir.path(), &wrong).expect("unlock").0, key.0);
        keep(dir.path(), &key, None).expect("unlock for good");
        assert!(matches!(load_or_create(dir.path()), Ok(Found::Open(k)) if k.0 == key.0));
    }
}
