//! What a node remembers of its cluster across restarts: role, managers, its certificates.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use shoal_api::NodeRole;
use shoal_store::seal::{self, Sealer};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub role: NodeRole,
    pub cluster_id: String,
    /// Control addresses of the managers (`ip:port`).
    pub managers: Vec<String>,
    /// Address other nodes reach this node's tasks at.
    pub advertise_addr: String,
    /// Control port listen address (managers).
    #[serde(default)]
    pub listen_addr: Option<String>,
}

/// The node's TLS material, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Certs {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").finish_non_exhaustive()
    }
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Save the certificates; the node key sealed with `key_sealer` if given (a manager of an
/// autolocked cluster: its key then opens only once the manager is unlocked).
pub fn save_certs(dir: &Path, certs: &Certs, key_sealer: Option<&Sealer>) -> anyhow::Result<()> {
    let certs_dir = dir.join("certs");
    std::fs::create_dir_all(&certs_dir)
        .with_context(|| format!("creating {}", certs_dir.display()))?;
    write_atomic(&file(&certs_dir, "ca.pem"), certs.ca_pem.as_bytes())?;
    let key = seal::seal(key_sealer, certs.key_pem.as_bytes().to_vec())?;
    write_atomic(&file(&certs_dir, "node-key.pem"), &key)?;
    write_atomic(&file(&certs_dir, "node.pem"), certs.cert_pem.as_bytes())
}

/// Save membership and certificates; the membership file is written last, so a crash in
/// between leaves the node not joined rather than half-joined.
pub fn save(
    dir: &Path,
    m: &Membership,
    certs: &Certs,
    key_sealer: Option<&Sealer>,
) -> anyhow::Result<()> {
    save_certs(dir, certs, key_sealer)?;
    write_atomic(
        &file(dir, "membership.json"),
        &serde_json::to_vec_pretty(m)?,
    )
}

/// Membership and certificates; a sealed node key is opened with `sealer` (the data key).
pub fn load(dir: &Path, sealer: Option<&Sealer>) -> anyhow::Result<Option<(Membership, Certs)>> {
    let path = file(dir, "membership.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let m: Membership =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let certs_dir = dir.join("certs");
    let read = |n: &str| {
        std::fs::read_to_string(file(&certs_dir, n)).with_context(|| format!("reading {n}"))
    };
    Ok(Some((
        m,
        Certs {
            ca_pem: read("ca.pem")?,
            cert_pem: read("node.pem")?,
            key_pem: {
                let path = file(&certs_dir, "node-key.pem");
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                String::from_utf8(seal::open(sealer, &bytes)?.into_owned())
                    .with_context(|| format!("{} is not PEM text", path.display()))?
            },
        },
    )))
}

pub fn remove(dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(file(dir, "membership.json"));
    let certs = dir.join("certs");
    if certs.exists() {
        std::fs::remove_dir_all(&certs).with_context(|| format!("removing {}", certs.display()))?;
    }
    Ok(())
}
