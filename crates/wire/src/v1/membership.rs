//! `POST /v1/cluster/init`, `/v1/cluster/join` and `/v1/cluster/leave`: plain data, as the
//! local API reads and writes them. The node checks an init request into its settings.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// Address other nodes reach this node at (IP, or IP:PORT for the control port).
    #[serde(default)]
    pub advertise_addr: Option<String>,
    /// Control port listen address (default 0.0.0.0:2377).
    #[serde(default)]
    pub listen_addr: Option<String>,
    /// Agent heartbeat period in ms (default 1000).
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Node certificate lifetime in seconds (default 90 days).
    #[serde(default)]
    pub cert_expiry_secs: Option<u64>,
    /// Disaster recovery: restart the cluster this manager belonged to from its local
    /// state, as its only manager.
    #[serde(default)]
    pub force_new_cluster: bool,
    /// Managers start locked until `shoal unlock` gives the returned unlock key.
    #[serde(default)]
    pub autolock: bool,
    /// The network service VIPs come from (default `10.96.0.0/16`).
    #[serde(default)]
    pub vip_pool: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitResponse {
    pub cluster_id: String,
    pub node_id: String,
    pub worker_token: String,
    pub manager_addr: String,
    /// With autolock: the key `shoal unlock` asks for.
    #[serde(default)]
    pub unlock_key: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    /// A manager's control address, `HOST[:PORT]` (port 2377 by default).
    pub remote_addr: String,
    #[serde(default)]
    pub advertise_addr: Option<String>,
    /// Control port listen address if the token makes this node a manager
    /// (default 0.0.0.0:2377).
    #[serde(default)]
    pub listen_addr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub node_id: String,
    pub cluster_id: String,
    pub role: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    #[serde(default)]
    pub force: bool,
}
