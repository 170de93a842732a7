//! Domain model of shoal: nodes, service specs, tasks and their state machine.
//!
//! Everything here is pure data and pure logic: parsing, validation and the guarded
//! task-state transition. This crate must not do I/O and must not depend on any other
//! shoal crate; every other crate depends on it.

pub mod cluster;
pub mod constraint;
pub mod description;
pub mod duration;
pub mod endpoint_spec;
pub mod error;
pub mod id;
pub mod limits;
pub mod mount;
pub mod network;
pub mod node;
pub mod port;
pub mod resources;
pub mod runtime;
pub mod secret;
pub mod service;
pub mod state;
pub mod strict;
pub mod task;
pub mod task_log;
pub mod template;
pub mod ulimit;
pub mod update;
pub mod vip;

pub use cluster::{ClientRecord, Cluster};
pub use constraint::Constraint;
pub use description::{EngineInfo, NodeDescription};
pub use endpoint_spec::{EndpointMode, LbMode, Policy};
pub use error::SpecError;
pub use mount::{Mount, MountType};
pub use network::{Network, NetworkAttachment};
pub use node::{Availability, Node, NodeRole, NodeState};
pub use port::{PortConfig, Protocol, ProxyProtocol, PublishMode};
pub use resources::{ResourceLimits, ResourceReservations, Resources};
pub use runtime::{ContainerSpec, ProcessSpec, Runtime, RuntimeKind, RuntimeStatus};
pub use secret::{Blob, BlobKind, Config, ConfigKind, FileRef, Secret, SecretKind, TaskFiles};
pub use service::{
    HealthCheck, HealthProbe, RestartCondition, RestartPolicy, Service, ServiceMode, ServiceSpec,
    TaskTemplate,
};
pub use state::ClusterState;
pub use task::{Health, Task, TaskEndpoint, TaskReport, TaskState, TaskStatus, TransitionError};
pub use ulimit::Ulimit;
pub use update::{FailureAction, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus};
pub use vip::VipPool;

/// Dead tasks kept per slot (Swarm's `--task-history-limit` default).
pub const TASK_HISTORY_LIMIT: usize = 5;
