//! The daemon's own routes on the local socket: `GET /v1/info` and `POST /v1/unlock`.

use serde::{Deserialize, Serialize};

/// The answer to `GET /v1/info`: this node, and the cluster as it knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoResponse {
    pub node_id: String,
    pub hostname: String,
    pub cluster_id: Option<String>,
    /// `manager`, `worker`, or none before init/join.
    pub role: Option<String>,
    pub managers: Vec<String>,
    pub version: String,
    pub nodes: usize,
    pub services: usize,
    pub tasks: usize,
    /// A manager of an autolocked cluster that waits for `shoal unlock`.
    #[serde(default)]
    pub locked: bool,
}

/// `POST /v1/unlock` (answered with a `Message`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub key: String,
}
