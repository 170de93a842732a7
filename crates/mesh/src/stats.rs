//! Connection counters: lock-free on the hot path, read as a [`MeshStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the mesh's counters since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshStats {
    /// Client connections accepted on published ports.
    pub accepted: u64,
    /// Accepted connections closed because no endpoint was there or none could be reached.
    pub no_endpoint: u64,
    /// Connect attempts to an endpoint that failed or timed out, and UDP flows an endpoint
    /// refused (ICMP port unreachable).
    pub connect_failed: u64,
    /// UDP flows opened on published UDP ports (or VIP UDP ports).
    pub flows_opened: u64,
    /// UDP flows open now.
    pub flows_open: u64,
    /// UDP datagrams dropped: no endpoint, a port or the mesh at its cap, a full buffer.
    pub datagrams_dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    no_endpoint: AtomicU64,
    connect_failed: AtomicU64,
    flows_opened: AtomicU64,
    datagrams_dropped: AtomicU64,
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

    pub(crate) fn flow_opened(&self) {
        self.flows_opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn datagram_dropped(&self) {
        self.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, with `flows_open` as the caller counts them.
    pub(crate) fn snapshot(&self, flows_open: u64) -> MeshStats {
        MeshStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            no_endpoint: self.no_endpoint.load(Ordering::Relaxed),
            connect_failed: self.connect_failed.load(Ordering::Relaxed),
            flows_opened: self.flows_opened.load(Ordering::Relaxed),
            flows_open,
            datagrams_dropped: self.datagrams_dropped.load(Ordering::Relaxed),
        }
    }
}
