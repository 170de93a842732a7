//! A task's secrets and configs as files.
//!
//! Before a task starts, each blob its template references is written into a directory of
//! the task's own under the node's files directory, which lives on a tmpfs (`/dev/shm`), so
//! a secret never reaches a disk; owner and mode are the reference's (root and 0444 unless
//! set), a template (`Templating: golang`) is expanded for the task first (the
//! `{{.Task.Slot}}`-style placeholders, and `{{env "VAR"}}`, `{{secret "target"}}` and
//! `{{config "target"}}` as in Swarm). A container gets
//! each file bind-mounted read-only at its target (`/run/secrets/<name>` for a secret); a
//! process is told the paths in its environment: `SHOAL_SECRETS_DIR`, and
//! `SHOAL_SECRET_<NAME>` / `SHOAL_CONFIG_<NAME>` per file, NAME being the target's file
//! name in capitals with every other character an `_`. The directory is removed once the
//! task no longer runs on the node.

use crate::LaunchSpec;
use shoal_api::template::{expand_with, TemplateValues};
use shoal_api::{Blob, BlobKind, FileRef, Mount, MountType, Task, TaskFiles};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the tmpfs the node writes task files to is.
pub const SHM: &str = "/dev/shm";
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The node's files directory: `/dev/shm/shoal/<node id>`.
pub fn node_dir(node_id: &str) -> PathBuf {
    Path::new(SHM).join("shoal").join(node_id)
}

/// The task's own directory under `base`.
pub fn task_dir(base: &Path, task_id: &str) -> PathBuf {
    base.join(task_id)
}

// `f_type`'s integer type differs between architectures.
#[allow(clippy::useless_conversion)]
fn is_tmpfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| i64::from(st.f_type) == TMPFS_MAGIC)
}

/// Writes the files of `task` and adds them to `spec`: bind mounts for a container, paths
/// in the environment for a process. Nothing is written for a task that uses no blob. An
/// error names the blob or file that could not be written; the task is then rejected.
pub fn write(
    base: &Path,
    task: &Task,
    files: &TaskFiles,
    values: &TemplateValues,
    spec: &mut LaunchSpec,
) -> Result<(), String> {
    let t = &task.spec;
    if t.secrets.is_empty() && t.configs.is_empty() {
        return Ok(());
    }
    if !is_tmpfs(Path::new(SHM)) {
        return Err(format!(
            "{SHM} is not a tmpfs: secrets and configs are never written to a disk"
        ));
    }
    let dir = task_dir(base, &task.id);
    let secrets_dir = dir.join("secrets");
    let configs_dir = dir.join("configs");
    for d in [base, &dir, &secrets_dir, &configs_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711));
    }
    let secrets = t
        .secrets
        .iter()
        .map(|r| Ok((r, find(&files.secrets, r)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let configs = t
        .configs
        .iter()
        .map(|r| Ok((r, find(&files.configs, r)?)))
        .collect::<Result<Vec<_>, String>>()?;
    // What a template's functions read: the task's environment and its other files, by
    // target, as they are stored.
    let env = spec.env.clone();
    let lookup = |function: &str, arg: &str| -> Option<String> {
        let text = |data: &[u8]| String::from_utf8(data.to_vec()).ok();
        match function {
            "env" => env.iter().find(|(k, _)| k == arg).map(|(_, v)| v.clone()),
            "secret" => secrets
                .iter()
                .find(|(r, _)| r.target == arg)
                .and_then(|(_, b)| text(&b.data)),
            "config" => configs
                .iter()
                .find(|(r, _)| r.target == arg)
                .and_then(|(_, b)| text(&b.data)),
            _ => None,
        }
    };
    let mut placed = Vec::new();
    for (r, blob) in &secrets {
        let host = secrets_dir.join(host_name(&r.target));
        write_one(&host, blob, r, values, &lookup)?;
        placed.push(("SHOAL_SECRET_", host, *r));
    }
    for (i, (r, blob)) in configs.iter().enumerate() {
        let host = configs_dir.join(format!("{i}-{}", host_name(&r.target)));
        write_one(&host, blob, r, values, &lookup)?;
        placed.push(("SHOAL_CONFIG_", host, *r));
    }
    match &mut spec.container {
        Some(c) => {
            for (_, host, r) in placed {
                c.mounts.push(Mount {
                    kind: MountType::Bind,
                    source: host.display().to_string(),
                    target: r.container_path(),
                    read_only: true,
                    ..Mount::default()
                });
            }
        }
        None => {
            spec.env.push((
                "SHOAL_SECRETS_DIR".into(),
                secrets_dir.display().to_string(),
            ));
            for (prefix, host, r) in placed {
                let key = format!("{prefix}{}", env_name(&r.target));
                spec.env.retain(|(k, _)| *k != key);
                spec.env.push((key, host.display().to_string()));
            }
        }
    }
    Ok(())
}

fn find<'a, K: BlobKind>(blobs: &'a [Blob<K>], r: &FileRef) -> Result<&'a Blob<K>, String> {
    blobs
        .iter()
        .find(|b| b.id == r.id)
        .ok_or_else(|| format!("{} {} was not sent to this node", K::NAME, r.name))
}

fn write_one<K: BlobKind>(
    path: &Path,
    blob: &Blob<K>,
    r: &FileRef,
    values: &TemplateValues,
    lookup: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<(), String> {
    let expanded;
    let data: &[u8] = match &blob.templating {
        Some(_) => {
            let text = std::str::from_utf8(&blob.data)
                .map_err(|_| format!("{} {}: a template must be UTF-8", K::NAME, blob.name))?;
            expanded = expand_with(text, values, lookup)
                .map_err(|e| format!("{} {}: {e}", K::NAME, blob.name))?;
            expanded.as_bytes()
        }
        None => &blob.data,
    };
    let fail = |e: std::io::Error| format!("{} {} at {}: {e}", K::NAME, blob.name, path.display());
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(data).map_err(fail)?;
    drop(f);
    std::os::unix::fs::chown(path, Some(r.uid.unwrap_or(0)), Some(r.gid.unwrap_or(0)))
        .map_err(fail)?;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(r.mode.unwrap_or(0o444)),
    )
    .map_err(fail)
}

/// A target as one file name on the host.
fn host_name(target: &str) -> String {
    target.trim_start_matches('/').replace('/', "_")
}

/// A target's file name as an environment variable's suffix: `/etc/app.conf` → `APP_CONF`.
pub fn env_name(target: &str) -> String {
    let file = target.rsplit('/').next().unwrap_or(target);
    file.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the directories under `base` of tasks `keep` does not want, and `base` once
/// it is empty.
pub fn sweep(base: &Path, keep: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str() else { continue };
        if !keep(id) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(task = %id, error = %err, "could not remove a task's files");
            }
        }
    }
    // The node's directory goes too once no task has files (refused while one has).
    let _ = std::fs::remove_dir(base);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_come_from_the_targets_file_name() {
        assert_eq!(env_name("db_password"), "DB_PASSWORD");
        assert_eq!(env_name("/etc/app.conf"), "APP_CONF");
        assert_eq!(env_name("a-b.c"), "A_B_C");
    }

    #[test]
    fn host_names_are_one_level() {
        assert_eq!(host_name("/etc/app.conf"), "etc_app.conf");
        assert_eq!(host_name("pw"), "pw");
    }
}
