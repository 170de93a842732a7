//! Cluster-wide calls: join tokens.

use super::{cluster_record, ApiError, ControlState};
use crate::ca::{join_token, rotate_join_token};
use axum::extract::{Path, Query, State};
use axum::Json;
use shoal_api::{Cluster, NodeRole};
use shoal_wire::v1::cluster::{
    ClusterUpdate, ClusterUpdateResponse, JoinTokenResponse, TokenQuery, UnlockKeyResponse,
};

pub async fn join_token_of(
    State(s): State<ControlState>,
    Path(role): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<JoinTokenResponse>, ApiError> {
    s.cluster()?;
    let role = match role.as_str() {
        "worker" => NodeRole::Worker,
        "manager" => NodeRole::Manager,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid role {other:?}: expected worker or manager"
            )))
        }
    };
    let cluster = s
        .store
        .update(|tx| {
            let mut c = cluster_record(tx)?;
            if q.rotate {
                rotate_join_token(&mut c, role);
                tx.push(shoal_store::Op::SetCluster(Box::new(c.clone())));
            }
            Ok::<_, ApiError>(c)
        })
        .await?;
    let token = join_token(&cluster, role).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(JoinTokenResponse {
        role: role.as_str().to_string(),
        token,
        managers: cluster.managers.clone(),
    }))
}

/// The cluster's unlock key (autolock), rotated first with `?rotate=true`: every manager
/// rewraps its data key with the new one as soon as it sees it.
pub async fn unlock_key(
    State(s): State<ControlState>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<UnlockKeyResponse>, ApiError> {
    s.cluster()?;
    let new = if q.rotate {
        Some(shoal_store::seal::new_unlock_key().map_err(|e| ApiError::internal(e.to_string()))?)
    } else {
        None
    };
    let key = s
        .store
        .update(|tx| {
            let mut c = cluster_record(tx)?;
            if c.autolock_key.is_none() {
                return Err(no_unlock_key());
            }
            if let Some(k) = &new {
                rotate_unlock_key(&mut c, k.clone())?;
                tx.push(shoal_store::Op::SetCluster(Box::new(c.clone())));
            }
            Ok::<_, ApiError>(c.autolock_key.unwrap_or_default())
        })
        .await?;
    Ok(Json(UnlockKeyResponse { key }))
}

/// `shoal update --autolock=true|false`, like `docker swarm update --autolock`.
pub async fn update(
    State(s): State<ControlState>,
    body: Result<Json<ClusterUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ClusterUpdateResponse>, ApiError> {
    let Json(req) = body?;
    let Some(autolock) = req.autolock else {
        return Err(ApiError::bad_request(
            "nothing to update: give --autolock=true or --autolock=false",
        ));
    };
    s.cluster()?;
    let key = if autolock {
        Some(shoal_store::seal::new_unlock_key().map_err(|e| ApiError::internal(e.to_string()))?)
    } else {
        None
    };
    let unlock_key = s
        .store
        .update(|tx| {
            let mut c = cluster_record(tx)?;
            if !set_autolock(&mut c, key.clone()) {
                // Already so: keep the current key, nothing to write.
                return Ok::<_, ApiError>(None);
            }
            tx.push(shoal_store::Op::SetCluster(Box::new(c)));
            Ok(key.clone())
        })
        .await?;
    Ok(Json(ClusterUpdateResponse { unlock_key }))
}

/// Why there is no unlock key to show or rotate.
pub(crate) fn no_unlock_key() -> ApiError {
    ApiError::bad_request(
        "autolock is not enabled on this cluster: there is no unlock key (shoal init --autolock)",
    )
}

/// Turn autolock on with `key`, or off with `None`; false when it already was so (an
/// enabled cluster keeps its key).
pub(crate) fn set_autolock(c: &mut Cluster, key: Option<String>) -> bool {
    let autolock = key.is_some();
    if c.autolock_key.is_some() == autolock {
        return false;
    }
    c.autolock_key = key;
    tracing::info!(autolock, "autolock changed");
    true
}

/// Replace the unlock key: every manager rewraps its data key with `key` as soon as it
/// sees it. Refused when autolock is off.
pub(crate) fn rotate_unlock_key(c: &mut Cluster, key: String) -> Result<(), ApiError> {
    if c.autolock_key.is_none() {
        return Err(no_unlock_key());
    }
    c.autolock_key = Some(key);
    tracing::info!("unlock key rotated");
    Ok(())
}
