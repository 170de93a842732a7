//! `/v1/tasks`: list and inspect (answered with `Task`).

use serde::{Deserialize, Serialize};

/// The query of `GET /v1/tasks`: each filter given narrows the list.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// Service ID, ID prefix or name.
    pub service: Option<String>,
    /// Node ID, ID prefix or hostname.
    pub node: Option<String>,
    /// Only tasks with this desired state (`running`, `shutdown`...).
    pub desired_state: Option<String>,
}
