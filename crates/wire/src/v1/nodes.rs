//! `/v1/nodes`: update, remove (list, inspect, promote and demote answer with `Node`).

use serde::{Deserialize, Serialize};
use shoal_api::limits::check_labels;
use shoal_api::SpecError;
use std::collections::BTreeMap;

/// `POST /v1/nodes/{id}/update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeUpdate {
    #[serde(default)]
    pub availability: Option<shoal_api::Availability>,
    #[serde(default)]
    pub labels_add: BTreeMap<String, String>,
    #[serde(default)]
    pub labels_rm: Vec<String>,
}

impl NodeUpdate {
    /// Refuse labels to add that a node cannot hold and keys to remove that no label has.
    /// (How many labels the node ends up with is checked against its record.)
    pub fn check(&self) -> Result<(), SpecError> {
        check_labels(self.labels_add.iter())?;
        for k in &self.labels_rm {
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(SpecError::Other(format!("invalid label key {k:?}")));
            }
        }
        Ok(())
    }
}

/// The query of `DELETE /v1/nodes/{id}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Remove a node that is not down.
    #[serde(default)]
    pub force: bool,
}
