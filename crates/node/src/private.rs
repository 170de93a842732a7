//! Everything the daemon keeps on disk is for root only: node and CA keys, the state and
//! Raft log (which hold the cluster CA's key and the join-token secrets), task logs and the
//! API socket. The daemon's umask makes new files owner-only, and the data dir and the files
//! an older version left readable are tightened at start.
#![allow(unsafe_code)]

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Files and directories the daemon creates from now on are readable by their owner only.
pub fn restrict_new_files() {
    // SAFETY: umask only changes this process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Make `dir` (the data dir) and everything in it owner-only: directories 0700, files 0600.
/// The walk stays inside `dir` and follows no symbolic links.
pub fn tighten(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot read data dir {}", dir.display()))?;
    let mode = if meta.is_dir() { 0o700 } else { 0o600 };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            tighten(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tighten_makes_everything_owner_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
        std::fs::write(dir.join("certs/node-key.pem"), "key").expect("write");
        std::fs::write(dir.join("state.redb"), "state").expect("write");
        for (p, m) in [(&dir, 0o755), (&dir.join("certs"), 0o755)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        std::fs::set_permissions(
            dir.join("state.redb"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        tighten(&dir).expect("tighten");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("certs")), 0o700);
        assert_eq!(mode(&dir.join("certs/node-key.pem")), 0o600);
        assert_eq!(mode(&dir.join("state.redb")), 0o600);
    }
}
