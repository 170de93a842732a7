use crate::client::{encode, Client};
use crate::commands::daemon::parse_duration;
use shoal_manager::control::JoinTokenResponse;
use shoal_node::{
    ClientCert, InfoResponse, InitRequest, InitResponse, JoinRequest, JoinResponse, LeaveRequest,
};
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
pub struct ClientCertArgs {
    /// Directory to write ca.pem, cert.pem and key.pem into
    #[arg(long)]
    out: PathBuf,
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
    let _: serde_json::Value = client
        .post("/v1/cluster/leave", &LeaveRequest { force: args.force })
        .await?;
    println!("Node left the cluster.");
    Ok(ExitCode::SUCCESS)
}

pub async fn client_cert(client: &Client, args: ClientCertArgs) -> anyhow::Result<ExitCode> {
    let c: ClientCert = client
        .post("/v1/cluster/client-cert", &serde_json::json!({}))
        .await?;
    std::fs::create_dir_all(&args.out)?;
    for (name, pem) in [
        ("ca.pem", &c.ca_pem),
        ("cert.pem", &c.cert_pem),
        ("key.pem", &c.key_pem),
    ] {
        std::fs::write(args.out.join(name), pem)?;
    }
    println!(
        "Wrote ca.pem, cert.pem and key.pem to {}",
        args.out.display()
    );
    println!(
        "Use them with: shoal --host tcp://MANAGER:2377 --tls-dir {} service ls",
        args.out.display()
    );
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
