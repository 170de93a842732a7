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

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeUpdate {
    #[serde(default)]
    pub availability: Option<shoal_api::Availability>,
    #[serde(default)]
    pub labels_add: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub labels_rm: Vec<String>,
}

pub async fn update(
    State(s): State<ControlState>,
    Path(id): Path<String>,
    body: Result<Json<NodeUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Node>, ApiError> {
    let Json(u) = body?;
    s.cluster()?;
    for k in u.labels_add.keys().chain(u.labels_rm.iter()) {
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(ApiError::bad_request(format!("invalid label key {k:?}")));
        }
    }
    let node = s.store.update(|tx| {
        let mut n = tx
            .state()
            .find_node(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
        for k in &u.labels_rm {
            if n.labels.remove(k).is_none() {
                return Err(ApiError::bad_request(format!(
                    "label {k} is not set on node {}",
                    n.hostname
                )));
            }
        }
        n.labels.extend(u.labels_add.clone());
        if let Some(a) = u.availability {
            n.availability = a;
        }
        n.updated_at = crate::now_millis();
        tx.put_node(n.clone());
        Ok::<_, ApiError>(n)
    })?;
    tracing::info!(node = %node.id, availability = node.availability.as_str(), "node updated");
    Ok(Json(node))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

pub async fn remove(
    State(s): State<ControlState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RemoveQuery>,
) -> Result<axum::http::StatusCode, ApiError> {
    s.cluster()?;
    s.store.update(|tx| {
        let n = tx
            .state()
            .find_node(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
        if n.role == shoal_api::NodeRole::Manager {
            return Err(ApiError::conflict(format!(
                "node {} is a manager: it cannot be removed while it holds the cluster state",
                n.hostname
            )));
        }
        if n.state != shoal_api::NodeState::Down && !q.force {
            return Err(ApiError::conflict(format!(
                "node {} is not down and can't be removed: stop it (or `shoal leave` on it) first, or use --force",
                n.hostname
            )));
        }
        tx.push(shoal_store::Op::DeleteNode(n.id.clone()));
        // No agent will report on the node's tasks again: they are orphaned (Swarm's word),
        // which ends them so their slots count as replaced and history can be trimmed.
        let now = crate::now_millis();
        let orphans: Vec<shoal_api::Task> = tx
            .state()
            .tasks
            .values()
            .filter(|t| t.node_id.as_deref() == Some(n.id.as_str()) && t.is_live())
            .cloned()
            .collect();
        for mut t in orphans {
            if t.advance(shoal_api::TaskState::Orphaned, now, "node removed").is_ok() {
                tx.put_task(t);
            }
        }
        Ok::<_, ApiError>(())
    })?;
    tracing::info!(node = %id, "node removed");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
