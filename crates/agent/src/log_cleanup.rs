//! Deleting task logs: a task's files go when the task is forgotten (removed with its
//! service or pruned from the slot's history), and files of tasks this node no longer
//! knows are swept when the agent starts.

use shoal_api::task_log::{log_path, task_of_log_file, MAX_LOG_PARTS};
use std::io;
use std::path::Path;

/// Delete every log file of `task_id` in `dir`; returns how many were deleted.
pub fn remove_task_logs(dir: &Path, task_id: &str) -> usize {
    let mut removed = 0;
    for part in 0..=MAX_LOG_PARTS {
        match std::fs::remove_file(log_path(dir, task_id, part)) {
            Ok(()) => removed += 1,
            // Rotated parts are numbered without gaps: the first missing one ends them.
            Err(e) if e.kind() == io::ErrorKind::NotFound && part > 0 => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(task = task_id, part, error = %e, "cannot delete task log"),
        }
    }
    removed
}

/// Delete the log files in `dir` of every task `keep` says no to; returns how many.
pub fn sweep_task_logs(dir: &Path, keep: impl Fn(&str) -> bool) -> usize {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list task logs");
            }
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(task) = name.to_str().and_then(task_of_log_file) else {
            continue;
        };
        if keep(task) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot delete task log")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), "x\n").expect("write");
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_forgotten_task_loses_every_part_of_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(
            dir.path(),
            &["a.log", "a.log.1", "a.log.2", "b.log", "b.log.1"],
        );
        assert_eq!(remove_task_logs(dir.path(), "a"), 3);
        assert_eq!(names(dir.path()), vec!["b.log", "b.log.1"]);
        assert_eq!(remove_task_logs(dir.path(), "a"), 0);
    }

    #[test]
    fn sweep_keeps_known_tasks_and_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(
            dir.path(),
            &["a.log", "a.log.1", "b.log", "c.log.1", "notes.txt"],
        );
        assert_eq!(sweep_task_logs(dir.path(), |t| t == "b"), 3);
        assert_eq!(names(dir.path()), vec!["b.log", "notes.txt"]);
        assert_eq!(sweep_task_logs(&dir.path().join("missing"), |_| false), 0);
    }
}
