use crate::client::{encode, Client};
use crate::commands::daemon::parse_duration;
use anyhow::Context;
use shoal_wire::v1::clients::{IssueClient, IssuedClient};
use shoal_wire::v1::cluster::{
    ClusterUpdate, ClusterUpdateResponse, JoinTokenResponse, UnlockKeyResponse,
};
use shoal_wire::v1::daemon::{InfoResponse, UnlockRequest};
use shoal_wire::v1::membership::{
    InitRequest, InitResponse, JoinRequest, JoinResponse, LeaveRequest,
};
use shoal_wire::v1::Message;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Address other nodes reach this node at (default: the listen IP, else 127.0.0.1)
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Control port: gRPC for nodes, mTLS JSON API for remote CLIs
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// How often agents report in; a node is down after 3 missed beats
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    dispatcher_heartbeat: Duration,
    /// Lifetime of node certificates (renewed at 50-80% of it)
    #[arg(long, default_value = "2160h", value_parser = parse_duration)]
    cert_expiry: Duration,
    /// Disaster recovery on a surviving manager: restart the cluster from this node's
    /// state as its only manager (services and tasks are kept)
    #[arg(long)]
    force_new_cluster: bool,
    /// Managers start locked after a restart until `shoal unlock` gives the unlock key
    /// printed here (their state on disk is sealed with a key wrapped by it)
    #[arg(long)]
    autolock: bool,
    /// The network service VIPs come from; its first address is every node's DNS server
    /// (at least a /24, not overlapping the nodes' networks)
    #[arg(long, default_value = shoal_api::vip::DEFAULT_VIP_POOL)]
    vip_pool: String,
}

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// Token from `shoal join-token worker` on a manager
    #[arg(long)]
    token: String,
    /// Address other nodes reach this node at (default: the local address towards the manager)
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Control port if the token makes this node a manager
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// A manager's address, HOST[:PORT] (port 2377 by default)
    remote: String,
}

#[derive(Debug, clap::Args)]
pub struct JoinTokenArgs {
    /// worker or manager
    #[arg(value_parser = ["worker", "manager"])]
    role: String,
    /// Make a new token; the old one stops working
    #[arg(long)]
    rotate: bool,
    /// Only print the token
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    /// Leave even if this is the only manager (destroys the cluster)
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClientCertArgs {
    #[command(subcommand)]
    command: Option<ClientCertCommand>,
    /// Directory to write ca.pem, cert.pem and key.pem into (a new certificate)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Name to list the new certificate under
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCertCommand {
    /// List the client certificates the cluster issued
    Ls,
    /// Revoke client certificates (by ID, unique ID prefix or name): refused at once
    Revoke {
        #[arg(required = true)]
        clients: Vec<String>,
    },
}

pub async fn init(client: &Client, args: InitArgs) -> anyhow::Result<ExitCode> {
    let resp: InitResponse = client
        .post(
            "/v1/cluster/init",
            &InitRequest {
                advertise_addr: args.advertise_addr,
                listen_addr: Some(args.listen_addr),
                heartbeat_ms: Some(args.dispatcher_heartbeat.as_millis() as u64),
                cert_expiry_secs: Some(args.cert_expiry.as_secs()),
                force_new_cluster: args.force_new_cluster,
                autolock: args.autolock,
                vip_pool: Some(args.vip_pool),
            },
        )
        .await?;
    if args.force_new_cluster {
        println!(
            "Cluster {} restarted from this node's state: current node ({}) is its only manager.",
            resp.cluster_id, resp.node_id
        );
        println!("Add managers again with `shoal join-token manager`; remove the old ones with `shoal node rm`.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Cluster initialized: current node ({}) is now a manager.",
        resp.node_id
    );
    println!();
    println!("To add a worker to this cluster, run the following command:");
    println!();
    println!(
        "    shoal join --token {} {}",
        resp.worker_token, resp.manager_addr
    );
    println!();
    println!("To create a service: shoal service create --name web --replicas 3 --publish 8080:80 -- shoal whoami");
    if let Some(key) = resp.unlock_key {
        print_unlock_key(&key);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_unlock_key(key: &str) {
    println!();
    println!("To unlock a manager after it restarts, run `shoal unlock` and give it this key:");
    println!();
    println!("    {key}");
    println!();
    println!(
        "Keep it in a password manager: without it, a restarted manager cannot read its state."
    );
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Turn autolock on (prints a new unlock key) or off
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    autolock: Option<bool>,
}

/// `shoal update`: cluster-wide settings (`docker swarm update`).
pub async fn update(client: &Client, args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let r: ClusterUpdateResponse = client
        .post(
            "/v1/cluster/update",
            &ClusterUpdate {
                autolock: args.autolock,
            },
        )
        .await?;
    println!("Cluster updated.");
    if let Some(key) = r.unlock_key {
        print_unlock_key(&key);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct UnlockKeyArgs {
    /// Make a new unlock key; managers rewrap their data key with it at once
    #[arg(long)]
    rotate: bool,
    /// Only print the key
    #[arg(short, long)]
    quiet: bool,
}

/// `shoal unlock`: the key is read from standard input (never from the command line, where
/// other users could see it).
pub async fn unlock(client: &Client) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprint!("Enter unlock key: ");
    }
    let mut key = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut key)
        .context("cannot read the unlock key from standard input")?;
    let key = key.trim();
    if key.is_empty() {
        anyhow::bail!("no unlock key given: type it, or pipe it to `shoal unlock`");
    }
    let _: Message = client
        .post("/v1/unlock", &UnlockRequest { key: key.into() })
        .await?;
    println!("Node unlocked.");
    Ok(ExitCode::SUCCESS)
}

pub async fn unlock_key(client: &Client, args: UnlockKeyArgs) -> anyhow::Result<ExitCode> {
    let k: UnlockKeyResponse = client
        .get(&format!("/v1/cluster/unlock-key?rotate={}", args.rotate))
        .await?;
    if args.quiet {
        println!("{}", k.key);
        return Ok(ExitCode::SUCCESS);
    }
    if args.rotate {
        println!("Successfully rotated the unlock key.");
    }
    print_unlock_key(&k.key);
    Ok(ExitCode::SUCCESS)
}

pub async fn join(client: &Client, args: JoinArgs) -> anyhow::Result<ExitCode> {
    let resp: JoinResponse = client
        .post(
            "/v1/cluster/join",
            &JoinRequest {
                token: args.token,
                remote_addr: args.remote,
                advertise_addr: args.advertise_addr,
                listen_addr: Some(args.listen_addr),
            },
        )
        .await?;
    println!("This node joined a cluster as a {}.", resp.role);
    Ok(ExitCode::SUCCESS)
}

pub async fn join_token(client: &Client, args: JoinTokenArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/v1/cluster/join-token/{}?rotate={}",
        encode(&args.role),
        args.rotate
    );
    let t: JoinTokenResponse = client.get(&path).await?;
    if args.quiet {
        println!("{}", t.token);
        return Ok(ExitCode::SUCCESS);
    }
    if args.rotate {
        println!("Successfully rotated {} join token.", t.role);
        println!();
    }
    println!(
        "To add a {} to this cluster, run the following command:",
        t.role
    );
    println!();
    println!(
        "    shoal join --token {} {}",
        t.token,
        t.managers.first().cloned().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn leave(client: &Client, args: LeaveArgs) -> anyhow::Result<ExitCode> {
    let _: Message = client
        .post("/v1/cluster/leave", &LeaveRequest { force: args.force })
        .await?;
    println!("Node left the cluster.");
    Ok(ExitCode::SUCCESS)
}

pub async fn client_cert(client: &Client, args: ClientCertArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ClientCertCommand::Ls) => return list_clients(client).await,
        Some(ClientCertCommand::Revoke { clients }) => {
            return Ok(client
                .delete_each(&clients, |c| format!("/v1/clients/{c}"))
                .await)
        }
        None => {}
    }
    let Some(out) = args.out else {
        anyhow::bail!(
            "--out DIR is required: the directory to write ca.pem, cert.pem and key.pem into"
        );
    };
    let c: IssuedClient = client
        .post("/v1/clients", &IssueClient { name: args.name })
        .await?;
    write_private_dir(&out)?;
    for (name, pem) in [
        ("ca.pem", &c.ca_pem),
        ("cert.pem", &c.cert_pem),
        ("key.pem", &c.key_pem),
    ] {
        write_private(&out.join(name), pem)?;
    }
    println!(
        "Wrote ca.pem, cert.pem and key.pem to {} (client {}, revoke with `shoal client-cert revoke {}`)",
        out.display(),
        c.client.id,
        c.client.id
    );
    println!(
        "Use them with: shoal --host tcp://MANAGER:2377 --tls-dir {} service ls",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Create `dir` readable by its owner only.
fn write_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Write `path` readable by its owner only (a private key must never be readable by others,
/// not even for a moment).
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn list_clients(client: &Client) -> anyhow::Result<ExitCode> {
    let list: Vec<shoal_api::ClientRecord> = client.get("/v1/clients").await?;
    let now = crate::table::now_millis();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let status = match c.revoked_at {
                Some(_) => "Revoked",
                None if c.expires_at <= now => "Expired",
                None => "Valid",
            };
            vec![
                c.id.clone(),
                c.name.clone(),
                status.to_string(),
                crate::table::ago(c.created_at, now),
            ]
        })
        .collect();
    crate::table::print(&["ID", "NAME", "STATUS", "CREATED"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub async fn info(client: &Client, format: super::Format) -> anyhow::Result<ExitCode> {
    let i: InfoResponse = client.get("/v1/info").await?;
    if format == super::Format::Json {
        super::print_json(&i)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Node ID:    {}", i.node_id);
    println!("Hostname:   {}", crate::table::escape(&i.hostname));
    println!("Version:    {}", i.version);
    if i.locked {
        println!("Locked:     yes (run `shoal unlock` with the cluster's unlock key)");
    }
    match (i.cluster_id, i.role) {
        (Some(c), Some(role)) => {
            println!("Cluster:    {c}");
            println!(" Role:      {role}");
            println!(" Managers:  {}", i.managers.join(", "));
            if role == "manager" {
                println!(" Nodes:     {}", i.nodes);
                println!(" Services:  {}", i.services);
                println!(" Tasks:     {}", i.tasks);
            }
        }
        _ => println!("Cluster:    inactive (run `shoal init` or `shoal join`)"),
    }
    Ok(ExitCode::SUCCESS)
}
