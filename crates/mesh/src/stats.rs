//! Connection counters: lock-free on the hot path, read as a [`MeshStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the mesh's counters since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshStats {
    /// Client connections accepted on published ports.
    pub accepted: u64,
    /// Accepted connections closed because no endpoint was there or none could be reached.
    pub no_endpoint: u64,
    /// Connect attempts to an endpoint that failed or timed out.
    pub connect_failed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    no_endpoint: AtomicU64,
    connect_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn no_endpoint(&self) {
        self.no_endpoint.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connect_failed(&self) {
        self.connect_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MeshStats {
        MeshStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            no_endpoint: self.no_endpoint.load(Ordering::Relaxed),
            connect_failed: self.connect_failed.load(Ordering::Relaxed),
        }
    }
}
