//! What a node remembers of its cluster across restarts, on disk: `membership.json` (role,
//! managers, addresses) and `certs/` (CA, certificate, node key, the key sealed under
//! autolock).

use super::record::{Certs, Membership};
use anyhow::Context;
use shoal_store::seal::{self, Sealer};
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::NodeRole;

    fn record() -> (Membership, Certs) {
        (
            Membership {
                role: NodeRole::Manager,
                cluster_id: "c1".into(),
                managers: vec!["10.0.0.1:2377".into()],
                advertise_addr: "10.0.0.1".into(),
                listen_addr: Some("0.0.0.0:2377".into()),
            },
            Certs {
                ca_pem: "ca".into(),
                cert_pem: "cert".into(),
                key_pem: "key".into(),
            },
        )
    }

    #[test]
    fn saved_membership_loads_back_and_remove_forgets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, certs) = record();
        assert_eq!(load(dir.path(), None).expect("load"), None);
        save(dir.path(), &m, &certs, None).expect("save");
        for name in [
            "membership.json",
            "certs/ca.pem",
            "certs/node.pem",
            "certs/node-key.pem",
        ] {
            assert!(dir.path().join(name).exists(), "{name}");
        }
        assert_eq!(load(dir.path(), None).expect("load"), Some((m, certs)));
        remove(dir.path()).expect("remove");
        assert_eq!(load(dir.path(), None).expect("load"), None);
        assert!(!dir.path().join("certs").exists());
    }
}
