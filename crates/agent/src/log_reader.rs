//! Reading a task's log without holding it in memory: its files (rotated parts oldest
//! first, then the one being written) read as one stream, a block at a time; `--tail`
//! found by reading backwards from the end.

use shoal_api::task_log::{log_path, MAX_LOG_PARTS};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Bytes read at once, forwards or backwards.
pub const READ_BLOCK: usize = 64 * 1024;

/// Where a reader stands: `offset` bytes into the file with inode `ino`. It stays valid
/// when that file is rotated (renamed), so a follower neither skips nor repeats output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub ino: u64,
    pub offset: u64,
}

#[derive(Debug)]
struct Part {
    file: File,
    ino: u64,
    /// Size when opened: reading stops there, so one pass sees one consistent log.
    len: u64,
}

/// The files of one task's log, oldest first, as they were when opened.
#[derive(Debug)]
pub struct LogSet {
    parts: Vec<Part>,
}

impl LogSet {
    /// Open the log files of `task_id` in `dir` (none yet: an empty log).
    pub fn open(dir: &Path, task_id: &str) -> LogSet {
        // Newest first: a rotation in between shows the same file twice (dropped below),
        // never a gap.
        let mut parts: Vec<Part> = Vec::new();
        for part in 0..=MAX_LOG_PARTS {
            let Ok(file) = File::open(log_path(dir, task_id, part)) else {
                if part == 0 {
                    continue;
                }
                break;
            };
            let Ok(meta) = file.metadata() else { continue };
            if parts.iter().any(|p| p.ino == meta.ino()) {
                continue;
            }
            parts.push(Part {
                file,
                ino: meta.ino(),
                len: meta.len(),
            });
        }
        parts.reverse();
        LogSet { parts }
    }

    /// Bytes in the whole log.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    /// Read at `pos` of the whole log into `buf`, within one file; 0 at the end.
    pub fn read_at(&self, mut pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        for p in &self.parts {
            if pos < p.len {
                let want = usize::try_from(p.len - pos).map_or(buf.len(), |n| n.min(buf.len()));
                return p.file.read_at(&mut buf[..want], pos);
            }
            pos -= p.len;
        }
        Ok(0)
    }

    /// Where in the whole log `cursor` points, if its file is still part of the log.
    pub fn position(&self, cursor: Cursor) -> Option<u64> {
        let mut before = 0;
        for p in &self.parts {
            if p.ino == cursor.ino {
                return Some(before + cursor.offset.min(p.len));
            }
            before += p.len;
        }
        None
    }

    /// A cursor for `pos` of the whole log (none while the log is empty).
    pub fn cursor(&self, mut pos: u64) -> Option<Cursor> {
        let last = self.parts.last()?;
        for p in &self.parts {
            if pos < p.len {
                return Some(Cursor {
                    ino: p.ino,
                    offset: pos,
                });
            }
            pos -= p.len;
        }
        Some(Cursor {
            ino: last.ino,
            offset: last.len,
        })
    }

    /// Where the last `n` complete lines start, reading backwards a block at a time.
    pub fn tail_start(&self, n: usize) -> io::Result<u64> {
        let mut buf = vec![0u8; READ_BLOCK];
        let mut end = self.len();
        // The newline ending the last complete line counts too: the (n+1)-th one from the
        // end is just before the first line wanted.
        let mut newlines = 0usize;
        while end > 0 {
            let start = end.saturating_sub(READ_BLOCK as u64);
            let mut filled = 0;
            let want = usize::try_from(end - start).unwrap_or(READ_BLOCK);
            while filled < want {
                let got = self.read_at(start + filled as u64, &mut buf[filled..want])?;
                if got == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                filled += got;
            }
            for (i, b) in buf[..want].iter().enumerate().rev() {
                if *b == b'\n' {
                    newlines += 1;
                    if newlines > n {
                        return Ok(start + i as u64 + 1);
                    }
                }
            }
            end = start;
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write `parts` (oldest first) as the files of task `t`.
    fn log(parts: &[&str]) -> (tempfile::TempDir, LogSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, text) in parts.iter().rev().enumerate() {
            std::fs::write(log_path(dir.path(), "t", i), text).expect("write");
        }
        let set = LogSet::open(dir.path(), "t");
        (dir, set)
    }

    fn read_from(set: &LogSet, mut pos: u64) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = set.read_at(pos, &mut buf).expect("read");
            if n == 0 {
                return String::from_utf8(out).expect("utf-8");
            }
            out.extend_from_slice(&buf[..n]);
            pos += n as u64;
        }
    }

    #[test]
    fn rotated_parts_read_as_one_stream() {
        let (_d, set) = log(&["a\nb", "b\nc\n", "d\ne"]);
        assert_eq!(set.len(), 10);
        assert_eq!(read_from(&set, 0), "a\nbb\nc\nd\ne");
        assert_eq!(read_from(&set, 4), "\nc\nd\ne");
    }

    #[test]
    fn tail_reader_finds_the_last_lines_across_parts() {
        let (_d, set) = log(&["a\nb", "b\nc\n", "d\ne"]);
        // (lines wanted, where they start): the trailing "e" is not a complete line yet.
        for (n, want) in [
            (0, "e"),
            (1, "d\ne"),
            (2, "c\nd\ne"),
            (3, "bb\nc\nd\ne"),
            (9, "a\nbb\nc\nd\ne"),
        ] {
            let start = set.tail_start(n).expect("tail");
            assert_eq!(read_from(&set, start), want, "tail {n}");
        }
        let (_d, empty) = log(&[]);
        assert_eq!(empty.tail_start(5).expect("tail"), 0);
        assert_eq!(empty.cursor(0), None);
    }

    #[test]
    fn tail_of_a_big_log_reads_only_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines: String = (1..=400_000).map(|i| format!("line {i:07}\n")).collect();
        std::fs::write(log_path(dir.path(), "t", 0), &lines).expect("write");
        let set = LogSet::open(dir.path(), "t");
        assert!(set.len() > 5_000_000);
        let start = set.tail_start(5).expect("tail");
        assert_eq!(
            read_from(&set, start),
            "line 0399996\nline 0399997\nline 0399998\nline 0399999\nline 0400000\n"
        );
        // The five lines sit in the last block: nothing before it was needed.
        assert!(set.len() - start < READ_BLOCK as u64);
    }

    #[test]
    fn a_cursor_survives_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = log_path(dir.path(), "t", 0);
        std::fs::write(&current, "one\ntwo\n").expect("write");
        let before = LogSet::open(dir.path(), "t");
        let cursor = before.cursor(4).expect("cursor");
        // Rotate: the file becomes part 1 and a new one starts.
        std::fs::rename(&current, log_path(dir.path(), "t", 1)).expect("rename");
        std::fs::write(&current, "three\n").expect("write");
        let after = LogSet::open(dir.path(), "t");
        let pos = after.position(cursor).expect("same file found");
        assert_eq!(read_from(&after, pos), "two\nthree\n");
        // A file rotated away entirely is gone: the reader starts over.
        std::fs::remove_file(log_path(dir.path(), "t", 1)).expect("remove");
        assert_eq!(LogSet::open(dir.path(), "t").position(cursor), None);
    }
}
