use super::{print_json, Format};
use crate::client::{encode, Client};
use crate::table;
use shoal_api::Node;
use shoal_node::InfoResponse;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum NodeCmd {
    /// List nodes
    Ls {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show nodes in detail (JSON unless --pretty)
    Inspect {
        #[arg(required = true)]
        nodes: Vec<String>,
        #[arg(long)]
        pretty: bool,
    },
}

pub async fn run(client: &Client, cmd: NodeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCmd::Ls { format, quiet } => {
            let nodes: Vec<Node> = client.get("/v1/nodes").await?;
            if quiet {
                nodes.iter().for_each(|n| println!("{}", n.id));
            } else if format == Format::Json {
                print_json(&nodes)?;
            } else {
                let me: InfoResponse = client.get("/v1/info").await?;
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        let id = if n.id == me.node_id {
                            format!("{} *", n.id)
                        } else {
                            n.id.clone()
                        };
                        let manager = if n.role == shoal_api::NodeRole::Manager {
                            "Leader"
                        } else {
                            ""
                        };
                        vec![
                            id,
                            n.hostname.clone(),
                            title(n.state.as_str()),
                            title(n.availability.as_str()),
                            manager.to_string(),
                            n.engine_version.clone(),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "HOSTNAME",
                        "STATUS",
                        "AVAILABILITY",
                        "MANAGER STATUS",
                        "ENGINE VERSION",
                    ],
                    &rows,
                );
            }
        }
        NodeCmd::Inspect { nodes, pretty } => {
            let mut found = Vec::new();
            for n in &nodes {
                let node: Node = client.get(&format!("/v1/nodes/{}", encode(n))).await?;
                found.push(node);
            }
            if !pretty {
                print_json(&found)?;
            } else {
                for n in found {
                    println!("ID:\t\t\t{}", n.id);
                    println!("Hostname:\t\t{}", n.hostname);
                    println!("Status:");
                    println!(" State:\t\t\t{}", title(n.state.as_str()));
                    println!(" Availability:\t\t{}", title(n.availability.as_str()));
                    println!(" Address:\t\t{}", n.addr);
                    println!(
                        "Manager Status:\t\t{}",
                        if n.role == shoal_api::NodeRole::Manager {
                            "Leader"
                        } else {
                            ""
                        }
                    );
                    println!("Role:\t\t\t{}", n.role.as_str());
                    if !n.labels.is_empty() {
                        println!("Labels:");
                        for (k, v) in &n.labels {
                            println!(" - {k}={v}");
                        }
                    }
                    println!("Engine Version:\t\t{}", n.engine_version);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}
