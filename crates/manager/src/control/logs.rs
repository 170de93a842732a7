//! `GET /v1/services/{id}/logs?tail=N&follow=true`: task output, prefixed like Docker's.

use super::{ApiError, ControlState};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use shoal_api::{id::short, ClusterState, Task};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

const FOLLOW_POLL: Duration = Duration::from_millis(200);

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
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let dir = s.logs_dir.clone();
    let store = s.store.clone();
    tokio::spawn(async move {
        // Offsets already sent, per task log.
        let mut offsets: HashMap<String, u64> = HashMap::new();
        let mut first = true;
        loop {
            let state = store.state();
            let mut tasks: Vec<&Task> = state.tasks_of(&service_id).collect();
            tasks.sort_by_key(|t| t.created_at);
            let mut chunk = Vec::new();
            for t in tasks {
                let path: PathBuf = dir.join(format!("{}.log", t.id));
                let offset = offsets.entry(t.id.clone()).or_insert(0);
                let Ok(mut file) = std::fs::File::open(&path) else {
                    continue;
                };
                let mut buf = Vec::new();
                if file.seek(SeekFrom::Start(*offset)).is_err()
                    || file.read_to_end(&mut buf).is_err()
                {
                    continue;
                }
                let mut lines = Vec::new();
                let used = prefixed_lines(&prefix(&state, t), &buf, &mut lines);
                *offset += used as u64;
                if first {
                    if let Some(n) = q.tail {
                        lines = last_lines(&lines, n);
                    }
                }
                chunk.extend_from_slice(&lines);
            }
            first = false;
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
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

fn last_lines(text: &[u8], n: usize) -> Vec<u8> {
    let count = text.iter().filter(|b| **b == b'\n').count();
    let skip = count.saturating_sub(n);
    let mut seen = 0;
    for (i, b) in text.iter().enumerate() {
        if seen == skip {
            return text[i..].to_vec();
        }
        if *b == b'\n' {
            seen += 1;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_are_sent() {
        let mut out = Vec::new();
        let used = prefixed_lines("p | ", b"one\ntwo\nthr", &mut out);
        assert_eq!(used, 8);
        assert_eq!(out, b"p | one\np | two\n");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
    }
}
