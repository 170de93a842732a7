//! The daemon's file descriptors at start: the soft `RLIMIT_NOFILE` raised to the hard
//! limit, and the connection caps of the routing mesh resolved from what that allows.
//!
//! A soft limit of 1,024 (the usual default) lets a few hundred idle connections starve
//! the API, task start-up and every published port; the hard limit is what the operator
//! allows, so the daemon takes it.

use crate::budget::{fd_budget, FdBudget, CONTROL_PLANE_FDS};
use crate::DaemonConfig;
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use shoal_rpc::server::ControlLimits;

/// The highest soft limit the daemon sets, even if the hard limit is higher or unlimited
/// (also Linux's default `fs.nr_open`).
pub const MAX_FD_LIMIT: u64 = 1_048_576;

/// Raises the soft limit, resolves the mesh's caps into `cfg` and logs both.
pub fn apply(mut cfg: DaemonConfig) -> DaemonConfig {
    let limit = raise_fd_limit();
    let control_port = control_port_connections(&cfg.control_limits);
    let budget = fd_budget(limit, control_port, cfg.mesh_limits);
    log(&budget, &cfg, control_port);
    cfg.mesh_bind.caps = budget.mesh;
    // On a low limit the control plane's share is short: the control port gets what is
    // left of it after the rest of the control plane.
    let fits = usize::try_from(budget.reserved.saturating_sub(CONTROL_PLANE_FDS))
        .unwrap_or(usize::MAX)
        .max(MIN_CONTROL_PORT_CONNECTIONS);
    cfg.control_limits.max_connections = cfg.control_limits.max_connections.min(fits);
    cfg
}

/// The control port's cap on the lowest limits: enough for a few nodes and operators.
const MIN_CONTROL_PORT_CONNECTIONS: usize = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most [`MAX_FD_LIMIT`]); returns
/// the soft limit in effect afterwards.
pub fn raise_fd_limit() -> u64 {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file descriptor limit; assuming 1024");
            return 1024;
        }
    };
    let wanted = if hard == RLIM_INFINITY {
        MAX_FD_LIMIT
    } else {
        hard.min(MAX_FD_LIMIT)
    };
    // Already as high (an unlimited soft limit is RLIM_INFINITY, the highest value).
    if soft >= wanted {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
        Ok(()) => {
            tracing::info!(from = soft, to = wanted, "raised the file descriptor limit");
            wanted
        }
        Err(e) => {
            tracing::warn!(error = %e, soft, wanted, "cannot raise the file descriptor limit");
            soft
        }
    }
}

fn control_port_connections(limits: &ControlLimits) -> u64 {
    u64::try_from(limits.max_connections).unwrap_or(u64::MAX)
}

fn log(budget: &FdBudget, cfg: &DaemonConfig, control_port: u64) {
    tracing::info!(
        limit = budget.limit,
        reserved = budget.reserved,
        mesh_connections = budget.mesh.total,
        mesh_connections_per_port = budget.mesh.per_port,
        "file descriptor budget"
    );
    if budget.reserve_short(control_port) {
        tracing::warn!(
            limit = budget.limit,
            wanted = 2 * (CONTROL_PLANE_FDS + control_port),
            "the file descriptor limit is low: the control plane and the mesh get half each; raise the hard limit (e.g. LimitNOFILE= in the service unit)"
        );
    }
    if let Some(wanted) = cfg.mesh_limits.max_connections {
        if wanted > budget.mesh_fits {
            tracing::warn!(
                wanted,
                cap = budget.mesh_fits,
                limit = budget.limit,
                "--mesh-max-connections is more than the file descriptor limit allows; using the most it allows"
            );
        }
    }
    if let Some(wanted) = cfg.mesh_limits.max_connections_per_port {
        if wanted > budget.mesh.per_port {
            tracing::warn!(
                wanted,
                cap = budget.mesh.per_port,
                "--mesh-max-connections-per-port is more than half the mesh's cap; using half"
            );
        }
    }
}
