//! Leadership: what only the Raft leader does, and how others are told where it is.
//!
//! Agents' sessions, certificate issuance and every write are served by the leader. A
//! manager that is not the leader answers such calls with `unavailable`, naming the leader
//! in the `shoal-leader` metadata entry so the caller can go there directly.

use shoal_store::{Store, StoreError};
use tonic::Status;

/// Metadata key carrying the leader's control address.
pub const LEADER_METADATA: &str = "shoal-leader";

/// `Ok` on the leader; otherwise `unavailable` naming the leader.
pub fn require_leader(store: &Store) -> Result<(), Status> {
    match store.replica() {
        Some(r) if !r.is_leader() => Err(store_status(StoreError::NotLeader {
            leader: r.status().leader.map(|p| p.addr),
        })),
        _ => Ok(()),
    }
}

/// A store failure as a gRPC status (leaderless and quorum failures are `unavailable`).
pub fn store_status(e: StoreError) -> Status {
    match &e {
        StoreError::NotLeader { leader } => {
            let mut s = Status::unavailable(e.to_string());
            if let Some(addr) = leader.as_deref().and_then(|l| l.parse().ok()) {
                s.metadata_mut().insert(LEADER_METADATA, addr);
            }
            s
        }
        StoreError::NoQuorum { .. } | StoreError::DiskFull { .. } | StoreError::Stalled => {
            Status::unavailable(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

/// The leader named by a status from [`require_leader`], if any.
pub fn leader_of(s: &Status) -> Option<String> {
    s.metadata()
        .get(LEADER_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
