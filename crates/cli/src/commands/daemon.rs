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
    /// allows, 6 descriptors each, after 1,280 kept for the control plane]
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
    /// Log filter (e.g. info, debug, shoal_mesh=debug)
    #[arg(long, env = "SHOAL_LOG", default_value = "info")]
    log_level: String,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse("duration", text).map_err(|e| e.to_string())
}

/// A size as Docker reads one: `64M` → 67108864, `1.5g`, `512MiB`, `4096`: bytes, or
/// k, m, g, t (powers of 1024), upper or lower case, optionally followed by `b` or `ib`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid size {text:?}: expected bytes, or a number with b, k, m, g or t (512m, 1.5g)"
        )
    };
    let t = text.trim();
    let end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(end);
    let unit = unit.to_ascii_lowercase();
    let (letter, rest) = unit.split_at(unit.len().min(1));
    let shift = match letter {
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => 0,
    };
    let suffix = if shift == 0 { unit.as_str() } else { rest };
    let known = matches!(suffix, "" | "b") || (shift > 0 && matches!(suffix, "i" | "ib"));
    if !known {
        return Err(bad());
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && frac.is_empty()) || frac.len() > 9 {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(frac.len() as u32);
    // Like Docker, a fraction of a byte is dropped.
    let bytes = (whole << shift) + ((frac_value << shift) / scale);
    u64::try_from(bytes).map_err(|_| bad())
}

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
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2kb"), Ok(2048));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("7b"), Ok(7));
        assert_eq!(parse_size("1Ki"), Ok(1024));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        for bad in [
            "",
            "M",
            "12X",
            "12XB",
            "-1",
            "1.",
            ".5g",
            "1.2.3m",
            "12ib",
            "12mbb",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
