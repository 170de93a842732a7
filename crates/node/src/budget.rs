//! The file-descriptor budget: from the limit in effect, what the control plane keeps and
//! how many connections the routing mesh may hold. Pure arithmetic, decided once at start.

use shoal_mesh::{ConnectionCaps, FDS_PER_CONNECTION};

/// Descriptors kept for the control plane besides the control port's connections: the
/// local API socket and its clients, `/healthz`, task logs and task start-up, the Raft log
/// and redb files and snapshots, outgoing gRPC channels, listening sockets (and per
/// published port the one connection it may hold while the mesh is at its cap), the
/// runtime's own (epoll, signals).
pub const CONTROL_PLANE_FDS: u64 = 256;

/// Default cap on the connections of one published port (`--mesh-max-connections-per-port`).
pub const DEFAULT_PORT_CONNECTIONS: usize = 16_384;

/// What the operator asked for (daemon flags); none means the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshLimits {
    /// `--mesh-max-connections`; by default as many as the budget allows.
    pub max_connections: Option<usize>,
    /// `--mesh-max-connections-per-port`; [`DEFAULT_PORT_CONNECTIONS`] by default.
    pub max_connections_per_port: Option<usize>,
}

/// How the descriptors of the process are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE` in effect.
    pub limit: u64,
    /// Kept for the control plane, the control port's connections included.
    pub reserved: u64,
    /// The most connections the mesh's share of descriptors can hold.
    pub mesh_fits: usize,
    /// The caps the mesh runs with.
    pub mesh: ConnectionCaps,
}

impl FdBudget {
    /// The control plane's share is smaller than it asked for (the limit is low).
    pub fn reserve_short(&self, control_port_connections: u64) -> bool {
        self.reserved < CONTROL_PLANE_FDS + control_port_connections
    }
}

/// Splits `limit` descriptors: the control plane keeps [`CONTROL_PLANE_FDS`] plus one per
/// control-port connection (but never more than half the limit, so the mesh always gets
/// a share), and the rest goes to the mesh at [`FDS_PER_CONNECTION`] per connection. The
/// mesh-wide cap is what fits, or less if the operator asked for less; a published port
/// gets the operator's per-port cap, but never more than half the mesh-wide cap, so one
/// flooded port cannot take the whole mesh. Every cap is at least one.
pub fn fd_budget(limit: u64, control_port_connections: u64, wanted: MeshLimits) -> FdBudget {
    let reserved = CONTROL_PLANE_FDS
        .saturating_add(control_port_connections)
        .min(limit / 2);
    let mesh_fds = limit - reserved;
    let mesh_fits = usize::try_from(mesh_fds / FDS_PER_CONNECTION)
        .unwrap_or(usize::MAX)
        .max(1);
    let total = wanted
        .max_connections
        .map_or(mesh_fits, |w| w.min(mesh_fits))
        .max(1);
    let per_port = wanted
        .max_connections_per_port
        .unwrap_or(DEFAULT_PORT_CONNECTIONS)
        .min(total / 2)
        .max(1);
    FdBudget {
        limit,
        reserved,
        mesh_fits,
        mesh: ConnectionCaps { total, per_port },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROL_PORT: u64 = 1024;

    fn caps(limit: u64, wanted: MeshLimits) -> (u64, usize, usize) {
        let b = fd_budget(limit, CONTROL_PORT, wanted);
        (b.reserved, b.mesh.total, b.mesh.per_port)
    }

    #[test]
    fn budget_gives_the_rest_to_the_mesh_at_four_per_connection() {
        let d = MeshLimits::default();
        // The usual raised limit: 1,280 kept, (1,048,576 - 1,280) / 4 connections.
        assert_eq!(caps(1_048_576, d), (1280, 261_824, 16_384));
        // A hard limit of 65,536.
        assert_eq!(caps(65_536, d), (1280, 16_064, 8_032));
        assert_eq!(caps(4096, d), (1280, 704, 352));
    }

    #[test]
    fn low_limit_is_split_in_half() {
        let b = fd_budget(1024, CONTROL_PORT, MeshLimits::default());
        assert_eq!((b.reserved, b.mesh.total, b.mesh.per_port), (512, 128, 64));
        assert!(b.reserve_short(CONTROL_PORT));
        assert!(!fd_budget(4096, CONTROL_PORT, MeshLimits::default()).reserve_short(CONTROL_PORT));
    }

    #[test]
    fn tiny_limit_still_leaves_one_connection() {
        for limit in [0, 1, 6, 11] {
            let b = fd_budget(limit, CONTROL_PORT, MeshLimits::default());
            assert_eq!((b.mesh.total, b.mesh.per_port), (1, 1), "limit {limit}");
        }
    }

    #[test]
    fn operator_caps_lower_the_budget_but_never_raise_it() {
        let lower = MeshLimits {
            max_connections: Some(1000),
            max_connections_per_port: Some(100),
        };
        assert_eq!(caps(1_048_576, lower), (1280, 1000, 100));
        let higher = MeshLimits {
            max_connections: Some(1_000_000),
            max_connections_per_port: Some(1_000_000),
        };
        let b = fd_budget(4096, CONTROL_PORT, higher);
        assert_eq!(
            (b.mesh_fits, b.mesh.total, b.mesh.per_port),
            (704, 704, 352)
        );
    }

    #[test]
    fn no_port_gets_more_than_half_the_mesh() {
        for total in [1, 2, 3, 10, 85, 10_000] {
            let b = fd_budget(
                u64::MAX,
                CONTROL_PORT,
                MeshLimits {
                    max_connections: Some(total),
                    max_connections_per_port: Some(usize::MAX),
                },
            );
            assert_eq!(b.mesh.total, total);
            assert_eq!(b.mesh.per_port, (total / 2).max(1), "total {total}");
        }
    }
}
