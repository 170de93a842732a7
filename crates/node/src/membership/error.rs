//! Why a membership change was refused or failed. The local API maps these to its
//! responses in one place (`api.rs`).

use crate::addr::AddrError;
use shoal_store::StoreError;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("this node is already part of a cluster ({cluster_id}) as a {role}: nothing to do")]
    AlreadyMember {
        cluster_id: String,
        role: &'static str,
    },
    #[error(
        "this node is already part of a cluster ({cluster_id}) as a {role}: run `shoal leave` first"
    )]
    LeaveFirst {
        cluster_id: String,
        role: &'static str,
    },
    #[error("this node is not part of a cluster")]
    NotMember,
    #[error("--force-new-cluster needs a node that was a manager of a cluster")]
    NotAManager,
    #[error("this node is the cluster's only manager: leaving destroys the cluster and its services (use --force)")]
    OnlyManager,
    #[error("this node is a manager: demote it first (`shoal node demote` on a manager) so the {others} other manager(s) keep a quorum, or use --force")]
    ManagerWithPeers { others: usize },
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("invalid dispatcher heartbeat {0}ms: use 50ms to 1m")]
    Heartbeat(u64),
    #[error("invalid certificate expiry: at least 10s")]
    CertExpiry,
    /// A `--vip-pool` that does not parse (the parser's own line).
    #[error("{0}")]
    VipPool(String),
    #[error("invalid vip-pool \"{pool}\": overlaps {network} on {dev} of this node; choose another with --vip-pool")]
    VipPoolOverlaps {
        pool: String,
        network: String,
        dev: String,
    },
    /// A join token that does not parse (the parser's own line).
    #[error("{0}")]
    Token(String),
    #[error("cannot tell this node's address: use --advertise-addr")]
    NoAdvertiseAddr,
    #[error("invalid join token: the manager at {0} belongs to another cluster (CA digest does not match)")]
    ForeignCluster(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The manager refused the request (its own line).
    #[error("{0}")]
    Refused(String),
    /// The manager holds this node already (its own line).
    #[error("{0}")]
    Duplicate(String),
    #[error("cannot reach the manager at {manager}: {message}")]
    Unreachable {
        manager: SocketAddr,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else that went wrong on this node.
    #[error("{0}")]
    Internal(String),
}

impl MembershipError {
    /// A failure on this node, by its top-level message.
    pub fn internal(e: impl std::fmt::Display) -> MembershipError {
        MembershipError::Internal(e.to_string())
    }
}

/// The control port a manager listens on, or why it cannot.
pub(crate) async fn bind_listen(
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, MembershipError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MembershipError::Listen { addr, source })
}
