//! The node-to-node protocol of shoal and its security.
//!
//! - [`proto`]: the gRPC services (CA, dispatcher), generated from `proto/shoal.proto`.
//! - [`pki`]: the cluster's root CA, node keys and certificates (ID, role and cluster in the
//!   subject), certificate identity parsing.
//! - [`token`]: Swarm-shaped join tokens, `SWMTKN-1-<CA digest>-<secret>`.
//! - [`tls`]: rustls configurations (aws-lc-rs only), and the first-contact connector that
//!   fetches the root CA and checks it against the token's digest.
//! - [`server`]: the control port's TLS accept loop, with its connection caps and timeouts
//!   ([`server::ControlLimits`]).
//! - [`session`]: the session payload a leader streams to each node, encoded in one place.
//!
//! Depends on `shoal-api` and `shoal-balance` for the types it carries; no business logic.

mod control_limits;
pub mod pki;
pub mod server;
pub mod session;
pub mod tls;
pub mod token;

#[allow(missing_debug_implementations, clippy::all)]
pub mod proto {
    tonic::include_proto!("shoal.v1");
}

/// Swarm's control port.
pub const DEFAULT_CONTROL_PORT: u16 = 2377;

/// The name every manager certificate carries and clients verify.
pub const MANAGER_SERVER_NAME: &str = "shoal-manager";
