use crate::commands::daemon::parse_duration;
use shoal_workloads::{port_from_env, EchoOptions, WhoamiOptions};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {
    /// Port to listen on (default: $PORT, else 80)
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Name to answer with (default: $SHOAL_TASK_NAME)
    #[arg(long)]
    name: Option<String>,
    /// Start with /health failing
    #[arg(long)]
    unhealthy: bool,
    /// Delay before every reply (e.g. 100ms)
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    slow: Duration,
}

#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    /// Port to listen on, TCP and UDP (default: $PORT, else 7)
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
}

pub async fn whoami(a: WhoamiArgs) -> anyhow::Result<ExitCode> {
    shoal_workloads::run_whoami(WhoamiOptions {
        port: a.port.unwrap_or_else(|| port_from_env(80)),
        bind: a.bind,
        name: a.name,
        unhealthy: a.unhealthy,
        slow: a.slow,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn echo(a: EchoArgs) -> anyhow::Result<ExitCode> {
    shoal_workloads::run_echo(EchoOptions {
        port: a.port.unwrap_or_else(|| port_from_env(7)),
        bind: a.bind,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
