//! shoal's stored objects as Docker's: services, tasks, nodes, the cluster, `/info`'s
//! `Swarm`. Everything the HTTP layer reads from the store comes in as arguments.
//!
//! A service's `Spec` is rendered over the Docker spec it was created or last updated
//! with, when the caller has it: a section whose meaning is unchanged (shoal's view of the
//! sent section equals shoal's spec) is written back as it was sent, unknown fields
//! included; a section shoal changed since (`shoal service scale`, a rollback) is rendered
//! from shoal's spec, keeping the unknown fields around it.

use super::objects::*;
use super::spec::{self, ContainerSpec, EndpointSpec, HealthConfig, PortConfig, TaskSpec};
use super::to_shoal::{self, TEST_HTTP, TEST_TCP};
use super::{nanos, rfc3339, NETWORK_NAME, RUNTIME_LABEL};
use shoal_api::{self as api, HealthProbe, Runtime};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The one swarm-scoped network shoal reports: VIPs and task addresses are on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmNetwork<'a> {
    pub id: &'a str,
    /// The cluster's VIP pool: a VIP is written with its prefix length.
    pub pool: api::VipPool,
}

/// The Docker spec of `s`, over `sent` (the Docker spec it came from) when there is one.
pub fn service_spec(s: &api::ServiceSpec, sent: Option<&spec::ServiceSpec>) -> spec::ServiceSpec {
    let was = sent.and_then(|d| to_shoal::convert(d, None, &mut Vec::new()).ok());
    let same = |eq: &dyn Fn(&api::ServiceSpec) -> bool| was.as_ref().is_some_and(eq);
    let mut d = sent.cloned().unwrap_or_default();
    let process = matches!(s.task.runtime, Runtime::Process(_));
    if !same(&|w| w.name == s.name) {
        d.name = s.name.clone();
    }
    if !same(&|w| w.labels == s.labels) || d.labels.contains_key(RUNTIME_LABEL) != process {
        d.labels = s.labels.clone();
        if process {
            d.labels.insert(RUNTIME_LABEL.into(), "process".into());
        }
    }
    // A replicated mode without its count reads back with it, as Swarm's does (the docker
    // CLI's progress needs it: `unrecognized service mode`).
    let no_count = matches!(s.mode, api::ServiceMode::Replicated { .. })
        && d.mode
            .replicated
            .as_ref()
            .and_then(|r| r.replicas)
            .is_none();
    if !same(&|w| w.mode == s.mode) || no_count {
        match s.mode {
            api::ServiceMode::Replicated { replicas } => {
                let mut r = d.mode.replicated.take().unwrap_or_default();
                r.replicas = Some(i64::try_from(replicas).unwrap_or(i64::MAX));
                d.mode.replicated = Some(r);
                d.mode.global = None;
            }
            api::ServiceMode::Global => {
                d.mode.replicated = None;
                d.mode.global.get_or_insert_with(Default::default);
            }
        }
    }
    d.task_template = task_spec_over(&s.task, was.as_ref().map(|w| &w.task), d.task_template);
    if !same(&|w| w.update == s.update) {
        d.update_config = Some(update_config(&s.update, d.update_config.take()));
    }
    if !same(&|w| w.rollback == s.rollback) {
        d.rollback_config = Some(update_config(&s.rollback, d.rollback_config.take()));
    }
    let endpoint_same =
        same(&|w| w.endpoint_mode == s.endpoint_mode && ports_key(&w.ports) == ports_key(&s.ports));
    if !endpoint_same || d.endpoint_spec.is_none() {
        d.endpoint_spec = Some(endpoint_spec(s, d.endpoint_spec.take()));
    }
    d
}

/// Ports as a Docker spec can say them (no PROXY protocol).
fn ports_key(ports: &[api::PortConfig]) -> Vec<api::PortConfig> {
    ports
        .iter()
        .map(|p| api::PortConfig {
            proxy_protocol: None,
            ..*p
        })
        .collect()
}

/// The Docker task spec of `t`, over `base`; `was` is shoal's view of `base`.
fn task_spec_over(
    t: &api::TaskTemplate,
    was: Option<&api::TaskTemplate>,
    mut d: TaskSpec,
) -> TaskSpec {
    let same = |eq: &dyn Fn(&api::TaskTemplate) -> bool| was.is_some_and(eq);
    let container_same = same(&|w| {
        (
            &w.runtime,
            &w.env,
            &w.workdir,
            &w.stop_signal,
            w.stop_grace_period,
            &w.health,
            (&w.secrets, &w.configs),
        ) == (
            &t.runtime,
            &t.env,
            &t.workdir,
            &t.stop_signal,
            t.stop_grace_period,
            &t.health,
            (&t.secrets, &t.configs),
        )
    });
    if !container_same || d.container_spec.is_none() {
        d.container_spec = Some(container_spec(
            t,
            d.container_spec.take().unwrap_or_default(),
        ));
    }
    if !same(&|w| w.networks == t.networks) {
        d.networks = (!t.networks.is_empty()).then(|| {
            t.networks
                .iter()
                .map(|n| spec::NetworkAttachmentConfig {
                    target: n.network.clone(),
                    aliases: some_vec(&n.aliases),
                    extra: Default::default(),
                })
                .collect()
        });
    }
    if !same(&|w| w.restart == t.restart) {
        let mut r = d.restart_policy.take().unwrap_or_default();
        r.condition = Some(t.restart.condition.as_str().into());
        r.delay = Some(nanos(t.restart.delay));
        r.max_attempts = Some(i64::from(t.restart.max_attempts));
        r.window = Some(nanos(t.restart.window));
        d.restart_policy = Some(r);
    }
    let placement_same = same(&|w| {
        (&w.constraints, &w.placement_prefs, w.max_replicas_per_node)
            == (&t.constraints, &t.placement_prefs, t.max_replicas_per_node)
    });
    if !placement_same {
        let mut p = d.placement.take().unwrap_or_default();
        p.constraints = Some(t.constraints.clone()).filter(|c| !c.is_empty());
        p.preferences = Some(
            t.placement_prefs
                .iter()
                .map(|pref| spec::PlacementPreference {
                    spread: Some(spec::SpreadOver {
                        spread_descriptor: Some(
                            pref.strip_prefix("spread=").unwrap_or(pref).to_string(),
                        ),
                        extra: Default::default(),
                    }),
                    extra: Default::default(),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|p| !p.is_empty());
        p.max_replicas = Some(t.max_replicas_per_node)
            .filter(|n| *n > 0)
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        d.placement = Some(p);
    }
    if !same(&|w| w.resources == t.resources) {
        let mut r = d.resources.take().unwrap_or_default();
        let (l, v) = (&t.resources.limits, &t.resources.reservations);
        let mut limits = r.limits.take().unwrap_or_default();
        limits.nano_cpus = amount(l.nano_cpus);
        limits.memory_bytes = amount(l.memory_bytes);
        limits.pids = amount(l.pids);
        let mut reservations = r.reservations.take().unwrap_or_default();
        reservations.nano_cpus = amount(v.nano_cpus);
        reservations.memory_bytes = amount(v.memory_bytes);
        r.limits = Some(limits);
        r.reservations = Some(reservations);
        d.resources = Some(r);
    }
    d
}

fn amount(n: u64) -> Option<i64> {
    (n > 0).then(|| i64::try_from(n).unwrap_or(i64::MAX))
}

fn some_vec<T>(v: &[T]) -> Option<Vec<T>>
where
    T: Clone,
{
    (!v.is_empty()).then(|| v.to_vec())
}

/// A secret's or config's file as Docker writes it (`UID`/`GID` as strings), with what was
/// given and nothing more.
fn file_target(r: &api::FileRef) -> spec::FileTarget {
    spec::FileTarget {
        name: r.target.clone(),
        uid: r.uid.map(|n| n.to_string()).unwrap_or_default(),
        gid: r.gid.map(|n| n.to_string()).unwrap_or_default(),
        mode: r.mode,
        extra: Default::default(),
    }
}

/// `t`'s runtime, environment, health check, secrets and configs written over `c`
/// (unknown fields kept).
fn container_spec(t: &api::TaskTemplate, mut c: ContainerSpec) -> ContainerSpec {
    c.env = some_vec(&t.env);
    c.dir = t.workdir.clone();
    c.stop_signal = Some(t.stop_signal.clone());
    c.stop_grace_period = Some(nanos(t.stop_grace_period));
    c.secrets = (!t.secrets.is_empty()).then(|| {
        t.secrets
            .iter()
            .map(|r| spec::SecretReference {
                file: Some(file_target(r)),
                secret_id: r.id.clone(),
                secret_name: r.name.clone(),
                extra: Default::default(),
            })
            .collect()
    });
    c.configs = (!t.configs.is_empty()).then(|| {
        t.configs
            .iter()
            .map(|r| spec::ConfigReference {
                file: Some(file_target(r)),
                config_id: r.id.clone(),
                config_name: r.name.clone(),
                extra: Default::default(),
            })
            .collect()
    });
    let mut no_healthcheck = false;
    match &t.runtime {
        Runtime::Process(p) => {
            let (program, rest) = p
                .command
                .split_first()
                .map_or(("", &[][..]), |(a, b)| (a, b));
            c.image = program.to_string();
            c.command = None;
            let args: Vec<String> = rest.iter().chain(&p.args).cloned().collect();
            c.args = some_vec(&args);
            for f in [&mut c.user, &mut c.hostname] {
                *f = None;
            }
            c.init = None;
            c.read_only = None;
            c.tty = None;
            c.labels = None;
            c.capability_add = None;
            c.capability_drop = None;
            c.mounts = None;
            c.ulimits = None;
        }
        Runtime::Container(k) => {
            c.image = k.image.clone();
            c.command = k.entrypoint.clone();
            c.args = some_vec(&k.args);
            c.user = k.user.clone();
            c.hostname = k.hostname.clone();
            c.init = k.init.then_some(true);
            c.read_only = k.read_only.then_some(true);
            c.tty = k.tty.then_some(true);
            c.labels = (!k.labels.is_empty()).then(|| k.labels.clone());
            c.capability_add = some_vec(&k.cap_add);
            c.capability_drop = some_vec(&k.cap_drop);
            c.mounts = (!k.mounts.is_empty()).then(|| k.mounts.iter().map(mount).collect());
            c.ulimits = (!k.ulimits.is_empty()).then(|| {
                k.ulimits
                    .iter()
                    .map(|u| spec::Ulimit {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                        extra: Default::default(),
                    })
                    .collect()
            });
            no_healthcheck = k.no_healthcheck;
        }
    }
    c.healthcheck = match (&t.health, no_healthcheck) {
        (_, true) => Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        }),
        (None, false) => None,
        (Some(h), false) => Some(HealthConfig {
            test: Some(match &h.probe {
                HealthProbe::Cmd { command } => vec!["CMD-SHELL".into(), command.clone()],
                HealthProbe::Http { path } => vec![TEST_HTTP.into(), path.clone()],
                HealthProbe::Tcp => vec![TEST_TCP.into()],
            }),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            start_period: Some(nanos(h.start_period)).filter(|n| *n > 0),
            retries: Some(i64::from(h.retries)),
            extra: Default::default(),
        }),
    };
    c
}

fn mount(m: &api::Mount) -> spec::Mount {
    let mut out = spec::Mount {
        r#type: Some(m.kind.as_str().into()),
        source: Some(m.source.clone()).filter(|s| !s.is_empty()),
        target: Some(m.target.clone()),
        read_only: m.read_only.then_some(true),
        ..spec::Mount::default()
    };
    if let Some(p) = &m.bind_propagation {
        out.bind_options = Some(spec::BindOptions {
            propagation: Some(p.clone()),
            extra: Default::default(),
        });
    }
    if m.volume_nocopy
        || !m.volume_labels.is_empty()
        || m.volume_driver.is_some()
        || !m.volume_options.is_empty()
    {
        out.volume_options = Some(spec::VolumeOptions {
            no_copy: m.volume_nocopy.then_some(true),
            labels: (!m.volume_labels.is_empty()).then(|| m.volume_labels.clone()),
            driver_config: (m.volume_driver.is_some() || !m.volume_options.is_empty()).then(|| {
                spec::Driver {
                    name: m.volume_driver.clone().unwrap_or_default(),
                    options: (!m.volume_options.is_empty()).then(|| m.volume_options.clone()),
                    extra: Default::default(),
                }
            }),
            extra: Default::default(),
        });
    }
    if m.tmpfs_size > 0 || m.tmpfs_mode.is_some() {
        out.tmpfs_options = Some(spec::TmpfsOptions {
            size_bytes: amount(m.tmpfs_size),
            mode: m.tmpfs_mode,
            extra: Default::default(),
        });
    }
    out
}

fn update_config(u: &api::UpdateConfig, base: Option<spec::UpdateConfig>) -> spec::UpdateConfig {
    let mut d = base.unwrap_or_default();
    d.parallelism = Some(i64::try_from(u.parallelism).unwrap_or(i64::MAX));
    d.delay = Some(nanos(u.delay));
    d.failure_action = Some(u.failure_action.as_str().into());
    d.monitor = Some(nanos(u.monitor));
    d.max_failure_ratio = Some(u.max_failure_ratio);
    d.order = Some(u.order.as_str().into());
    d
}

fn endpoint_spec(s: &api::ServiceSpec, base: Option<EndpointSpec>) -> EndpointSpec {
    let mut d = base.unwrap_or_default();
    d.mode = Some(s.endpoint_mode.as_str().into());
    d.ports = some_vec(&s.ports.iter().map(port).collect::<Vec<_>>());
    d
}

fn port(p: &api::PortConfig) -> PortConfig {
    PortConfig {
        name: None,
        protocol: Some(p.protocol.as_str().into()),
        target_port: Some(i64::from(p.target)),
        published_port: p.published.map(i64::from),
        publish_mode: Some(p.mode.as_str().into()),
        extra: Default::default(),
    }
}

/// The Docker specs a service was created or last updated with, when the caller kept them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentSpecs<'a> {
    pub spec: Option<&'a spec::ServiceSpec>,
    pub previous: Option<&'a spec::ServiceSpec>,
}

/// A stored service as `GET /services/{id}` shows it; `status` when the request asked for
/// `status=true`.
pub fn service(
    s: &api::Service,
    sent: SentSpecs<'_>,
    status: Option<ServiceStatus>,
    net: &SwarmNetwork<'_>,
) -> Service {
    let spec = service_spec(&s.spec, sent.spec);
    let endpoint_spec = spec.endpoint_spec.clone().unwrap_or_default();
    let virtual_ips = match (s.vip, s.spec.endpoint_mode) {
        (Some(vip), api::EndpointMode::Vip) => vec![EndpointVirtualIp {
            network_id: net.id.to_string(),
            addr: vip_cidr(vip, net.pool),
        }],
        _ => Vec::new(),
    };
    Service {
        id: s.id.clone(),
        version: ObjectVersion { index: s.version },
        created_at: rfc3339(s.created_at),
        updated_at: rfc3339(s.updated_at),
        previous_spec: s
            .previous_spec
            .as_ref()
            .map(|p| service_spec(p, sent.previous)),
        spec,
        endpoint: Endpoint {
            spec: EndpointSpec {
                mode: endpoint_spec.mode,
                ports: endpoint_spec.ports,
                extra: Default::default(),
            },
            ports: s
                .ports
                .iter()
                .filter(|p| p.is_published())
                .map(port)
                .collect(),
            virtual_ips,
        },
        update_status: s.update_status.as_ref().map(|u| UpdateStatus {
            state: u.state.as_str().into(),
            started_at: Some(rfc3339(u.started_at)),
            completed_at: u.completed_at.map(rfc3339),
            message: u.message.clone(),
        }),
        service_status: status,
    }
}

/// `addr` (an IP, or `ip:port`) as a host prefix: `10.0.0.5/32`.
fn host_prefix(addr: &str) -> Option<String> {
    let ip = addr
        .parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(match ip {
        IpAddr::V4(ip) => format!("{ip}/32"),
        IpAddr::V6(ip) => format!("{ip}/128"),
    })
}

/// The task's own address, when it has one (a container's on its engine's network), as
/// a CIDR string; `None` for a process task, which shares its node's address, and for an
/// address that is not `IP/LEN` (clients refuse the whole list over one such entry).
fn own_addr(t: &api::Task) -> Option<String> {
    let Some(api::RuntimeStatus::Container {
        addr: Some(addr), ..
    }) = &t.status.runtime
    else {
        return None;
    };
    let (ip, len) = addr.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then(|| format!("{ip}/{len}"))
}

/// A stored task as `GET /tasks` shows it. `version` is its `Version.Index`; `node_addr`
/// the address of its node, its address on the network unless it has one of its own (a
/// container task: its container's); `sent` the `TaskTemplate` of the
/// service's Docker spec, when the caller has it. Passing the current one is safe for a
/// task of an older version: only the sections that still mean the task's template are
/// kept, the others are rendered from it.
pub fn task(
    t: &api::Task,
    version: u64,
    node_addr: Option<&str>,
    sent: Option<&TaskSpec>,
    net: &SwarmNetwork<'_>,
) -> Task {
    let process = matches!(t.spec.runtime, Runtime::Process(_));
    let was = sent.and_then(|d| to_shoal::task_template(d, process, &mut Vec::new()).ok());
    let spec = task_spec_over(&t.spec, was.as_ref(), sent.cloned().unwrap_or_default());
    let addr = own_addr(t).or_else(|| {
        node_addr
            .or(t.endpoint.as_ref().map(|e| e.addr.as_str()))
            .and_then(host_prefix)
    });
    let container_status = match (&t.status.runtime, t.status.exit_code) {
        (None, None) => None,
        (rt, exit) => Some(ContainerStatus {
            container_id: match rt {
                Some(api::RuntimeStatus::Container { id, .. }) => id.clone(),
                _ => String::new(),
            },
            pid: match rt {
                Some(api::RuntimeStatus::Process { pid, .. }) => *pid,
                _ => 0,
            },
            exit_code: exit.unwrap_or(0),
        }),
    };
    let host_ports = t
        .ports
        .iter()
        .filter(|p| p.mode == api::PublishMode::Host)
        .map(|p| PortConfig {
            published_port: p
                .published
                .or_else(|| t.endpoint.as_ref()?.host_port(p.target, p.protocol))
                .map(i64::from),
            ..port(p)
        })
        .collect();
    Task {
        id: t.id.clone(),
        version: ObjectVersion { index: version },
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.status.timestamp.max(t.created_at)),
        labels: BTreeMap::new(),
        spec,
        service_id: t.service_id.clone(),
        slot: t.slot,
        node_id: t.node_id.clone().unwrap_or_default(),
        status: TaskStatus {
            timestamp: rfc3339(t.status.timestamp),
            state: t.status.state.as_str().into(),
            message: t.status.message.clone(),
            err: t.status.err.clone().unwrap_or_default(),
            container_status,
            port_status: PortStatus { ports: host_ports },
        },
        desired_state: t.desired_state.as_str().into(),
        networks_attachments: addr
            .map(|a| {
                vec![NetworkAttachment {
                    network: network(net),
                    addresses: vec![a],
                }]
            })
            .unwrap_or_default(),
    }
}

fn network(net: &SwarmNetwork<'_>) -> Network {
    Network {
        id: net.id.to_string(),
        spec: NetworkSpec {
            name: NETWORK_NAME.into(),
            labels: BTreeMap::new(),
        },
    }
}

/// A stored node as `GET /nodes` shows it; `version` is its `Version.Index`.
pub fn node(n: &api::Node, version: u64) -> Node {
    let manager_status = (n.role == api::NodeRole::Manager).then(|| {
        let status = n.manager_status.as_deref().unwrap_or("");
        ManagerStatus {
            leader: status.eq_ignore_ascii_case("leader"),
            reachability: match status.to_ascii_lowercase().as_str() {
                "leader" | "reachable" => "reachable",
                "unreachable" => "unreachable",
                _ => "unknown",
            }
            .into(),
            addr: n.control_addr.clone().unwrap_or_default(),
        }
    });
    Node {
        id: n.id.clone(),
        version: ObjectVersion { index: version },
        created_at: rfc3339(n.created_at),
        updated_at: rfc3339(n.updated_at),
        spec: NodeSpec {
            name: String::new(),
            labels: n.labels.clone(),
            role: n.role.as_str().into(),
            availability: n.availability.as_str().into(),
        },
        description: NodeDescription {
            hostname: n.hostname.clone(),
            platform: Platform {
                architecture: n.description.arch.clone(),
                os: "linux".into(),
            },
            resources: NodeResources {
                nano_cpus: n.description.nano_cpus,
                memory_bytes: n.description.memory_bytes,
            },
            engine: EngineDescription {
                engine_version: n
                    .description
                    .engine
                    .as_ref()
                    .map(|e| e.version.clone())
                    .unwrap_or_else(|| n.engine_version.clone()),
            },
        },
        status: NodeStatus {
            state: n.state.as_str().into(),
            message: String::new(),
            addr: n
                .addr
                .parse::<SocketAddr>()
                .map(|s| s.ip().to_string())
                .unwrap_or_else(|_| n.addr.clone()),
        },
        manager_status,
    }
}

/// The cluster as `/swarm` and `/info` show it; `version` is its `Version.Index`,
/// `updated_at` when its settings last changed.
pub fn cluster_info(c: &api::Cluster, version: u64, updated_at: u64) -> ClusterInfo {
    ClusterInfo {
        id: c.id.clone(),
        version: ObjectVersion { index: version },
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(updated_at.max(c.created_at)),
        spec: SwarmSpec {
            name: "default".into(),
            labels: BTreeMap::new(),
            dispatcher: DispatcherConfig {
                heartbeat_period: c.heartbeat_period_ms.saturating_mul(1_000_000),
            },
            ca_config: CaConfig {
                node_cert_expiry: c.cert_lifetime_secs.saturating_mul(1_000_000_000),
            },
            encryption_config: EncryptionConfig {
                auto_lock_managers: c.autolock_key.is_some(),
            },
        },
        default_addr_pool: vec![c.vip_pool().to_string()],
    }
}

/// `GET /swarm`: the cluster and its join tokens (whole `SWMTKN-1-...` tokens).
pub fn swarm(c: &api::Cluster, version: u64, updated_at: u64, tokens: JoinTokens) -> Swarm {
    Swarm {
        cluster: cluster_info(c, version, updated_at),
        join_tokens: tokens,
    }
}

/// Where this node stands in a cluster, `/info`'s `Swarm.LocalNodeState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalNodeState {
    Inactive,
    Pending,
    Active,
    Error,
    Locked,
}

impl LocalNodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalNodeState::Inactive => "inactive",
            LocalNodeState::Pending => "pending",
            LocalNodeState::Active => "active",
            LocalNodeState::Error => "error",
            LocalNodeState::Locked => "locked",
        }
    }
}

/// `/info`'s `Swarm` for this node (`local`, none when it is in no cluster), with the
/// cluster's `nodes` and, on a manager, its `cluster`.
pub fn swarm_info(
    local: Option<&api::Node>,
    state: LocalNodeState,
    nodes: &[api::Node],
    cluster: Option<ClusterInfo>,
) -> SwarmInfo {
    let Some(me) = local else {
        return SwarmInfo {
            local_node_state: state.as_str().into(),
            ..SwarmInfo::default()
        };
    };
    let control = state == LocalNodeState::Active && me.role == api::NodeRole::Manager;
    let managers: Vec<&api::Node> = nodes
        .iter()
        .filter(|n| n.role == api::NodeRole::Manager)
        .collect();
    SwarmInfo {
        node_id: me.id.clone(),
        node_addr: node(me, 0).status.addr,
        local_node_state: state.as_str().into(),
        control_available: control,
        error: String::new(),
        remote_managers: managers
            .iter()
            .filter_map(|n| {
                Some(Peer {
                    node_id: n.id.clone(),
                    addr: n.control_addr.clone()?,
                })
            })
            .collect(),
        nodes: nodes.len() as u64,
        managers: managers.len() as u64,
        cluster: if control { cluster } else { None },
    }
}

/// The address a VIP of `pool` is written as, `10.96.0.2/16`.
pub fn vip_cidr(vip: Ipv4Addr, pool: api::VipPool) -> String {
    format!("{vip}/{}", pool.prefix)
}
