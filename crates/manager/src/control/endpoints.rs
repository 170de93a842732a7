//! `GET /v1/services/{id}/endpoints[?watch=true]`: a service's endpoint set with a version,
//! ready and terminating tasks flagged, so an external proxy can follow it. With `watch`, a
//! stream of newline-delimited JSON: the current set at once, then each changed set as soon
//! as the store has it; it ends when the service is removed.

use super::{ApiError, ControlState};
use crate::endpoints::watched;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use shoal_api::ClusterState;
use shoal_wire::v1::endpoints::{EndpointsQuery, EndpointsView};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn view(state: &ClusterState, id: &str) -> Option<EndpointsView> {
    let service = state.services.get(id)?;
    Some(EndpointsView {
        version: state.version,
        service: watched(state, service),
    })
}

fn line(v: &EndpointsView) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

pub async fn endpoints(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<EndpointsQuery>,
) -> Result<Response, ApiError> {
    let state = s.cluster()?;
    let service = state
        .find_service(&key)
        .ok_or_else(|| ApiError::not_found(format!("service {key} not found")))?;
    let id = service.id.clone();
    let first = EndpointsView {
        version: state.version,
        service: watched(&state, service),
    };
    if !q.watch {
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(line(&first)))
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let mut changes = s.store.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        if tx.send(Ok(line(&first))).await.is_err() {
            return;
        }
        let mut last = first.service;
        loop {
            tokio::select! {
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
            let state = changes.borrow_and_update().clone();
            let Some(now) = view(&state, &id) else { return };
            if now.service == last {
                continue;
            }
            if tx.send(Ok(line(&now))).await.is_err() {
                return;
            }
            last = now.service;
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError::internal(e.to_string()))
}
