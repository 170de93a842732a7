//! `/v1/services`: create, list, inspect, scale, update, roll back.

use serde::{Deserialize, Serialize};
use shoal_api::limits::MAX_REPLICAS;
use shoal_api::{ClusterState, Service, ServiceMode, ServiceSpec, SpecError, TaskState};

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

impl ServiceInfo {
    /// `service` with its counts in `state`.
    pub fn new(state: &ClusterState, service: &Service) -> Self {
        let tasks: Vec<_> = state.tasks_of(&service.id).collect();
        let running = tasks
            .iter()
            .filter(|t| {
                t.status.state == TaskState::Running && t.desired_state == TaskState::Running
            })
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
}

/// The answer to `POST /v1/services` (whose body is a `ServiceSpec`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

/// `POST /v1/services/{id}/scale`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    pub replicas: u64,
}

impl ScaleRequest {
    /// Refuse a replica count above the cluster's limit.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.replicas > MAX_REPLICAS {
            return Err(SpecError::invalid(
                "replicas",
                self.replicas.to_string(),
                format!("at most {MAX_REPLICAS} per service"),
            ));
        }
        Ok(())
    }
}

/// `POST /v1/services/{id}/update`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub spec: ServiceSpec,
    /// Roll out even if the spec is unchanged (replaces every task).
    #[serde(default)]
    pub force: bool,
}
