//! Serving this node's task logs to whoever asked (through the leader, for `service logs`).
//!
//! Output is read a block at a time from each task's log files (rotated parts first), never
//! whole, and sent as batches of lines over a bounded channel: memory stays bounded whatever
//! the size of the logs and however slow the reader. `tail` reads backwards from the end of
//! each task's log; `since` drops lines stamped earlier; `follow` keeps reading as the logs
//! grow, and picks up tasks added to the request while it runs.

use crate::log_reader::{Cursor, LogSet, READ_BLOCK};
use shoal_api::task_log::{split_stamp, LogLine, LogRequest};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// A line longer than this is sent in pieces, so one endless line cannot grow anyone's
/// memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Where one task's log has been read to, and the start of a line not complete yet.
#[derive(Debug, Default)]
struct Reading {
    cursor: Option<Cursor>,
    partial: Vec<u8>,
}

/// The receiver went away.
#[derive(Debug)]
struct Gone;

/// Send the logs of the tasks `tasks` names, kept in `dir`, to `out` in batches. Without
/// `follow` it returns once every task's log has been sent as it stood; with it, when `out`
/// closes. Tasks named later (the watch changes) are read from their start.
pub async fn serve_logs(
    dir: PathBuf,
    mut tasks: watch::Receiver<Vec<String>>,
    req: LogRequest,
    out: mpsc::Sender<Vec<LogLine>>,
) {
    let mut readings: HashMap<String, Reading> = HashMap::new();
    loop {
        let wanted = tasks.borrow_and_update().clone();
        for task in wanted {
            let first = !readings.contains_key(&task);
            let reading = readings.entry(task.clone()).or_default();
            let tail = if first { req.tail } else { None };
            if send_task_log(&dir, &task, tail, req.since, reading, &out)
                .await
                .is_err()
            {
                return;
            }
        }
        if !req.follow {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {},
            r = tasks.changed() => if r.is_err() { return },
            _ = out.closed() => return,
        }
    }
}

/// The complete lines at the start of `bytes`, kept unless stamped before `since`; returns
/// how many bytes were used.
fn complete_lines(
    task_id: &str,
    bytes: &[u8],
    since: Option<i64>,
    lines: &mut Vec<LogLine>,
) -> usize {
    let mut used = 0;
    while let Some(nl) = bytes[used..].iter().position(|b| *b == b'\n') {
        push_line(task_id, &bytes[used..used + nl], since, lines);
        used += nl + 1;
    }
    used
}

fn push_line(task_id: &str, raw: &[u8], since: Option<i64>, lines: &mut Vec<LogLine>) {
    let (time, line) = split_stamp(raw);
    if since.is_some_and(|s| time.is_none_or(|t| t < s)) {
        return;
    }
    lines.push(LogLine {
        task_id: task_id.to_string(),
        time,
        line: line.to_vec(),
    });
}

/// Send the task's output from where `reading` stands (or from its last `tail` lines, on a
/// first read) to the end of its log as it is now.
async fn send_task_log(
    dir: &Path,
    task_id: &str,
    tail: Option<usize>,
    since: Option<i64>,
    reading: &mut Reading,
    out: &mpsc::Sender<Vec<LogLine>>,
) -> Result<(), Gone> {
    let set = LogSet::open(dir, task_id);
    let start = match (reading.cursor, tail) {
        (Some(c), _) => set.position(c).unwrap_or(0),
        (None, Some(n)) => match set.tail_start(n) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(task = task_id, error = %e, "cannot read task log");
                return Ok(());
            }
        },
        (None, None) => 0,
    };
    let end = set.len();
    let mut pos = start;
    let mut buf = vec![0u8; READ_BLOCK];
    while pos < end {
        let n = match set.read_at(pos, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(task = task_id, error = %e, "cannot read task log");
                break;
            }
        };
        pos += n as u64;
        reading.partial.extend_from_slice(&buf[..n]);
        let mut lines = Vec::new();
        let used = complete_lines(task_id, &reading.partial, since, &mut lines);
        reading.partial.drain(..used);
        if reading.partial.len() > MAX_LINE {
            push_line(task_id, &reading.partial, since, &mut lines);
            reading.partial.clear();
        }
        if !lines.is_empty() && out.send(lines).await.is_err() {
            return Err(Gone);
        }
    }
    reading.cursor = set.cursor(pos).or(reading.cursor);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::task_log::{format_time, log_path};

    /// Everything served for task `t` with `req`, each line as `time|text`.
    async fn serve(dir: &Path, req: LogRequest) -> Vec<String> {
        let (_keep, tasks) = watch::channel(vec!["t".to_string()]);
        let (tx, mut rx) = mpsc::channel(8);
        let reader = tokio::spawn(serve_logs(dir.to_path_buf(), tasks, req, tx));
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            for l in batch {
                let time = l.time.map_or("-".to_string(), |t| t.to_string());
                all.push(format!("{time}|{}", String::from_utf8_lossy(&l.line)));
            }
        }
        reader.await.expect("reader");
        all
    }

    fn stamped(lines: &[(i64, &str)]) -> String {
        lines
            .iter()
            .map(|(t, l)| format!("{} {l}\n", format_time(*t)))
            .collect()
    }

    #[tokio::test]
    async fn tail_and_since_read_across_rotated_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = stamped(&[(1, "a"), (2, "b")]);
        let new = stamped(&[(3, "c"), (4, "d")]);
        std::fs::write(log_path(dir.path(), "t", 1), format!("unstamped\n{old}")).expect("w");
        std::fs::write(log_path(dir.path(), "t", 0), format!("{new}partial")).expect("w");
        let all = serve(dir.path(), LogRequest::default()).await;
        assert_eq!(all, ["-|unstamped", "1|a", "2|b", "3|c", "4|d"]);
        let tail = LogRequest {
            tail: Some(3),
            ..LogRequest::default()
        };
        assert_eq!(serve(dir.path(), tail).await, ["2|b", "3|c", "4|d"]);
        let since = LogRequest {
            since: Some(2),
            ..LogRequest::default()
        };
        assert_eq!(serve(dir.path(), since).await, ["2|b", "3|c", "4|d"]);
    }

    #[tokio::test]
    async fn a_follower_gets_new_output_and_new_tasks() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(log_path(dir.path(), "t", 0), stamped(&[(1, "one")])).expect("w");
        let (tasks_tx, tasks) = watch::channel(vec!["t".to_string()]);
        let (tx, mut rx) = mpsc::channel(8);
        let req = LogRequest {
            follow: true,
            ..LogRequest::default()
        };
        let reader = tokio::spawn(serve_logs(dir.path().to_path_buf(), tasks, req, tx));
        let line = |b: Vec<LogLine>| {
            b.into_iter()
                .map(|l| format!("{}:{}", l.task_id, String::from_utf8_lossy(&l.line)))
                .collect::<Vec<_>>()
        };
        assert_eq!(line(rx.recv().await.expect("first")), ["t:one"]);
        // It grows and rotates: the follower goes on from where it stood.
        std::fs::rename(log_path(dir.path(), "t", 0), log_path(dir.path(), "t", 1))
            .expect("rotate");
        std::fs::write(log_path(dir.path(), "t", 0), stamped(&[(2, "two")])).expect("w");
        assert_eq!(line(rx.recv().await.expect("second")), ["t:two"]);
        // A task added to the request is read from its start.
        std::fs::write(log_path(dir.path(), "u", 0), stamped(&[(3, "other")])).expect("w");
        tasks_tx.send_replace(vec!["t".to_string(), "u".to_string()]);
        assert_eq!(line(rx.recv().await.expect("third")), ["u:other"]);
        drop(rx);
        tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the follower ends when its reader goes")
            .expect("reader");
    }

    #[tokio::test]
    async fn an_endless_line_is_sent_in_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(3 * MAX_LINE);
        std::fs::write(log_path(dir.path(), "t", 0), format!("{long}\nend\n")).expect("write");
        let all = serve(dir.path(), LogRequest::default()).await;
        assert!(all.len() >= 3, "{}", all.len());
        assert!(all.iter().all(|l| l.len() <= MAX_LINE + READ_BLOCK + 4));
        let xs: usize = all.iter().map(|l| l.matches('x').count()).sum();
        assert_eq!(xs, 3 * MAX_LINE);
        assert_eq!(all.last().map(String::as_str), Some("-|end"));
    }
}
