//! `GET /v1/services/{id}/endpoints[?watch=true]`: a service's endpoint set with a version.

use serde::{Deserialize, Serialize};
use shoal_balance::ServiceEntry;

/// The query of the endpoints route.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsQuery {
    /// Keep sending each changed set, one JSON object a line.
    #[serde(default)]
    pub watch: bool,
}

/// One version of a service's endpoints.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointsView {
    /// The store version it was read at.
    pub version: u64,
    #[serde(flatten)]
    pub service: ServiceEntry,
}
