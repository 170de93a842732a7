//! Where a task's output is kept: `<logs dir>/<task id>.log`, and once it grows past its
//! size limit, the older parts `<task id>.log.1` (the newest) to `<task id>.log.N`.
//!
//! The agent writes and deletes these files, the logs endpoint reads them: both name them
//! here. Naming only; no I/O.

use std::path::{Path, PathBuf};

/// Most rotated parts a reader looks for (the agent keeps far fewer).
pub const MAX_LOG_PARTS: usize = 100;

/// The file holding part `part` of a task's output: 0 is the one being written, 1 the
/// newest rotated part, and so on.
pub fn log_path(dir: &Path, task_id: &str, part: usize) -> PathBuf {
    if part == 0 {
        dir.join(format!("{task_id}.log"))
    } else {
        dir.join(format!("{task_id}.log.{part}"))
    }
}

/// The task a log file name belongs to (`abc.log` and `abc.log.2` give `abc`), if it is one.
pub fn task_of_log_file(name: &str) -> Option<&str> {
    let (task, rest) = name.split_once(".log")?;
    let part_ok = rest.is_empty()
        || rest
            .strip_prefix('.')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (!task.is_empty() && part_ok).then_some(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_their_tasks() {
        let dir = Path::new("/logs");
        assert_eq!(log_path(dir, "t1", 0), Path::new("/logs/t1.log"));
        assert_eq!(log_path(dir, "t1", 2), Path::new("/logs/t1.log.2"));
        assert_eq!(task_of_log_file("t1.log"), Some("t1"));
        assert_eq!(task_of_log_file("t1.log.12"), Some("t1"));
        for other in [
            "t1.log.",
            "t1.log.x",
            "t1.logs",
            ".log",
            "t1.txt",
            "daemon.lock",
        ] {
            assert_eq!(task_of_log_file(other), None, "{other}");
        }
    }
}
