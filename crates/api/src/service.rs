//! Services: the spec a user writes (`ServiceSpec`) and the stored object (`Service`).

use crate::duration::millis;
use crate::limits::{
    check_count, check_health_duration, check_labels, check_text, MAX_ARGS, MAX_ARG_LEN,
    MAX_CONSTRAINTS, MAX_ENV, MAX_EXEC_BYTES, MAX_EXPRESSION_LEN, MAX_PATH_LEN,
    MAX_PLACEMENT_PREFS, MAX_PORTS, MAX_REPLICAS, MIN_HEALTH_INTERVAL, MIN_HEALTH_TIMEOUT,
};
use crate::runtime::{ContainerSpec, ProcessSpec, Runtime};
use crate::update::{ROLLBACK_FIELDS, UPDATE_FIELDS};
use crate::{Constraint, PortConfig, Resources, SpecError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    Replicated { replicas: u64 },
    Global,
}

impl Default for ServiceMode {
    fn default() -> Self {
        ServiceMode::Replicated { replicas: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    #[default]
    Any,
    OnFailure,
    None,
}

impl RestartCondition {
    pub fn parse(text: &str) -> Result<RestartCondition, SpecError> {
        match text {
            "any" => Ok(RestartCondition::Any),
            "on-failure" => Ok(RestartCondition::OnFailure),
            "none" => Ok(RestartCondition::None),
            _ => Err(SpecError::invalid(
                "restart-condition",
                text,
                "expected any, on-failure or none",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartCondition::Any => "any",
            RestartCondition::OnFailure => "on-failure",
            RestartCondition::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(default)]
    pub condition: RestartCondition,
    #[serde(with = "millis", default = "default_restart_delay")]
    pub delay: Duration,
    /// 0 means unlimited.
    #[serde(default)]
    pub max_attempts: u32,
    /// A task that ran at least this long resets the attempt count (0: never resets).
    #[serde(with = "millis", default)]
    pub window: Duration,
}

fn default_restart_delay() -> Duration {
    Duration::from_secs(5)
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            condition: RestartCondition::Any,
            delay: default_restart_delay(),
            max_attempts: 0,
            window: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthProbe {
    /// A shell command run with the task's environment; exit 0 is healthy.
    Cmd { command: String },
    /// An HTTP GET to the task's first target port; 2xx/3xx is healthy.
    Http { path: String },
    /// A TCP connect to the task's first target port.
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: HealthProbe,
    #[serde(with = "millis", default = "default_health_interval")]
    pub interval: Duration,
    #[serde(with = "millis", default = "default_health_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_health_retries")]
    pub retries: u32,
    #[serde(with = "millis", default)]
    pub start_period: Duration,
}

fn default_health_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_health_retries() -> u32 {
    3
}

impl HealthCheck {
    pub fn new(probe: HealthProbe) -> HealthCheck {
        HealthCheck {
            probe,
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            retries: default_health_retries(),
            start_period: Duration::ZERO,
        }
    }
}

/// What each task of the service runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskTemplate {
    /// What each task runs: a process (`command`, `args`) or a container (`image`...).
    #[serde(default)]
    pub runtime: Runtime,
    /// `KEY=VALUE` entries; `{{.Task.Slot}}`-style templates are expanded per task.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    #[serde(with = "millis", default = "default_stop_grace")]
    pub stop_grace_period: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Spread preferences, applied in order: `spread=node.labels.NAME` (or `node.id`,
    /// `node.hostname`) balances the service's tasks over the values of that attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_prefs: Vec<String>,
    /// Most live tasks of the service one node may run (0 = unlimited; replicated only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_replicas_per_node: u64,
    /// CPU, memory and PID limits, and the CPU and memory each task reserves on its node.
    #[serde(default, skip_serializing_if = "Resources::is_none")]
    pub resources: Resources,
    /// Each task's share of new connections against the service's other tasks
    /// (`--lb-weight`, default [`DEFAULT_WEIGHT`]); 0: only when no other task is left.
    /// A rolling update that changes it gives the new tasks their weight as they come, so
    /// a paused or slow rollout is a canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_weight: Option<u32>,
    /// The cluster networks the service is attached to, with its aliases on each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::NetworkAttachment>,
    /// The secrets each task gets as files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::FileRef>,
    /// The configs each task gets as files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<crate::FileRef>,
}

/// How long a UDP flow of a service without an idle timeout lives without traffic.
pub const UDP_IDLE_DEFAULT: Duration = Duration::from_secs(30);
/// A task's balancing weight when its template names none.
pub const DEFAULT_WEIGHT: u32 = 100;
/// The largest balancing weight a template may give its tasks.
pub const MAX_WEIGHT: u32 = 10_000;
/// The longest idle timeout a service may set.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_stop_signal() -> String {
    "SIGTERM".into()
}
fn default_stop_grace() -> Duration {
    Duration::from_secs(10)
}

impl TaskTemplate {
    /// A template that runs `command` as a process.
    pub fn with_command(command: Vec<String>) -> TaskTemplate {
        TaskTemplate::with_runtime(Runtime::Process(ProcessSpec {
            command,
            args: Vec::new(),
        }))
    }

    /// A template that runs `image` as a container with the image's own command.
    pub fn with_image(image: impl Into<String>) -> TaskTemplate {
        TaskTemplate::with_runtime(Runtime::Container(ContainerSpec {
            image: image.into(),
            ..ContainerSpec::default()
        }))
    }

    fn with_runtime(runtime: Runtime) -> TaskTemplate {
        TaskTemplate {
            runtime,
            stop_signal: default_stop_signal(),
            stop_grace_period: default_stop_grace(),
            ..TaskTemplate::default()
        }
    }

    /// The command line as given: a process's command and args; a container's entrypoint
    /// override, if any, and args (empty when the image's own command runs).
    pub fn argv(&self) -> Vec<String> {
        match &self.runtime {
            Runtime::Process(p) => p.command.iter().chain(&p.args).cloned().collect(),
            Runtime::Container(c) => c
                .entrypoint
                .iter()
                .flatten()
                .chain(&c.args)
                .cloned()
                .collect(),
        }
    }

    /// The container image, for a container task.
    pub fn image(&self) -> Option<&str> {
        match &self.runtime {
            Runtime::Container(c) => Some(&c.image),
            Runtime::Process(_) => None,
        }
    }

    /// The process to run, for a process task, to change.
    pub fn process_mut(&mut self) -> Option<&mut ProcessSpec> {
        match &mut self.runtime {
            Runtime::Process(p) => Some(p),
            Runtime::Container(_) => None,
        }
    }

    /// The process to run, for a process task.
    pub fn process(&self) -> Option<&ProcessSpec> {
        match &self.runtime {
            Runtime::Process(p) => Some(p),
            Runtime::Container(_) => None,
        }
    }

    /// Every word of the command line, whatever the runtime.
    fn words(&self) -> Vec<&String> {
        match &self.runtime {
            Runtime::Process(p) => p.command.iter().chain(&p.args).collect(),
            Runtime::Container(c) => c.entrypoint.iter().flatten().chain(&c.args).collect(),
        }
    }
}

impl TaskTemplate {
    /// Check the template of a service in `mode`; `published` says whether it publishes a
    /// port (http and tcp probes need one).
    fn validate(&self, mode: &ServiceMode, published: bool) -> Result<(), SpecError> {
        let t = self;
        check_count(
            "networks",
            t.networks.len(),
            crate::network::MAX_ATTACHMENTS,
        )?;
        for n in &t.networks {
            check_count(
                "network aliases",
                n.aliases.len(),
                crate::network::MAX_ALIASES,
            )?;
            n.aliases
                .iter()
                .try_for_each(|a| crate::network::check_alias(a))?;
        }
        check_count("secrets", t.secrets.len(), crate::secret::MAX_REFS)?;
        check_count("configs", t.configs.len(), crate::secret::MAX_REFS)?;
        t.secrets
            .iter()
            .try_for_each(|r| r.check("secret target"))?;
        t.configs
            .iter()
            .try_for_each(|r| r.check("config target"))?;
        let mut targets = HashSet::new();
        for r in t.secrets.iter().chain(&t.configs) {
            if !targets.insert(r.container_path()) {
                return Err(SpecError::invalid(
                    "secret or config target",
                    r.container_path(),
                    "two files with the same path",
                ));
            }
        }
        match &t.runtime {
            Runtime::Process(p) => {
                if p.command.is_empty() {
                    return Err(SpecError::Other(
                        "service needs an image or a command (shoal service create --name NAME IMAGE [COMMAND...], or -- COMMAND [ARG...] for a process)"
                            .into(),
                    ));
                }
                if p.command.first().is_some_and(|c| c.is_empty()) {
                    return Err(SpecError::invalid("command", "", "empty program name"));
                }
            }
            Runtime::Container(c) => {
                check_text("image", &c.image, MAX_PATH_LEN)?;
                c.validate()?;
                if c.no_healthcheck && t.health.is_some() {
                    return Err(SpecError::Other(
                        "--no-healthcheck turns health checks off: drop it or the --health-* check"
                            .into(),
                    ));
                }
            }
        }
        let words = t.words();
        check_count("args", words.len(), MAX_ARGS)?;
        check_count("env", t.env.len(), MAX_ENV)?;
        for c in t
            .process()
            .map(|p| p.command.as_slice())
            .unwrap_or_default()
        {
            check_text("command", c, MAX_ARG_LEN)?;
        }
        for e in &t.env {
            check_text("env", e, MAX_ARG_LEN)?;
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => {}
                _ => return Err(SpecError::invalid("env", e.as_str(), "expected KEY=VALUE")),
            }
            crate::template::validate(e)?;
        }
        let args: Vec<&String> = match &t.runtime {
            Runtime::Process(p) => p.args.iter().collect(),
            Runtime::Container(c) => c.entrypoint.iter().flatten().chain(&c.args).collect(),
        };
        for a in args {
            check_text("args", a, MAX_ARG_LEN)?;
            crate::template::validate(a)?;
        }
        let exec_bytes: usize = words.into_iter().chain(&t.env).map(String::len).sum();
        if exec_bytes > MAX_EXEC_BYTES {
            return Err(SpecError::invalid(
                "command",
                format!("{exec_bytes} bytes of command, args and env"),
                format!("at most {MAX_EXEC_BYTES} bytes together"),
            ));
        }
        if let Some(w) = &t.workdir {
            check_text("workdir", w, MAX_PATH_LEN)?;
        }
        if signal_number(&t.stop_signal).is_none() {
            return Err(SpecError::invalid(
                "stop-signal",
                t.stop_signal.as_str(),
                "unknown signal (use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL)",
            ));
        }
        if let Some(w) = t.lb_weight.filter(|w| *w > MAX_WEIGHT) {
            return Err(SpecError::invalid(
                "lb-weight",
                w.to_string(),
                format!("at most {MAX_WEIGHT}"),
            ));
        }
        check_count("constraint", t.constraints.len(), MAX_CONSTRAINTS)?;
        for c in &t.constraints {
            check_text("constraint", c, MAX_EXPRESSION_LEN)?;
            Constraint::parse(c)?;
        }
        check_count(
            "placement-pref",
            t.placement_prefs.len(),
            MAX_PLACEMENT_PREFS,
        )?;
        for p in &t.placement_prefs {
            check_text("placement-pref", p, MAX_EXPRESSION_LEN)?;
            spread_key(p)?;
        }
        if t.max_replicas_per_node > 0 && *mode == ServiceMode::Global {
            return Err(SpecError::invalid(
                "replicas-max-per-node",
                t.max_replicas_per_node.to_string(),
                "only replicated services can limit replicas per node",
            ));
        }
        if t.max_replicas_per_node > MAX_REPLICAS {
            return Err(SpecError::invalid(
                "replicas-max-per-node",
                t.max_replicas_per_node.to_string(),
                format!("at most {MAX_REPLICAS}"),
            ));
        }
        t.resources.validate()?;
        if let Some(h) = &t.health {
            h.validate(published)?;
        }
        Ok(())
    }
}

impl HealthCheck {
    fn validate(&self, published: bool) -> Result<(), SpecError> {
        check_health_duration("health-interval", self.interval, MIN_HEALTH_INTERVAL)?;
        check_health_duration("health-timeout", self.timeout, MIN_HEALTH_TIMEOUT)?;
        check_health_duration("health-start-period", self.start_period, Duration::ZERO)?;
        match &self.probe {
            HealthProbe::Cmd { command } if command.trim().is_empty() => {
                Err(SpecError::invalid("health-cmd", "", "empty command"))
            }
            HealthProbe::Cmd { command } => check_text("health-cmd", command, MAX_ARG_LEN),
            HealthProbe::Http { path } if !path.starts_with('/') => Err(SpecError::invalid(
                "health-http",
                path.as_str(),
                "path must start with /",
            )),
            HealthProbe::Http { .. } | HealthProbe::Tcp if !published => Err(SpecError::Other(
                "http and tcp health checks need a published port to probe".into(),
            )),
            HealthProbe::Http { path } => check_text("health-http", path, MAX_PATH_LEN),
            HealthProbe::Tcp => Ok(()),
        }
    }
}

/// The node attribute a placement preference spreads over: `spread=node.labels.zone` gives
/// `node.labels.zone`. Accepts `node.labels.NAME`, `node.id` and `node.hostname`.
pub fn spread_key(pref: &str) -> Result<&str, SpecError> {
    let key = pref.strip_prefix("spread=").unwrap_or("");
    let known = matches!(key, "node.id" | "node.hostname")
        || key
            .strip_prefix("node.labels.")
            .is_some_and(|l| !l.is_empty());
    if !known {
        return Err(SpecError::invalid(
            "placement-pref",
            pref,
            "expected spread=node.labels.NAME, spread=node.id or spread=node.hostname",
        ));
    }
    Ok(key)
}

/// What a user asks for: `shoal service create` sends one, `service inspect` shows one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub mode: ServiceMode,
    pub task: TaskTemplate,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// How the service is reached by its name: its VIP (default) or its tasks' addresses.
    #[serde(default, skip_serializing_if = "is_default")]
    pub endpoint_mode: crate::EndpointMode,
    /// How its connections are spread over its tasks, on published ports and the VIP.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lb: crate::Policy,
    /// Who forwards its TCP connections: the data plane's proxy (default) or the kernel.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lb_mode: crate::LbMode,
    /// Prefer a ready task on the node that received the connection, when it has one.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lb_local_first: bool,
    /// A TCP connection with no traffic either way for this long is closed on both sides;
    /// a UDP flow is forgotten. Zero: TCP connections never expire, UDP flows after
    /// [`UDP_IDLE_DEFAULT`].
    #[serde(with = "millis", default, skip_serializing_if = "Duration::is_zero")]
    pub idle_timeout: Duration,
    /// How changes of this spec roll out.
    #[serde(default)]
    pub update: crate::UpdateConfig,
    /// How a rollback rolls out.
    #[serde(default)]
    pub rollback: crate::UpdateConfig,
}

/// The program name that always means the shoal binary itself (`shoal whoami`, `shoal echo`).
pub const SELF_PROGRAM: &str = "shoal";

/// Signals a task may be stopped with.
pub const STOP_SIGNALS: &[(&str, i32)] = &[
    ("SIGTERM", 15),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGKILL", 9),
    ("SIGHUP", 1),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
];

/// The signal number for `TERM`, `SIGTERM` or `15`.
pub fn signal_number(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return STOP_SIGNALS.iter().find(|(_, v)| *v == n).map(|(_, v)| *v);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    STOP_SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

impl ServiceSpec {
    /// What the kernel cannot do when it forwards the connections (`--lb-mode nat`): balance
    /// by open connections, send a PROXY header, close idle connections.
    fn check_lb_mode(&self) -> Result<(), SpecError> {
        if self.lb_mode != crate::LbMode::Nat {
            return Ok(());
        }
        if !self.lb.in_kernel() {
            return Err(SpecError::invalid(
                "lb",
                self.lb.as_str(),
                "lb-mode nat balances by round-robin, random, source-hash or maglev",
            ));
        }
        if let Some(p) = self.ports.iter().find(|p| p.proxy_protocol.is_some()) {
            return Err(SpecError::invalid(
                "publish",
                p.to_string(),
                "proxy-protocol needs lb-mode proxy",
            ));
        }
        if !self.idle_timeout.is_zero() {
            return Err(SpecError::invalid(
                "idle-timeout",
                crate::duration::format(self.idle_timeout),
                "an idle timeout needs lb-mode proxy",
            ));
        }
        Ok(())
    }

    /// Check everything that can be checked without looking at the cluster.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_name(&self.name)?;
        check_labels(self.labels.iter())?;
        if let Some(n) = self.replicas().filter(|n| *n > MAX_REPLICAS) {
            return Err(SpecError::invalid(
                "replicas",
                n.to_string(),
                format!("at most {MAX_REPLICAS} per service"),
            ));
        }
        self.task.validate(&self.mode, !self.ports.is_empty())?;
        self.update.validate(&UPDATE_FIELDS)?;
        self.rollback.validate(&ROLLBACK_FIELDS)?;
        check_count("publish", self.ports.len(), MAX_PORTS)?;
        if self.idle_timeout > MAX_IDLE_TIMEOUT {
            return Err(SpecError::invalid(
                "idle-timeout",
                crate::duration::format(self.idle_timeout),
                "at most 168h",
            ));
        }
        self.check_lb_mode()?;
        if self.endpoint_mode == crate::EndpointMode::Dnsrr
            && self
                .ports
                .iter()
                .any(|p| p.mode == crate::PublishMode::Ingress)
        {
            return Err(SpecError::Other(
                "port published with ingress mode can't be used with dnsrr mode".into(),
            ));
        }
        let mut seen = HashSet::new();
        for p in &self.ports {
            if let (false, Some(published)) = (p.is_published(), p.published) {
                return Err(SpecError::invalid(
                    "expose",
                    p.target.to_string(),
                    format!("an exposed port is published nowhere, yet it names published port {published}"),
                ));
            }
            if let Some(reason) = p.proxy_protocol_problem() {
                return Err(SpecError::invalid("publish", p.to_string(), reason));
            }
            // The task's port either expects the header or not, whichever way it is reached.
            if self.ports.iter().any(|q| {
                (q.target, q.protocol) == (p.target, p.protocol)
                    && q.proxy_protocol != p.proxy_protocol
            }) {
                return Err(SpecError::invalid(
                    "publish",
                    p.to_string(),
                    format!(
                        "target port {}/{} is published both with and without proxy-protocol",
                        p.target,
                        p.protocol.as_str()
                    ),
                ));
            }
            if let Some(published) = p.published {
                if !seen.insert((published, p.protocol)) {
                    return Err(SpecError::invalid(
                        "publish",
                        published.to_string(),
                        "port published twice",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn replicas(&self) -> Option<u64> {
        match self.mode {
            ServiceMode::Replicated { replicas } => Some(replicas),
            ServiceMode::Global => None,
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Service names follow Docker's rules: letters, digits, `-`, `_`, `.`, at most 63.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::Other(
            "service name is missing (use --name NAME)".into(),
        ));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_chars || !first_ok || name.len() > 63 {
        return Err(SpecError::invalid(
            "service name",
            name,
            "use letters, digits, '-', '_' or '.', starting with a letter or digit, at most 63 characters",
        ));
    }
    Ok(())
}

/// The stored service: its spec plus what the cluster decided about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    /// Bumped on every spec change; tasks remember the version they were made from.
    pub version: u64,
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpec>,
    /// The published ports with auto-assigned numbers filled in.
    pub ports: Vec<PortConfig>,
    /// The service's virtual address, from the cluster's VIP pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<std::net::Ipv4Addr>,
    /// The latest rollout, if the spec was ever updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<crate::UpdateStatus>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The spec as a Docker Engine API client last sent it (`POST /services/create` or
    /// `/update`), kept whole: Docker clients post the whole spec back on every change, and
    /// what shoal does not model must come back as they sent it. `None` for a service made
    /// or last changed through shoal's own API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_spec: Option<serde_json::Value>,
    /// The Docker spec before the last update, for `rollback=previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_previous_spec: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_LABELS;
    use crate::port::PortConfig;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            endpoint_mode: Default::default(),
            lb: Default::default(),
            lb_local_first: false,
            lb_mode: Default::default(),
            idle_timeout: Default::default(),
            name: "web".into(),
            labels: BTreeMap::new(),
            mode: ServiceMode::Replicated { replicas: 3 },
            task: TaskTemplate::with_command(vec!["shoal".into(), "whoami".into()]),
            ports: vec![PortConfig::parse("8080:80").unwrap()],
            update: Default::default(),
            rollback: Default::default(),
        }
    }

    fn proc(s: &mut ServiceSpec) -> &mut ProcessSpec {
        s.task.process_mut().expect("a process template")
    }

    #[test]
    fn valid_spec_passes() {
        spec().validate().unwrap();
    }

    #[test]
    fn table_of_invalid_specs() {
        type Mutate = Box<dyn Fn(&mut ServiceSpec)>;
        let cases: Vec<(&str, Mutate)> = vec![
            ("name is missing", Box::new(|s| s.name.clear())),
            ("service name", Box::new(|s| s.name = "-bad".into())),
            (
                "needs an image or a command",
                Box::new(|s| s.task.runtime = Runtime::default()),
            ),
            (
                "KEY=VALUE",
                Box::new(|s| s.task.env.push("NOEQUALS".into())),
            ),
            (
                "stop-signal",
                Box::new(|s| s.task.stop_signal = "SIGFOO".into()),
            ),
            (
                "constraint",
                Box::new(|s| s.task.constraints.push("node.hostnme==a".into())),
            ),
            (
                "invalid placement-pref \"spread=zone\"",
                Box::new(|s| s.task.placement_prefs.push("spread=zone".into())),
            ),
            (
                "invalid placement-pref \"binpack=node.id\"",
                Box::new(|s| s.task.placement_prefs.push("binpack=node.id".into())),
            ),
            (
                "invalid placement-pref \"spread=node.labels.\"",
                Box::new(|s| s.task.placement_prefs.push("spread=node.labels.".into())),
            ),
            (
                "replicas-max-per-node",
                Box::new(|s| {
                    s.mode = ServiceMode::Global;
                    s.task.max_replicas_per_node = 1;
                }),
            ),
            (
                "published twice",
                Box::new(|s| s.ports.push(PortConfig::parse("8080:81").unwrap())),
            ),
            (
                "proxy-protocol is for tcp ports only",
                Box::new(|s| {
                    s.ports[0].protocol = crate::Protocol::Udp;
                    s.ports[0].proxy_protocol = Some(crate::ProxyProtocol::V2);
                }),
            ),
            (
                "in host mode the client connects to the task directly",
                Box::new(|s| {
                    s.ports[0].mode = crate::PublishMode::Host;
                    s.ports[0].proxy_protocol = Some(crate::ProxyProtocol::V2);
                }),
            ),
            (
                "target port 80/tcp is published both with and without proxy-protocol",
                Box::new(|s| {
                    let mut p = PortConfig::parse("9090:80").unwrap();
                    p.proxy_protocol = Some(crate::ProxyProtocol::V2);
                    s.ports.push(p);
                }),
            ),
            (
                "invalid limit-memory \"1MiB\": at least 6MiB",
                Box::new(|s| s.task.resources.limits.memory_bytes = 1 << 20),
            ),
            (
                "below the CPU reservation",
                Box::new(|s| {
                    s.task.resources.limits.nano_cpus = 1;
                    s.task.resources.reservations.nano_cpus = 2;
                }),
            ),
            (
                "health-cmd",
                Box::new(|s| {
                    s.task.health = Some(HealthCheck::new(HealthProbe::Cmd {
                        command: " ".into(),
                    }))
                }),
            ),
            (
                "path must start",
                Box::new(|s| {
                    s.task.health = Some(HealthCheck::new(HealthProbe::Http {
                        path: "health".into(),
                    }))
                }),
            ),
        ];
        for (want, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = s.validate().expect_err(want).to_string();
            assert!(err.contains(want), "expected {want:?} in {err:?}");
        }
    }

    /// Expect `spec` to be refused with a message holding `want`, on one line.
    fn refused(spec: &ServiceSpec, want: &str) {
        let err = spec.validate().expect_err(want).to_string();
        assert!(err.contains(want), "expected {want:?} in {err:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    }

    #[test]
    fn huge_replica_count_is_refused() {
        let mut s = spec();
        s.mode = ServiceMode::Replicated {
            replicas: 1_000_000_000_000,
        };
        refused(
            &s,
            r#"invalid replicas "1000000000000": at most 10000 per service"#,
        );
        s.mode = ServiceMode::Replicated {
            replicas: MAX_REPLICAS,
        };
        s.validate().expect("the bound itself is allowed");
        let mut s = spec();
        s.task.max_replicas_per_node = MAX_REPLICAS + 1;
        refused(&s, "replicas-max-per-node");
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        type Mutate = Box<dyn Fn(&mut ServiceSpec)>;
        let cases: Vec<(&str, Mutate)> = vec![
            (
                "invalid labels \"101 entries\": at most 100 allowed",
                Box::new(|s| {
                    s.labels = (0..=MAX_LABELS)
                        .map(|i| (format!("k{i}"), String::new()))
                        .collect()
                }),
            ),
            (
                "invalid env \"1001 entries\"",
                Box::new(|s| s.task.env = (0..=MAX_ENV).map(|i| format!("K{i}=v")).collect()),
            ),
            (
                "invalid args \"1001 entries\"",
                Box::new(|s| proc(s).args = vec!["a".into(); MAX_ARGS - 1]),
            ),
            (
                "longer than 32768 bytes",
                Box::new(|s| proc(s).args = vec!["a".repeat(MAX_ARG_LEN + 1)]),
            ),
            (
                "at most 1048576 bytes together",
                Box::new(|s| {
                    s.task.env = (0..40)
                        .map(|i| format!("K{i}={}", "v".repeat(30_000)))
                        .collect()
                }),
            ),
            (
                "invalid constraint \"65 entries\"",
                Box::new(|s| {
                    s.task.constraints = vec!["node.role==worker".into(); MAX_CONSTRAINTS + 1]
                }),
            ),
            (
                "invalid placement-pref \"17 entries\"",
                Box::new(|s| {
                    s.task.placement_prefs = vec!["spread=node.id".into(); MAX_PLACEMENT_PREFS + 1]
                }),
            ),
            (
                "invalid publish \"101 entries\"",
                Box::new(|s| {
                    s.ports = (0..=MAX_PORTS as u16)
                        .map(|i| PortConfig::parse(&format!("{}:80", 20000 + i)).expect("port"))
                        .collect()
                }),
            ),
            (
                "invalid workdir",
                Box::new(|s| s.task.workdir = Some("/".repeat(MAX_PATH_LEN + 1))),
            ),
        ];
        for (want, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            refused(&s, want);
        }
    }

    #[test]
    fn container_mounts_are_bounded_and_no_healthcheck_excludes_a_check() {
        let mut s = spec();
        s.task.runtime = Runtime::Container(crate::ContainerSpec {
            image: "nginx".into(),
            mounts: (0..=crate::limits::MAX_MOUNTS)
                .map(|i| crate::Mount::parse(&format!("type=tmpfs,target=/t{i}")).expect("mount"))
                .collect(),
            ..Default::default()
        });
        refused(&s, "invalid mounts \"101 entries\"");
        let Runtime::Container(c) = &mut s.task.runtime else {
            unreachable!()
        };
        c.mounts.truncate(1);
        c.no_healthcheck = true;
        s.validate().expect("valid");
        s.task.health = Some(HealthCheck::new(HealthProbe::Cmd {
            command: "true".into(),
        }));
        refused(&s, "--no-healthcheck turns health checks off");
    }

    #[test]
    fn nul_byte_in_env_or_args_is_refused() {
        type Mutate = Box<dyn Fn(&mut ServiceSpec)>;
        let cases: Vec<(&str, Mutate)> = vec![
            (
                "invalid env",
                Box::new(|s| s.task.env = vec!["A=b\0c".into()]),
            ),
            (
                "invalid env",
                Box::new(|s| s.task.env = vec!["A\0B=c".into()]),
            ),
            (
                "invalid args",
                Box::new(|s| proc(s).args = vec!["who\0ami".into()]),
            ),
            (
                "invalid command",
                Box::new(|s| proc(s).command = vec!["sh\0".into()]),
            ),
            (
                "invalid workdir",
                Box::new(|s| s.task.workdir = Some("/tmp\0".into())),
            ),
            (
                "invalid label",
                Box::new(|s| {
                    s.labels.insert("team".into(), "a\0".into());
                }),
            ),
            (
                "invalid health-cmd",
                Box::new(|s| {
                    s.task.health = Some(HealthCheck::new(HealthProbe::Cmd {
                        command: "true\0".into(),
                    }))
                }),
            ),
        ];
        for (want, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            refused(&s, want);
            refused(&s, "NUL");
        }
    }

    #[test]
    fn control_characters_in_labels_and_names_are_refused() {
        let mut s = spec();
        s.labels
            .insert("team".into(), "\u{1b}[2J\u{1b}[31mowned".into());
        refused(&s, "control characters are not allowed");
        let mut s = spec();
        s.labels.insert("te\nam".into(), "a".into());
        refused(&s, "invalid label");
        let mut s = spec();
        s.name = "web\u{1b}[31m".into();
        refused(&s, "invalid service name");
        let err = s.validate().expect_err("bad name").to_string();
        assert!(!err.chars().any(char::is_control), "escaped: {err:?}");
    }

    #[test]
    fn health_interval_below_the_floor_is_refused() {
        let check = |f: &dyn Fn(&mut HealthCheck)| {
            let mut s = spec();
            let mut h = HealthCheck::new(HealthProbe::Tcp);
            f(&mut h);
            s.task.health = Some(h);
            s
        };
        refused(
            &check(&|h| h.interval = Duration::from_millis(1)),
            r#"invalid health-interval "1ms": must be at least 100ms"#,
        );
        refused(&check(&|h| h.interval = Duration::ZERO), "health-interval");
        refused(
            &check(&|h| h.timeout = Duration::from_millis(1)),
            "health-timeout",
        );
        refused(
            &check(&|h| h.start_period = Duration::from_secs(48 * 3600)),
            "health-start-period",
        );
        check(&|h| h.interval = MIN_HEALTH_INTERVAL)
            .validate()
            .expect("the floor itself is allowed");
    }

    #[test]
    fn weights_and_idle_timeouts_have_bounds() {
        let mut s = spec();
        s.task.lb_weight = Some(MAX_WEIGHT + 1);
        refused(&s, r#"invalid lb-weight "10001": at most 10000"#);
        s.task.lb_weight = Some(0);
        s.validate().expect("weight 0: a backup task");
        let mut s = spec();
        s.idle_timeout = MAX_IDLE_TIMEOUT + Duration::from_secs(1);
        refused(&s, "idle-timeout");
        s.idle_timeout = Duration::from_secs(900);
        s.validate().expect("15m");
        let json = serde_json::to_string(&spec()).unwrap();
        assert!(
            !json.contains("idle_timeout") && !json.contains("lb_"),
            "{json}"
        );
    }

    #[test]
    fn spec_json_fills_defaults_and_strict_reading_rejects_unknown_fields() {
        let json = r#"{"name":"web","task":{"runtime":{"process":{"command":["true"]}}}}"#;
        let s: ServiceSpec = serde_json::from_str(json).unwrap();
        assert_eq!(s.task.stop_grace_period, Duration::from_secs(10));
        assert_eq!(s.task.restart.delay, Duration::from_secs(5));
        assert_eq!(s.mode, ServiceMode::Replicated { replicas: 1 });
        let bad =
            r#"{"name":"web","task":{"runtime":{"process":{"command":["true"]}}},"replicaz":3}"#;
        assert!(crate::strict::from_json::<ServiceSpec>(bad.as_bytes()).is_err());
    }

    #[test]
    fn placement_fields_default_and_validate() {
        let json = r#"{"name":"web","task":{"runtime":{"process":{"command":["true"]}}}}"#;
        let s: ServiceSpec = serde_json::from_str(json).unwrap();
        assert!(s.task.placement_prefs.is_empty());
        assert_eq!(s.task.max_replicas_per_node, 0);
        let mut s = spec();
        s.task.placement_prefs = vec![
            "spread=node.labels.zone".into(),
            "spread=node.id".into(),
            "spread=node.hostname".into(),
        ];
        s.task.max_replicas_per_node = 2;
        s.validate().unwrap();
        let back: ServiceSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            spread_key("spread=node.labels.zone"),
            Ok("node.labels.zone")
        );
    }

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(signal_number("TERM"), Some(15));
        assert_eq!(signal_number("SIGKILL"), Some(9));
        assert_eq!(signal_number("2"), Some(2));
        assert_eq!(signal_number("SIGFOO"), None);
    }
}
