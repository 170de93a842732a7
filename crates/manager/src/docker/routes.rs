//! The Docker API's swarm routes over shoal's store: `/swarm`, `/nodes`, `/services` and
//! `/tasks`. Reads answer from this manager's state; writes go through the same checks
//! and single-transaction writes as shoal's own `/v1` routes (`control::services`).

use super::truthy;
use crate::control::nodes;
use crate::control::services::{self as svc, Change};
use crate::control::{ApiError, ControlState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use shoal_api::{ClusterState, NodeRole, ServiceMode, Task, TaskState};
use shoal_store::raft::GroupStatus;
use shoal_wire::docker::filters::{NODE_FILTERS, SERVICE_FILTERS, TASK_FILTERS};
use shoal_wire::docker::to_docker::{self, SentSpecs, SwarmNetwork};
use shoal_wire::docker::{
    parse_service_spec, to_shoal, DockerError, EndpointVirtualIp, Filters, JoinTokens, Node,
    Service, ServiceCreateResponse, ServiceSpec, ServiceStatus, ServiceUpdateResponse, Swarm,
};
use std::collections::HashMap;

impl From<DockerError> for ApiError {
    fn from(e: DockerError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<shoal_wire::docker::FilterError> for ApiError {
    fn from(e: shoal_wire::docker::FilterError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    filters: String,
    /// `GET /services?status=true`: with each service's task counts.
    #[serde(default)]
    status: Option<String>,
}

/// The one swarm-scoped network shoal reports: its ID is the cluster's.
fn network(state: &ClusterState) -> SwarmNetwork<'_> {
    let cluster = state.cluster.as_ref();
    SwarmNetwork {
        id: cluster.map_or("", |c| c.id.as_str()),
        pool: cluster.and_then(|c| c.vip_pool).unwrap_or_default(),
    }
}

/// The Docker spec a service was last given, if a Docker client gave it.
fn sent(v: Option<&serde_json::Value>) -> Option<ServiceSpec> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn status_of(state: &ClusterState, s: &shoal_api::Service) -> ServiceStatus {
    let tasks = state.tasks.values().filter(|t| t.service_id == s.id);
    let running = tasks
        .clone()
        .filter(|t| t.status.state == TaskState::Running && t.desired_state == TaskState::Running)
        .count() as u64;
    let desired = match s.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::Global => tasks
            .filter(|t| t.desired_state == TaskState::Running)
            .count() as u64,
    };
    ServiceStatus {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: 0,
    }
}

fn docker_service(state: &ClusterState, s: &shoal_api::Service, status: bool) -> Service {
    let (spec, previous) = (
        sent(s.docker_spec.as_ref()),
        sent(s.docker_previous_spec.as_ref()),
    );
    let mut out = to_docker::service(
        s,
        SentSpecs {
            spec: spec.as_ref(),
            previous: previous.as_ref(),
        },
        status.then(|| status_of(state, s)),
        &network(state),
    );
    out.version.index = super::service_index(s);
    // The VIP is the service's address on every network it is attached to.
    if let Some(vip) = out.endpoint.virtual_ips.first().cloned() {
        for a in s
            .spec
            .task
            .networks
            .iter()
            .filter(|a| a.network != vip.network_id)
        {
            out.endpoint.virtual_ips.push(EndpointVirtualIp {
                network_id: a.network.clone(),
                addr: vip.addr.clone(),
            });
        }
    }
    out
}

pub async fn list_services(
    State(s): State<ControlState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Service>>, ApiError> {
    let state = s.cluster()?;
    let f = Filters::parse(&q.filters)?;
    f.check(SERVICE_FILTERS)?;
    f.check_values("mode", &["replicated", "global"])?;
    let status = truthy(q.status.as_deref());
    let mut out: Vec<Service> = state
        .services
        .values()
        .filter(|x| f.matches_prefix("id", &[&x.id]) && f.matches_prefix("name", &[&x.spec.name]))
        .filter(|x| f.matches_labels("label", &x.spec.labels))
        .filter(|x| {
            let mode = match x.spec.mode {
                ServiceMode::Replicated { .. } => "replicated",
                ServiceMode::Global => "global",
            };
            f.matches_exact("mode", mode)
        })
        .map(|x| docker_service(&state, x, status))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(out))
}

#[derive(Debug, Default, Deserialize)]
pub struct InspectQuery {
    #[serde(rename = "insertDefaults")]
    insert_defaults: Option<String>,
}

pub async fn inspect_service(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<InspectQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = s.cluster()?;
    let x = svc::find(&state, &key)?;
    let out = docker_service(&state, x, false);
    let mut json = serde_json::to_value(&out).map_err(|e| ApiError::internal(e.to_string()))?;
    if truthy(q.insert_defaults.as_deref()) {
        // What the client left out, as shoal runs it: the spec rendered from shoal's model,
        // and the two settings Docker always names.
        let mut full = serde_json::to_value(to_docker::service_spec(&x.spec, None))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        full["TaskTemplate"]["Runtime"] = "container".into();
        full["TaskTemplate"]["ContainerSpec"]["Isolation"] = "default".into();
        strip_unset(&mut full);
        fill_missing(&mut json["Spec"], full);
    }
    Ok(Json(json))
}

/// Drops what Docker leaves out unless set: a zero delay or window, the default signal.
fn strip_unset(v: &mut serde_json::Value) {
    if let Some(map) = v.as_object_mut() {
        map.retain(|k, v| match k.as_str() {
            "Delay" | "Window" => v.as_i64() != Some(0),
            "StopSignal" => false,
            _ => true,
        });
        map.values_mut().for_each(strip_unset);
    }
}

/// Adds to `to` every key of `from` it lacks, at every level of nested objects.
fn fill_missing(to: &mut serde_json::Value, from: serde_json::Value) {
    let (Some(to), serde_json::Value::Object(from)) = (to.as_object_mut(), from) else {
        return;
    };
    for (k, v) in from {
        match to.get_mut(&k) {
            Some(existing) => fill_missing(existing, v),
            None => {
                to.insert(k, v);
            }
        }
    }
}

pub async fn create_service(
    State(s): State<ControlState>,
    body: Bytes,
) -> Result<(StatusCode, Json<ServiceCreateResponse>), ApiError> {
    let spec = parse_service_spec(&body)?;
    let converted = to_shoal::service_spec(&spec, None)?;
    let raw = serde_json::to_value(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let id = svc::create_service(&s, converted.spec, Some(raw)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ServiceCreateResponse {
            id,
            warnings: converted.warnings,
        }),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct UpdateQuery {
    version: Option<String>,
    rollback: Option<String>,
}

pub async fn update_service(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<UpdateQuery>,
    body: Bytes,
) -> Result<Json<ServiceUpdateResponse>, ApiError> {
    let state = s.cluster()?;
    let version = whole_number("version", q.version.as_deref())?;
    match q.rollback.as_deref() {
        Some("previous") => {
            svc::rollback_service(&s, &key, version).await?;
            return Ok(Json(ServiceUpdateResponse::default()));
        }
        None | Some("") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid rollback {other:?}: only previous is supported"
            )))
        }
    }
    let current = svc::find(&state, &key)?;
    let spec = parse_service_spec(&body)?;
    let converted = to_shoal::service_spec(&spec, Some(&current.spec))?;
    let before = sent(current.docker_spec.as_ref());
    // `docker service update --force` bumps ForceUpdate: a rollout even if nothing else changed.
    let force = before
        .as_ref()
        .is_some_and(|b| b.task_template.force_update != spec.task_template.force_update);
    let raw = serde_json::to_value(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
    svc::update_service(
        &s,
        &key,
        Change {
            spec: converted.spec,
            force,
            expect: version,
            docker_spec: Some(raw),
        },
    )
    .await?;
    Ok(Json(ServiceUpdateResponse {
        warnings: converted.warnings,
    }))
}

pub async fn remove_service(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::remove_service(&s, &key).await?;
    Ok(StatusCode::OK)
}

/// A task as Docker shows it; `sent` is its service's Docker spec, if a Docker client gave
/// one.
fn docker_task(
    state: &ClusterState,
    t: &Task,
    sent: Option<&ServiceSpec>,
) -> shoal_wire::docker::Task {
    let node_addr = t
        .node_id
        .as_ref()
        .and_then(|n| state.nodes.get(n))
        .map(|n| n.addr.as_str());
    let mut out = to_docker::task(
        t,
        t.status.timestamp.max(t.created_at),
        node_addr,
        sent.map(|x| &x.task_template),
        &network(state),
    );
    // The task's address on each network its template attaches it to.
    if let Some(first) = out.networks_attachments.first().cloned() {
        for a in &t.spec.networks {
            if let Some(n) = state.networks.get(&a.network) {
                out.networks_attachments
                    .push(shoal_wire::docker::NetworkAttachment {
                        network: shoal_wire::docker::Network {
                            id: n.id.clone(),
                            spec: shoal_wire::docker::NetworkSpec {
                                name: n.name.clone(),
                                labels: n.labels.clone(),
                            },
                        },
                        addresses: first.addresses.clone(),
                    });
            }
        }
    }
    out
}

pub async fn list_tasks(
    State(s): State<ControlState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<shoal_wire::docker::Task>>, ApiError> {
    let state = s.cluster()?;
    let f = Filters::parse(&q.filters)?;
    f.check(TASK_FILTERS)?;
    let services: Vec<&shoal_api::Service> = f
        .values("service")
        .filter_map(|k| state.find_service(k))
        .collect();
    let nodes: Vec<&shoal_api::Node> = f
        .values("node")
        .filter_map(|k| state.find_node(k))
        .collect();
    let up_to_date = f.contains("_up-to-date").then(|| f.is_true("_up-to-date"));
    let mut sent_specs: HashMap<&str, Option<ServiceSpec>> = HashMap::new();
    let mut out: Vec<shoal_wire::docker::Task> = state
        .tasks
        .values()
        .filter(|t| !f.contains("service") || services.iter().any(|x| x.id == t.service_id))
        .filter(|t| {
            !f.contains("node") || nodes.iter().any(|n| t.node_id.as_deref() == Some(&n.id))
        })
        .filter(|t| f.matches_exact("desired-state", t.desired_state.as_str()))
        .filter(|t| f.matches_prefix("id", &[&t.id]))
        .filter(|t| {
            let name = format!("{}.{}", t.service_name, t.slot);
            f.matches_prefix("name", &[&name])
        })
        .filter(|t| {
            let service = state.services.get(&t.service_id);
            let labels = service.map(|x| &x.spec.labels);
            labels.is_none_or(|l| f.matches_labels("label", l))
        })
        .filter(|t| {
            up_to_date.is_none_or(|want| {
                let current = state
                    .services
                    .get(&t.service_id)
                    .is_some_and(|x| x.version == t.spec_version);
                current == want
            })
        })
        .map(|t| {
            // Each service's Docker spec read once, however many of its tasks are listed.
            let spec = sent_specs.entry(t.service_id.as_str()).or_insert_with(|| {
                let service = state.services.get(&t.service_id);
                service.and_then(|x| sent(x.docker_spec.as_ref()))
            });
            docker_task(&state, t, spec.as_ref())
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(out))
}

pub async fn inspect_task(
    State(s): State<ControlState>,
    Path(id): Path<String>,
) -> Result<Json<shoal_wire::docker::Task>, ApiError> {
    let state = s.cluster()?;
    let t = state
        .find_task(&id)
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    let spec = state
        .services
        .get(&t.service_id)
        .and_then(|x| sent(x.docker_spec.as_ref()));
    Ok(Json(docker_task(&state, t, spec.as_ref())))
}

pub async fn list_nodes(
    State(s): State<ControlState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Node>>, ApiError> {
    let state = s.cluster()?;
    let f = Filters::parse(&q.filters)?;
    f.check(NODE_FILTERS)?;
    let group = nodes::group(&s);
    let mut out: Vec<Node> = state
        .nodes
        .values()
        .filter(|n| f.matches_prefix("id", &[&n.id]) && f.matches_prefix("name", &[&n.hostname]))
        .filter(|n| f.matches_exact("role", n.role.as_str()))
        .filter(|n| {
            f.matches_labels("label", &n.labels) && f.matches_labels("node.label", &n.labels)
        })
        .map(|n| docker_node(n, group.as_ref()))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(out))
}

pub async fn inspect_node(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<Node>, ApiError> {
    let state = s.cluster()?;
    let n = state
        .find_node(&key)
        .ok_or_else(|| ApiError::not_found(format!("node {key} not found")))?;
    Ok(Json(docker_node(n, nodes::group(&s).as_ref())))
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeUpdateQuery {
    version: Option<String>,
}

/// `docker node update|promote|demote`: the node's whole spec (labels, role, availability)
/// in one write, refused if the node changed since the client read it (`version`).
pub async fn update_node(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<NodeUpdateQuery>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    s.cluster()?;
    let version = whole_number("version", q.version.as_deref())?;
    let spec: shoal_wire::docker::NodeSpec = super::json_body(&body)?;
    let role = match spec.role.as_str() {
        "" => None,
        r => Some(r.parse::<NodeRole>().map_err(ApiError::bad_request)?),
    };
    let availability = match spec.availability.as_str() {
        "" => None,
        "active" => Some(shoal_api::Availability::Active),
        "pause" => Some(shoal_api::Availability::Pause),
        "drain" => Some(shoal_api::Availability::Drain),
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid Availability {other:?}: expected active, pause or drain"
            )))
        }
    };
    shoal_api::limits::check_labels(spec.labels.iter())?;
    let group = nodes::group(&s);
    s.store
        .update(|tx| {
            let mut n = nodes::find(tx.state(), &key)?;
            if version.is_some_and(|v| v != super::node_index(&n)) {
                return Err(svc::out_of_sequence());
            }
            if let Some(role) = role.filter(|r| *r != n.role) {
                nodes::set_role(tx.state(), &mut n, role, group.as_ref())?;
            }
            if let Some(a) = availability {
                n.availability = a;
            }
            n.labels = spec.labels.clone();
            n.updated_at = crate::now_millis();
            tx.put(n);
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
pub struct ForceQuery {
    force: Option<String>,
}

pub async fn remove_node(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    nodes::remove_node(&s, &key, truthy(q.force.as_deref())).await?;
    Ok(StatusCode::OK)
}

/// What `docker service logs` asks for.
#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    details: Option<String>,
    follow: Option<String>,
    timestamps: Option<String>,
    since: Option<String>,
    tail: Option<String>,
}

fn logs(
    s: ControlState,
    key: &str,
    task: bool,
    q: LogsQuery,
) -> Result<axum::response::Response, ApiError> {
    let tail = match q.tail.as_deref() {
        None | Some("" | "all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid tail {n:?}: expected a number of lines or all"
            ))
        })?),
    };
    let since = q.since.filter(|t| !t.is_empty() && t != "0");
    let query = shoal_wire::v1::logs::LogQuery {
        tail,
        follow: truthy(q.follow.as_deref()),
        since,
    };
    let format = crate::control::logs::Format::Docker {
        timestamps: truthy(q.timestamps.as_deref()),
        details: truthy(q.details.as_deref()),
    };
    crate::control::logs::logs_of(s, key, task, query, format)
}

pub async fn service_logs(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::response::Response, ApiError> {
    logs(s, &key, false, q)
}

pub async fn task_logs(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::response::Response, ApiError> {
    logs(s, &key, true, q)
}

/// A query parameter that must be a whole number, if given.
pub(super) fn whole_number(name: &str, v: Option<&str>) -> Result<Option<u64>, ApiError> {
    v.map(|v| {
        v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid {name} {v:?}: expected a whole number"))
        })
    })
    .transpose()
}

/// A node as Docker shows it, with its manager's place in the Raft `group`.
fn docker_node(n: &shoal_api::Node, group: Option<&GroupStatus>) -> Node {
    let mut n = n.clone();
    if let Some(g) = group {
        nodes::set_manager_status(&mut n, g);
    }
    to_docker::node(&n, super::node_index(&n))
}

pub async fn inspect_swarm(State(s): State<ControlState>) -> Result<Json<Swarm>, ApiError> {
    let state = s.cluster()?;
    let c = state
        .cluster
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this node is not part of a cluster"))?;
    let token =
        |role| crate::ca::join_token(c, role).map_err(|e| ApiError::internal(e.to_string()));
    let tokens = JoinTokens {
        worker: token(NodeRole::Worker)?,
        manager: token(NodeRole::Manager)?,
    };
    Ok(Json(to_docker::swarm(
        c,
        super::swarm_index(c),
        c.created_at,
        tokens,
    )))
}
