//! The control API: HTTP/JSON, versioned under `/v1`, errors as `{"message": "..."}`.
//!
//! Handlers validate, then change the store in one atomic write; a rejected request changes
//! nothing. The daemon adds its own routes (`/v1/info`, `/v1/cluster/init`) and serves the
//! merged router on the unix socket. See docs/api.md. The bodies the routes read and write
//! are `shoal_wire::v1`'s.

mod auth;
mod clients;
pub(crate) mod cluster;
mod endpoints;
mod error;
pub(crate) mod logs;
pub(crate) mod nodes;
pub(crate) mod object_routes;
pub(crate) mod objects;
pub(crate) mod services;
mod strict;
mod tasks;

pub use auth::{authorize, require_operator};
pub use error::ApiError;
pub use strict::StrictJson;

use axum::routing::{get, post};
use axum::Router;
use shoal_api::{ConfigKind, SecretKind};
use shoal_store::Store;
use std::sync::Arc;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ControlState {
    pub store: Arc<Store>,
    /// Where log readers meet the nodes that hold the logs.
    pub logs: Arc<crate::log_broker::LogBroker>,
    /// The cluster's recent changes as Docker events (`GET /events`).
    pub events: Arc<crate::docker::EventLog>,
}

fn no_cluster() -> ApiError {
    ApiError::unavailable("this node is not part of a cluster: run `shoal init` first")
}

impl ControlState {
    /// The current state, or 503 if this node has not joined a cluster yet.
    pub(crate) fn cluster(&self) -> Result<Arc<shoal_api::ClusterState>, ApiError> {
        let state = self.store.state();
        if state.cluster.is_none() {
            return Err(no_cluster());
        }
        Ok(state)
    }
}

/// A copy of the cluster record inside a write, to change and put back.
pub(crate) fn cluster_record(tx: &shoal_store::Txn) -> Result<shoal_api::Cluster, ApiError> {
    tx.state().cluster.clone().ok_or_else(no_cluster)
}

/// Routes for nodes, services, tasks, logs, networks, secrets and configs.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/v1/nodes/{id}/update", post(nodes::update))
        .route("/v1/nodes/{id}/promote", post(nodes::promote))
        .route("/v1/nodes/{id}/demote", post(nodes::demote))
        .route("/v1/cluster/join-token/{role}", get(cluster::join_token_of))
        .route("/v1/cluster/unlock-key", get(cluster::unlock_key))
        .route("/v1/cluster/update", post(cluster::update))
        .route("/v1/clients", get(clients::list).post(clients::issue))
        .route("/v1/clients/{id}", axum::routing::delete(clients::revoke))
        .route("/v1/services", get(services::list).post(services::create))
        .route(
            "/v1/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/v1/services/{id}/scale", post(services::scale))
        .route("/v1/services/{id}/update", post(services::update))
        .route("/v1/services/{id}/rollback", post(services::rollback))
        .route("/v1/services/{id}/logs", get(logs::service_logs))
        .route("/v1/services/{id}/endpoints", get(endpoints::endpoints))
        .route(
            "/v1/networks",
            get(object_routes::list_networks).post(object_routes::create_network),
        )
        .route(
            "/v1/networks/{id}",
            get(object_routes::inspect_network).delete(object_routes::remove_network),
        )
        .route(
            "/v1/secrets",
            get(object_routes::list_blobs::<SecretKind>)
                .post(object_routes::create_blob::<SecretKind>),
        )
        .route(
            "/v1/secrets/{id}",
            get(object_routes::inspect_blob::<SecretKind>)
                .delete(object_routes::remove_blob::<SecretKind>),
        )
        .route(
            "/v1/secrets/{id}/update",
            post(object_routes::update_blob::<SecretKind>),
        )
        .route(
            "/v1/configs",
            get(object_routes::list_blobs::<ConfigKind>)
                .post(object_routes::create_blob::<ConfigKind>),
        )
        .route(
            "/v1/configs/{id}",
            get(object_routes::inspect_blob::<ConfigKind>)
                .delete(object_routes::remove_blob::<ConfigKind>),
        )
        .route(
            "/v1/configs/{id}/update",
            post(object_routes::update_blob::<ConfigKind>),
        )
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::inspect))
        .route("/v1/tasks/{id}/logs", get(logs::task_logs))
        .with_state(state)
}

#[cfg(test)]
mod tests;
