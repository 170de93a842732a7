//! The daemon's own routes on the local socket: info, init, join, leave, unlock, and the
//! guards that keep cluster-state calls off workers and off a locked manager.

use crate::membership::MembershipError;
use crate::runtime::Runtime;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shoal_api::NodeRole;
use shoal_manager::control::ApiError;
use shoal_wire::v1::daemon::{InfoResponse, UnlockRequest};
use shoal_wire::v1::membership::{
    InitRequest, InitResponse, JoinRequest, JoinResponse, LeaveRequest,
};
use shoal_wire::v1::Message;
use std::sync::Arc;

pub fn router(rt: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/cluster/init", post(init))
        .route("/v1/cluster/join", post(join))
        .route("/v1/cluster/leave", post(leave))
        .route("/v1/unlock", post(unlock))
        .with_state(rt)
}

async fn info(State(rt): State<Arc<Runtime>>) -> Json<InfoResponse> {
    let state = rt.store.state();
    let membership = rt.membership();
    Json(InfoResponse {
        node_id: rt.node_id.clone(),
        hostname: rt.hostname.clone(),
        cluster_id: membership.as_ref().map(|m| m.cluster_id.clone()),
        role: membership.as_ref().map(|m| m.role.as_str().to_string()),
        managers: membership.map(|m| m.managers).unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        nodes: state.nodes.len(),
        services: state.services.len(),
        tasks: state.tasks.len(),
        locked: rt.store.is_locked(),
    })
}

async fn init(
    State(rt): State<Arc<Runtime>>,
    body: Result<Json<InitRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<InitResponse>), ApiError> {
    let Json(req) = body?;
    Ok((StatusCode::CREATED, Json(rt.init(req).await?)))
}

async fn join(
    State(rt): State<Arc<Runtime>>,
    body: Result<Json<JoinRequest>, JsonRejection>,
) -> Result<Json<JoinResponse>, ApiError> {
    let Json(req) = body?;
    Ok(Json(rt.join(req).await?))
}

async fn leave(
    State(rt): State<Arc<Runtime>>,
    body: Result<Json<LeaveRequest>, JsonRejection>,
) -> Result<Json<Message>, ApiError> {
    let Json(req) = body?;
    rt.leave(req).await?;
    Ok(Json(Message::new("node left the cluster")))
}

async fn unlock(
    State(rt): State<Arc<Runtime>>,
    body: Result<Json<UnlockRequest>, JsonRejection>,
) -> Result<Json<Message>, ApiError> {
    let Json(req) = body?;
    rt.unlock(&req.key).await?;
    Ok(Json(Message::new("node unlocked")))
}

/// The one place a refused or failed membership change becomes a response: a request
/// that cannot be met is 400, one that clashes with what the node is 409, a manager out of
/// reach 503.
impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        use MembershipError as E;
        match e {
            E::Store(e) => ApiError::from(e),
            E::AlreadyMember { .. }
            | E::LeaveFirst { .. }
            | E::NotMember
            | E::NotAManager
            | E::OnlyManager
            | E::ManagerWithPeers { .. }
            | E::Listen { .. }
            | E::Duplicate(_) => ApiError::conflict(e.to_string()),
            E::Addr(_)
            | E::Heartbeat(_)
            | E::CertExpiry
            | E::VipPool(_)
            | E::VipPoolOverlaps { .. }
            | E::Token(_)
            | E::NoAdvertiseAddr
            | E::ForeignCluster(_)
            | E::Refused(_) => ApiError::bad_request(e.to_string()),
            E::Unreachable { .. } => ApiError::unavailable(e.to_string()),
            E::Internal(_) => ApiError::internal(e.to_string()),
        }
    }
}

/// A locked manager answers only `info` and `unlock`.
pub async fn locked_guard(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/v1/info" | "/v1/unlock");
    if rt.store.is_locked() && !open {
        return ApiError::unavailable(shoal_store::StoreError::Locked.to_string()).into_response();
    }
    next.run(req).await
}

/// Workers hold no cluster state: calls for it are answered with where to go instead.
pub async fn worker_guard(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let cluster_call = [
        "/v1/services",
        "/v1/nodes",
        "/v1/tasks",
        "/v1/cluster/join-token",
        "/v1/cluster/unlock-key",
        "/v1/cluster/update",
        "/v1/clients",
        // The Docker API's swarm routes (after their version prefix is gone).
        "/nodes",
        "/services",
        "/tasks",
    ]
    .iter()
    .any(|p| path.starts_with(p))
        || path == "/swarm";
    if cluster_call && rt.membership().is_some_and(|m| m.role == NodeRole::Worker) {
        return ApiError::unavailable(
            "this node is a worker: cluster state is kept by the managers; run this on a manager (or use --host tcp://MANAGER:2377)",
        )
        .into_response();
    }
    next.run(req).await
}
