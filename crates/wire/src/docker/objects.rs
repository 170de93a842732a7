//! The objects Docker's API answers with: `Service`, `Task`, `Node`, `Swarm`, the `/info`
//! and `/version` bodies, and the small responses. Written by shoal, read by clients; the
//! parts clients post back (`Spec`s) live in [`super::spec`].

use super::spec::{nullable, PortConfig, ServiceSpec, TaskSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `Version.Index`: the object's version, which `update?version=N` must name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectVersion {
    pub index: u64,
}

/// `{"message": ...}`, the body of every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

/// The answer to `POST /services/create` (201).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceCreateResponse {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

/// The answer to `POST /services/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceUpdateResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: ObjectVersion,
    pub created_at: String,
    pub updated_at: String,
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpec>,
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatus>,
}

/// What the cluster made of the endpoint spec: published ports with their numbers, VIPs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    pub spec: super::spec::EndpointSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    #[serde(rename = "VirtualIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<EndpointVirtualIp>,
}

/// `Addr` is a CIDR string (`10.96.0.2/16`): strict clients parse it as a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointVirtualIp {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "Addr")]
    pub addr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `GET /services?status=true`: the task counts `docker service ls` shows as REPLICAS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceStatus {
    pub running_tasks: u64,
    pub desired_tasks: u64,
    pub completed_tasks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: ObjectVersion,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Its `ContainerSpec` is always there: clients read `Spec.ContainerSpec.Image`.
    pub spec: TaskSpec,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// 0 (left out) for a task of a global service.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slot: u64,
    #[serde(rename = "NodeID", default, skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    pub status: TaskStatus,
    pub desired_state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks_attachments: Vec<NetworkAttachment>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    pub timestamp: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default, skip_serializing_if = "PortStatus::is_empty")]
    pub port_status: PortStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(
        rename = "ContainerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(rename = "PID", default, skip_serializing_if = "is_zero_u32")]
    pub pid: u32,
    #[serde(rename = "ExitCode", default, skip_serializing_if = "is_zero_i32")]
    pub exit_code: i32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}
fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

/// The host-mode ports a task holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

impl PortStatus {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// A task's place on a network; `Addresses` are CIDR strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachment {
    pub network: Network,
    pub addresses: Vec<String>,
}

/// The one swarm-scoped network shoal reports, as far as a task names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    #[serde(rename = "ID")]
    pub id: String,
    pub spec: NetworkSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSpec {
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: ObjectVersion,
    pub created_at: String,
    pub updated_at: String,
    pub spec: NodeSpec,
    pub description: NodeDescription,
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

/// What `POST /nodes/{id}/update` carries: `Labels`, `Role`, `Availability`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub availability: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDescription {
    pub hostname: String,
    pub platform: Platform,
    pub resources: NodeResources,
    pub engine: EngineDescription,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(
        rename = "Architecture",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub architecture: String,
    #[serde(rename = "OS", default, skip_serializing_if = "String::is_empty")]
    pub os: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    #[serde(rename = "NanoCPUs", default)]
    pub nano_cpus: u64,
    #[serde(rename = "MemoryBytes", default)]
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineDescription {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A plain IP address (not a CIDR string).
    pub addr: String,
}

/// A manager's place in the Raft group; `Addr` is its control address, `ip:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagerStatus {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leader: bool,
    pub reachability: String,
    pub addr: String,
}

/// `GET /swarm`: the cluster and its join tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Swarm {
    #[serde(flatten)]
    pub cluster: ClusterInfo,
    pub join_tokens: JoinTokens,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

/// The cluster as `/swarm` and `/info`'s `Swarm.Cluster` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: ObjectVersion,
    pub created_at: String,
    pub updated_at: String,
    pub spec: SwarmSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_addr_pool: Vec<String>,
}

/// The cluster's settings, as far as shoal has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    pub dispatcher: DispatcherConfig,
    #[serde(rename = "CAConfig")]
    pub ca_config: CaConfig,
    pub encryption_config: EncryptionConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DispatcherConfig {
    /// Nanoseconds.
    pub heartbeat_period: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaConfig {
    /// Nanoseconds.
    pub node_cert_expiry: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionConfig {
    pub auto_lock_managers: bool,
}

/// `GET /info`, the parts shoal fills in (clients read `Swarm` first of all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "NCPU")]
    pub ncpu: u64,
    #[serde(rename = "MemTotal")]
    pub mem_total: u64,
    #[serde(rename = "ServerVersion")]
    pub server_version: String,
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    #[serde(rename = "Architecture")]
    pub architecture: String,
    #[serde(rename = "Swarm")]
    pub swarm: SwarmInfo,
}

/// `/info`'s `Swarm`: this node's place in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmInfo {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_addr: String,
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub local_node_state: String,
    pub control_available: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(default, deserialize_with = "nullable")]
    pub remote_managers: Vec<Peer>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nodes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub managers: u64,
    /// Managers only, as with Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "Addr")]
    pub addr: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    #[serde(rename = "Platform")]
    pub platform: VersionPlatform,
    #[serde(rename = "Components", default)]
    pub components: Vec<ComponentVersion>,
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "ApiVersion")]
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    #[serde(rename = "GitCommit")]
    pub git_commit: String,
    #[serde(rename = "GoVersion")]
    pub go_version: String,
    #[serde(rename = "Os")]
    pub os: String,
    #[serde(rename = "Arch")]
    pub arch: String,
    #[serde(
        rename = "KernelVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub kernel_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionPlatform {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
    /// `ApiVersion`, `MinAPIVersion`, `Os`, `Arch`, ... as `docker version` prints them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub details: std::collections::BTreeMap<String, String>,
}
