use super::{ApiError, ControlState};
use axum::extract::{Path, State};
use axum::Json;
use shoal_api::{Node, NodeRole};

/// Fill in each manager's place in the Raft group (Leader, Reachable, Unreachable).
fn with_manager_status(s: &ControlState, mut nodes: Vec<Node>) -> Vec<Node> {
    let Some(r) = s.store.replica() else {
        return nodes;
    };
    let g = r.status();
    for n in nodes.iter_mut().filter(|n| n.role == NodeRole::Manager) {
        n.manager_status = Some(
            if !g.voters.iter().any(|v| v.node == n.id) {
                // A learner catching up, or not yet added by the leader.
                "Joining"
            } else if g.leader.as_ref().is_some_and(|l| l.node == n.id) {
                "Leader"
            } else if g.reachable.contains(&n.id) {
                "Reachable"
            } else {
                "Unreachable"
            }
            .to_string(),
        );
    }
    nodes
}

pub async fn list(State(s): State<ControlState>) -> Result<Json<Vec<Node>>, ApiError> {
    let nodes = s.cluster()?.nodes.values().cloned().collect();
    Ok(Json(with_manager_status(&s, nodes)))
}

/// `node promote`: the node becomes a manager (it joins the Raft group as a learner, then
/// votes once caught up).
pub async fn promote(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    s.cluster()?;
    let node = s
        .store
        .update(|tx| {
            let mut n = tx
                .state()
                .find_node(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
            if n.role == NodeRole::Manager {
                return Err(ApiError::conflict(format!(
                    "node {} is already a manager",
                    n.hostname
                )));
            }
            n.role = NodeRole::Manager;
            n.control_addr = Some(format!("{}:{}", n.addr, shoal_rpc::DEFAULT_CONTROL_PORT));
            n.updated_at = crate::now_millis();
            tx.put_node(n.clone());
            Ok::<_, ApiError>(n)
        })
        .await?;
    tracing::info!(node = %node.id, "node promoted to manager");
    Ok(Json(node))
}

/// `node demote`: the node becomes a worker. Refused if the managers left could not form
/// a quorum.
pub async fn demote(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    s.cluster()?;
    let group = s.store.replica().map(|r| r.status());
    let node = s
        .store
        .update(|tx| {
            let mut n = tx
                .state()
                .find_node(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
            if n.role != NodeRole::Manager {
                return Err(ApiError::conflict(format!(
                    "node {} is not a manager",
                    n.hostname
                )));
            }
            let managers = tx
                .state()
                .nodes
                .values()
                .filter(|m| m.role == NodeRole::Manager)
                .count();
            if managers <= 1 {
                return Err(ApiError::conflict(format!(
                    "node {} is the cluster's last manager and cannot be demoted",
                    n.hostname
                )));
            }
            if let Some(g) = &group {
                let remaining: Vec<_> = g.voters.iter().filter(|p| p.node != n.id).collect();
                let quorum = remaining.len() / 2 + 1;
                let reachable = remaining
                    .iter()
                    .filter(|p| g.reachable.contains(&p.node))
                    .count();
                if reachable < quorum {
                    return Err(ApiError::conflict(format!(
                        "demoting {} would lose quorum: {quorum} of the {} remaining managers must be reachable, {reachable} are",
                        n.hostname,
                        remaining.len()
                    )));
                }
            }
            n.role = NodeRole::Worker;
            n.control_addr = None;
            n.updated_at = crate::now_millis();
            tx.put_node(n.clone());
            Ok::<_, ApiError>(n)
        })
        .await?;
    tracing::info!(node = %node.id, "manager demoted to worker");
    Ok(Json(node))
}

pub async fn inspect(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    let state = s.cluster()?;
    let node = state
        .find_node(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
    Ok(Json(with_manager_status(&s, vec![node]).remove(0)))
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
    let node = s
        .store
        .update(|tx| {
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
        })
        .await?;
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
                "node {} is a manager: demote it first (`shoal node demote`)",
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
    }).await?;
    tracing::info!(node = %id, "node removed");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
