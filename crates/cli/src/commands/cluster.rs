use crate::client::Client;
use shoal_node::{InfoResponse, InitRequest, InitResponse};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Address other nodes reach this node's tasks at (default 127.0.0.1)
    #[arg(long)]
    advertise_addr: Option<String>,
}

pub async fn init(client: &Client, args: InitArgs) -> anyhow::Result<ExitCode> {
    let resp: InitResponse = client
        .post(
            "/v1/cluster/init",
            &InitRequest {
                advertise_addr: args.advertise_addr,
            },
        )
        .await?;
    println!(
        "Cluster initialized: current node ({}) is now a manager.",
        resp.node_id
    );
    println!();
    println!("To create a service: shoal service create --name web --replicas 3 --publish 8080:80 -- shoal whoami");
    Ok(ExitCode::SUCCESS)
}

pub async fn info(client: &Client) -> anyhow::Result<ExitCode> {
    let i: InfoResponse = client.get("/v1/info").await?;
    println!("Node ID:    {}", i.node_id);
    println!("Hostname:   {}", i.hostname);
    println!("Version:    {}", i.version);
    match i.cluster_id {
        Some(c) => {
            println!("Cluster:    {c}");
            println!(" Nodes:     {}", i.nodes);
            println!(" Services:  {}", i.services);
            println!(" Tasks:     {}", i.tasks);
        }
        None => println!("Cluster:    inactive (run `shoal init`)"),
    }
    Ok(ExitCode::SUCCESS)
}
