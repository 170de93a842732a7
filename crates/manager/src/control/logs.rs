//! `GET /v1/services/{id}/logs` and `GET /v1/tasks/{id}/logs`: task output from every node,
//! as newline-delimited JSON, one object per line of output.
//!
//! The lines come from the nodes that hold them, through the [`LogBroker`]: this handler
//! reads no log file itself. Each object names the task (`web.1.<short id>`), its node's
//! hostname, the time the line was written and the line; a node that cannot send is
//! reported as `{"error": ...}` and the others go on. Following picks up the service's new
//! tasks (scale, updates, restarts) on any node, and ends when the service is removed.

use super::{ApiError, ControlState};
use crate::log_broker::{LogEvent, TasksByNode};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use shoal_api::task_log::{format_time, LogLine};
use shoal_api::{id::short, ClusterState};
use shoal_wire::v1::logs::{LogError, LogQuery, LogRecord};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Chunks of output queued for the client at most.
const QUEUED_CHUNKS: usize = 8;

/// Whose logs: a service's tasks, or one task.
#[derive(Debug, Clone)]
enum Target {
    Service(String),
    Task(String),
}

/// A task's name and node, for its records.
#[derive(Debug, Clone)]
struct Named {
    task: String,
    node_id: String,
    node: String,
    service_id: String,
}

/// How lines go to the reader: shoal's JSON lines, or the Docker Engine API's
/// multiplexed stream (an 8-byte frame header per line: stream 1, three zero bytes, the
/// payload's length, big-endian), optionally with the line's time and the
/// `com.docker.swarm.*` details before it, as `docker service logs` reads it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Format {
    #[default]
    JsonLines,
    Docker {
        timestamps: bool,
        details: bool,
    },
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::Docker { .. } => "application/vnd.docker.multiplexed-stream",
        }
    }
}

/// One frame of Docker's multiplexed stream: `stream` 1 is stdout, 2 stderr.
fn frame(out: &mut Vec<u8>, stream: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..len as usize]);
}

/// The target's tasks by node (oldest first), and their names; none once it is gone.
fn view(state: &ClusterState, target: &Target) -> Option<(TasksByNode, HashMap<String, Named>)> {
    let mut tasks: Vec<&shoal_api::Task> = match target {
        Target::Service(id) => {
            state.services.get(id)?;
            state.tasks_of(id).collect()
        }
        Target::Task(id) => vec![state.tasks.get(id)?],
    };
    tasks.sort_by_key(|t| t.created_at);
    let mut by_node = TasksByNode::new();
    let mut names = HashMap::new();
    for t in tasks {
        let Some(node_id) = &t.node_id else { continue };
        by_node
            .entry(node_id.clone())
            .or_default()
            .push(t.id.clone());
        let node = state
            .nodes
            .get(node_id)
            .map_or_else(|| short(node_id).to_string(), |n| n.hostname.clone());
        names.insert(
            t.id.clone(),
            Named {
                task: format!("{}.{}", t.slot_name(), short(&t.id)),
                node_id: node_id.clone(),
                node,
                service_id: t.service_id.clone(),
            },
        );
    }
    Some((by_node, names))
}

/// The lines a node sent, in `format`; lines of tasks it was not asked for are dropped.
fn encode(
    node: &str,
    lines: Vec<LogLine>,
    names: &HashMap<String, Named>,
    format: Format,
) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        let Some(n) = names.get(&l.task_id).filter(|n| n.node_id == node) else {
            continue;
        };
        if let Format::Docker {
            timestamps,
            details,
        } = format
        {
            let mut payload = Vec::with_capacity(l.line.len() + 160);
            if timestamps {
                if let Some(t) = l.time {
                    payload.extend_from_slice(format_time(t).as_bytes());
                    payload.push(b' ');
                }
            }
            if details {
                payload.extend_from_slice(
                    format!(
                        "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                        n.node_id, n.service_id, l.task_id
                    )
                    .as_bytes(),
                );
            }
            payload.extend_from_slice(&l.line);
            payload.push(b'\n');
            frame(&mut out, 1, &payload);
            continue;
        }
        let record = LogRecord {
            task_id: l.task_id,
            task: n.task.clone(),
            node: n.node.clone(),
            time: l.time.map(format_time),
            line: String::from_utf8_lossy(&l.line).into_owned(),
        };
        if serde_json::to_writer(&mut out, &record).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

fn error_line(message: String, format: Format) -> Vec<u8> {
    if let Format::Docker { .. } = format {
        let mut out = Vec::new();
        frame(&mut out, 2, format!("{message}\n").as_bytes());
        return out;
    }
    let mut out = serde_json::to_vec(&LogError { error: message }).unwrap_or_default();
    out.push(b'\n');
    out
}

pub async fn service_logs(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    logs_of(s, &key, false, q, Format::JsonLines)
}

pub async fn task_logs(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    logs_of(s, &key, true, q, Format::JsonLines)
}

/// A service's logs (`task` false) or a task's, by name or ID, in `format`.
pub(crate) fn logs_of(
    s: ControlState,
    key: &str,
    task: bool,
    q: LogQuery,
    format: Format,
) -> Result<Response, ApiError> {
    let state = s.cluster()?;
    let target = if task {
        let t = state
            .find_task(key)
            .ok_or_else(|| ApiError::not_found(format!("task {key} not found")))?;
        Target::Task(t.id.clone())
    } else {
        let x = state
            .find_service(key)
            .ok_or_else(|| ApiError::not_found(format!("service {key} not found")))?;
        Target::Service(x.id.clone())
    };
    stream_logs(s, target, q, format)
}

fn stream_logs(
    s: ControlState,
    target: Target,
    q: LogQuery,
    format: Format,
) -> Result<Response, ApiError> {
    let request = q.request()?;
    let state = s.cluster()?;
    let (tasks, mut names) =
        view(&state, &target).ok_or_else(|| ApiError::not_found("no longer there".to_string()))?;
    let mut sub = s.logs.subscribe(tasks.clone(), request);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_CHUNKS);
    let store = s.store.clone();
    tokio::spawn(async move {
        let mut waiting: BTreeSet<String> = tasks.keys().cloned().collect();
        let mut asked = tasks;
        let mut changes = store.subscribe();
        if !request.follow && waiting.is_empty() {
            return;
        }
        loop {
            let out = tokio::select! {
                event = sub.events.recv() => match event {
                    Some(LogEvent::Lines { node, lines }) => encode(&node, lines, &names, format),
                    _ => return,
                },
                notice = sub.notices.recv() => {
                    let Some(notice) = notice else { return };
                    let (node, out) = match notice {
                        LogEvent::Unavailable { node, reason } => {
                            let host = store
                                .state()
                                .nodes
                                .get(&node)
                                .map_or_else(|| node.clone(), |n| n.hostname.clone());
                            let msg = format!("cannot read the logs on node {host}: {reason}");
                            (node, error_line(msg, format))
                        }
                        LogEvent::Done { node } | LogEvent::Lines { node, .. } => (node, Vec::new()),
                    };
                    waiting.remove(&node);
                    if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                        return;
                    }
                    if !request.follow && waiting.is_empty() {
                        // Every node's lines were queued before it said it was done.
                        while let Ok(LogEvent::Lines { node, lines }) = sub.events.try_recv() {
                            let out = encode(&node, lines, &names, format);
                            if tx.send(Ok(Bytes::from(out))).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    continue;
                }
                r = changes.changed(), if request.follow => {
                    if r.is_err() {
                        return;
                    }
                    let state = changes.borrow_and_update().clone();
                    let Some((now, more)) = view(&state, &target) else { return };
                    names.extend(more);
                    if now != asked {
                        sub.update(now.clone());
                        asked = now;
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", format.content_type())
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_named_and_strangers_dropped() {
        let mut names = HashMap::new();
        names.insert(
            "t1".to_string(),
            Named {
                task: "web.1.t1".into(),
                node_id: "n1".into(),
                node: "host1".into(),
                service_id: "s1".into(),
            },
        );
        let lines = vec![
            LogLine {
                task_id: "t1".into(),
                time: Some(0),
                line: b"hello".to_vec(),
            },
            LogLine {
                task_id: "t2".into(),
                time: None,
                line: b"not asked".to_vec(),
            },
        ];
        let out = encode("n1", lines.clone(), &names, Format::JsonLines);
        let records: Vec<LogRecord> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect();
        assert_eq!(
            records,
            vec![LogRecord {
                task_id: "t1".into(),
                task: "web.1.t1".into(),
                node: "host1".into(),
                time: Some("1970-01-01T00:00:00.000000000Z".into()),
                line: "hello".into(),
            }]
        );
        // Another node cannot speak for t1.
        assert!(encode("n2", lines.clone(), &names, Format::JsonLines).is_empty());
        // Docker's multiplexed stream: one stdout frame per line, with time and details.
        let docker = Format::Docker {
            timestamps: true,
            details: true,
        };
        let out = encode("n1", lines, &names, docker);
        let payload = b"1970-01-01T00:00:00.000000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hello\n";
        let mut want = vec![1, 0, 0, 0];
        want.extend_from_slice(&u32::try_from(payload.len()).expect("len").to_be_bytes());
        want.extend_from_slice(payload);
        assert_eq!(out, want);
    }
}
