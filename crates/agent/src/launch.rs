//! From an assigned task to the exact command, environment and ports to start it with.

use crate::LaunchSpec;
use shoal_api::task::EndpointPort;
use shoal_api::task_log::log_path;
use shoal_api::template::{expand, TemplateValues};
use shoal_api::{PortConfig, Runtime, SpecError, Task, TaskEndpoint};
use std::collections::BTreeMap;
use std::path::Path;

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
    /// Turn the image's HEALTHCHECK off.
    pub no_healthcheck: bool,
}

/// Label keys every container of a task carries (the node finds its containers by them).
pub const LABEL_NODE: &str = "com.shoal.node.id";
pub const LABEL_TASK: &str = "com.shoal.task.id";
pub const LABEL_SERVICE: &str = "com.shoal.service.name";
pub const LABEL_SERVICE_ID: &str = "com.shoal.service.id";
pub const LABEL_SLOT: &str = "com.shoal.task.slot";
pub const LABEL_TASK_NAME: &str = "com.shoal.task.name";
pub const LABEL_CLUSTER: &str = "com.shoal.cluster.id";

/// Build the launch spec: argv and env with templates expanded, plus the variables that
/// name the task and give it its ports (`PORT` is the first target's host port,
/// `SHOAL_PORT_<target>` one per target).
pub fn launch_spec(
    task: &Task,
    node: &NodeIdentity,
    endpoint: &TaskEndpoint,
    logs_dir: &Path,
) -> Result<LaunchSpec, SpecError> {
    let values = TemplateValues {
        task_id: task.id.clone(),
        task_name: task.name(),
        task_slot: task.slot.to_string(),
        service_id: task.service_id.clone(),
        service_name: task.service_name.clone(),
        node_id: node.id.clone(),
        node_hostname: node.hostname.clone(),
    };
    let mut env: Vec<(String, String)> = vec![
        ("SHOAL_TASK_ID".into(), task.id.clone()),
        ("SHOAL_TASK_NAME".into(), task.name()),
        ("SHOAL_TASK_SLOT".into(), task.slot.to_string()),
        ("SHOAL_SERVICE_ID".into(), task.service_id.clone()),
        ("SHOAL_SERVICE_NAME".into(), task.service_name.clone()),
        ("SHOAL_NODE_ID".into(), node.id.clone()),
        ("SHOAL_NODE_HOSTNAME".into(), node.hostname.clone()),
    ];
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
                no_healthcheck: c.no_healthcheck,
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

    #[test]
    fn env_names_the_task_and_gives_ports() {
        let mut spec = TaskTemplate::with_command(vec!["shoal".into()]);
        spec.process_mut().expect("process").args =
            vec!["whoami".into(), "--name=r{{.Task.Slot}}".into()];
        spec.env = vec!["GREETING=hi {{.Service.Name}}".into(), "PORT=1".into()];
        let task = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 2,
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
        };
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
        let l = launch_spec(&task, &node, &ep, Path::new("/tmp")).unwrap();
        assert_eq!(l.argv, vec!["shoal", "whoami", "--name=r2"]);
        let get = |k: &str| l.env.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        assert_eq!(get("SHOAL_TASK_NAME").as_deref(), Some("web.2.t1"));
        assert_eq!(get("SHOAL_TASK_SLOT").as_deref(), Some("2"));
        assert_eq!(get("SHOAL_PORT_80").as_deref(), Some("31000"));
        assert_eq!(get("GREETING").as_deref(), Some("hi web"));
        assert_eq!(get("PORT").as_deref(), Some("1"), "the spec may override");
        assert_eq!(l.log_path, Path::new("/tmp/t1.log"));
    }
}
