use super::{print_json, Format};
use crate::client::{encode, Client};
use crate::table::{self, escape, pretty_line};
use shoal_api::resources::{format_bytes, format_cpus};
use shoal_api::Node;
use shoal_wire::v1::daemon::InfoResponse;
use shoal_wire::v1::nodes::NodeUpdate;
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
    /// List the tasks on nodes (default: this node)
    Ps {
        nodes: Vec<String>,
        #[arg(long)]
        no_trunc: bool,
    },
    /// Change a node's availability or labels: shoal node update --availability drain NODE
    Update {
        node: String,
        /// active, pause or drain
        #[arg(long, value_parser = ["active", "pause", "drain"])]
        availability: Option<String>,
        /// Add or change a label KEY=VALUE
        #[arg(long)]
        label_add: Vec<String>,
        /// Remove a label
        #[arg(long)]
        label_rm: Vec<String>,
        /// Do not wait for the node's tasks to move (drain)
        #[arg(short, long)]
        detach: bool,
        /// Give up waiting for a drain after this long (exit 1)
        #[arg(long, default_value = "120s", value_parser = crate::commands::daemon::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Make workers managers (they join the Raft group once caught up)
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make managers workers (refused if the remaining managers would lose quorum)
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the cluster (down nodes, or any with --force)
    Rm {
        #[arg(required = true)]
        nodes: Vec<String>,
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn run(client: &Client, cmd: NodeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCmd::Ps { nodes, no_trunc } => return ps(client, nodes, no_trunc).await,
        NodeCmd::Update {
            node,
            availability,
            label_add,
            label_rm,
            detach,
            timeout,
        } => {
            return update(
                client,
                &node,
                availability,
                &label_add,
                label_rm,
                detach,
                timeout,
            )
            .await
        }
        NodeCmd::Rm { nodes, force } => return rm(client, &nodes, force).await,
        NodeCmd::Promote { nodes } => return change_role(client, &nodes, "promote").await,
        NodeCmd::Demote { nodes } => return change_role(client, &nodes, "demote").await,
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
                        let manager = n.manager_status.as_deref().unwrap_or("");
                        vec![
                            id,
                            n.hostname.clone(),
                            title(n.state.as_str()),
                            title(n.availability.as_str()),
                            manager.to_string(),
                            engine_version(n),
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
                    print_pretty(&n);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Docker Engine's version: `node ls`'s ENGINE VERSION, empty without an engine.
fn engine_version(n: &Node) -> String {
    n.description
        .engine
        .as_ref()
        .map(|e| e.version.clone())
        .unwrap_or_default()
}

/// `node inspect --pretty`, laid out as Docker's.
fn print_pretty(n: &Node) {
    let d = &n.description;
    pretty_line(format_args!("ID:\t\t\t{}", n.id));
    pretty_line(format_args!("Hostname:\t\t{}", n.hostname));
    pretty_line(format_args!("Status:"));
    pretty_line(format_args!(" State:\t\t\t{}", title(n.state.as_str())));
    pretty_line(format_args!(
        " Availability:\t\t{}",
        title(n.availability.as_str())
    ));
    pretty_line(format_args!(" Address:\t\t{}", n.addr));
    if let Some(m) = &n.manager_status {
        pretty_line(format_args!("Manager Status:\t\t{m}"));
    }
    pretty_line(format_args!("Role:\t\t\t{}", n.role.as_str()));
    if !n.labels.is_empty() {
        pretty_line(format_args!("Labels:"));
        for (k, v) in &n.labels {
            pretty_line(format_args!(" - {k}={v}"));
        }
    }
    pretty_line(format_args!("Resources:"));
    pretty_line(format_args!(" CPUs:\t\t\t{}", format_cpus(d.nano_cpus)));
    pretty_line(format_args!(" Memory:\t\t{}", format_bytes(d.memory_bytes)));
    let runtimes: Vec<&str> = d.runtimes.iter().map(|r| r.as_str()).collect();
    pretty_line(format_args!("Runtimes:\t\t{}", runtimes.join(", ")));
    pretty_line(format_args!("Engine Version:\t\t{}", engine_version(n)));
    pretty_line(format_args!("Shoal Version:\t\t{}", n.engine_version));
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

async fn ps(client: &Client, nodes: Vec<String>, no_trunc: bool) -> anyhow::Result<ExitCode> {
    let nodes = if nodes.is_empty() {
        let me: InfoResponse = client.get("/v1/info").await?;
        vec![me.node_id]
    } else {
        nodes
    };
    let mut rows = Vec::new();
    let now = table::now_millis();
    for n in &nodes {
        let node: Node = client.get(&format!("/v1/nodes/{}", encode(n))).await?;
        let tasks: Vec<shoal_api::Task> = client
            .get(&format!("/v1/tasks?node={}", encode(&node.id)))
            .await?;
        for t in tasks {
            let id = if no_trunc {
                t.id.clone()
            } else {
                shoal_api::id::short(&t.id).to_string()
            };
            let err = t
                .status
                .err
                .clone()
                .map(|e| format!("{e:?}"))
                .unwrap_or_default();
            rows.push(vec![
                id,
                t.slot_name(),
                node.hostname.clone(),
                t.desired_state.title(),
                format!(
                    "{} {}",
                    t.status.state.title(),
                    table::ago(t.status.timestamp, now)
                ),
                err,
            ]);
        }
    }
    table::print(
        &[
            "ID",
            "NAME",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn update(
    client: &Client,
    node: &str,
    availability: Option<String>,
    label_add: &[String],
    label_rm: Vec<String>,
    detach: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let labels_add = super::labels(label_add)?;
    let availability = match availability.as_deref() {
        None => None,
        Some("active") => Some(shoal_api::Availability::Active),
        Some("pause") => Some(shoal_api::Availability::Pause),
        Some("drain") => Some(shoal_api::Availability::Drain),
        Some(other) => {
            anyhow::bail!("invalid availability {other:?}: expected active, pause or drain")
        }
    };
    let draining = availability == Some(shoal_api::Availability::Drain);
    let updated: Node = client
        .post(
            &format!("/v1/nodes/{}/update", encode(node)),
            &NodeUpdate {
                availability,
                labels_add,
                labels_rm: label_rm,
            },
        )
        .await?;
    println!("{}", updated.id);
    if draining && !detach {
        return wait_drained(client, &updated, timeout).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Wait until no task runs on the node any more, showing progress.
async fn wait_drained(
    client: &Client,
    node: &Node,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        let tasks: Vec<shoal_api::Task> = client
            .get(&format!("/v1/tasks?node={}", encode(&node.id)))
            .await?;
        let left = tasks.iter().filter(|t| t.is_live()).count();
        if last != Some(left) {
            println!("drain: {left} task(s) left on {}", escape(&node.hostname));
            last = Some(left);
        }
        if left == 0 {
            println!("drain: node {} drained", escape(&node.hostname));
            return Ok(ExitCode::SUCCESS);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "node {} still runs {left} task(s) after {}: their replacements could not be placed or did not become ready (see shoal service ps)",
                node.hostname,
                shoal_api::duration::format(timeout)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn rm(client: &Client, nodes: &[String], force: bool) -> anyhow::Result<ExitCode> {
    Ok(client
        .delete_each(nodes, |n| format!("/v1/nodes/{}?force={force}", encode(n)))
        .await)
}

/// `node promote` / `node demote`, one node at a time; stops at the first refusal.
async fn change_role(client: &Client, nodes: &[String], verb: &str) -> anyhow::Result<ExitCode> {
    for n in nodes {
        let node: Node = client
            .post(
                &format!("/v1/nodes/{}/{verb}", encode(n)),
                &serde_json::json!({}),
            )
            .await?;
        let role = if verb == "promote" {
            "manager"
        } else {
            "worker"
        };
        println!("Node {} is now a {role}.", escape(&node.hostname));
    }
    Ok(ExitCode::SUCCESS)
}
