use crate::client::DEFAULT_SOCKET;
use shoal_api::duration;
use shoal_node::{DaemonConfig, MeshConfig, MeshLimits};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Where the node keeps its state and task logs
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// Unix socket for the control API
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Address the routing mesh listens on for published ports
    #[arg(long, default_value = "0.0.0.0")]
    mesh_bind: IpAddr,
    /// Most client connections the routing mesh holds open at once, over all published
    /// ports; more wait in the listen queue [default: as many as the file descriptor limit
    /// allows, 4 descriptors each, after 1,280 kept for the control plane]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    mesh_max_connections: Option<u32>,
    /// Most client connections on any one published port (never more than half the
    /// mesh's cap) [default: 16384]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    mesh_max_connections_per_port: Option<u32>,
    /// Longest wait for the data plane to drop a task before stopping it anyway
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Plain-HTTP health endpoint for load balancers in front of the nodes (GET /healthz);
    /// "off" to disable
    #[arg(long, default_value = "0.0.0.0:2378")]
    health_addr: String,
    /// Disk space kept free where the data dir is: cluster-state writes are refused below it
    /// (bytes, or with a K, M or G suffix, powers of 1024)
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    min_free_disk: u64,
    /// The Docker Engine that runs container tasks [default: $DOCKER_HOST, else
    /// unix:///var/run/docker.sock]; without one the node runs process tasks only
    #[arg(long)]
    docker_host: Option<String>,
    /// The dummy interface the node puts service VIPs and its DNS resolver address on
    /// (created if missing); "off": no VIPs and no DNS on this node
    #[arg(long, default_value = shoal_node::DEFAULT_VIP_INTERFACE)]
    vip_interface: String,
    /// Resolver the node's DNS server forwards names outside the cluster to, IP[:PORT]
    /// (repeat for several) [default: the nameservers of /etc/resolv.conf]
    #[arg(long, value_parser = parse_upstream)]
    dns_upstream: Vec<std::net::SocketAddr>,
    /// Threads the data plane (routing mesh, VIPs, DNS) runs on, apart from the control
    /// plane: one keeps each connection on one core; more serve more than one core's worth
    /// of traffic
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u16).range(1..=256))]
    data_plane_threads: u16,
    /// Log filter (e.g. info, debug, shoal_mesh=debug)
    #[arg(long, env = "SHOAL_LOG", default_value = "info")]
    log_level: String,
}

/// A Linux interface name: 1 to 15 characters, no '/', ':' or whitespace.
fn vip_interface_name(name: &str) -> anyhow::Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        anyhow::bail!(
            "invalid --vip-interface {name:?}: use 1 to 15 letters, digits, '-', '_' or '.', or off"
        );
    }
    Ok(name.to_string())
}

fn parse_upstream(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    text.parse::<IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| format!("expected IP or IP:PORT, got {text:?}"))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse("duration", text).map_err(|e| e.to_string())
}

pub use shoal_api::resources::parse_size;

pub async fn run(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", args.log_level))?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let health_addr = match args.health_addr.as_str() {
        "off" => None,
        a => Some(a.parse().map_err(|_| {
            anyhow::anyhow!("invalid --health-addr {a:?}: expected IP:PORT or off")
        })?),
    };
    shoal_node::run(DaemonConfig {
        data_dir: args.data_dir,
        socket: args.socket,
        mesh_bind: MeshConfig::new(args.mesh_bind),
        mesh_limits: MeshLimits {
            max_connections: args.mesh_max_connections.map(|n| n as usize),
            max_connections_per_port: args.mesh_max_connections_per_port.map(|n| n as usize),
        },
        drain_timeout: args.drain_timeout,
        health_addr,
        min_free_disk: args.min_free_disk,
        control_limits: shoal_rpc::server::ControlLimits::default(),
        docker_host: shoal_node::docker_host(args.docker_host.as_deref()),
        dns_upstreams: (!args.dns_upstream.is_empty()).then_some(args.dns_upstream),
        data_plane_threads: usize::from(args.data_plane_threads),
        vip_interface: match args.vip_interface.as_str() {
            "off" => None,
            name => Some(vip_interface_name(name)?),
        },
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
