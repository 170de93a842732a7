//! `/v1/cluster`: join tokens, the unlock key, cluster settings.

use serde::{Deserialize, Serialize};

/// The query of `GET /v1/cluster/join-token/{role}` and `GET /v1/cluster/unlock-key`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Replace the token (or key) first.
    #[serde(default)]
    pub rotate: bool,
}

/// The answer to `GET /v1/cluster/join-token/{role}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenResponse {
    pub role: String,
    pub token: String,
    /// Control addresses of the managers, for the join command.
    pub managers: Vec<String>,
}

/// The answer to `GET /v1/cluster/unlock-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnlockKeyResponse {
    pub key: String,
}

/// `POST /v1/cluster/update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterUpdate {
    /// Turn autolock on (a new unlock key) or off.
    #[serde(default)]
    pub autolock: Option<bool>,
}

/// The answer to `POST /v1/cluster/update`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterUpdateResponse {
    /// The new unlock key, when autolock was just turned on.
    pub unlock_key: Option<String>,
}
