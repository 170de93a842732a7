use super::{ApiError, ControlState};
use crate::checks::{command_exists, port_free};
use crate::now_millis;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use shoal_api::port::{AUTO_PORT_MAX, AUTO_PORT_MIN};
use shoal_api::{id, ClusterState, PortConfig, Service, ServiceMode, ServiceSpec, TaskState};
use shoal_store::Op;
use std::collections::HashMap;

/// A service with its replica counts, as `service ls` and `service inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceInfo {
    #[serde(flatten)]
    pub service: Service,
    /// Tasks running now (and ready to serve).
    pub running: u64,
    /// Tasks wanted: the replica count, or the number of eligible nodes for global services.
    pub desired: u64,
}

fn info(state: &ClusterState, service: &Service) -> ServiceInfo {
    let tasks: Vec<_> = state.tasks_of(&service.id).collect();
    let running = tasks
        .iter()
        .filter(|t| t.status.state == TaskState::Running && t.desired_state == TaskState::Running)
        .count() as u64;
    let desired = match service.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::Global => tasks
            .iter()
            .filter(|t| t.desired_state == TaskState::Running)
            .count() as u64,
    };
    ServiceInfo {
        service: service.clone(),
        running,
        desired,
    }
}

pub async fn list(State(s): State<ControlState>) -> Result<Json<Vec<ServiceInfo>>, ApiError> {
    let state = s.cluster()?;
    let mut out: Vec<ServiceInfo> = state
        .services
        .values()
        .map(|svc| info(&state, svc))
        .collect();
    out.sort_by(|a, b| a.service.spec.name.cmp(&b.service.spec.name));
    Ok(Json(out))
}

pub async fn inspect(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<ServiceInfo>, ApiError> {
    let state = s.cluster()?;
    let svc = find(&state, &key)?;
    Ok(Json(info(&state, svc)))
}

fn find<'a>(state: &'a ClusterState, key: &str) -> Result<&'a Service, ApiError> {
    state
        .find_service(key)
        .ok_or_else(|| ApiError::not_found(format!("service {key} not found")))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

pub async fn create(
    State(s): State<ControlState>,
    body: Result<Json<ServiceSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let Json(spec) = body?;
    s.cluster()?;
    spec.validate()?;
    if let Some(program) = spec.task.command.first() {
        if !command_exists(program) {
            return Err(ApiError::bad_request(format!(
                "command not found: {program} (give a path or a program on the daemon's PATH)"
            )));
        }
    }
    let id = s.store.update(|tx| {
        let state = tx.state();
        if state.services.values().any(|x| x.spec.name == spec.name) {
            return Err(ApiError::conflict(format!(
                "service {} already exists",
                spec.name
            )));
        }
        let ports = assign_ports(state, &spec.ports, None)?;
        let now = now_millis();
        let service = Service {
            id: id::new_id(),
            version: 1,
            spec: spec.clone(),
            previous_spec: None,
            update_status: None,
            ports,
            created_at: now,
            updated_at: now,
        };
        let id = service.id.clone();
        tx.put_service(service);
        Ok(id)
    })?;
    tracing::info!(service = %spec.name, id = %id, "service created");
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Fill in auto-assigned published ports and refuse ports another service or program holds.
fn assign_ports(
    state: &ClusterState,
    wanted: &[PortConfig],
    this_service: Option<&str>,
) -> Result<Vec<PortConfig>, ApiError> {
    let mut taken: HashMap<(u16, shoal_api::Protocol), &str> = HashMap::new();
    for svc in state
        .services
        .values()
        .filter(|x| Some(x.id.as_str()) != this_service)
    {
        for p in &svc.ports {
            if let Some(n) = p.published {
                taken.insert((n, p.protocol), svc.spec.name.as_str());
            }
        }
    }
    let mut out = Vec::with_capacity(wanted.len());
    for p in wanted {
        let mut p = *p;
        match p.published {
            Some(n) => {
                if let Some(owner) = taken.get(&(n, p.protocol)) {
                    return Err(ApiError::conflict(format!(
                        "port {n}/{} is already published by service {owner}",
                        p.protocol.as_str()
                    )));
                }
                if !port_free(n, p.protocol) {
                    return Err(ApiError::conflict(format!(
                        "port {n}/{} is already in use on this node by another program",
                        p.protocol.as_str()
                    )));
                }
            }
            None => {
                let free = (AUTO_PORT_MIN..=AUTO_PORT_MAX)
                    .find(|n| !taken.contains_key(&(*n, p.protocol)) && port_free(*n, p.protocol))
                    .ok_or_else(|| {
                        ApiError::conflict("no free port left in 30000-32767 to publish on")
                    })?;
                p.published = Some(free);
            }
        }
        if let Some(n) = p.published {
            taken.insert((n, p.protocol), "this service");
        }
        out.push(p);
    }
    Ok(out)
}

pub async fn remove(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.cluster()?;
    s.store.update(|tx| {
        let id = find(tx.state(), &key)?.id.clone();
        // Tasks are stopped (drained first) and forgotten by the orchestrator.
        tx.push(Op::DeleteService(id));
        Ok::<_, ApiError>(())
    })?;
    tracing::info!(service = %key, "service removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    pub replicas: u64,
}

pub async fn scale(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    body: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<ServiceInfo>, ApiError> {
    let Json(req) = body?;
    s.cluster()?;
    let out = s.store.update(|tx| {
        let mut svc = find(tx.state(), &key)?.clone();
        match &mut svc.spec.mode {
            ServiceMode::Replicated { replicas } => *replicas = req.replicas,
            ServiceMode::Global => {
                return Err(ApiError::bad_request(format!(
                    "service {} is global: scale works only on replicated services",
                    svc.spec.name
                )))
            }
        }
        svc.updated_at = now_millis();
        tx.put_service(svc.clone());
        Ok(info(tx.state(), &svc))
    })?;
    Ok(Json(out))
}
