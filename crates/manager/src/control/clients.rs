//! Client certificates for remote CLIs: issued, listed and revoked through the store, so
//! every manager knows at once which ones are valid.

use super::{cluster_record, ApiError, ControlState};
use crate::ca;
use crate::now_millis;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use shoal_api::ClientRecord;
use shoal_rpc::pki::{self, CertRole};
use shoal_wire::v1::clients::{IssueClient, IssuedClient};

pub async fn issue(
    State(s): State<ControlState>,
    body: Result<Json<IssueClient>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedClient>), ApiError> {
    let Json(req) = body?;
    let name = req.checked_name()?;
    let state = s.cluster()?;
    let Some(cluster) = state.cluster.as_ref() else {
        return Err(super::no_cluster());
    };
    let now = now_millis();
    let record = ClientRecord {
        id: shoal_api::id::new_id(),
        name,
        created_at: now,
        expires_at: now + cluster.cert_lifetime_secs * 1000,
        revoked_at: None,
    };
    let key = pki::new_node_key().map_err(|e| ApiError::internal(e.to_string()))?;
    let cert_pem = ca::issue(cluster, &key.csr_pem, &record.cn(), CertRole::Client, &[])
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let ca_pem = cluster.ca_cert_pem.clone();
    let stored = record.clone();
    s.store
        .update(|tx| {
            let mut c = cluster_record(tx)?;
            c.clients.push(stored);
            tx.push(shoal_store::Op::SetCluster(Box::new(c)));
            Ok::<_, ApiError>(())
        })
        .await?;
    tracing::info!(client = %record.id, name = %record.name, "client certificate issued");
    Ok((
        StatusCode::CREATED,
        Json(IssuedClient {
            client: record,
            ca_pem,
            cert_pem,
            key_pem: key.key_pem,
        }),
    ))
}

pub async fn list(State(s): State<ControlState>) -> Result<Json<Vec<ClientRecord>>, ApiError> {
    let state = s.cluster()?;
    Ok(Json(
        state
            .cluster
            .as_ref()
            .map(|c| c.clients.clone())
            .unwrap_or_default(),
    ))
}

/// Revoke the client whose ID (or unique ID prefix, or name) is `id`.
pub async fn revoke(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<ClientRecord>, ApiError> {
    s.cluster()?;
    let now = now_millis();
    let revoked = s
        .store
        .update(|tx| {
            let mut c = cluster_record(tx)?;
            let exact = c.clients.iter().position(|r| r.id == id);
            let i = match exact {
                Some(i) => i,
                None => {
                    let matches: Vec<usize> = c
                        .clients
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.id.starts_with(&id) || r.name == id)
                        .map(|(i, _)| i)
                        .collect();
                    match matches[..] {
                        [i] => i,
                        [] => return Err(ApiError::not_found(format!("client {id} not found"))),
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "client {id} is ambiguous: use its full ID (shoal client-cert ls)"
                            )))
                        }
                    }
                }
            };
            let r = &mut c.clients[i];
            if r.revoked_at.is_none() {
                r.revoked_at = Some(now);
            }
            let out = r.clone();
            tx.push(shoal_store::Op::SetCluster(Box::new(c)));
            Ok::<_, ApiError>(out)
        })
        .await?;
    tracing::info!(client = %revoked.id, name = %revoked.name, "client certificate revoked");
    Ok(Json(revoked))
}
