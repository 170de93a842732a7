use super::{ApiError, ControlState};
use axum::extract::{Path, State};
use axum::Json;
use shoal_api::Node;

pub async fn list(State(s): State<ControlState>) -> Result<Json<Vec<Node>>, ApiError> {
    Ok(Json(s.cluster()?.nodes.values().cloned().collect()))
}

pub async fn inspect(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    let state = s.cluster()?;
    state
        .find_node(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))
}
