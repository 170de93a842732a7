//! A task's log file with rotation, like Docker's `max-size` / `max-file`: once the file
//! would grow past `max_size` it becomes `<id>.log.1` (older parts move up one, the oldest
//! beyond `max_files` is deleted) and a new `<id>.log` starts. Output written with
//! [`RotatingLog::write_output`] has each line stamped with the time it arrived
//! (`shoal_api::task_log::format_time`).

use shoal_api::task_log::{format_time, log_path};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Size at which a task's log file is rotated (Docker's `max-size`).
pub const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept per task, the one being written included (Docker's `max-file`).
pub const LOG_MAX_FILES: usize = 3;

/// How much output a task may keep on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// Largest size of one file, in bytes (at least 1).
    pub max_size: u64,
    /// Files kept, the current one included (at least 1; 1 truncates instead of rotating).
    pub max_files: usize,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_size: LOG_MAX_SIZE,
            max_files: LOG_MAX_FILES,
        }
    }
}

/// The open log of one task.
#[derive(Debug)]
pub struct RotatingLog {
    dir: PathBuf,
    task_id: String,
    limits: LogRotation,
    file: File,
    size: u64,
    /// The next output byte starts a line (gets a time stamp).
    at_line_start: bool,
}

impl RotatingLog {
    /// Open (append to) the task's current log file in `dir`.
    pub fn open(dir: &Path, task_id: &str, limits: LogRotation) -> io::Result<RotatingLog> {
        let limits = LogRotation {
            max_size: limits.max_size.max(1),
            max_files: limits.max_files.max(1),
        };
        let path = log_path(dir, task_id, 0);
        let file = append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            dir: dir.to_path_buf(),
            task_id: task_id.to_string(),
            limits,
            file,
            size,
            at_line_start: true,
        })
    }

    /// Append a task's output, each line starting with the time `now` (unix nanoseconds)
    /// at which its first bytes arrived.
    pub fn write_output(&mut self, bytes: &[u8], now: i64) -> io::Result<()> {
        let stamp = format_time(now);
        let mut out = Vec::with_capacity(bytes.len() + stamp.len() + 1);
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                out.extend_from_slice(stamp.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(piece);
            self.at_line_start = piece.ends_with(b"\n");
        }
        self.write(&out)
    }

    /// The file being written.
    pub fn path(&self) -> PathBuf {
        log_path(&self.dir, &self.task_id, 0)
    }

    /// Append `bytes`, rotating so that no file grows past `max_size`. A file is cut after
    /// its last complete line when one fits; a line longer than a whole file is split.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = usize::try_from(self.limits.max_size.saturating_sub(self.size))
                .unwrap_or(usize::MAX);
            if bytes.len() <= room {
                return self.append(bytes);
            }
            match bytes[..room].iter().rposition(|b| *b == b'\n') {
                Some(nl) => {
                    self.append(&bytes[..=nl])?;
                    bytes = &bytes[nl + 1..];
                }
                // Start the line in a fresh file rather than cut it.
                None if self.size > 0 => {}
                None => {
                    self.append(&bytes[..room])?;
                    bytes = &bytes[room..];
                }
            }
            self.rotate()?;
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.limits.max_files == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let path = |part| log_path(&self.dir, &self.task_id, part);
        remove_if_present(&path(self.limits.max_files - 1))?;
        for part in (1..self.limits.max_files - 1).rev() {
            rename_if_present(&path(part), &path(part + 1))?;
        }
        rename_if_present(&path(0), &path(1))?;
        self.file = append(&path(0))?;
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                let text = std::fs::read_to_string(e.path()).expect("read");
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect();
        out.sort();
        out
    }

    fn limits(max_size: u64, max_files: usize) -> LogRotation {
        LogRotation {
            max_size,
            max_files,
        }
    }

    #[test]
    fn writing_past_max_size_rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = RotatingLog::open(dir.path(), "t1", limits(8, 3)).expect("open");
        log.write(b"one\ntwo\n").expect("write");
        assert_eq!(
            files(dir.path()),
            vec![("t1.log".into(), "one\ntwo\n".into())]
        );
        log.write(b"three\n").expect("write");
        assert_eq!(
            files(dir.path()),
            vec![
                ("t1.log".into(), "three\n".into()),
                ("t1.log.1".into(), "one\ntwo\n".into()),
            ]
        );
        for line in ["four\n", "five\n", "six\n", "seven\n"] {
            log.write(line.as_bytes()).expect("write");
        }
        // At most three files; the oldest output is gone, nothing is larger than 8 bytes.
        assert_eq!(
            files(dir.path()),
            vec![
                ("t1.log".into(), "seven\n".into()),
                ("t1.log.1".into(), "six\n".into()),
                ("t1.log.2".into(), "five\n".into()),
            ]
        );
    }

    #[test]
    fn files_are_cut_after_the_last_complete_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = RotatingLog::open(dir.path(), "t", limits(10, 5)).expect("open");
        log.write(b"ab\ncd\nefgh\nij").expect("write");
        assert_eq!(
            files(dir.path()),
            vec![
                ("t.log".into(), "efgh\nij".into()),
                ("t.log.1".into(), "ab\ncd\n".into()),
            ]
        );
        // A line longer than a file is split over files, in order.
        log.write(b"0123456789012345\n").expect("write");
        let all: String = files(dir.path())
            .into_iter()
            .rev()
            .map(|(_, text)| text)
            .collect();
        assert_eq!(all, "ab\ncd\nefgh\nij0123456789012345\n");
        assert!(files(dir.path()).iter().all(|(_, t)| t.len() <= 10));
    }

    #[test]
    fn output_lines_are_stamped_once_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = RotatingLog::open(dir.path(), "t", LogRotation::default()).expect("open");
        log.write_output(b"one\ntw", 1).expect("write");
        log.write_output(b"o\n", 2).expect("write");
        log.write_output(b"three\n", 3).expect("write");
        let text = std::fs::read_to_string(dir.path().join("t.log")).expect("read");
        let lines: Vec<(Option<i64>, String)> = text
            .lines()
            .map(|l| {
                let (t, rest) = shoal_api::task_log::split_stamp(l.as_bytes());
                (t, String::from_utf8_lossy(rest).into_owned())
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                (Some(1), "one".into()),
                (Some(1), "two".into()),
                (Some(3), "three".into())
            ]
        );
    }

    #[test]
    fn one_file_is_truncated_instead_of_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = RotatingLog::open(dir.path(), "t", limits(6, 1)).expect("open");
        log.write(b"aaaa\nbbbb\n").expect("write");
        assert_eq!(files(dir.path()), vec![("t.log".into(), "bbbb\n".into())]);
    }

    #[test]
    fn reopening_appends_and_counts_what_is_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        RotatingLog::open(dir.path(), "t", limits(8, 2))
            .expect("open")
            .write(b"12345\n")
            .expect("write");
        let mut log = RotatingLog::open(dir.path(), "t", limits(8, 2)).expect("reopen");
        log.write(b"678\n").expect("write");
        assert_eq!(
            files(dir.path()),
            vec![
                ("t.log".into(), "678\n".into()),
                ("t.log.1".into(), "12345\n".into()),
            ]
        );
        assert_eq!(log.path(), dir.path().join("t.log"));
    }
}
