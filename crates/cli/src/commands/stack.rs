//! `shoal stack deploy|ls|ps|services|rm`: a compose file's services, networks, secrets and
//! configs, deployed as the docker CLI deploys a stack (compose.rs says how it is read).
//!
//! A stack is no stored object: it is the label `com.docker.stack.namespace=NAME` on each
//! of its services, networks, secrets and configs, so `docker stack ls|ps|rm` and `shoal
//! stack ...` see the same stacks. `deploy` makes the networks it uses (`NAME_default` and
//! the compose file's own) when missing, makes each secret and config a service uses from
//! its `file:` (or relabels one that exists), then creates each service or updates it in
//! place; `rm` removes the services, then the secrets, configs and networks.

use super::compose::{self, Compose, FileDef, NAMESPACE};
use super::objects::read_file_payload;
use crate::client::{encode, Client};
use crate::commands::Format;
use crate::table;
use shoal_api::{BlobKind, ConfigKind, Network, SecretKind, ServiceSpec};
use shoal_wire::v1::objects::{BlobCreate, BlobInfo, BlobLabels, NetworkCreate};
use shoal_wire::v1::services::{Created, ServiceInfo, UpdateRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum StackCmd {
    /// Deploy a new stack or update one: shoal stack deploy -c compose.yml NAME
    Deploy {
        /// The compose file
        #[arg(short = 'c', long = "compose-file", required = true)]
        compose_file: PathBuf,
        name: String,
    },
    /// List stacks
    Ls,
    /// List the tasks of a stack
    Ps {
        name: String,
        #[arg(long)]
        no_trunc: bool,
        /// Only IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the services of a stack
    Services {
        name: String,
        /// Only IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove stacks: their services, then their secrets, configs and networks
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub async fn run(client: &Client, cmd: StackCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        StackCmd::Deploy { compose_file, name } => deploy(client, &compose_file, &name).await,
        StackCmd::Ls => ls(client).await,
        StackCmd::Ps {
            name,
            no_trunc,
            quiet,
        } => {
            let names: Vec<String> = services_of(client, &name)
                .await?
                .into_iter()
                .map(|s| s.service.spec.name)
                .collect();
            anyhow::ensure!(!names.is_empty(), "nothing found in stack: {name}");
            super::service::ps(client, &names, &[], no_trunc, Format::Table, quiet).await
        }
        StackCmd::Services { name, quiet } => {
            let services = services_of(client, &name).await?;
            anyhow::ensure!(!services.is_empty(), "nothing found in stack: {name}");
            if quiet {
                services.iter().for_each(|s| println!("{}", s.service.id));
            } else {
                super::service::print_services(&services);
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCmd::Rm { names } => {
            let mut code = ExitCode::SUCCESS;
            for n in &names {
                if rm(client, n).await? != ExitCode::SUCCESS {
                    code = ExitCode::FAILURE;
                }
            }
            Ok(code)
        }
    }
}

fn in_stack(labels: &BTreeMap<String, String>, stack: &str) -> bool {
    labels.get(NAMESPACE).is_some_and(|v| v == stack)
}

async fn services_of(client: &Client, stack: &str) -> anyhow::Result<Vec<ServiceInfo>> {
    let all: Vec<ServiceInfo> = client.get("/v1/services").await?;
    Ok(all
        .into_iter()
        .filter(|s| in_stack(&s.service.spec.labels, stack))
        .collect())
}

async fn ls(client: &Client) -> anyhow::Result<ExitCode> {
    let all: Vec<ServiceInfo> = client.get("/v1/services").await?;
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for s in &all {
        if let Some(ns) = s.service.spec.labels.get(NAMESPACE) {
            *stacks.entry(ns.clone()).or_default() += 1;
        }
    }
    let rows: Vec<Vec<String>> = stacks
        .iter()
        .map(|(n, c)| vec![n.clone(), c.to_string()])
        .collect();
    table::print(&["NAME", "SERVICES"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// What `deploy` will post for one service, read and converted before anything is written.
struct Planned {
    spec: ServiceSpec,
    current: Option<ServiceInfo>,
}

async fn deploy(client: &Client, file: &std::path::Path, stack: &str) -> anyhow::Result<ExitCode> {
    shoal_api::network::check_object_name("stack", stack)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read compose file {}: {e}", file.display()))?;
    let loaded = compose::parse(file, &text)?;
    for key in &loaded.unknown {
        eprintln!(
            "warning: {}: {}: not supported by shoal, ignored",
            file.display(),
            table::escape(key)
        );
    }
    let c = &loaded.compose;
    let at = |e: anyhow::Error| anyhow::anyhow!("{}", compose::locate(file, &text, &e.to_string()));
    anyhow::ensure!(
        !c.services.is_empty(),
        "{}: services: none: a stack needs at least one",
        file.display()
    );

    // Everything is read and converted first: a file with an error writes nothing.
    let existing = services_of(client, stack).await?;
    let mut planned = Vec::new();
    for (key, s) in &c.services {
        let docker = compose::docker_spec(stack, c, key, s).map_err(at)?;
        let current = existing
            .iter()
            .find(|x| x.service.spec.name == docker.name)
            .cloned();
        let converted = shoal_wire::docker::to_shoal::service_spec(
            &docker,
            current.as_ref().map(|x| &x.service.spec),
        )
        .map_err(|e| at(anyhow::anyhow!("services.{key}: {e}")))?;
        for w in &converted.warnings {
            eprintln!("warning: service {}: {}", docker.name, table::escape(w));
        }
        planned.push(Planned {
            spec: converted.spec,
            current,
        });
    }
    let secrets =
        payloads::<SecretKind>(stack, &loaded.dir, c, &c.secrets, "secrets").map_err(at)?;
    let configs =
        payloads::<ConfigKind>(stack, &loaded.dir, c, &c.configs, "configs").map_err(at)?;

    // Networks the services use: the stack's own are made when missing.
    let networks: Vec<Network> = client.get("/v1/networks").await?;
    let mut wanted = BTreeSet::new();
    for s in c.services.values() {
        for (key, _) in compose::service_networks(s) {
            wanted.insert(key);
        }
    }
    for key in &wanted {
        let (name, ours) = compose::network_name(stack, c, key);
        if networks.iter().any(|n| n.name == name) {
            continue;
        }
        anyhow::ensure!(
            ours,
            "network {name} is declared external but does not exist (shoal network create {name})"
        );
        let def = c.networks.get(key).and_then(Option::as_ref);
        let mut labels = def
            .and_then(|d| d.labels.as_ref())
            .map(compose::KeyValues::labels)
            .unwrap_or_default();
        labels.insert(NAMESPACE.into(), stack.into());
        println!("Creating network {name}");
        let _: Created = client
            .post(
                "/v1/networks",
                &NetworkCreate {
                    name,
                    labels,
                    attachable: def.is_some_and(|d| d.attachable),
                    internal: def.is_some_and(|d| d.internal),
                },
            )
            .await?;
    }
    for p in &secrets {
        put_blob::<SecretKind>(client, p).await?;
    }
    for p in &configs {
        put_blob::<ConfigKind>(client, p).await?;
    }

    // Names to IDs, as the docker CLI does before it posts (so an unchanged service is
    // seen to be unchanged).
    let networks: Vec<Network> = client.get("/v1/networks").await?;
    let secrets: Vec<BlobInfo> = client.get("/v1/secrets").await?;
    let configs: Vec<BlobInfo> = client.get("/v1/configs").await?;
    for mut p in planned {
        let t = &mut p.spec.task;
        for n in &mut t.networks {
            if let Some(found) = networks.iter().find(|x| x.name == n.network) {
                n.network = found.id.clone();
            }
        }
        for (refs, blobs) in [(&mut t.secrets, &secrets), (&mut t.configs, &configs)] {
            for r in refs.iter_mut() {
                if let Some(found) = blobs.iter().find(|b| b.name == r.name) {
                    r.id = found.id.clone();
                }
            }
        }
        let name = p.spec.name.clone();
        match p.current {
            Some(cur) if cur.service.spec == p.spec => {
                println!("Service {name} is up to date");
            }
            Some(cur) => {
                println!("Updating service {name} (id: {})", cur.service.id);
                let _: ServiceInfo = client
                    .post(
                        &format!("/v1/services/{}/update", encode(&cur.service.id)),
                        &UpdateRequest {
                            spec: p.spec,
                            force: false,
                        },
                    )
                    .await?;
            }
            None => {
                println!("Creating service {name}");
                let _: Created = client.post("/v1/services", &p.spec).await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A secret or config the stack makes (or relabels): its name, labels and payload.
struct Payload {
    name: String,
    labels: BTreeMap<String, String>,
    data: Vec<u8>,
    templating: Option<String>,
}

/// The secrets or configs (`what`) the services use and the stack makes, read from their
/// files; external ones are left to exist.
fn payloads<K: BlobKind>(
    stack: &str,
    dir: &std::path::Path,
    c: &Compose,
    defs: &BTreeMap<String, FileDef>,
    what: &str,
) -> anyhow::Result<Vec<Payload>> {
    let used: BTreeSet<&str> = c
        .services
        .values()
        .flat_map(|s| {
            if what == "secrets" {
                s.secrets.iter()
            } else {
                s.configs.iter()
            }
        })
        .map(|u| u.source.as_str())
        .collect();
    let mut out = Vec::new();
    for key in used {
        let Some(def) = defs.get(key) else {
            continue;
        };
        if def.external {
            continue;
        }
        let file = def.file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "{what}.{key}.file: missing: name the file holding the {}",
                K::NAME
            )
        })?;
        let path = if file.is_absolute() {
            file.clone()
        } else {
            dir.join(file)
        };
        let data =
            read_file_payload::<K>(&path).map_err(|e| anyhow::anyhow!("{what}.{key}: {e}"))?;
        let mut labels = def
            .labels
            .as_ref()
            .map(compose::KeyValues::labels)
            .unwrap_or_default();
        labels.insert(NAMESPACE.into(), stack.into());
        out.push(Payload {
            name: compose::file_name(stack, def, key),
            labels,
            data,
            templating: def
                .template_driver
                .map(|_| shoal_api::secret::TEMPLATE_DRIVER.to_owned()),
        });
    }
    Ok(out)
}

/// Creates the secret or config of `p`, or sets the labels of the one that exists; a
/// config whose file changed is refused (it is immutable: rename it to rotate it).
async fn put_blob<K: BlobKind>(client: &Client, p: &Payload) -> anyhow::Result<()> {
    let base = format!("/v1/{}s", K::NAME);
    let all: Vec<BlobInfo> = client.get(&base).await?;
    match all.iter().find(|b| b.name == p.name) {
        Some(b) => {
            if let Some(data) = b.decoded() {
                anyhow::ensure!(
                    data == p.data,
                    "{} {} changed: a {} cannot change, give it a new name to rotate it",
                    K::NAME,
                    p.name,
                    K::NAME
                );
            }
            println!("Updating {} {}", K::NAME, p.name);
            let _: BlobInfo = client
                .post(
                    &format!("{base}/{}/update", encode(&b.id)),
                    &BlobLabels {
                        labels: p.labels.clone(),
                    },
                )
                .await?;
        }
        None => {
            println!("Creating {} {}", K::NAME, p.name);
            let req = BlobCreate::new(&p.name, p.labels.clone(), &p.data, p.templating.clone());
            let _: Created = client.post(&base, &req).await?;
        }
    }
    Ok(())
}

/// Removes the stack's services, then its secrets, configs and networks.
async fn rm(client: &Client, stack: &str) -> anyhow::Result<ExitCode> {
    let services = services_of(client, stack).await?;
    let secrets: Vec<BlobInfo> = client.get("/v1/secrets").await?;
    let configs: Vec<BlobInfo> = client.get("/v1/configs").await?;
    let networks: Vec<Network> = client.get("/v1/networks").await?;
    let secrets: Vec<&BlobInfo> = secrets
        .iter()
        .filter(|b| in_stack(&b.labels, stack))
        .collect();
    let configs: Vec<&BlobInfo> = configs
        .iter()
        .filter(|b| in_stack(&b.labels, stack))
        .collect();
    let networks: Vec<&Network> = networks
        .iter()
        .filter(|n| in_stack(&n.labels, stack))
        .collect();
    if services.is_empty() && secrets.is_empty() && configs.is_empty() && networks.is_empty() {
        eprintln!("nothing found in stack: {stack}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    let mut remove = |what: &str, name: &str, result: anyhow::Result<()>| match result {
        Ok(()) => println!("Removing {what} {name}"),
        Err(e) => {
            eprintln!(
                "error: cannot remove {what} {name}: {}",
                table::escape(&e.to_string())
            );
            failed = true;
        }
    };
    for s in &services {
        let r = client
            .delete(&format!("/v1/services/{}", encode(&s.service.id)))
            .await;
        remove("service", &s.service.spec.name, r);
    }
    for b in &secrets {
        let r = client
            .delete(&format!("/v1/secrets/{}", encode(&b.id)))
            .await;
        remove("secret", &b.name, r);
    }
    for b in &configs {
        let r = client
            .delete(&format!("/v1/configs/{}", encode(&b.id)))
            .await;
        remove("config", &b.name, r);
    }
    for n in &networks {
        let r = client
            .delete(&format!("/v1/networks/{}", encode(&n.id)))
            .await;
        remove("network", &n.name, r);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
