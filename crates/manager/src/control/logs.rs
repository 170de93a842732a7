//! `GET /v1/services/{id}/logs?tail=N&follow=true`: task output, prefixed like Docker's.
//!
//! Output is streamed a block at a time from each task's log files (rotated parts first),
//! never read whole: memory stays bounded whatever the size of the logs. `tail` reads
//! backwards from the end of each task's log.

use super::log_reader::{Cursor, LogSet, READ_BLOCK};
use super::{ApiError, ControlState};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use shoal_api::{id::short, ClusterState, Task};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// A line longer than this is sent in pieces (each ended with a newline), so one endless
/// line cannot grow the server's memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Chunks of output queued for the client at most (each about [`READ_BLOCK`] bytes).
const QUEUED_CHUNKS: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

fn prefix(state: &ClusterState, t: &Task) -> String {
    let host = t
        .node_id
        .as_ref()
        .and_then(|n| state.nodes.get(n))
        .map(|n| n.hostname.as_str())
        .unwrap_or("");
    format!("{}.{}@{}    | ", t.slot_name(), short(&t.id), host)
}

/// Complete lines of `bytes`, each prefixed; returns how many bytes were consumed.
fn prefixed_lines(prefix: &str, bytes: &[u8], out: &mut Vec<u8>) -> usize {
    let mut used = 0;
    while let Some(nl) = bytes[used..].iter().position(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&bytes[used..used + nl + 1]);
        used += nl + 1;
    }
    used
}

/// Where one task's log has been read to, and the start of a line not complete yet.
#[derive(Debug, Default)]
struct Reading {
    cursor: Option<Cursor>,
    partial: Vec<u8>,
}

/// The client went away.
#[derive(Debug)]
struct Gone;

/// Send the task's output from where `reading` stands (or from its last `tail` lines, on a
/// first read) to the end of its log as it is now.
async fn send_task_log(
    dir: &std::path::Path,
    task_id: &str,
    prefix: &str,
    tail: Option<usize>,
    reading: &mut Reading,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
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
        let mut out = Vec::with_capacity(reading.partial.len() + READ_BLOCK / 4);
        let used = prefixed_lines(prefix, &reading.partial, &mut out);
        reading.partial.drain(..used);
        if reading.partial.len() > MAX_LINE {
            out.extend_from_slice(prefix.as_bytes());
            out.append(&mut reading.partial);
            out.push(b'\n');
        }
        if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
            return Err(Gone);
        }
    }
    reading.cursor = set.cursor(pos).or(reading.cursor);
    Ok(())
}

pub async fn service_logs(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let state = s.cluster()?;
    let service_id = state
        .find_service(&key)
        .ok_or_else(|| ApiError::not_found(format!("service {key} not found")))?
        .id
        .clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_CHUNKS);
    let dir: PathBuf = s.logs_dir.clone();
    let store = s.store.clone();
    tokio::spawn(async move {
        let mut readings: HashMap<String, Reading> = HashMap::new();
        let mut first = true;
        loop {
            let state = store.state();
            let mut tasks: Vec<&Task> = state.tasks_of(&service_id).collect();
            tasks.sort_by_key(|t| t.created_at);
            for t in tasks {
                let reading = readings.entry(t.id.clone()).or_default();
                let tail = if first { q.tail } else { None };
                let sent = send_task_log(&dir, &t.id, &prefix(&state, t), tail, reading, &tx).await;
                if sent.is_err() {
                    return;
                }
            }
            first = false;
            if !q.follow || !state.services.contains_key(&service_id) {
                return;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            if tx.is_closed() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::task_log::log_path;

    #[test]
    fn only_complete_lines_are_sent() {
        let mut out = Vec::new();
        let used = prefixed_lines("p | ", b"one\ntwo\nthr", &mut out);
        assert_eq!(used, 8);
        assert_eq!(out, b"p | one\np | two\n");
    }

    /// Everything `send_task_log` sends, with a receiver draining as it goes.
    async fn collect(dir: &std::path::Path, tail: Option<usize>, reading: &mut Reading) -> String {
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_CHUNKS);
        let drain = tokio::spawn(async move {
            let mut all = Vec::new();
            while let Some(Ok(b)) = rx.recv().await {
                all.extend_from_slice(&b);
            }
            all
        });
        send_task_log(dir, "t", "p | ", tail, reading, &tx)
            .await
            .expect("receiver open");
        drop(tx);
        String::from_utf8(drain.await.expect("drain")).expect("utf-8")
    }

    #[tokio::test]
    async fn tail_and_follow_read_across_rotated_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(log_path(dir.path(), "t", 1), "a\nb\nc").expect("write");
        std::fs::write(log_path(dir.path(), "t", 0), "c\nd\ne").expect("write");
        let mut reading = Reading::default();
        let out = collect(dir.path(), Some(2), &mut reading).await;
        assert_eq!(out, "p | cc\np | d\n");
        // The log grows and rotates: a follower goes on from where it stood.
        std::fs::write(log_path(dir.path(), "t", 2), "a\nb\nc").expect("write");
        std::fs::rename(log_path(dir.path(), "t", 0), log_path(dir.path(), "t", 1))
            .expect("rotate");
        std::fs::write(log_path(dir.path(), "t", 0), "\nf\n").expect("write");
        let out = collect(dir.path(), None, &mut reading).await;
        assert_eq!(out, "p | e\np | f\n");
        // Without tail, everything from the start of the oldest part.
        let out = collect(dir.path(), None, &mut Reading::default()).await;
        assert_eq!(out, "p | a\np | b\np | cc\np | d\np | e\np | f\n");
    }

    #[tokio::test]
    async fn an_endless_line_is_sent_in_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(3 * MAX_LINE);
        std::fs::write(log_path(dir.path(), "t", 0), format!("{long}\nend\n")).expect("write");
        let out = collect(dir.path(), None, &mut Reading::default()).await;
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() >= 3, "{}", lines.len());
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE + READ_BLOCK + 4));
        assert_eq!(out.matches('x').count(), 3 * MAX_LINE);
        assert_eq!(lines.last(), Some(&"p | end"));
    }
}
