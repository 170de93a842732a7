//! The daemon's own routes: node info and cluster init.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shoal_api::{id, Node, NodeRole};
use shoal_manager::control::ApiError;
use shoal_manager::now_millis;
use shoal_store::{Op, Store};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct NodeApiState {
    pub store: Arc<Store>,
    pub node_id: String,
    pub hostname: String,
    /// Flipped to true once the node belongs to a cluster, to start its roles.
    pub joined: watch::Sender<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoResponse {
    pub node_id: String,
    pub hostname: String,
    pub cluster_id: Option<String>,
    pub version: String,
    pub nodes: usize,
    pub services: usize,
    pub tasks: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// Address other nodes and the data plane reach this node's tasks at.
    #[serde(default)]
    pub advertise_addr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitResponse {
    pub cluster_id: String,
    pub node_id: String,
}

pub fn router(state: NodeApiState) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/cluster/init", post(init))
        .with_state(state)
}

async fn info(State(s): State<NodeApiState>) -> Json<InfoResponse> {
    let state = s.store.state();
    Json(InfoResponse {
        node_id: s.node_id.clone(),
        hostname: s.hostname.clone(),
        cluster_id: state.cluster_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        nodes: state.nodes.len(),
        services: state.services.len(),
        tasks: state.tasks.len(),
    })
}

async fn init(
    State(s): State<NodeApiState>,
    body: Result<Json<InitRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<InitResponse>), ApiError> {
    let Json(req) = body?;
    let addr = req.advertise_addr.unwrap_or_else(|| "127.0.0.1".into());
    let ip = addr.split(':').next().unwrap_or("");
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::bad_request(format!(
            "invalid advertise address {addr:?}: expected an IP address"
        )));
    }
    let cluster_id = s.store.update(|tx| {
        if let Some(c) = &tx.state().cluster_id {
            return Err(ApiError::conflict(format!(
                "this node is already part of a cluster ({c}): nothing to do"
            )));
        }
        let cluster_id = id::new_id();
        tx.push(Op::SetClusterId(cluster_id.clone()));
        let node = Node::new(
            s.node_id.clone(),
            s.hostname.clone(),
            NodeRole::Manager,
            ip.to_string(),
            now_millis(),
        );
        tx.put_node(node);
        Ok(cluster_id)
    })?;
    s.joined.send_replace(true);
    tracing::info!(cluster = %cluster_id, node = %s.node_id, "cluster initialised");
    Ok((
        StatusCode::CREATED,
        Json(InitResponse {
            cluster_id,
            node_id: s.node_id.clone(),
        }),
    ))
}
