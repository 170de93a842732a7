use super::{print_json, Format};
use crate::client::{encode, Client};
use crate::commands::daemon::parse_duration;
use crate::progress::{wait_converged, WaitOutcome};
use crate::table::{self, ago, pretty_line, truncate};
use shoal_api::duration;
use shoal_api::id::short;
use shoal_api::resources::{format_bytes, format_cpus};
use shoal_api::{
    HealthCheck, HealthProbe, Mount, PortConfig, Resources, RestartCondition, Runtime, ServiceMode,
    ServiceSpec, Task, TaskState, TaskTemplate, Ulimit,
};
use shoal_wire::v1::services::{Created, ScaleRequest, ServiceInfo};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCmd {
    /// Create a service: shoal service create --name web --replicas 3 --publish 8080:80 nginx
    /// (a container), or ... -- shoal whoami (a process)
    Create(Box<CreateArgs>),
    /// List services
    Ls {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Only IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the tasks of services
    Ps {
        #[arg(required = true)]
        services: Vec<String>,
        /// Filter: desired-state=running|shutdown|...
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        no_trunc: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show services in detail (JSON unless --pretty)
    Inspect {
        #[arg(required = true)]
        services: Vec<String>,
        #[arg(long)]
        pretty: bool,
    },
    /// Set replica counts: shoal service scale web=5 api=2
    Scale {
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Do not wait for convergence
        #[arg(short, long)]
        detach: bool,
        /// Give up waiting after this long (exit 1)
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Show the output of a service's tasks, or of one task, from every node
    Logs(super::logs::LogsArgs),
    /// Print a service's endpoints (ready and terminating tasks) as JSON, with the store
    /// version; --watch prints each change as a line of its own, as soon as it happens
    Endpoints {
        service: String,
        /// Keep printing every change (newline-delimited JSON) until interrupted
        #[arg(long)]
        watch: bool,
    },
    /// Change a service and roll the change out: shoal service update --env-add K=V web
    Update(Box<super::update::UpdateArgs>),
    /// Return a service to its previous spec
    Rollback {
        service: String,
        #[arg(short, long)]
        detach: bool,
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Remove services
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    /// Number of tasks (replicated mode)
    #[arg(long)]
    replicas: Option<u64>,
    /// replicated or global
    #[arg(long, default_value = "replicated", value_parser = ["replicated", "global"])]
    mode: String,
    /// Publish a port: PUBLISHED:TARGET[/PROTO], TARGET, or
    /// published=P,target=T[,protocol=tcp|udp][,mode=ingress|host][,proxy-protocol=v2]
    #[arg(short, long)]
    publish: Vec<String>,
    /// A port the tasks listen on, reached through the service's VIP and named in its SRV
    /// records but published on no node: PORT[/PROTO]
    #[arg(long)]
    expose: Vec<String>,
    /// How the service's name resolves: vip (one virtual IP spreading connections) or
    /// dnsrr (the tasks' addresses)
    #[arg(long, default_value = "vip")]
    endpoint_mode: String,
    /// Load-balancing algorithm on its published ports and VIP: round-robin, least-conn,
    /// p2c, source-hash, maglev or random
    #[arg(long, default_value = "round-robin")]
    lb: String,
    /// Who forwards its TCP connections: proxy (the node's data plane: every algorithm,
    /// retries, PROXY headers, idle timeouts) or nat (the kernel, with no process in the
    /// way: round-robin, random, source-hash or maglev, no retry)
    #[arg(long, default_value = "proxy")]
    lb_mode: String,
    /// Send connections to a ready task on the node that received them, when it has one
    #[arg(long)]
    lb_local_first: bool,
    /// Each task's share of new connections against the service's other tasks (default
    /// 100; 0: only when no other task is left)
    #[arg(long)]
    lb_weight: Option<u32>,
    /// Close TCP connections (forget UDP flows) idle for this long, e.g. 15m (default: TCP
    /// never, UDP after 30s)
    #[arg(long, value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Environment variable KEY=VALUE ({{.Task.Slot}} templates allowed)
    #[arg(short, long)]
    env: Vec<String>,
    /// Service label KEY=VALUE
    #[arg(short, long)]
    label: Vec<String>,
    /// Working directory of the task
    #[arg(short, long)]
    workdir: Option<String>,
    /// Replace the image's entrypoint (split on spaces; container services)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Read environment variables from a file of KEY=VALUE lines
    #[arg(long)]
    env_file: Vec<std::path::PathBuf>,
    #[command(flatten)]
    container: ContainerFlags,
    #[command(flatten)]
    attach: AttachFlags,
    /// Placement constraint, e.g. node.labels.zone==a
    #[arg(long)]
    constraint: Vec<String>,
    /// Placement preference, e.g. spread=node.labels.zone (repeat to nest)
    #[arg(long)]
    placement_pref: Vec<String>,
    /// Most tasks of the service per node (0 for unlimited)
    #[arg(long, default_value_t = 0)]
    replicas_max_per_node: u64,
    /// any, on-failure or none
    #[arg(long, default_value = "any")]
    restart_condition: String,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    restart_delay: Duration,
    /// 0 for unlimited
    #[arg(long, default_value_t = 0)]
    restart_max_attempts: u32,
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    restart_window: Duration,
    #[arg(long, default_value = "SIGTERM")]
    stop_signal: String,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stop_grace_period: Duration,
    /// Health check: shell command run with the task's environment
    #[arg(long, conflicts_with_all = ["health_http", "health_tcp"])]
    health_cmd: Option<String>,
    /// Health check: HTTP GET of this path on the task's first port
    #[arg(long, conflicts_with = "health_tcp")]
    health_http: Option<String>,
    /// Health check: TCP connect to the task's first port
    #[arg(long)]
    health_tcp: bool,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    health_interval: Duration,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    health_timeout: Duration,
    #[arg(long, default_value_t = 3)]
    health_retries: u32,
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    health_start_period: Duration,
    /// Exit right away instead of waiting for the tasks to run
    #[arg(short, long)]
    detach: bool,
    /// Only print the service ID
    #[arg(short, long)]
    quiet: bool,
    /// Give up waiting after this long (exit 1)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    rollout: super::update::RolloutFlags,
    #[command(flatten)]
    resources: super::resources::ResourceFlags,
    /// IMAGE [COMMAND] [ARG...] for a container service, as with docker; `-- COMMAND
    /// [ARG...]` (a command after `--` with no image before it) for a process service
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    image: Vec<String>,
}

/// The runtime `service create` asks for: `IMAGE [COMMAND...]` is a container (a `--`
/// right after the image only separates its command); `-- COMMAND...`, a command after
/// `--` with no image before it, is a process.
fn runtime_of(words: &[String], process: bool) -> anyhow::Result<TaskTemplate> {
    match words.split_first() {
        Some((program, args)) if process => {
            let mut t = TaskTemplate::with_command(vec![program.clone()]);
            if let Some(p) = t.process_mut() {
                p.args = args.to_vec();
            }
            Ok(t)
        }
        Some((image, cmd)) => {
            let mut t = TaskTemplate::with_image(image.clone());
            if let Runtime::Container(c) = &mut t.runtime {
                let cmd = cmd.strip_prefix(&["--".to_string()]).unwrap_or(cmd);
                c.args = cmd.to_vec();
            }
            Ok(t)
        }
        None => anyhow::bail!(
            "service needs an image (shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]) or a command (-- COMMAND [ARG...] for a process)"
        ),
    }
}

/// Whether the positional `words` came right after a `--` on the command line (the parser
/// drops a leading `--`, so only the raw arguments tell).
fn after_double_dash(raw: &[String], words: &[String]) -> bool {
    !words.is_empty()
        && raw.ends_with(words)
        && raw.len() > words.len()
        && raw[raw.len() - words.len() - 1] == "--"
}

/// Options of a container service, as `docker service create` names them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContainerFlags {
    /// Username or UID (format: name|uid[:group|gid])
    #[arg(short, long)]
    user: Option<String>,
    /// Container hostname ({{.Task.Slot}}, {{.Node.Hostname}} templates allowed)
    #[arg(long)]
    hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Container label KEY=VALUE
    #[arg(long)]
    container_label: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long, conflicts_with_all = ["health_cmd", "health_http", "health_tcp"])]
    no_healthcheck: bool,
    /// Attach a filesystem mount:
    /// type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,volume-*|tmpfs-*|bind-propagation=...]
    #[arg(long, value_name = "MOUNT")]
    mount: Vec<String>,
    /// Ulimit option name=soft[:hard], e.g. nofile=1024:2048
    #[arg(long, value_name = "ULIMIT")]
    ulimit: Vec<String>,
}

/// What a service's tasks are given beside their command: secrets, configs, networks.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AttachFlags {
    /// A secret as a file: NAME, or source=NAME[,target=FILE][,uid=N][,gid=N][,mode=0444]
    /// (/run/secrets/FILE in a container; $SHOAL_SECRET_<FILE> names it for a process)
    #[arg(long, value_name = "SECRET")]
    secret: Vec<String>,
    /// A config as a file: NAME, or source=NAME[,target=PATH][,uid=N][,gid=N][,mode=0444]
    #[arg(long, value_name = "CONFIG")]
    config: Vec<String>,
    /// A cluster network: NAME, or name=NAME[,alias=ALIAS]... (aliases answer in the DNS)
    #[arg(long, value_name = "NETWORK")]
    network: Vec<String>,
}

impl AttachFlags {
    fn apply(&self, task: &mut TaskTemplate) -> anyhow::Result<()> {
        for s in &self.secret {
            task.secrets
                .push(shoal_api::FileRef::parse::<shoal_api::SecretKind>(s)?);
        }
        for c in &self.config {
            task.configs
                .push(shoal_api::FileRef::parse::<shoal_api::ConfigKind>(c)?);
        }
        for n in &self.network {
            task.networks.push(shoal_api::NetworkAttachment::parse(n)?);
        }
        Ok(())
    }
}

impl ContainerFlags {
    fn any(&self) -> bool {
        self.user.is_some()
            || self.hostname.is_some()
            || self.init
            || self.read_only
            || self.tty
            || !self.container_label.is_empty()
            || !self.cap_add.is_empty()
            || !self.cap_drop.is_empty()
            || self.no_healthcheck
            || !self.mount.is_empty()
            || !self.ulimit.is_empty()
    }

    fn apply(&self, task: &mut TaskTemplate) -> anyhow::Result<()> {
        let Runtime::Container(c) = &mut task.runtime else {
            anyhow::ensure!(
                !self.any(),
                "--user, --hostname, --init, --read-only, --tty, --container-label, --cap-add, --cap-drop, --no-healthcheck, --mount and --ulimit need an image: a process service runs on the node itself"
            );
            return Ok(());
        };
        c.user = self.user.clone();
        c.hostname = self.hostname.clone();
        c.init = self.init;
        c.read_only = self.read_only;
        c.tty = self.tty;
        for l in &self.container_label {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            c.labels.insert(k.to_string(), v.to_string());
        }
        c.cap_add = self.cap_add.clone();
        c.cap_drop = self.cap_drop.clone();
        c.no_healthcheck = self.no_healthcheck;
        c.mounts = self
            .mount
            .iter()
            .map(|m| Mount::parse(m))
            .collect::<Result<_, _>>()?;
        c.ulimits = Vec::new();
        for u in &self.ulimit {
            Ulimit::parse(u)?.set_in(&mut c.ulimits);
        }
        Ok(())
    }
}

/// `KEY=VALUE` lines of `--env-file`s, in order; blank lines and `#` comments skipped, a
/// bare `KEY` takes its value from this environment (as docker does).
fn env_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read --env-file {}: {e}", f.display()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.contains('=') {
                env.push(line.to_string());
            } else if let Ok(v) = std::env::var(line) {
                env.push(format!("{line}={v}"));
            }
        }
    }
    Ok(env)
}

/// What a service runs, for tables: the image, or `-- COMMAND` for a process.
pub fn what_runs(t: &TaskTemplate) -> String {
    match &t.runtime {
        Runtime::Container(c) => c.image.clone(),
        Runtime::Process(_) => format!("-- {}", t.argv().join(" ")),
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn image_or_process_from_the_command_line() {
        let cases = [
            (
                "shoal service create --name w -- shoal whoami",
                "shoal whoami",
                None,
            ),
            (
                "shoal service create --name w nginx",
                "nginx",
                Some(("nginx", "")),
            ),
            (
                "shoal service create --name w alpine ping docker.com",
                "alpine ping docker.com",
                Some(("alpine", "ping docker.com")),
            ),
            (
                "shoal service create --name w alpine -- ping -c 3 x",
                "alpine -- ping -c 3 x",
                Some(("alpine", "ping -c 3 x")),
            ),
        ];
        for (line, parsed, want) in cases {
            let (raw, w) = (words(line), words(parsed));
            let t = runtime_of(&w, after_double_dash(&raw, &w)).expect(line);
            match want {
                None => assert_eq!(
                    t.process().map(|p| p.command.clone()),
                    Some(words("shoal")),
                    "{line}"
                ),
                Some((image, args)) => {
                    assert_eq!(t.image(), Some(image), "{line}");
                    assert_eq!(t.argv(), words(args), "{line}");
                }
            }
        }
        assert!(runtime_of(&[], false).is_err());
    }
}

impl CreateArgs {
    fn spec(&self) -> anyhow::Result<ServiceSpec> {
        let mode = match (self.mode.as_str(), self.replicas) {
            ("global", Some(_)) => anyhow::bail!("--replicas cannot be used with --mode global"),
            ("global", None) => ServiceMode::Global,
            (_, r) => ServiceMode::Replicated {
                replicas: r.unwrap_or(1),
            },
        };
        let raw: Vec<String> = std::env::args().collect();
        let mut task = runtime_of(&self.image, after_double_dash(&raw, &self.image))?;
        self.container.apply(&mut task)?;
        self.attach.apply(&mut task)?;
        if let Some(e) = &self.entrypoint {
            let Runtime::Container(c) = &mut task.runtime else {
                anyhow::bail!("--entrypoint needs an image; a process service runs its command");
            };
            c.entrypoint = Some(e.split_whitespace().map(str::to_string).collect());
        }
        task.env = env_files(&self.env_file)?;
        task.env.extend(self.env.iter().cloned());
        task.workdir = self.workdir.clone();
        task.constraints = self.constraint.clone();
        task.placement_prefs = self.placement_pref.clone();
        task.max_replicas_per_node = self.replicas_max_per_node;
        task.restart.condition = RestartCondition::parse(&self.restart_condition)?;
        task.restart.delay = self.restart_delay;
        task.restart.max_attempts = self.restart_max_attempts;
        task.restart.window = self.restart_window;
        task.stop_signal = self.stop_signal.clone();
        task.stop_grace_period = self.stop_grace_period;
        task.lb_weight = self.lb_weight;
        self.resources.apply(&mut task.resources);
        let probe = match (&self.health_cmd, &self.health_http, self.health_tcp) {
            (Some(c), _, _) => Some(HealthProbe::Cmd { command: c.clone() }),
            (_, Some(p), _) => Some(HealthProbe::Http { path: p.clone() }),
            (_, _, true) => Some(HealthProbe::Tcp),
            _ => None,
        };
        task.health = probe.map(|probe| HealthCheck {
            probe,
            interval: self.health_interval,
            timeout: self.health_timeout,
            retries: self.health_retries,
            start_period: self.health_start_period,
        });
        let labels = super::labels(&self.label)?;
        let ports = self
            .publish
            .iter()
            .map(|p| PortConfig::parse(p))
            .chain(self.expose.iter().map(|p| PortConfig::expose(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = ServiceSpec {
            endpoint_mode: shoal_api::EndpointMode::parse(&self.endpoint_mode)?,
            lb: shoal_api::Policy::parse(&self.lb)?,
            lb_local_first: self.lb_local_first,
            lb_mode: shoal_api::LbMode::parse(&self.lb_mode)?,
            idle_timeout: self.idle_timeout.unwrap_or_default(),
            name: self.name.clone(),
            labels,
            mode,
            task,
            ports,
            update: Default::default(),
            rollback: Default::default(),
        };
        let mut spec = spec;
        self.rollout.apply(&mut spec.update, &mut spec.rollback)?;
        spec.validate()?;
        Ok(spec)
    }
}

pub async fn run(client: &Client, cmd: ServiceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceCmd::Create(args) => create(client, &args).await,
        ServiceCmd::Ls { format, quiet } => ls(client, format, quiet).await,
        ServiceCmd::Ps {
            services,
            filter,
            no_trunc,
            format,
            quiet,
        } => ps(client, &services, &filter, no_trunc, format, quiet).await,
        ServiceCmd::Inspect { services, pretty } => inspect(client, &services, pretty).await,
        ServiceCmd::Scale {
            pairs,
            detach,
            timeout,
        } => scale(client, &pairs, detach, timeout).await,
        ServiceCmd::Logs(args) => super::logs::logs(client, &args).await,
        ServiceCmd::Endpoints { service, watch } => {
            let path = format!(
                "/v1/services/{}/endpoints{}",
                crate::client::encode(&service),
                if watch { "?watch=true" } else { "" }
            );
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            client
                .stream_lines(&path, |line| {
                    out.write_all(line)?;
                    out.write_all(b"\n")?;
                    out.flush()?;
                    Ok(())
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceCmd::Update(args) => super::update::update(client, &args).await,
        ServiceCmd::Rollback {
            service,
            detach,
            timeout,
        } => super::update::rollback(client, &service, detach, timeout).await,
        ServiceCmd::Rm { services } => rm(client, &services).await,
    }
}

async fn create(client: &Client, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec()?;
    let created: Created = client.post("/v1/services", &spec).await?;
    println!("{}", created.id);
    if args.detach || args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    finish_wait(wait_converged(client, &created.id, args.timeout).await?)
}

fn finish_wait(outcome: WaitOutcome) -> anyhow::Result<ExitCode> {
    match outcome {
        WaitOutcome::Converged => Ok(ExitCode::SUCCESS),
        WaitOutcome::TimedOut(why) => anyhow::bail!("{why}"),
    }
}

async fn ls(client: &Client, format: Format, quiet: bool) -> anyhow::Result<ExitCode> {
    let services: Vec<ServiceInfo> = client.get("/v1/services").await?;
    if quiet {
        services.iter().for_each(|s| println!("{}", s.service.id));
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Json {
        print_json(&services)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_services(&services);
    Ok(ExitCode::SUCCESS)
}

/// `service ls`'s table of `services`.
pub(crate) fn print_services(services: &[ServiceInfo]) {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let svc = &s.service;
            let (mode, replicas) = match svc.spec.mode {
                ServiceMode::Replicated { .. } => {
                    ("replicated", format!("{}/{}", s.running, s.desired))
                }
                ServiceMode::Global => ("global", format!("{}/{}", s.running, s.desired)),
            };
            let ports: Vec<String> = svc.ports.iter().map(|p| p.to_string()).collect();
            vec![
                short(&svc.id).to_string(),
                svc.spec.name.clone(),
                mode.to_string(),
                replicas,
                truncate(&what_runs(&svc.spec.task), 30),
                ports.join(", "),
            ]
        })
        .collect();
    table::print(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows);
}

pub(crate) async fn ps(
    client: &Client,
    services: &[String],
    filters: &[String],
    no_trunc: bool,
    format: Format,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let mut query = String::new();
    for f in filters {
        match f.split_once('=') {
            Some(("desired-state", v)) => query.push_str(&format!("&desired_state={}", encode(v))),
            _ => anyhow::bail!("invalid filter {f:?}: supported is desired-state=STATE"),
        }
    }
    let mut tasks: Vec<Task> = Vec::new();
    for s in services {
        let mut t: Vec<Task> = client
            .get(&format!("/v1/tasks?service={}{query}", encode(s)))
            .await?;
        tasks.append(&mut t);
    }
    if quiet {
        tasks.iter().for_each(|t| println!("{}", t.id));
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Json {
        print_json(&tasks)?;
        return Ok(ExitCode::SUCCESS);
    }
    let nodes: Vec<shoal_api::Node> = client.get("/v1/nodes").await?;
    let hostname = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| nodes.iter().find(|n| &n.id == id))
            .map(|n| n.hostname.clone())
            .unwrap_or_default()
    };
    let now = table::now_millis();
    let mut rows = Vec::new();
    let mut last_slot = None;
    for t in &tasks {
        let slot = (t.service_id.clone(), t.slot, t.node_id.clone());
        let name = if last_slot.as_ref() == Some(&slot) {
            format!(" \\_ {}", t.slot_name())
        } else {
            t.slot_name()
        };
        last_slot = Some(slot);
        let mut current = format!(
            "{} {}",
            t.status.state.title(),
            ago(t.status.timestamp, now)
        );
        if let Some(h) = t.status.health {
            current.push_str(&format!(" ({})", h.as_str()));
        }
        let error = t
            .status
            .err
            .clone()
            .filter(|_| t.status.state.is_terminal() || t.status.state == TaskState::Running)
            .or_else(|| t.pending_reason.clone())
            .map(|e| {
                if no_trunc {
                    format!("{e:?}")
                } else {
                    format!("{:?}", truncate(&e, 40))
                }
            })
            .unwrap_or_default();
        let ports = t
            .endpoint
            .as_ref()
            .filter(|_| t.is_live())
            .map(|e| {
                e.ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}->{}/{}",
                            e.addr,
                            p.host_port,
                            p.target,
                            p.protocol.as_str()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let id = if no_trunc {
            t.id.clone()
        } else {
            short(&t.id).to_string()
        };
        rows.push(vec![
            id,
            name,
            truncate(&what_runs(&t.spec), 30),
            hostname(&t.node_id),
            t.desired_state.title(),
            current,
            error,
            ports,
        ]);
    }
    table::print(
        &[
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
            "PORTS",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn inspect(client: &Client, services: &[String], pretty: bool) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    for s in services {
        let info: ServiceInfo = client.get(&format!("/v1/services/{}", encode(s))).await?;
        found.push(info);
    }
    if !pretty {
        print_json(&found)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (i, info) in found.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_pretty(info);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_pretty(info: &ServiceInfo) {
    let svc = &info.service;
    let spec = &svc.spec;
    let t = &spec.task;
    pretty_line(format_args!("ID:\t\t{}", svc.id));
    pretty_line(format_args!("Name:\t\t{}", spec.name));
    if !spec.labels.is_empty() {
        pretty_line(format_args!("Labels:"));
        for (k, v) in &spec.labels {
            pretty_line(format_args!(" {k}={v}"));
        }
    }
    match spec.mode {
        ServiceMode::Replicated { replicas } => {
            pretty_line(format_args!("Service Mode:\tReplicated"));
            pretty_line(format_args!(" Replicas:\t{replicas}"));
        }
        ServiceMode::Global => pretty_line(format_args!("Service Mode:\tGlobal")),
    }
    pretty_line(format_args!("Running:\t{}/{}", info.running, info.desired));
    if !t.constraints.is_empty() {
        pretty_line(format_args!("Placement:"));
        pretty_line(format_args!(" Constraints:\t{}", t.constraints.join(", ")));
    }
    match &t.runtime {
        Runtime::Container(c) => {
            pretty_line(format_args!("ContainerSpec:"));
            pretty_line(format_args!(" Image:\t\t{}", c.image));
            if let Some(e) = &c.entrypoint {
                pretty_line(format_args!(" Command:\t{}", e.join(" ")));
            }
            if !c.args.is_empty() {
                pretty_line(format_args!(" Args:\t\t{}", c.args.join(" ")));
            }
            if !c.mounts.is_empty() {
                pretty_line(format_args!(" Mounts:"));
                for m in &c.mounts {
                    pretty_line(format_args!("  Target:\t{}", m.target));
                    pretty_line(format_args!("   Source:\t{}", m.source));
                    pretty_line(format_args!("   ReadOnly:\t{}", m.read_only));
                    pretty_line(format_args!("   Type:\t{}", m.kind.as_str()));
                }
            }
            if !c.ulimits.is_empty() {
                let u: Vec<String> = c.ulimits.iter().map(Ulimit::to_string).collect();
                pretty_line(format_args!(" Ulimits:\t{}", u.join(", ")));
            }
        }
        Runtime::Process(_) => {
            pretty_line(format_args!("Task:"));
            pretty_line(format_args!(" Command:\t{}", t.argv().join(" ")));
        }
    }
    if !t.env.is_empty() {
        pretty_line(format_args!(" Env:\t\t{}", t.env.join(" ")));
    }
    if let Some(w) = &t.workdir {
        pretty_line(format_args!(" Dir:\t\t{w}"));
    }
    pretty_line(format_args!(" StopSignal:\t{}", t.stop_signal));
    pretty_line(format_args!(
        " StopGracePeriod: {}",
        duration::format(t.stop_grace_period)
    ));
    pretty_line(format_args!("Restart Policy:"));
    pretty_line(format_args!(
        " Condition:\t{}",
        t.restart.condition.as_str()
    ));
    pretty_line(format_args!(
        " Delay:\t\t{}",
        duration::format(t.restart.delay)
    ));
    let attempts = if t.restart.max_attempts == 0 {
        "unlimited".to_string()
    } else {
        t.restart.max_attempts.to_string()
    };
    pretty_line(format_args!(" Max Attempts:\t{attempts}"));
    if let Some(h) = &t.health {
        let probe = match &h.probe {
            HealthProbe::Cmd { command } => format!("cmd {command}"),
            HealthProbe::Http { path } => format!("http {path}"),
            HealthProbe::Tcp => "tcp".into(),
        };
        pretty_line(format_args!("Healthcheck:"));
        pretty_line(format_args!(" Probe:\t\t{probe}"));
        pretty_line(format_args!(" Interval:\t{}", duration::format(h.interval)));
        pretty_line(format_args!(" Timeout:\t{}", duration::format(h.timeout)));
        pretty_line(format_args!(" Retries:\t{}", h.retries));
        pretty_line(format_args!(
            " Start Period:\t{}",
            duration::format(h.start_period)
        ));
    }
    for (title, c) in [
        ("UpdateConfig", &spec.update),
        ("RollbackConfig", &spec.rollback),
    ] {
        pretty_line(format_args!("{title}:"));
        pretty_line(format_args!(" Parallelism:\t{}", c.parallelism));
        if !c.delay.is_zero() {
            pretty_line(format_args!(" Delay:\t\t{}", duration::format(c.delay)));
        }
        pretty_line(format_args!(" On failure:\t{}", c.failure_action.as_str()));
        pretty_line(format_args!(
            " Monitoring Period: {}",
            duration::format(c.monitor)
        ));
        pretty_line(format_args!(" Max failure ratio: {}", c.max_failure_ratio));
        pretty_line(format_args!(" Update order:      {}", c.order.as_str()));
    }
    if let Some(u) = &svc.update_status {
        pretty_line(format_args!("UpdateStatus:"));
        pretty_line(format_args!(" State:\t\t{}", u.state.as_str()));
        pretty_line(format_args!(
            " Started:\t{}",
            crate::table::ago(u.started_at, crate::table::now_millis())
        ));
        if let Some(done) = u.completed_at {
            pretty_line(format_args!(
                " Completed:\t{}",
                crate::table::ago(done, crate::table::now_millis())
            ));
        }
        if !u.message.is_empty() {
            pretty_line(format_args!(" Message:\t{}", u.message));
        }
    }
    print_resources(&t.resources);
    pretty_line(format_args!(
        "Endpoint Mode:\t{}",
        svc.spec.endpoint_mode.as_str()
    ));
    if !svc.ports.is_empty() {
        pretty_line(format_args!("Ports:"));
        for p in &svc.ports {
            pretty_line(format_args!(
                " PublishedPort = {}",
                p.published.map(|n| n.to_string()).unwrap_or_default()
            ));
            pretty_line(format_args!("  Protocol = {}", p.protocol.as_str()));
            pretty_line(format_args!("  TargetPort = {}", p.target));
            pretty_line(format_args!("  PublishMode = {}", p.mode.as_str()));
            if let Some(proxy) = p.proxy_protocol {
                pretty_line(format_args!("  ProxyProtocol = {}", proxy.as_str()));
            }
        }
    }
}

/// The `Resources:` block of `service inspect --pretty`, as Docker prints it.
fn print_resources(r: &Resources) {
    if r.is_none() {
        return;
    }
    pretty_line(format_args!("Resources:"));
    let (res, lim) = (&r.reservations, &r.limits);
    if !res.is_none() {
        pretty_line(format_args!(" Reservations:"));
        if res.nano_cpus > 0 {
            pretty_line(format_args!("  CPU:\t\t{}", format_cpus(res.nano_cpus)));
        }
        if res.memory_bytes > 0 {
            pretty_line(format_args!(
                "  Memory:\t{}",
                format_bytes(res.memory_bytes)
            ));
        }
    }
    if !lim.is_none() {
        pretty_line(format_args!(" Limits:"));
        if lim.nano_cpus > 0 {
            pretty_line(format_args!("  CPU:\t\t{}", format_cpus(lim.nano_cpus)));
        }
        if lim.memory_bytes > 0 {
            pretty_line(format_args!(
                "  Memory:\t{}",
                format_bytes(lim.memory_bytes)
            ));
        }
        if lim.pids > 0 {
            pretty_line(format_args!("  PIDs:\t\t{}", lim.pids));
        }
    }
}

/// Parse `web=5` pairs, all of them before changing anything.
fn parse_scale(pairs: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    pairs
        .iter()
        .map(|p| {
            let (name, n) = p.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("invalid scale specifier {p:?}: expected SERVICE=REPLICAS")
            })?;
            if name.is_empty() {
                anyhow::bail!("invalid scale specifier {p:?}: missing service name");
            }
            let n: u64 = n.parse().map_err(|_| {
                anyhow::anyhow!("invalid replicas value for {name}: {n:?} is not a number")
            })?;
            Ok((name.to_string(), n))
        })
        .collect()
}

async fn scale(
    client: &Client,
    pairs: &[String],
    detach: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let wanted = parse_scale(pairs)?;
    // Resolve every service first, so a typo in the last one changes nothing.
    let mut resolved = Vec::new();
    for (name, n) in &wanted {
        let info: ServiceInfo = client
            .get(&format!("/v1/services/{}", encode(name)))
            .await?;
        if matches!(info.service.spec.mode, ServiceMode::Global) {
            anyhow::bail!("service {name} is global: scale works only on replicated services");
        }
        resolved.push((info.service.id, name, *n));
    }
    for (id, name, n) in &resolved {
        let _: ServiceInfo = client
            .post(
                &format!("/v1/services/{id}/scale"),
                &ScaleRequest { replicas: *n },
            )
            .await?;
        println!("{name} scaled to {n}");
    }
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    for (id, _, _) in &resolved {
        if let WaitOutcome::TimedOut(why) = wait_converged(client, id, timeout).await? {
            anyhow::bail!("{why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rm(client: &Client, services: &[String]) -> anyhow::Result<ExitCode> {
    Ok(client
        .delete_each(services, |s| format!("/v1/services/{}", encode(s)))
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_pairs() {
        assert_eq!(
            parse_scale(&["web=5".into(), "api=0".into()]).unwrap(),
            vec![("web".into(), 5), ("api".into(), 0)]
        );
        for bad in ["web", "web=x", "=3", "web=-1"] {
            assert!(parse_scale(&[bad.into()]).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod container_flag_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn spec(line: &str) -> anyhow::Result<ServiceSpec> {
        let words = std::iter::once("create").chain(line.split_whitespace());
        Cli::try_parse_from(words)?.args.spec()
    }

    #[test]
    fn mounts_and_ulimits_reach_the_container_spec() {
        let s = spec(
            "--name w --mount type=bind,source=/srv,target=/data,ro --mount type=tmpfs,target=/t \
             --ulimit nofile=10:20 --ulimit core=0 --ulimit nofile=1024:2048 nginx",
        )
        .expect("spec");
        let Runtime::Container(c) = &s.task.runtime else {
            panic!("container")
        };
        let mounts: Vec<String> = c.mounts.iter().map(Mount::to_string).collect();
        assert_eq!(
            mounts,
            [
                "type=bind,source=/srv,target=/data,readonly",
                "type=tmpfs,target=/t"
            ]
        );
        let ulimits: Vec<String> = c.ulimits.iter().map(Ulimit::to_string).collect();
        assert_eq!(ulimits, ["nofile=1024:2048", "core=0"], "a later one wins");
    }

    #[test]
    fn a_bad_mount_or_ulimit_is_one_line_naming_it() {
        for (line, want) in [
            (
                "--name w --mount type=foo,target=/x nginx",
                r#"invalid --mount "type=foo,target=/x": unknown type "foo" (bind, volume or tmpfs)"#,
            ),
            (
                "--name w --mount type=bind,source=/a,target=/x --mount type=volume,target=/x nginx",
                r#"invalid mount "type=volume,target=/x": another mount has target /x"#,
            ),
            (
                "--name w --ulimit nofile=2:1 nginx",
                r#"invalid --ulimit "nofile=2:1": soft limit 2 is above hard limit 1"#,
            ),
        ] {
            let err = spec(line).expect_err(line).to_string();
            assert!(err.contains(want), "{line}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}
