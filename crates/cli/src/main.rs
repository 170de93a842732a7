//! `shoal`: the daemon, the cluster and service commands, and the built-in workloads, in
//! one binary. Commands talk to the daemon's HTTP/JSON API (see docs/api.md).

mod client;
mod commands;
mod progress;
mod table;

use clap::{Parser, Subcommand};
use client::{ApiError, Client, DEFAULT_SOCKET};
use commands::{node::NodeCmd, service::ServiceCmd};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A cluster of machines running services, load-balanced",
    disable_help_subcommand = true
)]
struct Cli {
    /// Daemon to talk to: unix://PATH (default: the local daemon's socket)
    #[arg(long, short = 'H', global = true, env = "SHOAL_HOST", default_value = DEFAULT_SOCKET)]
    host: String,
    /// For tcp:// hosts: directory with ca.pem, cert.pem and key.pem (see `shoal client-cert`)
    #[arg(long, global = true, env = "SHOAL_CERT_PATH")]
    tls_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node in the foreground
    Daemon(commands::daemon::DaemonArgs),
    /// Make the running daemon the first manager (and worker) of a new cluster
    Init(commands::cluster::InitArgs),
    /// Join a cluster as a worker: shoal join --token SWMTKN-1-... MANAGER[:2377]
    Join(commands::cluster::JoinArgs),
    /// Print (or rotate) the token to join as a worker or manager
    JoinToken(commands::cluster::JoinTokenArgs),
    /// Leave the cluster: stop this node's tasks and forget the cluster
    Leave(commands::cluster::LeaveArgs),
    /// Write a client certificate for remote use (--host tcp://MANAGER:2377 --tls-dir DIR)
    ClientCert(commands::cluster::ClientCertArgs),
    /// Unlock a manager of an autolocked cluster after a restart (key read from stdin)
    Unlock,
    /// Change cluster-wide settings (--autolock=true|false)
    Update(commands::cluster::UpdateArgs),
    /// Print (or rotate) the cluster's unlock key (autolock)
    UnlockKey(commands::cluster::UnlockKeyArgs),
    /// Show what the daemon knows of itself and its cluster
    Info {
        #[arg(long, value_enum, default_value = "table")]
        format: commands::Format,
    },
    /// Manage services
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Manage nodes
    #[command(subcommand)]
    Node(NodeCmd),
    /// Manage secrets: payloads given to tasks as files, never shown back
    #[command(subcommand)]
    Secret(commands::objects::SecretCmd),
    /// Manage configs: payloads given to tasks as files
    #[command(subcommand)]
    Config(commands::objects::ConfigCmd),
    /// Manage cluster networks: names services reach each other by
    #[command(subcommand)]
    Network(commands::objects::NetworkCmd),
    /// Deploy and manage stacks of services from a compose file
    #[command(subcommand)]
    Stack(commands::stack::StackCmd),
    /// Built-in HTTP workload: replies with who answered (for demos and tests)
    Whoami(commands::workload::WhoamiArgs),
    /// Built-in TCP and UDP echo workload
    Echo(commands::workload::EchoArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's first line names the problem; usage stays behind --help.
            let rendered = e.render().to_string();
            let head: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", head.join(" "));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let mut line = chain.join(": ");
            if e.downcast_ref::<ApiError>().is_some() {
                line = chain.first().cloned().unwrap_or_default();
            }
            eprintln!("error: {}", table::escape(&line));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Daemon(args) => commands::daemon::run(args).await,
        Command::Whoami(args) => commands::workload::whoami(args).await,
        Command::Echo(args) => commands::workload::echo(args).await,
        command => {
            let client = Client::new(&cli.host, cli.tls_dir.as_deref())?;
            match command {
                Command::Init(args) => commands::cluster::init(&client, args).await,
                Command::Join(args) => commands::cluster::join(&client, args).await,
                Command::JoinToken(args) => commands::cluster::join_token(&client, args).await,
                Command::Leave(args) => commands::cluster::leave(&client, args).await,
                Command::ClientCert(args) => commands::cluster::client_cert(&client, args).await,
                Command::Unlock => commands::cluster::unlock(&client).await,
                Command::Update(args) => commands::cluster::update(&client, args).await,
                Command::UnlockKey(args) => commands::cluster::unlock_key(&client, args).await,
                Command::Info { format } => commands::cluster::info(&client, format).await,
                Command::Service(cmd) => commands::service::run(&client, cmd).await,
                Command::Node(cmd) => commands::node::run(&client, cmd).await,
                Command::Secret(cmd) => commands::objects::secret(&client, cmd).await,
                Command::Config(cmd) => commands::objects::config(&client, cmd).await,
                Command::Network(cmd) => commands::objects::network(&client, cmd).await,
                Command::Stack(cmd) => commands::stack::run(&client, cmd).await,
                Command::Daemon(_) | Command::Whoami(_) | Command::Echo(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
