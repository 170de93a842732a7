//! Networks, secrets and configs: each made, relabelled and removed in one write. A
//! service's references to them are resolved (a name becomes the object's ID) and checked
//! inside the service's own write, and an object a service uses cannot be removed.

use super::{ApiError, ControlState};
use crate::now_millis;
use shoal_api::state::find_named;
use shoal_api::{id, Blob, BlobKind, ClusterState, Network, Service, TaskTemplate};
use shoal_store::Kind;
use shoal_wire::docker::NETWORK_NAME;

/// Resolves `t`'s networks, secrets and configs against `state`: each must exist, and is
/// then named by its ID (and a blob also by its current name). The cluster's own network
/// may be named too.
pub(crate) fn resolve_refs(state: &ClusterState, t: &mut TaskTemplate) -> Result<(), ApiError> {
    let cluster_id = state.cluster_id().unwrap_or_default().to_owned();
    for n in &mut t.networks {
        if n.network == NETWORK_NAME || n.network == cluster_id {
            n.network = cluster_id.clone();
            continue;
        }
        let found = state
            .find_network(&n.network)
            .ok_or_else(|| ApiError::not_found(format!("network {} not found", n.network)))?;
        n.network = found.id.clone();
    }
    resolve_blobs::<shoal_api::SecretKind>(state, t)?;
    resolve_blobs::<shoal_api::ConfigKind>(state, t)
}

fn resolve_blobs<K: BlobKind>(state: &ClusterState, t: &mut TaskTemplate) -> Result<(), ApiError>
where
    Blob<K>: Kind,
{
    for r in K::refs_mut(t) {
        let key = if r.id.is_empty() { &r.name } else { &r.id };
        let found = find_named(Blob::<K>::map(state), key, |b| &b.name)
            .ok_or_else(|| ApiError::not_found(format!("{} {key} not found", K::NAME)))?;
        r.id = found.id.clone();
        r.name = found.name.clone();
    }
    Ok(())
}

/// The names of the services whose template uses what `uses` picks out, in a message.
fn users(state: &ClusterState, uses: impl Fn(&TaskTemplate) -> bool) -> Option<String> {
    let names: Vec<&str> = state
        .services
        .values()
        .filter(|s: &&Service| uses(&s.spec.task))
        .map(|s| s.spec.name.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

pub(crate) fn find_network<'a>(
    state: &'a ClusterState,
    key: &str,
) -> Result<&'a Network, ApiError> {
    state
        .find_network(key)
        .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))
}

/// Writes a new network named as `n` is; its name must be free. Returns its ID.
pub(crate) async fn create_network(s: &ControlState, mut n: Network) -> Result<String, ApiError> {
    s.cluster()?;
    if n.name == NETWORK_NAME {
        return Err(ApiError::conflict(format!(
            "network with name {NETWORK_NAME} already exists: it is the cluster's own network"
        )));
    }
    let id = s
        .store
        .update(|tx| {
            if tx.state().networks.values().any(|x| x.name == n.name) {
                return Err(ApiError::conflict(format!(
                    "network with name {} already exists",
                    n.name
                )));
            }
            n.id = id::new_id();
            n.created_at = now_millis();
            n.updated_at = n.created_at;
            let id = n.id.clone();
            tx.put(n.clone());
            Ok(id)
        })
        .await?;
    tracing::info!(network = %id, "network created");
    Ok(id)
}

/// Removes the network `key` names, unless a service is attached to it.
pub(crate) async fn remove_network(s: &ControlState, key: &str) -> Result<(), ApiError> {
    let state = s.cluster()?;
    if key == NETWORK_NAME || Some(key) == state.cluster_id() {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!("{NETWORK_NAME} is the cluster's own network and cannot be removed"),
        ));
    }
    s.store
        .update(|tx| {
            let n = find_network(tx.state(), key)?;
            let id = n.id.clone();
            let used = |t: &TaskTemplate| t.networks.iter().any(|a| a.network == id);
            if let Some(names) = users(tx.state(), used) {
                return Err(ApiError::conflict(format!(
                    "network {} is in use by service {names}",
                    n.name
                )));
            }
            tx.delete::<Network>(id);
            Ok::<_, ApiError>(())
        })
        .await?;
    tracing::info!(network = %key, "network removed");
    Ok(())
}

pub(crate) fn find_blob<'a, K: BlobKind>(
    state: &'a ClusterState,
    key: &str,
) -> Result<&'a Blob<K>, ApiError>
where
    Blob<K>: Kind,
{
    find_named(Blob::<K>::map(state), key, |b| &b.name)
        .ok_or_else(|| ApiError::not_found(format!("{} {key} not found", K::NAME)))
}

/// A blob's `Version.Index`: a digest of what may change (its labels).
pub(crate) fn blob_index<K: BlobKind>(b: &Blob<K>) -> u64 {
    crate::docker::index_of(&(&b.name, &b.labels))
}

/// Writes a new secret or config; its name must be free. Returns its ID.
pub(crate) async fn create_blob<K: BlobKind>(
    s: &ControlState,
    mut b: Blob<K>,
) -> Result<String, ApiError>
where
    Blob<K>: Kind,
{
    s.cluster()?;
    let id = s
        .store
        .update(|tx| {
            if Blob::<K>::map(tx.state())
                .values()
                .any(|x| x.name == b.name)
            {
                return Err(ApiError::conflict(format!(
                    "{} {} already exists",
                    K::NAME,
                    b.name
                )));
            }
            b.id = id::new_id();
            b.created_at = now_millis();
            b.updated_at = b.created_at;
            let id = b.id.clone();
            tx.put(b.clone());
            Ok(id)
        })
        .await?;
    tracing::info!(id = %id, "{} created", K::NAME);
    Ok(id)
}

/// Changes the labels of the secret or config `key` names (nothing else of it may change:
/// it is immutable, as in Swarm); `expect` is the `Version.Index` the client read.
pub(crate) async fn update_blob<K: BlobKind>(
    s: &ControlState,
    key: &str,
    expect: Option<u64>,
    wanted: Blob<K>,
) -> Result<(), ApiError>
where
    Blob<K>: Kind,
{
    s.cluster()?;
    s.store
        .update(|tx| {
            let mut b = find_blob::<K>(tx.state(), key)?.clone();
            if expect.is_some_and(|v| v != blob_index(&b)) {
                return Err(super::services::out_of_sequence());
            }
            if wanted.name != b.name
                || (!wanted.data.is_empty() && wanted.data != b.data)
                || wanted.templating != b.templating
            {
                return Err(ApiError::bad_request(format!(
                    "only updates to Labels are allowed: a {} is immutable (create a new one to rotate it)",
                    K::NAME
                )));
            }
            b.labels = wanted.labels;
            b.updated_at = now_millis();
            tx.put(b);
            Ok::<_, ApiError>(())
        })
        .await
}

/// Removes the secret or config `key` names, unless a service uses it.
pub(crate) async fn remove_blob<K: BlobKind>(s: &ControlState, key: &str) -> Result<(), ApiError>
where
    Blob<K>: Kind,
{
    s.cluster()?;
    s.store
        .update(|tx| {
            let b = find_blob::<K>(tx.state(), key)?;
            let id = b.id.clone();
            let used = |t: &TaskTemplate| K::refs(t).iter().any(|r| r.id == id);
            if let Some(names) = users(tx.state(), used) {
                return Err(ApiError::conflict(format!(
                    "{} '{}' is in use by the following service: {names}",
                    K::NAME,
                    b.name
                )));
            }
            tx.delete::<Blob<K>>(id);
            Ok::<_, ApiError>(())
        })
        .await?;
    tracing::info!(key = %key, "{} removed", K::NAME);
    Ok(())
}
