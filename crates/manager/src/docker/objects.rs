//! The Docker API's `/networks`, `/secrets` and `/configs` over shoal's store, through the
//! same writes as shoal's own routes (`control::objects`).

use super::json_body;
use crate::control::objects as obj;
use crate::control::{ApiError, ControlState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use shoal_api::{Blob, BlobKind, ClusterState, ConfigKind};
use shoal_store::Kind;
use shoal_wire::docker::blobs::{self, BlobSpec, IdResponse, BLOB_FILTERS};
use shoal_wire::docker::networks::{
    NetworkCreateRequest, NetworkCreateResponse, NetworkResource, NETWORK_FILTERS,
};
use shoal_wire::docker::Filters;
use std::any::TypeId;

#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    #[serde(default)]
    filters: String,
}

/// Every network: the cluster's own first, then those users made.
fn networks(state: &ClusterState) -> Vec<NetworkResource> {
    let pool = state
        .cluster
        .as_ref()
        .and_then(|c| c.vip_pool)
        .unwrap_or_default();
    let subnet = pool.to_string();
    let own = state
        .cluster
        .as_ref()
        .map(|c| NetworkResource::cluster(&c.id, c.created_at, &subnet));
    own.into_iter()
        .chain(
            state
                .networks
                .values()
                .map(|n| NetworkResource::stored(n, &subnet)),
        )
        .collect()
}

pub async fn list_networks(
    State(s): State<ControlState>,
    Query(q): Query<FilterQuery>,
) -> Result<Json<Vec<NetworkResource>>, ApiError> {
    let state = s.cluster()?;
    let f = Filters::parse(&q.filters)?;
    f.check(NETWORK_FILTERS)?;
    f.check_values("scope", &["swarm", "global", "local"])?;
    f.check_values("type", &["custom", "builtin"])?;
    let out = networks(&state)
        .into_iter()
        .filter(|n| f.matches_prefix("id", &[&n.id]))
        // Docker matches a network's name by substring.
        .filter(|n| !f.contains("name") || f.values("name").any(|v| n.name.contains(v)))
        .filter(|n| f.matches_labels("label", &n.labels))
        .filter(|n| f.matches_exact("scope", &n.scope))
        .filter(|n| f.matches_exact("driver", &n.driver))
        .filter(|n| f.matches_exact("type", if n.ingress { "builtin" } else { "custom" }))
        .collect();
    Ok(Json(out))
}

pub async fn inspect_network(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<NetworkResource>, ApiError> {
    let state = s.cluster()?;
    // The cluster's own network with the others, found by Docker's rules as they are.
    let all: std::collections::BTreeMap<String, NetworkResource> = networks(&state)
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
    let found = shoal_api::state::find_named(&all, &key, |n| &n.name)
        .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))?;
    Ok(Json(found.clone()))
}

pub async fn create_network(
    State(s): State<ControlState>,
    body: Bytes,
) -> Result<(StatusCode, Json<NetworkCreateResponse>), ApiError> {
    let req: NetworkCreateRequest = json_body(&body)?;
    let (network, warnings) = req.checked()?;
    let id = obj::create_network(&s, network).await?;
    Ok((
        StatusCode::CREATED,
        Json(NetworkCreateResponse {
            id,
            warning: warnings.join("; "),
        }),
    ))
}

/// A config's data is shown; a secret's never is.
fn shows_data<K: BlobKind>() -> bool {
    TypeId::of::<K>() == TypeId::of::<ConfigKind>()
}

fn docker_blob<K: BlobKind>(b: &Blob<K>) -> blobs::Blob {
    blobs::blob(b, obj::blob_index(b), shows_data::<K>())
}

pub async fn list_blobs<K: BlobKind>(
    State(s): State<ControlState>,
    Query(q): Query<FilterQuery>,
) -> Result<Json<Vec<blobs::Blob>>, ApiError>
where
    Blob<K>: Kind,
{
    let state = s.cluster()?;
    let f = Filters::parse(&q.filters)?;
    f.check(BLOB_FILTERS)?;
    let out = Blob::<K>::map(&state)
        .values()
        .filter(|b| f.matches_prefix("id", &[&b.id]) && f.matches_prefix("name", &[&b.name]))
        .filter(|b| f.matches_exact("names", &b.name))
        .filter(|b| f.matches_labels("label", &b.labels))
        .map(docker_blob)
        .collect();
    Ok(Json(out))
}

pub async fn inspect_blob<K: BlobKind>(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<blobs::Blob>, ApiError>
where
    Blob<K>: Kind,
{
    let state = s.cluster()?;
    Ok(Json(docker_blob(obj::find_blob::<K>(&state, &key)?)))
}

pub async fn create_blob<K: BlobKind>(
    State(s): State<ControlState>,
    body: Bytes,
) -> Result<(StatusCode, Json<IdResponse>), ApiError>
where
    Blob<K>: Kind,
{
    let spec: BlobSpec = json_body(&body)?;
    let id = obj::create_blob(&s, spec.checked::<K>()?).await?;
    Ok((StatusCode::CREATED, Json(IdResponse { id })))
}

#[derive(Debug, Default, Deserialize)]
pub struct VersionQuery {
    version: Option<String>,
}

pub async fn update_blob<K: BlobKind>(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<VersionQuery>,
    body: Bytes,
) -> Result<StatusCode, ApiError>
where
    Blob<K>: Kind,
{
    let version = super::routes::whole_number("version", q.version.as_deref())?;
    let mut spec: BlobSpec = json_body(&body)?;
    // Labels are all that may change; a spec posted back without its data keeps it.
    let state = s.cluster()?;
    let current = obj::find_blob::<K>(&state, &key)?;
    if spec.data.as_deref().is_none_or(str::is_empty) {
        spec.data = Some(blobs::blob(current, 0, true).spec.data.unwrap_or_default());
    }
    let wanted = spec.checked::<K>()?;
    obj::update_blob(&s, &key, version, wanted).await?;
    Ok(StatusCode::OK)
}
