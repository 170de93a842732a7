//! `shoal secret|config|network create|ls|inspect|rm`.

use super::{labels, print_json};
use crate::client::{encode, Client};
use crate::table::{self, ago, now_millis};
use shoal_api::id::short;
use shoal_api::{BlobKind, ConfigKind, Network, SecretKind};
use shoal_wire::v1::objects::{BlobCreate, BlobInfo, NetworkCreate};
use shoal_wire::v1::services::Created;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum SecretCmd {
    /// Create a secret from a file, or from stdin with `-`: shoal secret create db_pw ./pw.txt
    Create {
        name: String,
        /// The file holding the secret, or - for stdin
        file: PathBuf,
        /// Label KEY=VALUE
        #[arg(short, long)]
        label: Vec<String>,
    },
    /// List secrets
    Ls {
        /// Only IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show secrets as JSON (never their data)
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove secrets (refused while a service uses one)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Create a config from a file, or from stdin with `-`: shoal config create app ./app.conf
    Create {
        name: String,
        /// The file holding the config, or - for stdin
        file: PathBuf,
        /// Label KEY=VALUE
        #[arg(short, long)]
        label: Vec<String>,
        /// Expand {{.Task.Slot}}-style placeholders per task (golang)
        #[arg(long, value_parser = [shoal_api::secret::TEMPLATE_DRIVER])]
        template_driver: Option<String>,
    },
    /// List configs
    Ls {
        /// Only IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show configs as JSON (with their data, base64)
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove configs (refused while a service uses one)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum NetworkCmd {
    /// Create a cluster network services attach to: shoal network create backend
    Create {
        name: String,
        /// Label KEY=VALUE
        #[arg(short, long)]
        label: Vec<String>,
        /// Let standalone containers attach (kept and shown)
        #[arg(long)]
        attachable: bool,
        /// No route out of the network (kept and shown)
        #[arg(long)]
        internal: bool,
    },
    /// List networks
    Ls {
        /// Only IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while a service is attached)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The payload in `file` (a stack's `file:`), refused if missing, empty or too big.
pub fn read_file_payload<K: BlobKind>(file: &Path) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        file.as_os_str() != "-",
        "{} file - : name a file (stdin is for `shoal {} create`)",
        K::NAME,
        K::NAME
    );
    read_payload::<K>(file)
}

/// The payload of `create`: the file's bytes, or stdin's for `-`; refused if empty or over
/// the kind's limit, before anything is sent.
fn read_payload<K: BlobKind>(file: &Path) -> anyhow::Result<Vec<u8>> {
    let limit = K::MAX_SIZE;
    let mut data = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .take(limit as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| anyhow::anyhow!("cannot read the {} from stdin: {e}", K::NAME))?;
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| anyhow::anyhow!("cannot read {} file {}: {e}", K::NAME, file.display()))?;
        f.take(limit as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| anyhow::anyhow!("cannot read {} file {}: {e}", K::NAME, file.display()))?;
    }
    let from = if file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    anyhow::ensure!(!data.is_empty(), "{} data is empty ({from})", K::NAME);
    anyhow::ensure!(
        data.len() <= limit,
        "{} data is too big ({from}): at most {limit} bytes allowed",
        K::NAME
    );
    Ok(data)
}

/// The API path of a kind: `secrets` or `configs`.
fn path_of<K: BlobKind>() -> String {
    format!("/v1/{}s", K::NAME)
}

async fn create_blob<K: BlobKind>(
    client: &Client,
    name: &str,
    file: &Path,
    label: &[String],
    templating: Option<String>,
) -> anyhow::Result<ExitCode> {
    let labels = labels(label)?;
    let data = read_payload::<K>(file)?;
    let req = BlobCreate::new(name, labels, &data, templating);
    let created: Created = client.post(&path_of::<K>(), &req).await?;
    println!("{}", created.id);
    Ok(ExitCode::SUCCESS)
}

async fn ls_blobs<K: BlobKind>(client: &Client, quiet: bool) -> anyhow::Result<ExitCode> {
    let blobs: Vec<BlobInfo> = client.get(&path_of::<K>()).await?;
    if quiet {
        blobs.iter().for_each(|b| println!("{}", b.id));
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_millis();
    let rows: Vec<Vec<String>> = blobs
        .iter()
        .map(|b| {
            vec![
                short(&b.id).to_string(),
                b.name.clone(),
                ago(b.created_at, now),
                ago(b.updated_at, now),
            ]
        })
        .collect();
    table::print(&["ID", "NAME", "CREATED", "UPDATED"], &rows);
    Ok(ExitCode::SUCCESS)
}

async fn inspect_each<T: serde::de::DeserializeOwned + serde::Serialize>(
    client: &Client,
    base: &str,
    names: &[String],
) -> anyhow::Result<ExitCode> {
    let mut found: Vec<T> = Vec::new();
    for n in names {
        found.push(client.get(&format!("{base}/{}", encode(n))).await?);
    }
    print_json(&found)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn secret(client: &Client, cmd: SecretCmd) -> anyhow::Result<ExitCode> {
    type K = SecretKind;
    match cmd {
        SecretCmd::Create { name, file, label } => {
            create_blob::<K>(client, &name, &file, &label, None).await
        }
        SecretCmd::Ls { quiet } => ls_blobs::<K>(client, quiet).await,
        SecretCmd::Inspect { names } => {
            inspect_each::<BlobInfo>(client, &path_of::<K>(), &names).await
        }
        SecretCmd::Rm { names } => Ok(client
            .delete_each(&names, |n| format!("{}/{}", path_of::<K>(), encode(n)))
            .await),
    }
}

pub async fn config(client: &Client, cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    type K = ConfigKind;
    match cmd {
        ConfigCmd::Create {
            name,
            file,
            label,
            template_driver,
        } => create_blob::<K>(client, &name, &file, &label, template_driver).await,
        ConfigCmd::Ls { quiet } => ls_blobs::<K>(client, quiet).await,
        ConfigCmd::Inspect { names } => {
            inspect_each::<BlobInfo>(client, &path_of::<K>(), &names).await
        }
        ConfigCmd::Rm { names } => Ok(client
            .delete_each(&names, |n| format!("{}/{}", path_of::<K>(), encode(n)))
            .await),
    }
}

pub async fn network(client: &Client, cmd: NetworkCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCmd::Create {
            name,
            label,
            attachable,
            internal,
        } => {
            let req = NetworkCreate {
                name,
                labels: labels(&label)?,
                attachable,
                internal,
            };
            let created: Created = client.post("/v1/networks", &req).await?;
            println!("{}", created.id);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Ls { quiet } => {
            let networks: Vec<Network> = client.get("/v1/networks").await?;
            if quiet {
                networks.iter().for_each(|n| println!("{}", n.id));
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = networks
                .iter()
                .map(|n| {
                    vec![
                        short(&n.id).to_string(),
                        n.name.clone(),
                        n.driver.clone(),
                        "swarm".to_string(),
                    ]
                })
                .collect();
            table::print(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Inspect { names } => {
            inspect_each::<Network>(client, "/v1/networks", &names).await
        }
        NetworkCmd::Rm { names } => Ok(client
            .delete_each(&names, |n| format!("/v1/networks/{}", encode(n)))
            .await),
    }
}
