use super::{ApiError, ControlState};
use axum::extract::{Path, State};
use axum::Json;
use shoal_api::limits::{check_count, MAX_LABELS};
use shoal_api::{Node, NodeRole};
use shoal_store::raft::GroupStatus;
use shoal_wire::v1::nodes::{NodeUpdate, RemoveQuery};

/// The node named `id` (ID, prefix or hostname), or 404.
pub(crate) fn find(state: &shoal_api::ClusterState, id: &str) -> Result<Node, ApiError> {
    state
        .find_node(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))
}

/// A manager's place in the Raft group: Leader, Reachable, Unreachable, or Joining (a
/// learner catching up, or not yet added by the leader).
pub(crate) fn set_manager_status(n: &mut Node, g: &GroupStatus) {
    if n.role != NodeRole::Manager {
        return;
    }
    n.manager_status = Some(
        if !g.voters.iter().any(|v| v.node == n.id) {
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

pub(crate) fn group(s: &ControlState) -> Option<GroupStatus> {
    s.store.replica().map(|r| r.status())
}

pub async fn list(State(s): State<ControlState>) -> Result<Json<Vec<Node>>, ApiError> {
    let mut nodes: Vec<Node> = s.cluster()?.nodes.values().cloned().collect();
    if let Some(g) = group(&s) {
        nodes.iter_mut().for_each(|n| set_manager_status(n, &g));
    }
    Ok(Json(nodes))
}

/// `node promote`: the node becomes a manager (it joins the Raft group as a learner, then
/// votes once caught up).
pub async fn promote(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    change_role(&s, &id, NodeRole::Manager).await
}

/// `node demote`: the node becomes a worker. Refused for the last manager, and if the
/// managers left could not form a quorum.
pub async fn demote(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    change_role(&s, &id, NodeRole::Worker).await
}

/// Give the node `role` in the store; the leader's membership loop (`crate::managers`)
/// makes the Raft group follow.
async fn change_role(s: &ControlState, id: &str, role: NodeRole) -> Result<Json<Node>, ApiError> {
    s.cluster()?;
    let group = group(s);
    let node = s
        .store
        .update(|tx| {
            let mut n = find(tx.state(), id)?;
            if n.role == role {
                return Err(ApiError::conflict(match role {
                    NodeRole::Manager => format!("node {} is already a manager", n.hostname),
                    NodeRole::Worker => format!("node {} is not a manager", n.hostname),
                }));
            }
            set_role(tx.state(), &mut n, role, group.as_ref())?;
            n.updated_at = crate::now_millis();
            tx.put(n.clone());
            Ok::<_, ApiError>(n)
        })
        .await?;
    tracing::info!(node = %node.id, role = role.as_str(), "node role changed");
    Ok(Json(node))
}

/// Gives `n` (not yet of `role`) its new role, checking that a demotion keeps a manager
/// and a quorum; the leader's membership loop makes the Raft group follow.
pub(crate) fn set_role(
    state: &shoal_api::ClusterState,
    n: &mut Node,
    role: NodeRole,
    group: Option<&GroupStatus>,
) -> Result<(), ApiError> {
    match role {
        NodeRole::Manager => {
            n.control_addr = Some(format!("{}:{}", n.addr, shoal_rpc::DEFAULT_CONTROL_PORT));
        }
        NodeRole::Worker => {
            check_demotion(state, n, group)?;
            n.control_addr = None;
        }
    }
    n.role = role;
    Ok(())
}

/// Demoting `n` must leave a manager, and enough reachable voters for a quorum.
fn check_demotion(
    state: &shoal_api::ClusterState,
    n: &Node,
    group: Option<&GroupStatus>,
) -> Result<(), ApiError> {
    let managers = state
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
    let Some(g) = group else {
        return Ok(());
    };
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
    Ok(())
}

pub async fn inspect(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    let mut node = find(&*s.cluster()?, &id)?;
    if let Some(g) = group(&s) {
        set_manager_status(&mut node, &g);
    }
    Ok(Json(node))
}

pub async fn update(
    State(s): State<ControlState>,
    Path(id): Path<String>,
    body: Result<Json<NodeUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Node>, ApiError> {
    let Json(u) = body?;
    s.cluster()?;
    u.check()?;
    let node = s
        .store
        .update(|tx| {
            let mut n = find(tx.state(), &id)?;
            for k in &u.labels_rm {
                if n.labels.remove(k).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "label {k} is not set on node {}",
                        n.hostname
                    )));
                }
            }
            n.labels.extend(u.labels_add.clone());
            check_count("labels", n.labels.len(), MAX_LABELS)?;
            if let Some(a) = u.availability {
                n.availability = a;
            }
            n.updated_at = crate::now_millis();
            tx.put(n.clone());
            Ok::<_, ApiError>(n)
        })
        .await?;
    tracing::info!(node = %node.id, availability = node.availability.as_str(), "node updated");
    Ok(Json(node))
}

pub async fn remove(
    State(s): State<ControlState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RemoveQuery>,
) -> Result<axum::http::StatusCode, ApiError> {
    remove_node(&s, &id, q.force).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Forgets a worker that is down (or any worker, with `force`) and orphans its tasks.
pub(crate) async fn remove_node(s: &ControlState, id: &str, force: bool) -> Result<(), ApiError> {
    s.cluster()?;
    s.store.update(|tx| {
        let n = find(tx.state(), id)?;
        if n.role == NodeRole::Manager {
            return Err(ApiError::conflict(format!(
                "node {} is a manager: demote it first (`shoal node demote`)",
                n.hostname
            )));
        }
        if n.state != shoal_api::NodeState::Down && !force {
            return Err(ApiError::conflict(format!(
                "node {} is not down and can't be removed: stop it (or `shoal leave` on it) first, or use --force",
                n.hostname
            )));
        }
        tx.delete::<Node>(n.id.clone());
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
                tx.put(t);
            }
        }
        Ok::<_, ApiError>(())
    }).await?;
    tracing::info!(node = %id, "node removed");
    Ok(())
}
