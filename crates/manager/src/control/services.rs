use super::{ApiError, ControlState, StrictJson};
use crate::alloc;
use crate::checks::{command_exists, ports_in_use};
use crate::now_millis;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use shoal_api::{id, ClusterState, Service, ServiceMode, ServiceSpec, UpdateState, UpdateStatus};
use shoal_wire::v1::services::{Created, ScaleRequest, ServiceInfo, UpdateRequest};

pub async fn list(State(s): State<ControlState>) -> Result<Json<Vec<ServiceInfo>>, ApiError> {
    let state = s.cluster()?;
    let mut out: Vec<ServiceInfo> = state
        .services
        .values()
        .map(|svc| ServiceInfo::new(&state, svc))
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
    Ok(Json(ServiceInfo::new(&state, svc)))
}

pub(crate) fn find<'a>(state: &'a ClusterState, key: &str) -> Result<&'a Service, ApiError> {
    state
        .find_service(key)
        .ok_or_else(|| ApiError::not_found(format!("service {key} not found")))
}

pub async fn create(
    State(s): State<ControlState>,
    StrictJson(spec): StrictJson<ServiceSpec>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let id = create_service(&s, spec, None).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Checks `spec` and writes a new service of it in one transaction, with the Docker spec it
/// came from (`docker_spec`, from the Docker API). Returns the new service's ID.
pub(crate) async fn create_service(
    s: &ControlState,
    spec: ServiceSpec,
    docker_spec: Option<serde_json::Value>,
) -> Result<String, ApiError> {
    let snapshot = s.cluster()?;
    spec.validate()?;
    if let Some(program) = spec.task.process().and_then(|p| p.command.first()) {
        if !command_exists(program) {
            return Err(ApiError::bad_request(format!(
                "command not found: {program} (give a path or a program on the daemon's PATH)"
            )));
        }
    }
    let host_busy = ports_in_use(&snapshot, &spec.ports);
    let id = s
        .store
        .update(|tx| {
            let state = tx.state();
            if state.services.values().any(|x| x.spec.name == spec.name) {
                return Err(ApiError::conflict(format!(
                    "service {} already exists",
                    spec.name
                )));
            }
            let mut spec = spec.clone();
            super::objects::resolve_refs(state, &mut spec.task)?;
            let ports = alloc::published_ports(state, None, &spec.ports, &host_busy)?;
            let vip = alloc::vip(state, None)?;
            let now = now_millis();
            let service = Service {
                vip: Some(vip),
                id: id::new_id(),
                version: 1,
                spec,
                previous_spec: None,
                update_status: None,
                docker_spec: docker_spec.clone(),
                docker_previous_spec: None,
                ports,
                created_at: now,
                updated_at: now,
            };
            let id = service.id.clone();
            tx.put(service);
            Ok(id)
        })
        .await?;
    tracing::info!(service = %spec.name, id = %id, "service created");
    Ok(id)
}

pub async fn remove(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove_service(&s, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the service named or identified by `key`.
pub(crate) async fn remove_service(s: &ControlState, key: &str) -> Result<(), ApiError> {
    s.cluster()?;
    s.store
        .update(|tx| {
            let id = find(tx.state(), key)?.id.clone();
            // Tasks are stopped (drained first) and forgotten by the orchestrator.
            tx.delete::<Service>(id);
            Ok::<_, ApiError>(())
        })
        .await?;
    tracing::info!(service = %key, "service removed");
    Ok(())
}

pub async fn scale(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    body: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<ServiceInfo>, ApiError> {
    let Json(req) = body?;
    s.cluster()?;
    req.check()?;
    let out = s
        .store
        .update(|tx| {
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
            tx.put(svc.clone());
            Ok(ServiceInfo::new(tx.state(), &svc))
        })
        .await?;
    Ok(Json(out))
}

/// `spec` with what the tasks do not see set aside — the replica count (a scale), the
/// service's labels, how the service is reached and balanced and when idle connections
/// close (the data plane's) — so
/// changing only those is no rollout. A task's weight is part of its template: changing it
/// rolls out, which is how a canary gets its share.
fn rollout_part(spec: &ServiceSpec) -> ServiceSpec {
    let mut s = spec.clone();
    // The service's labels are its own, not its tasks' (a container's are in its template).
    s.labels = Default::default();
    s.endpoint_mode = Default::default();
    s.lb = Default::default();
    s.lb_local_first = Default::default();
    s.lb_mode = Default::default();
    s.idle_timeout = Default::default();
    if let ServiceMode::Replicated { replicas } = &mut s.mode {
        *replicas = 0;
    }
    s
}

pub async fn update(
    State(s): State<ControlState>,
    Path(key): Path<String>,
    StrictJson(req): StrictJson<UpdateRequest>,
) -> Result<Json<ServiceInfo>, ApiError> {
    let change = Change {
        spec: req.spec,
        force: req.force,
        expect: None,
        docker_spec: None,
    };
    let svc = update_service(&s, &key, change).await?;
    Ok(Json(ServiceInfo::new(&s.store.state(), &svc)))
}

/// A change of a service's spec, as shoal's API or the Docker API asks for it.
#[derive(Debug)]
pub(crate) struct Change {
    pub spec: ServiceSpec,
    /// Roll the tasks out even if their template is unchanged.
    pub force: bool,
    /// The Docker API's optimistic lock: the service's `Version.Index` the client read
    /// (`docker::service_index`); a service whose spec changed since is refused.
    pub expect: Option<u64>,
    /// The Docker spec the change came from; `Some` also makes an unchanged spec no error
    /// and clears the last rollout's status when this change is no rollout, as Docker does.
    pub docker_spec: Option<serde_json::Value>,
}

/// The error Docker gives for a stale `version`.
pub(crate) fn out_of_sequence() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "update out of sequence")
}

/// Checks and applies `change` to the service named or identified by `key` in one
/// transaction; a change of the tasks' template starts a rollout.
pub(crate) async fn update_service(
    s: &ControlState,
    key: &str,
    change: Change,
) -> Result<Service, ApiError> {
    let Change {
        spec,
        force,
        expect,
        docker_spec,
    } = change;
    let req = UpdateRequest { spec, force };
    let snapshot = s.cluster()?;
    req.spec.validate()?;
    if let Some(program) = req.spec.task.process().and_then(|p| p.command.first()) {
        if !command_exists(program) {
            return Err(ApiError::bad_request(format!(
                "command not found: {program} (give a path or a program on the daemon's PATH)"
            )));
        }
    }
    let host_busy = ports_in_use(&snapshot, &req.spec.ports);
    let out = s
        .store
        .update(|tx| {
            let mut svc = find(tx.state(), key)?.clone();
            if expect.is_some_and(|v| v != crate::docker::service_index(&svc)) {
                return Err(out_of_sequence());
            }
            if req.spec.name != svc.spec.name {
                return Err(ApiError::bad_request(format!(
                    "service {} cannot be renamed to {}",
                    svc.spec.name, req.spec.name
                )));
            }
            if matches!(svc.spec.mode, ServiceMode::Global)
                != matches!(req.spec.mode, ServiceMode::Global)
            {
                return Err(ApiError::bad_request(format!(
                    "service {}: the mode (replicated or global) cannot be changed",
                    svc.spec.name
                )));
            }
            let mut spec = req.spec.clone();
            super::objects::resolve_refs(tx.state(), &mut spec.task)?;
            let req = UpdateRequest {
                spec,
                force: req.force,
            };
            let rollout = req.force || rollout_part(&req.spec) != rollout_part(&svc.spec);
            if !rollout && req.spec == svc.spec && docker_spec.is_none() {
                return Err(ApiError::bad_request(format!(
                "service {}: nothing to update (the spec is unchanged; use --force to redeploy)",
                svc.spec.name
            )));
            }
            svc.ports =
                alloc::published_ports(tx.state(), Some(&svc), &req.spec.ports, &host_busy)?;
            // A service made before VIPs existed gets one now.
            svc.vip = Some(alloc::vip(tx.state(), Some(&svc))?);
            let now = now_millis();
            if docker_spec.is_some() {
                svc.docker_previous_spec = svc.docker_spec.take();
                svc.docker_spec = docker_spec.clone();
                // Docker keeps the spec before every update, a scale too, so a rollback
                // undoes the last update only.
                svc.previous_spec = Some(svc.spec.clone());
                if !rollout {
                    svc.update_status = None;
                }
            }
            if rollout {
                svc.previous_spec = Some(svc.spec.clone());
                svc.version += 1;
                svc.update_status = Some(UpdateStatus {
                    state: UpdateState::Updating,
                    version: svc.version,
                    started_at: now,
                    completed_at: None,
                    message: String::new(),
                });
            }
            svc.spec = req.spec.clone();
            svc.updated_at = now;
            tx.put(svc.clone());
            Ok(svc)
        })
        .await?;
    tracing::info!(service = %out.spec.name, version = out.version, "service updated");
    Ok(out)
}

pub async fn rollback(
    State(s): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<ServiceInfo>, ApiError> {
    let svc = rollback_service(&s, &key, None).await?;
    Ok(Json(ServiceInfo::new(&s.store.state(), &svc)))
}

/// Rolls the service named or identified by `key` back to its previous spec (its Docker
/// spec too); `expect` as in [`Change::expect`].
pub(crate) async fn rollback_service(
    s: &ControlState,
    key: &str,
    expect: Option<u64>,
) -> Result<Service, ApiError> {
    let snapshot = s.cluster()?;
    let host_busy = snapshot
        .find_service(key)
        .and_then(|svc| svc.previous_spec.as_ref())
        .map(|previous| ports_in_use(&snapshot, &previous.ports))
        .unwrap_or_default();
    let out = s
        .store
        .update(|tx| {
            let svc = find(tx.state(), key)?.clone();
            if expect.is_some_and(|v| v != crate::docker::service_index(&svc)) {
                return Err(out_of_sequence());
            }
            let no_previous = || {
                ApiError::bad_request(format!(
                    "service {} has no previous spec to roll back to",
                    svc.spec.name
                ))
            };
            let previous = svc.previous_spec.as_ref().ok_or_else(no_previous)?;
            // The previous spec's ports may have been taken since: refuse rather than collide.
            let ports =
                alloc::published_ports(tx.state(), Some(&svc), &previous.ports, &host_busy)?;
            let now = now_millis();
            let status = UpdateStatus {
                state: UpdateState::RollbackStarted,
                version: svc.version + 1,
                started_at: now,
                completed_at: None,
                message: "manually requested rollback".into(),
            };
            let mut rolled = crate::updater::rolled_back(tx.state(), &svc, status, now)
                .ok_or_else(no_previous)?;
            rolled.ports = ports;
            if rollout_part(&rolled.spec) == rollout_part(&svc.spec) {
                // Undoing what the tasks never saw (a scale, labels): nothing to roll out.
                rolled.version = svc.version;
                rolled.update_status = Some(UpdateStatus {
                    state: UpdateState::RollbackCompleted,
                    version: svc.version,
                    started_at: now,
                    completed_at: Some(now),
                    message: "rollback completed".into(),
                });
            }
            rolled.docker_spec = svc.docker_previous_spec.clone();
            rolled.docker_previous_spec = svc.docker_spec.clone();
            tx.put(rolled.clone());
            Ok::<_, ApiError>(rolled)
        })
        .await?;
    tracing::info!(service = %out.spec.name, "service rollback started");
    Ok(out)
}
