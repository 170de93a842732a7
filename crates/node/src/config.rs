use crate::budget::MeshLimits;
use shoal_mesh::MeshConfig;
use shoal_rpc::server::ControlLimits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Daemon settings, resolved from flags.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Holds the state store, the node identity, certificates and task logs.
    pub data_dir: PathBuf,
    /// Unix socket the local API listens on.
    pub socket: PathBuf,
    /// Address the routing mesh listens on for published ports, and its connection caps:
    /// `run` sets the caps from the file-descriptor budget and `mesh_limits`.
    pub mesh_bind: MeshConfig,
    /// The operator's caps on the mesh's connections.
    pub mesh_limits: MeshLimits,
    /// Longest wait for the data plane to drop a task before it is stopped anyway.
    pub drain_timeout: Duration,
    /// Plain-HTTP health endpoint for external load balancers (`GET /healthz`).
    pub health_addr: Option<SocketAddr>,
    /// Bytes kept free on the data dir's disk: cluster-state writes are refused below it.
    pub min_free_disk: u64,
    /// Caps and timeouts of a manager's control port: `run` lowers its connection cap to
    /// what the file-descriptor budget keeps for it.
    pub control_limits: ControlLimits,
    /// The Docker Engine that runs container tasks (`unix:///var/run/docker.sock`); a node
    /// whose engine does not answer runs process tasks only.
    pub docker_host: String,
    /// The dummy interface that holds the service VIPs and the DNS resolver address;
    /// `None`: this node serves neither (VIPs and DNS are off).
    pub vip_interface: Option<String>,
    /// Where the node's DNS server sends names outside the cluster; `None`: the resolvers
    /// in /etc/resolv.conf.
    pub dns_upstreams: Option<Vec<std::net::SocketAddr>>,
    /// Threads the data plane (mesh, VIPs, DNS) runs on, apart from the control plane.
    pub data_plane_threads: usize,
}

/// The VIP interface a daemon uses unless told otherwise.
pub const DEFAULT_VIP_INTERFACE: &str = "shoal0";

impl DaemonConfig {
    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("state.redb")
    }
    /// The Raft log and snapshots (managers).
    pub fn raft_dir(&self) -> PathBuf {
        self.data_dir.join("raft")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}
