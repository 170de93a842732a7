//! The swarm part of the Docker Engine API, beside shoal's own `/v1` routes, so the docker
//! CLI, `docker stack deploy`, Traefik's swarm provider and docker-py work against shoal.
//!
//! Paths come unversioned (`/services`) or with an API version prefix (`/v1.44/services`);
//! [`strip_version`] takes the prefix off before routing (refusing versions outside
//! [`MIN_API_VERSION`]..=[`MAX_API_VERSION`]), so every route is written once. Errors are
//! `{"message": "..."}` with the status codes the docker CLI maps (400, 404, 409, 503), and
//! an unknown path answers 404 `page not found`, as the Docker Engine does. See
//! docs/docker-compat.md.

mod events;
mod objects;
mod routes;
mod swarm;

pub use events::{EventLog, EventSource};

use crate::control::{ApiError, ControlState};
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use shoal_api::{Blob, BlobKind, ConfigKind, SecretKind};

/// The oldest version prefix accepted (the docker CLI's fallback when it cannot negotiate;
/// `shoal_wire::docker::MIN_API_VERSION`).
pub const MIN_API_VERSION: (u32, u32) = (1, 24);
/// The newest version prefix accepted.
pub const MAX_API_VERSION: (u32, u32) = (1, 54);

/// The version in a path's first segment (`/v1.44/...` → `(1, 44)` and the rest of the
/// path), or `None` when the path has no version prefix (shoal's own `/v1/...` has none).
pub fn version_prefix(path: &str) -> Option<((u32, u32), &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (major, minor) = rest[..end].split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    let version = (major.parse().ok()?, minor.parse().ok()?);
    Some((version, &rest[end..]))
}

/// Refuses a version prefix outside the accepted range, as the Docker Engine words it.
pub fn check_version(v: (u32, u32)) -> Result<(), ApiError> {
    let show = |(a, b): (u32, u32)| format!("{a}.{b}");
    if v < MIN_API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            show(v),
            show(MIN_API_VERSION)
        )));
    }
    if v > MAX_API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {} is too new. Maximum supported API version is {}",
            show(v),
            show(MAX_API_VERSION)
        )));
    }
    Ok(())
}

/// The swarm routes (nodes, services, tasks, the swarm itself), served by managers: on the
/// daemon's socket beside shoal's `/v1` routes, and forwarded to the leader like them.
pub fn router(state: ControlState) -> Router {
    use routes::*;
    Router::new()
        .route("/swarm", get(inspect_swarm))
        .route("/swarm/update", post(swarm::update_swarm))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/nodes", get(list_nodes))
        .route("/nodes/{id}", get(inspect_node).delete(remove_node))
        .route("/nodes/{id}/update", post(update_node))
        .route("/services", get(list_services))
        .route("/services/create", post(create_service))
        .route(
            "/services/{id}",
            get(inspect_service).delete(remove_service),
        )
        .route("/services/{id}/update", post(update_service))
        .route("/services/{id}/logs", get(service_logs))
        .route("/tasks/{id}/logs", get(task_logs))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", get(inspect_task))
        .route("/networks", get(objects::list_networks))
        .route("/networks/create", post(objects::create_network))
        .route(
            "/networks/{id}",
            get(objects::inspect_network).delete(crate::control::object_routes::remove_network),
        )
        .merge(blob_routes::<SecretKind>("/secrets"))
        .merge(blob_routes::<ConfigKind>("/configs"))
        .route("/events", get(events::events))
        .with_state(state)
}

/// `/secrets` or `/configs`: list, inspect, create, update (labels only), delete.
fn blob_routes<K: BlobKind>(base: &str) -> Router<ControlState>
where
    Blob<K>: shoal_store::Kind,
{
    use objects::*;
    Router::new()
        .route(base, get(list_blobs::<K>))
        .route(&format!("{base}/create"), post(create_blob::<K>))
        .route(
            &format!("{base}/{{id}}"),
            // Deleting answers as shoal's own route does (204, or why not).
            get(inspect_blob::<K>).delete(crate::control::object_routes::remove_blob::<K>),
        )
        .route(&format!("{base}/{{id}}/update"), post(update_blob::<K>))
}

/// Middleware around the whole router: takes a Docker API version prefix off the path, so
/// `/v1.44/services` is routed as `/services`.
pub async fn strip_version(mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some((version, rest)) = version_prefix(path) else {
        return next.run(req).await;
    };
    if let Err(e) = check_version(version) {
        return e.into_response();
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let target = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return ApiError::bad_request(format!("invalid request path {path:?}")).into_response();
    };
    *req.uri_mut() = uri;
    next.run(req).await
}

/// A service's `Version.Index`: it changes when its spec does (shoal's or the Docker spec
/// it was sent), not when its rollout's status or its tasks do, so the optimistic lock of
/// `update?version=N` guards against a lost spec change and not against the cluster's own
/// bookkeeping.
pub fn service_index(s: &shoal_api::Service) -> u64 {
    index_of(&(&s.spec, &s.docker_spec))
}

/// A node's `Version.Index`: it changes with its spec (role, availability, labels), not with
/// its state, which heartbeats and announcements keep changing.
pub fn node_index(n: &shoal_api::Node) -> u64 {
    index_of(&(n.role, n.availability, &n.labels))
}

/// The swarm's `Version.Index`: it changes with what `POST /swarm/update` changes (the
/// settings, the join tokens, the unlock key), so `update?version=N` is refused after
/// another client changed one. The secrets enter it only through a SHA-256 digest.
pub fn swarm_index(c: &shoal_api::Cluster) -> u64 {
    let secret = |s: &str| shoal_rpc::token::digest(s.as_bytes());
    index_of(&(
        c.heartbeat_period_ms,
        c.cert_lifetime_secs,
        secret(&c.worker_secret),
        secret(&c.manager_secret),
        c.autolock_key.as_deref().map(secret),
    ))
}

/// A stable 53-bit digest (FNV-1a of the JSON), so JavaScript clients read it exactly.
pub(crate) fn index_of(value: &impl serde::Serialize) -> u64 {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash & ((1 << 53) - 1)).max(1)
}

/// A query flag as Docker clients send it (`force=1`, `status=true`).
pub fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True" | "TRUE"))
}

/// A JSON request body, or 400 naming what is wrong with it.
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// `app` behind [`strip_version`]: the prefix is gone before `app` routes.
pub fn versioned(app: Router) -> Router {
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::from_fn(strip_version))
}

/// The answer to a path no route serves, in Docker's words.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "page not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_a_stable_53_bit_digest_of_what_it_covers() {
        let labels = std::collections::BTreeMap::from([("zone".to_owned(), "a".to_owned())]);
        let a = index_of(&(shoal_api::NodeRole::Worker, &labels));
        assert_eq!(a, index_of(&(shoal_api::NodeRole::Worker, &labels)));
        assert_ne!(a, index_of(&(shoal_api::NodeRole::Manager, &labels)));
        assert!(a > 0 && a < 1 << 53);
    }

    #[test]
    fn version_prefixes_are_recognised_and_shoal_paths_are_not() {
        assert_eq!(
            version_prefix("/v1.44/services"),
            Some(((1, 44), "/services"))
        );
        assert_eq!(version_prefix("/v1.24/_ping"), Some(((1, 24), "/_ping")));
        assert_eq!(version_prefix("/v1.41"), Some(((1, 41), "")));
        assert_eq!(version_prefix("/v1/services"), None);
        assert_eq!(version_prefix("/services"), None);
        assert_eq!(version_prefix("/v1.x/services"), None);
        assert_eq!(version_prefix("/v.44/services"), None);
        assert_eq!(version_prefix("/v1.99999/services"), None);
    }

    #[test]
    fn versions_outside_the_range_are_refused_in_one_line() {
        assert!(check_version((1, 24)).is_ok());
        assert!(check_version((1, 44)).is_ok());
        assert!(check_version((1, 54)).is_ok());
        let old = check_version((1, 12)).unwrap_err();
        assert_eq!(old.status, StatusCode::BAD_REQUEST);
        assert!(old.message.contains("1.12 is too old"), "{}", old.message);
        let new = check_version((2, 0)).unwrap_err();
        assert!(new.message.contains("2.0 is too new"), "{}", new.message);
    }
}
