//! `GET /v1/services/{id}/logs` and `GET /v1/tasks/{id}/logs`: newline-delimited JSON, a
//! [`LogRecord`] per line of output, or a [`LogError`] for a node that cannot send.

use serde::{Deserialize, Serialize};
use shoal_api::task_log::{parse_unix_seconds, LogRequest};
use shoal_api::SpecError;

/// The query of the log routes.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Lines from the end of each task's log; all if none.
    pub tail: Option<usize>,
    /// Keep sending output as it is written.
    #[serde(default)]
    pub follow: bool,
    /// Unix seconds, with an optional fraction (`1764522000.5`), as in Docker's API.
    pub since: Option<String>,
}

impl LogQuery {
    /// What the reader asked for, or why `since` is not a time.
    pub fn request(&self) -> Result<LogRequest, SpecError> {
        let since = match &self.since {
            Some(text) => Some(parse_unix_seconds(text).ok_or_else(|| {
                SpecError::Other(format!(
                    "invalid since {text:?}: expected unix seconds such as 1764522000.5"
                ))
            })?),
            None => None,
        };
        Ok(LogRequest {
            tail: self.tail,
            since,
            follow: self.follow,
        })
    }
}

/// One line of output as the API sends it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogRecord {
    pub task_id: String,
    /// `web.1.<short task id>`.
    pub task: String,
    /// Hostname of the task's node.
    pub node: String,
    /// RFC 3339 in UTC; absent for a line written before lines were stamped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub line: String,
}

/// A node that could not send its tasks' output.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogError {
    pub error: String,
}
