//! The node's own routes of the Docker Engine API: `/_ping` (what the docker CLI, Traefik
//! and docker-py call first, to learn the API version and whether the node is in a swarm),
//! `/version` and `/info` (the node's place in the cluster: `docker node ls` marks the local
//! node by it, `docker stack deploy` needs `ControlAvailable`). The swarm routes are the
//! manager's (`shoal_manager::docker`).

use crate::membership::Standing;
use crate::runtime::Runtime;
use axum::extract::State;
use axum::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, PRAGMA};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shoal_api::NodeRole;
use shoal_wire::docker::to_docker::{self, LocalNodeState};
use shoal_wire::docker::{Info, Version, API_VERSION};
use std::sync::Arc;

pub fn router(rt: Arc<Runtime>) -> Router {
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
        .map(|c| to_docker::cluster_info(c, c.created_at, c.created_at));
    let mut swarm = to_docker::swarm_info(state.nodes.get(&rt.node_id), local, &nodes, cluster);
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
