//! What a leader tells a node on its session stream, encoded and decoded in one place.
//!
//! Domain objects travel as JSON of the `shoal-api` and `shoal-balance` types inside the
//! [`SessionMessage`] envelope; this module is the only code that knows how.

use crate::proto::SessionMessage;
use shoal_api::{NodeRole, Task, TaskFiles};
use shoal_balance::{DataPlaneSnapshot, EndpointTable};
use std::sync::Arc;
use std::time::Duration;

/// One session message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The store version the message was built from: the version of `endpoints` too, and
    /// what the node's data plane acknowledges once it routes by them.
    pub version: u64,
    /// The tasks assigned to the node.
    pub tasks: Vec<Task>,
    /// The data plane's snapshot of the services, shared by every session built from the
    /// same store version.
    pub data_plane: Arc<DataPlaneSnapshot>,
    /// Its ingress view (published port → ready endpoints), for nodes of the previous
    /// version, which read only this.
    pub endpoints: Arc<EndpointTable>,
    pub heartbeat_period: Duration,
    /// Control addresses of the managers, as the cluster record lists them.
    pub managers: Vec<String>,
    /// Endpoint-table version every reachable node routes by: a task removed at or before
    /// it gets no new connection anywhere, so it may be signalled to stop.
    pub cluster_acked: u64,
    /// The role the cluster wants the node to have; none if the leader named none it knows.
    pub role: Option<NodeRole>,
    /// The secrets and configs `tasks` use.
    pub files: TaskFiles,
}

/// A session message that could not be encoded or read.
#[derive(Debug, thiserror::Error)]
#[error("session {part}: {source}")]
pub struct CodecError {
    part: &'static str,
    source: serde_json::Error,
}

fn json<T: serde::Serialize>(part: &'static str, v: &T) -> Result<Vec<u8>, CodecError> {
    serde_json::to_vec(v).map_err(|source| CodecError { part, source })
}

fn from_json<T: serde::de::DeserializeOwned>(
    part: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    serde_json::from_slice(bytes).map_err(|source| CodecError { part, source })
}

impl Session {
    pub fn encode(&self) -> Result<SessionMessage, CodecError> {
        Ok(SessionMessage {
            version: self.version,
            tasks_json: json("tasks", &self.tasks)?,
            endpoints_json: json("endpoints", &self.endpoints)?,
            heartbeat_period_ms: u64::try_from(self.heartbeat_period.as_millis())
                .unwrap_or(u64::MAX),
            managers: self.managers.clone(),
            cluster_acked_version: self.cluster_acked,
            role: self
                .role
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            data_plane_json: json("data plane", &*self.data_plane)?,
            files_json: if self.files.is_empty() {
                Vec::new()
            } else {
                json("files", &self.files)?
            },
        })
    }

    pub fn decode(msg: &SessionMessage) -> Result<Session, CodecError> {
        let mut endpoints: EndpointTable = from_json("endpoints", &msg.endpoints_json)?;
        endpoints.version = msg.version;
        let mut data_plane = if msg.data_plane_json.is_empty() {
            DataPlaneSnapshot::from_table(&endpoints)
        } else {
            from_json("data plane", &msg.data_plane_json)?
        };
        data_plane.version = msg.version;
        Ok(Session {
            version: msg.version,
            tasks: decode_tasks(msg)?,
            data_plane: Arc::new(data_plane),
            endpoints: Arc::new(endpoints),
            heartbeat_period: Duration::from_millis(msg.heartbeat_period_ms),
            managers: msg.managers.clone(),
            cluster_acked: msg.cluster_acked_version,
            role: msg.role.parse().ok(),
            files: if msg.files_json.is_empty() {
                TaskFiles::default()
            } else {
                from_json("files", &msg.files_json)?
            },
        })
    }
}

/// Only the tasks of a session message, for a reader that routes nothing.
pub fn decode_tasks(msg: &SessionMessage) -> Result<Vec<Task>, CodecError> {
    from_json("tasks", &msg.tasks_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_survives_the_round_trip() {
        let task: Task = serde_json::from_value(serde_json::json!({
            "id": "t1", "service_id": "s1", "service_name": "web", "slot": 1, "node_id": "n1",
            "spec_version": 1, "spec": {}, "desired_state": "running", "created_at": 1,
            "status": {"state": "assigned", "timestamp": 1, "message": "assigned"},
        }))
        .expect("a task");
        let endpoints = Arc::new(EndpointTable {
            version: 7,
            ..EndpointTable::default()
        });
        let data_plane = Arc::new(DataPlaneSnapshot {
            vip_pool: None,
            version: 7,
            ..DataPlaneSnapshot::default()
        });
        let s = Session {
            version: 7,
            tasks: vec![task],
            data_plane,
            endpoints,
            heartbeat_period: Duration::from_millis(1000),
            managers: vec!["10.0.0.1:2377".into()],
            cluster_acked: 5,
            role: Some(NodeRole::Worker),
            files: TaskFiles::default(),
        };
        let msg = s.encode().expect("encode");
        assert_eq!(msg.role, "worker");
        assert_eq!(Session::decode(&msg).expect("decode"), s);
        assert_eq!(decode_tasks(&msg).expect("tasks"), s.tasks);
    }

    #[test]
    fn an_unknown_role_is_none_and_bad_json_names_its_part() {
        let mut msg = Session {
            version: 1,
            tasks: vec![],
            data_plane: Arc::default(),
            endpoints: Arc::default(),
            heartbeat_period: Duration::from_secs(1),
            managers: vec![],
            cluster_acked: 0,
            role: None,
            files: TaskFiles::default(),
        }
        .encode()
        .expect("encode");
        msg.role = "overlord".into();
        assert_eq!(Session::decode(&msg).expect("decode").role, None);
        // From a leader of the previous version: the snapshot the table stands for.
        msg.data_plane_json.clear();
        let s = Session::decode(&msg).expect("decode");
        assert_eq!(s.data_plane.ingress(), *s.endpoints);
        msg.tasks_json = b"{".to_vec();
        let err = Session::decode(&msg).expect_err("bad tasks");
        assert!(err.to_string().starts_with("session tasks: "), "{err}");
    }
}
