//! The control plane: decides what should run where and serves the control API.
//!
//! Pure planners decide ([`orchestrator`], [`scheduler`]; [`alloc`] for published ports);
//! the [`reconciler`] applies their decisions to the store in one atomic write per pass;
//! [`control`] is the HTTP/JSON API.
//! The [`ca`] and [`dispatcher`] serve the node-to-node gRPC services: certificates for
//! joining nodes, and agent sessions (assignments, endpoint tables, heartbeats, status);
//! [`liveness`] marks nodes down after missed heartbeats.
//! Depends on `shoal-api`, `shoal-store`, `shoal-balance`, `shoal-rpc` and `shoal-wire` (the
//! API's bodies); never on the agent or the data plane, which it reaches only through the
//! store and the endpoint tables.

pub mod alloc;
pub mod announcement;
pub mod ca;
mod checks;
pub mod control;
pub mod dispatcher;
pub mod docker;
pub mod endpoints;
pub mod leader;
pub mod liveness;
pub mod log_broker;
pub mod managers;
pub mod orchestrator;
pub mod plan;
pub mod reconciler;
pub mod reports;
pub mod restart;
pub mod scheduler;
pub mod updater;

/// Milliseconds since the Unix epoch, the timestamp unit of every stored object.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
