use super::{ApiError, ControlState};
use axum::extract::{Path, Query, State};
use axum::Json;
use shoal_api::{Task, TaskState};
use shoal_wire::v1::tasks::TaskQuery;

pub async fn list(
    State(s): State<ControlState>,
    Query(q): Query<TaskQuery>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let state = s.cluster()?;
    let service_id = match &q.service {
        Some(key) => Some(
            state
                .find_service(key)
                .ok_or_else(|| ApiError::not_found(format!("service {key} not found")))?
                .id
                .clone(),
        ),
        None => None,
    };
    let node_id = match &q.node {
        Some(key) => Some(
            state
                .find_node(key)
                .ok_or_else(|| ApiError::not_found(format!("node {key} not found")))?
                .id
                .clone(),
        ),
        None => None,
    };
    let desired = match &q.desired_state {
        Some(d) => Some(TaskState::parse(d).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid desired-state filter {d:?}: not a task state"
            ))
        })?),
        None => None,
    };
    let mut tasks: Vec<Task> = state
        .tasks
        .values()
        .filter(|t| service_id.as_ref().is_none_or(|id| &t.service_id == id))
        .filter(|t| {
            node_id
                .as_ref()
                .is_none_or(|id| t.node_id.as_ref() == Some(id))
        })
        .filter(|t| desired.is_none_or(|d| t.desired_state == d))
        .cloned()
        .collect();
    tasks.sort_by(|a, b| {
        (
            &a.service_name,
            a.slot,
            &a.node_id,
            std::cmp::Reverse(a.created_at),
        )
            .cmp(&(
                &b.service_name,
                b.slot,
                &b.node_id,
                std::cmp::Reverse(b.created_at),
            ))
    });
    Ok(Json(tasks))
}

pub async fn inspect(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    let state = s.cluster()?;
    state
        .find_task(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))
}
