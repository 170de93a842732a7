//! The shoal daemon: one per machine. Composes the store, the control API, the manager
//! (reconciler), the agent and the data plane (routing mesh) into a running node.
//!
//! Before `shoal init` only the API runs; once the node belongs to a cluster every role
//! starts, and starts again on its own after a restart. This crate is the only one that
//! depends on all the others.

mod addr;
mod api;
mod budget;
mod config;
mod daemon;
mod data_plane;
mod describe;
mod dns;
mod docker;
mod forward;
mod health;
mod identity;
mod limits;
mod membership;
mod nat;
mod private;
pub mod raft_net;
mod remote;
mod renew;
mod roles;
mod runtime;
mod state_key;
mod unlock;
mod vip_iface;
mod vips;

pub use budget::MeshLimits;
pub use config::{DaemonConfig, DEFAULT_VIP_INTERFACE};
pub use daemon::run;
pub use shoal_agent::docker_host;
/// Where the routing mesh listens and its connection caps (part of [`DaemonConfig`]).
pub use shoal_mesh::MeshConfig;
