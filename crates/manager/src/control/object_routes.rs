//! `/v1/networks`, `/v1/secrets` and `/v1/configs`: shoal's own routes for the objects
//! `objects` writes (the Docker API's `/networks`, `/secrets` and `/configs` go through the
//! same writes). A secret's data is never answered; a config's is.

use super::objects as obj;
use super::{ApiError, ControlState, StrictJson};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use shoal_api::{Blob, BlobKind, Network};
use shoal_store::Kind;
use shoal_wire::v1::objects::{BlobCreate, BlobInfo, BlobLabels, NetworkCreate};
use shoal_wire::v1::services::Created;

/// The networks users made, by name (the cluster's own network is not one of them).
pub async fn list_networks(State(s): State<ControlState>) -> Result<Json<Vec<Network>>, ApiError> {
    let state = s.cluster()?;
    let mut out: Vec<Network> = state.networks.values().cloned().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

pub async fn inspect_network(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<Network>, ApiError> {
    let state = s.cluster()?;
    Ok(Json(obj::find_network(&state, &key)?.clone()))
}

pub async fn create_network(
    State(s): State<ControlState>,
    StrictJson(req): StrictJson<NetworkCreate>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let id = obj::create_network(&s, req.checked()?).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

pub async fn remove_network(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    obj::remove_network(&s, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_blobs<K: BlobKind>(
    State(s): State<ControlState>,
) -> Result<Json<Vec<BlobInfo>>, ApiError>
where
    Blob<K>: Kind,
{
    let state = s.cluster()?;
    let mut out: Vec<BlobInfo> = Blob::<K>::map(&state).values().map(BlobInfo::new).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

pub async fn inspect_blob<K: BlobKind>(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<BlobInfo>, ApiError>
where
    Blob<K>: Kind,
{
    let state = s.cluster()?;
    Ok(Json(BlobInfo::new(obj::find_blob::<K>(&state, &key)?)))
}

pub async fn create_blob<K: BlobKind>(
    State(s): State<ControlState>,
    StrictJson(req): StrictJson<BlobCreate>,
) -> Result<(StatusCode, Json<Created>), ApiError>
where
    Blob<K>: Kind,
{
    let id = obj::create_blob(&s, req.checked::<K>()?).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Replaces the labels of a secret or config; everything else of it stays.
pub async fn update_blob<K: BlobKind>(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    StrictJson(req): StrictJson<BlobLabels>,
) -> Result<Json<BlobInfo>, ApiError>
where
    Blob<K>: Kind,
{
    shoal_api::limits::check_labels(req.labels.iter())?;
    let state = s.cluster()?;
    let mut wanted = obj::find_blob::<K>(&state, &key)?.clone();
    wanted.labels = req.labels;
    obj::update_blob(&s, &key, None, wanted).await?;
    let state = s.cluster()?;
    Ok(Json(BlobInfo::new(obj::find_blob::<K>(&state, &key)?)))
}

pub async fn remove_blob<K: BlobKind>(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError>
where
    Blob<K>: Kind,
{
    obj::remove_blob::<K>(&s, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
