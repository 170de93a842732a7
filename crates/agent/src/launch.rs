//! From an assigned task to the exact command, environment and ports to start it with.

use crate::LaunchSpec;
use shoal_api::task::EndpointPort;
use shoal_api::task_log::log_path;
use shoal_api::template::{expand, TemplateValues};
use shoal_api::{
    HealthCheck, HealthProbe, Mount, PortConfig, Runtime, SpecError, Task, TaskEndpoint,
    TaskTemplate, Ulimit,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Who this node is, for task environment and templates.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub id: String,
    /// The cluster this node belongs to (labels of its containers name it).
    pub cluster_id: String,
    pub hostname: String,
    /// Address the node's tasks are reached at.
    pub addr: String,
}

/// What a container task needs beyond a process's argv, env and workdir.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerLaunch {
    pub image: String,
    /// Replaces the image's ENTRYPOINT when set.
    pub entrypoint: Option<Vec<String>>,
    /// Labels naming cluster, node, service, task and slot, plus the service's own.
    pub labels: BTreeMap<String, String>,
    /// Target port → host port, per protocol.
    pub ports: Vec<EndpointPort>,
    pub stop_signal: String,
    /// CPU, memory and PID limits the engine enforces (0: none).
    pub limits: shoal_api::resources::ResourceLimits,
    pub user: Option<String>,
    /// With its templates expanded.
    pub hostname: Option<String>,
    pub init: bool,
    pub read_only: bool,
    pub tty: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// The health check the engine runs in the container.
    pub health: ContainerHealth,
    /// Its resolvers: the node's DNS server (service names, then the host's resolvers).
    pub dns: Vec<std::net::IpAddr>,
    /// With the templates of their source and target expanded.
    pub mounts: Vec<Mount>,
    pub ulimits: Vec<Ulimit>,
}

/// The health check a container's engine runs for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ContainerHealth {
    /// The image's HEALTHCHECK, if it has one.
    #[default]
    Image,
    /// None: `--no-healthcheck`, or the service's check runs on the node instead.
    Off,
    /// The service's command check, run in the container by the engine (as Swarm does).
    Cmd {
        command: String,
        interval: Duration,
        timeout: Duration,
        retries: u32,
        start_period: Duration,
    },
}

/// Where a task's health is checked. A container's engine runs a command check itself,
/// in the container, so the command sees the container's file system, as with Swarm; an
/// http or tcp check runs on the node against the task's host port, and replaces the
/// image's HEALTHCHECK. `--no-healthcheck` turns off both. A process's check runs on the
/// node.
pub fn health_plan(t: &TaskTemplate) -> (ContainerHealth, Option<HealthCheck>) {
    let Runtime::Container(c) = &t.runtime else {
        return (ContainerHealth::Image, t.health.clone());
    };
    if c.no_healthcheck {
        return (ContainerHealth::Off, None);
    }
    match &t.health {
        None => (ContainerHealth::Image, None),
        Some(h) => match &h.probe {
            HealthProbe::Cmd { command } => (
                ContainerHealth::Cmd {
                    command: command.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    retries: h.retries,
                    start_period: h.start_period,
                },
                None,
            ),
            HealthProbe::Http { .. } | HealthProbe::Tcp => (ContainerHealth::Off, Some(h.clone())),
        },
    }
}

/// The check the agent runs on the node for a task, if any (see [`health_plan`]).
pub fn node_check(t: &TaskTemplate) -> Option<HealthCheck> {
    health_plan(t).1
}

/// Label keys every container of a task carries (the node finds its containers by them).
pub const LABEL_NODE: &str = "com.shoal.node.id";
pub const LABEL_TASK: &str = "com.shoal.task.id";
pub const LABEL_SERVICE: &str = "com.shoal.service.name";
pub const LABEL_SERVICE_ID: &str = "com.shoal.service.id";
pub const LABEL_SLOT: &str = "com.shoal.task.slot";
pub const LABEL_TASK_NAME: &str = "com.shoal.task.name";
pub const LABEL_CLUSTER: &str = "com.shoal.cluster.id";

/// What `{{.Task.Slot}}`-style placeholders stand for in `task` on `node`.
pub fn template_values(task: &Task, node: &NodeIdentity) -> TemplateValues {
    TemplateValues {
        task_id: task.id.clone(),
        task_name: task.name(),
        task_slot: task.slot.to_string(),
        service_id: task.service_id.clone(),
        service_name: task.service_name.clone(),
        node_id: node.id.clone(),
        node_hostname: node.hostname.clone(),
    }
}

/// Build the launch spec: argv and env with templates expanded, plus the variables that
/// name the task and give it its ports (`PORT` is the first target's host port,
/// `SHOAL_PORT_<target>` one per target).
pub fn launch_spec(
    task: &Task,
    node: &NodeIdentity,
    resolver: Option<std::net::IpAddr>,
    endpoint: &TaskEndpoint,
    logs_dir: &Path,
) -> Result<LaunchSpec, SpecError> {
    let values = template_values(task, node);
    let mut env: Vec<(String, String)> = vec![
        ("SHOAL_TASK_ID".into(), task.id.clone()),
        ("SHOAL_TASK_NAME".into(), task.name()),
        ("SHOAL_TASK_SLOT".into(), task.slot.to_string()),
        ("SHOAL_SERVICE_ID".into(), task.service_id.clone()),
        ("SHOAL_SERVICE_NAME".into(), task.service_name.clone()),
        ("SHOAL_NODE_ID".into(), node.id.clone()),
        ("SHOAL_NODE_HOSTNAME".into(), node.hostname.clone()),
    ];
    if let Some(ip) = resolver {
        // A process resolves with the host's resolver; this names the cluster's.
        env.push(("SHOAL_DNS".into(), ip.to_string()));
    }
    // A process listens on its host port; a container on its target port, which the
    // engine publishes on the host port.
    let in_container = matches!(task.spec.runtime, Runtime::Container(_));
    let listen = |p: &EndpointPort| if in_container { p.target } else { p.host_port };
    if let Some(first) = endpoint.ports.first() {
        env.push(("PORT".into(), listen(first).to_string()));
    }
    for p in &endpoint.ports {
        let key = format!("SHOAL_PORT_{}", p.target);
        if !env.iter().any(|(k, _)| *k == key) {
            env.push((key, listen(p).to_string()));
        }
    }
    for entry in &task.spec.env {
        let expanded = expand(entry, &values)?;
        if let Some((k, v)) = expanded.split_once('=') {
            env.retain(|(existing, _)| existing != k);
            env.push((k.to_string(), v.to_string()));
        }
    }
    let (mut argv, args) = match &task.spec.runtime {
        Runtime::Process(p) => (p.command.clone(), &p.args),
        Runtime::Container(c) => (c.entrypoint.clone().unwrap_or_default(), &c.args),
    };
    for a in args {
        argv.push(expand(a, &values)?);
    }
    let container = match &task.spec.runtime {
        Runtime::Container(c) => {
            // The service's container labels first: shoal's own names win.
            let mut labels = c.labels.clone();
            labels.insert(LABEL_NODE.to_string(), node.id.clone());
            labels.insert(LABEL_TASK.to_string(), task.id.clone());
            labels.insert(LABEL_TASK_NAME.to_string(), task.name());
            labels.insert(LABEL_SERVICE.to_string(), task.service_name.clone());
            labels.insert(LABEL_SERVICE_ID.to_string(), task.service_id.clone());
            labels.insert(LABEL_SLOT.to_string(), task.slot.to_string());
            if !node.cluster_id.is_empty() {
                labels.insert(LABEL_CLUSTER.to_string(), node.cluster_id.clone());
            }
            Some(ContainerLaunch {
                image: c.image.clone(),
                entrypoint: c.entrypoint.clone(),
                labels,
                ports: endpoint.ports.clone(),
                stop_signal: task.spec.stop_signal.clone(),
                limits: task.spec.resources.limits,
                user: c.user.clone(),
                hostname: c
                    .hostname
                    .as_ref()
                    .map(|h| expand(h, &values))
                    .transpose()?,
                init: c.init,
                read_only: c.read_only,
                tty: c.tty,
                cap_add: c.cap_add.clone(),
                cap_drop: c.cap_drop.clone(),
                health: health_plan(&task.spec).0,
                mounts: c
                    .mounts
                    .iter()
                    .map(|m| {
                        Ok(Mount {
                            source: expand(&m.source, &values)?,
                            target: expand(&m.target, &values)?,
                            ..m.clone()
                        })
                    })
                    .collect::<Result<_, SpecError>>()?,
                ulimits: c.ulimits.clone(),
                dns: resolver.into_iter().collect(),
            })
        }
        Runtime::Process(_) => None,
    };
    Ok(LaunchSpec {
        task_id: task.id.clone(),
        argv: match container {
            // The entrypoint goes to the engine apart; argv is the command after it.
            Some(_) => argv.split_off(entry_len(task)),
            None => argv,
        },
        env,
        workdir: task.spec.workdir.clone(),
        log_path: log_path(logs_dir, &task.id, 0),
        container,
    })
}

/// How many words of the expanded argv are the container entrypoint.
fn entry_len(task: &Task) -> usize {
    match &task.spec.runtime {
        Runtime::Container(c) => c.entrypoint.as_ref().map_or(0, Vec::len),
        Runtime::Process(_) => 0,
    }
}

/// Targets that need a host port, each once (a TCP and a UDP port on one target share it).
pub fn targets(ports: &[PortConfig]) -> Vec<&PortConfig> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for p in ports {
        if !seen.contains(&p.target) {
            seen.push(p.target);
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::task::EndpointPort;
    use shoal_api::{Protocol, TaskState, TaskStatus, TaskTemplate};

    /// Task `t1` of service `web`, slot `slot`, assigned to node `n1`.
    fn assigned(spec: TaskTemplate, slot: u64) -> Task {
        Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot,
            node_id: Some("n1".into()),
            spec_version: 1,
            spec,
            ports: vec![],
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Assigned, 0, ""),
            endpoint: None,
            created_at: 0,
            attempt: 0,
            quick_exits: 0,
            pending_reason: None,
        }
    }

    #[test]
    fn env_names_the_task_and_gives_ports() {
        let mut spec = TaskTemplate::with_command(vec!["shoal".into()]);
        spec.process_mut().expect("process").args =
            vec!["whoami".into(), "--name=r{{.Task.Slot}}".into()];
        spec.env = vec!["GREETING=hi {{.Service.Name}}".into(), "PORT=1".into()];
        let task = assigned(spec, 2);
        let node = NodeIdentity {
            id: "n1".into(),
            cluster_id: "c1".into(),
            hostname: "h".into(),
            addr: "127.0.0.1".into(),
        };
        let ep = TaskEndpoint {
            addr: "127.0.0.1".into(),
            ports: vec![EndpointPort {
                target: 80,
                host_port: 31000,
                protocol: Protocol::Tcp,
            }],
        };
        let l = launch_spec(&task, &node, None, &ep, Path::new("/tmp")).unwrap();
        assert_eq!(l.argv, vec!["shoal", "whoami", "--name=r2"]);
        let get = |k: &str| l.env.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        assert_eq!(get("SHOAL_TASK_NAME").as_deref(), Some("web.2.t1"));
        assert_eq!(get("SHOAL_TASK_SLOT").as_deref(), Some("2"));
        assert_eq!(get("SHOAL_PORT_80").as_deref(), Some("31000"));
        assert_eq!(get("GREETING").as_deref(), Some("hi web"));
        assert_eq!(get("PORT").as_deref(), Some("1"), "the spec may override");
        assert_eq!(l.log_path, Path::new("/tmp/t1.log"));
    }

    #[test]
    fn a_command_check_of_a_container_runs_in_it_and_others_on_the_node() {
        let cmd = HealthCheck::new(HealthProbe::Cmd {
            command: "test -f /ready".into(),
        });
        let http = HealthCheck::new(HealthProbe::Http { path: "/".into() });
        let container = |health: Option<&HealthCheck>, off: bool| {
            let mut t = TaskTemplate::with_image("nginx");
            t.health = health.cloned();
            if let Runtime::Container(c) = &mut t.runtime {
                c.no_healthcheck = off;
            }
            t
        };
        let mut process = TaskTemplate::with_command(vec!["shoal".into()]);
        process.health = Some(cmd.clone());
        let in_container = ContainerHealth::Cmd {
            command: "test -f /ready".into(),
            interval: cmd.interval,
            timeout: cmd.timeout,
            retries: cmd.retries,
            start_period: cmd.start_period,
        };
        let cases = [
            (
                "process: on the node",
                process,
                ContainerHealth::Image,
                Some(&cmd),
            ),
            (
                "no check: the image's",
                container(None, false),
                ContainerHealth::Image,
                None,
            ),
            (
                "cmd: in the container",
                container(Some(&cmd), false),
                in_container,
                None,
            ),
            (
                "http: on the node, image's off",
                container(Some(&http), false),
                ContainerHealth::Off,
                Some(&http),
            ),
            (
                "--no-healthcheck: none",
                container(None, true),
                ContainerHealth::Off,
                None,
            ),
            (
                "--no-healthcheck wins",
                container(Some(&cmd), true),
                ContainerHealth::Off,
                None,
            ),
        ];
        for (name, t, engine, node) in cases {
            assert_eq!(health_plan(&t), (engine, node.cloned()), "{name}");
        }
    }

    #[test]
    fn mount_templates_are_expanded_per_task() {
        let mut spec = TaskTemplate::with_image("nginx");
        if let Runtime::Container(c) = &mut spec.runtime {
            c.mounts.push(
                Mount::parse("type=volume,source=data-{{.Task.Slot}},target=/d/{{.Service.Name}}")
                    .expect("mount"),
            );
            c.ulimits
                .push(Ulimit::parse("nofile=10:20").expect("ulimit"));
        }
        let task = assigned(spec, 3);
        let node = NodeIdentity {
            id: "n1".into(),
            cluster_id: String::new(),
            hostname: "h".into(),
            addr: "127.0.0.1".into(),
        };
        let ep = TaskEndpoint {
            addr: "127.0.0.1".into(),
            ports: vec![],
        };
        let l = launch_spec(&task, &node, None, &ep, Path::new("/tmp")).expect("launch");
        let c = l.container.expect("container");
        assert_eq!(c.mounts[0].source, "data-3");
        assert_eq!(c.mounts[0].target, "/d/web");
        assert_eq!(c.ulimits[0].to_string(), "nofile=10:20");
        assert_eq!(c.health, ContainerHealth::Image);
    }
}
