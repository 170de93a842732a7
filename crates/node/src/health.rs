//! `GET /healthz` for load balancers in front of the nodes (HAProxy, cloud LBs): 200 when
//! this node's routing mesh routes by an endpoint table, 503 otherwise. Plain HTTP on its
//! own address, independent of the control plane.

use crate::data_plane::DataPlaneStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

async fn healthz(
    State(status): State<watch::Receiver<DataPlaneStatus>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let s = status.borrow().clone();
    let ready = s.role.is_some() && s.table_version > 0;
    let body = serde_json::json!({
        "ready": ready,
        "role": s.role.map(|r| r.as_str()),
        "table_version": s.table_version,
        "published_ports": s.published_ports,
        "published_udp_ports": s.published_udp_ports,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

pub async fn serve(listener: TcpListener, status: watch::Receiver<DataPlaneStatus>) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(status);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "health endpoint stopped");
    }
}
