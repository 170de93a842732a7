//! The node's own routes of the Docker Engine API: `/_ping` (what the docker CLI, Traefik
//! and docker-py call first, to learn the API version and whether the node is in a swarm),
//! `/version` and `/info` (the node's place in the cluster: `docker node ls` marks the local
//! node by it, `docker stack deploy` needs `ControlAvailable`), on the daemon's socket and
//! on a manager's control port. The swarm routes are the manager's (`shoal_manager::docker`).

use crate::membership::Standing;
use crate::runtime::Runtime;
use axum::extract::{Query, State};
use axum::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, PRAGMA};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shoal_api::NodeRole;
use shoal_manager::control::ApiError;
use shoal_manager::docker::{json_body, truthy};
use shoal_wire::docker::to_docker::{self, LocalNodeState};
use shoal_wire::docker::{Info, Version, API_VERSION};
use shoal_wire::v1::membership::{InitRequest, JoinRequest, LeaveRequest};
use std::sync::Arc;

/// Every route of the node's own, on the daemon's socket.
pub fn router(rt: Arc<Runtime>) -> Router {
    Router::new()
        .route("/swarm/init", post(swarm_init))
        .route("/swarm/join", post(swarm_join))
        .route("/swarm/leave", post(swarm_leave))
        .with_state(rt.clone())
        .merge(about_router(rt))
}

/// What the node says about itself, also served on a manager's control port, so a remote
/// `docker --tlsverify -H tcp://MANAGER:2377` can ping and negotiate before the swarm
/// routes (joining and leaving stay on the node's own socket).
pub fn about_router(rt: Arc<Runtime>) -> Router {
    // `get` answers HEAD too, without the body: the CLI pings with HEAD first.
    Router::new()
        .route("/_ping", get(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        // Probed by Portainer and docker-py: a shoal node lists no containers of its own
        // through this API (its container tasks are reached as tasks).
        .route("/containers/json", get(|| async { Json(Vec::<()>::new()) }))
        .with_state(rt)
}

/// What `docker swarm init` sends (the parts shoal acts on; the rest is Docker's overlay
/// and data-path settings, which shoal has no use for).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmInitRequest {
    #[serde(default)]
    listen_addr: String,
    #[serde(default)]
    advertise_addr: String,
    #[serde(default)]
    force_new_cluster: bool,
    #[serde(default)]
    auto_lock_managers: bool,
    #[serde(default)]
    default_addr_pool: Option<Vec<String>>,
    #[serde(default)]
    spec: Option<serde_json::Value>,
}

/// An empty string is an address left to the node.
fn given(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// `POST /swarm/init`: answers the new node's ID, as a JSON string.
async fn swarm_init(
    State(rt): State<Arc<Runtime>>,
    bytes: axum::body::Bytes,
) -> Result<Json<String>, ApiError> {
    let r: SwarmInitRequest = json_body(&bytes)?;
    let vip_pool = match r.default_addr_pool.as_deref() {
        None | Some([]) => None,
        Some([one]) => Some(one.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid DefaultAddrPool: shoal takes one network for its service VIPs",
            ))
        }
    };
    let nanos = |path: &[&str]| {
        let mut v = r.spec.as_ref()?;
        for key in path {
            v = v.get(key)?;
        }
        v.as_u64().filter(|n| *n > 0)
    };
    let req = InitRequest {
        advertise_addr: given(&r.advertise_addr),
        listen_addr: given(&r.listen_addr),
        heartbeat_ms: nanos(&["Dispatcher", "HeartbeatPeriod"]).map(|n| n / 1_000_000),
        cert_expiry_secs: nanos(&["CAConfig", "NodeCertExpiry"]).map(|n| n / 1_000_000_000),
        force_new_cluster: r.force_new_cluster,
        autolock: r.auto_lock_managers,
        vip_pool,
    };
    Ok(Json(rt.init(req).await?.node_id))
}

/// What `docker swarm join` sends.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmJoinRequest {
    #[serde(default)]
    listen_addr: String,
    #[serde(default)]
    advertise_addr: String,
    #[serde(default)]
    remote_addrs: Vec<String>,
    #[serde(default)]
    join_token: String,
}

/// `POST /swarm/join`: joins through the first manager address given.
async fn swarm_join(
    State(rt): State<Arc<Runtime>>,
    bytes: axum::body::Bytes,
) -> Result<(), ApiError> {
    let r: SwarmJoinRequest = json_body(&bytes)?;
    let remote = r
        .remote_addrs
        .first()
        .and_then(|a| given(a))
        .ok_or_else(|| ApiError::bad_request("invalid RemoteAddrs: name a manager's address"))?;
    rt.join(JoinRequest {
        token: r.join_token,
        remote_addr: remote,
        advertise_addr: given(&r.advertise_addr),
        listen_addr: given(&r.listen_addr),
    })
    .await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct ForceQuery {
    force: Option<String>,
}

/// `POST /swarm/leave[?force=1]`.
async fn swarm_leave(
    State(rt): State<Arc<Runtime>>,
    Query(q): Query<ForceQuery>,
) -> Result<(), ApiError> {
    let force = truthy(q.force.as_deref());
    rt.leave(LeaveRequest { force }).await?;
    Ok(())
}

const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

async fn version() -> Json<Version> {
    Json(Version::shoal(
        SERVER_VERSION,
        std::env::consts::OS,
        docker_arch(),
        &kernel(),
    ))
}

/// The architecture as Docker names it (Go's names).
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn info(State(rt): State<Arc<Runtime>>) -> Json<Info> {
    let state = rt.store.state();
    let local = if rt.store.is_locked() {
        LocalNodeState::Locked
    } else {
        match rt.standing() {
            Standing::Detached => LocalNodeState::Inactive,
            Standing::Member(_) => LocalNodeState::Active,
        }
    };
    let nodes: Vec<shoal_api::Node> = state.nodes.values().cloned().collect();
    let cluster = state
        .cluster
        .as_ref()
        .map(|c| to_docker::cluster_info(c, shoal_manager::docker::swarm_index(c), c.created_at));
    let mut swarm = to_docker::swarm_info(state.nodes.get(&rt.node_id), local, &nodes, cluster);
    // What this node is now, not what the store last said: a node the cluster is demoting
    // or promoting is a manager until its roles have switched.
    swarm.control_available =
        matches!(rt.standing(), Standing::Member(m) if m.role == NodeRole::Manager);
    if swarm.node_id.is_empty() && local == LocalNodeState::Active {
        // A worker keeps no copy of the cluster's nodes: it still knows who it is.
        swarm.node_id = rt.node_id.clone();
        if let Some(m) = rt.membership() {
            swarm.node_addr = m.advertise_addr;
        }
    }
    let description = crate::describe::describe(rt.engine.clone());
    Json(Info {
        id: rt.node_id.clone(),
        name: rt.hostname.clone(),
        ncpu: description.nano_cpus / 1_000_000_000,
        mem_total: description.memory_bytes,
        server_version: SERVER_VERSION.into(),
        operating_system: "shoal".into(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        swarm,
    })
}

/// What the `Swarm` header says: `inactive`, `locked`, `active/manager` or `active/worker`.
fn swarm_status(rt: &Runtime) -> &'static str {
    if rt.store.is_locked() {
        return "locked";
    }
    match rt.standing() {
        Standing::Detached => "inactive",
        Standing::Member(m) if m.role == NodeRole::Manager => "active/manager",
        Standing::Member(_) => "active/worker",
    }
}

async fn ping(State(rt): State<Arc<Runtime>>) -> impl IntoResponse {
    let headers = [
        (
            HeaderName::from_static("api-version"),
            HeaderValue::from_static(API_VERSION),
        ),
        (
            HeaderName::from_static("ostype"),
            HeaderValue::from_static("linux"),
        ),
        (
            HeaderName::from_static("docker-experimental"),
            HeaderValue::from_static("false"),
        ),
        (
            HeaderName::from_static("swarm"),
            HeaderValue::from_static(swarm_status(&rt)),
        ),
        (
            CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate"),
        ),
        (PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    (headers, "OK")
}
