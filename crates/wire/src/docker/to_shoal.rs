//! A Docker `ServiceSpec` to shoal's `ServiceSpec`.
//!
//! What shoal does not act on is never refused: each such field gives one line of
//! `Warnings` naming it. What is malformed (a negative count or duration, an unknown enum
//! value) is refused, naming the field by its Docker path. The result passes shoal's own
//! [`shoal_api::ServiceSpec::validate`], so its refusals read as they do for `shoal service
//! create`.

use super::spec::{
    ContainerSpec, EndpointSpec, FileTarget, HealthConfig, Mount, Placement, PortConfig,
    ResourceRequirements, RestartPolicy, ServiceMode, ServiceSpec, TaskSpec, UpdateConfig,
};
use super::{DockerError, Extra, RUNTIME_LABEL};
use serde_json::Value;
use shoal_api::{self as api, HealthCheck, HealthProbe, Runtime};
use std::time::Duration;

/// A converted spec and what it ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub spec: api::ServiceSpec,
    /// One line per field shoal does not act on, for the response's `Warnings`.
    pub warnings: Vec<String>,
}

/// The health check test shoal writes for its HTTP probe: `["SHOAL-HTTP", "/path"]`.
pub const TEST_HTTP: &str = "SHOAL-HTTP";
/// The health check test shoal writes for its TCP probe: `["SHOAL-TCP"]`.
pub const TEST_TCP: &str = "SHOAL-TCP";

/// Convert `d`. `current`, on an update, is the service's spec now: the settings a Docker
/// spec cannot carry (`lb`, `lb_mode`, `lb_local_first`, `idle_timeout`, `lb_weight`, progress
/// deadlines, a port's PROXY protocol) are kept from it.
pub fn service_spec(
    d: &ServiceSpec,
    current: Option<&api::ServiceSpec>,
) -> Result<Converted, DockerError> {
    let mut w = Vec::new();
    let spec = convert(d, current, &mut w)?;
    spec.validate()?;
    Ok(Converted { spec, warnings: w })
}

/// Whether `labels` make a process service.
pub fn is_process(
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, DockerError> {
    match labels.get(RUNTIME_LABEL).map(String::as_str) {
        None | Some("container") => Ok(false),
        Some("process") => Ok(true),
        Some(other) => Err(DockerError::invalid(
            format!("Labels.{RUNTIME_LABEL}"),
            format!("{other:?}: expected process or container"),
        )),
    }
}

/// The conversion without shoal's validation (a stored spec's view, say).
pub(crate) fn convert(
    d: &ServiceSpec,
    current: Option<&api::ServiceSpec>,
    w: &mut Vec<String>,
) -> Result<api::ServiceSpec, DockerError> {
    let process = is_process(&d.labels)?;
    let mut labels = d.labels.clone();
    labels.remove(RUNTIME_LABEL);
    warn_extra("", &d.extra, w);
    let mode = mode(&d.mode, w)?;
    let mut task = task_template(&d.task_template, process, w)?;
    let mut update = update_config("UpdateConfig", d.update_config.as_ref(), w)?;
    let mut rollback = update_config("RollbackConfig", d.rollback_config.as_ref(), w)?;
    let (endpoint_mode, mut ports) = endpoint(d.endpoint_spec.as_ref(), w)?;
    let mut spec = api::ServiceSpec {
        name: d.name.clone(),
        labels,
        mode,
        task: api::TaskTemplate::default(),
        ports: Vec::new(),
        endpoint_mode,
        lb: Default::default(),
        lb_local_first: false,
        lb_mode: Default::default(),
        idle_timeout: Duration::ZERO,
        update: Default::default(),
        rollback: Default::default(),
    };
    if let Some(c) = current {
        spec.lb = c.lb;
        spec.lb_local_first = c.lb_local_first;
        spec.lb_mode = c.lb_mode;
        spec.idle_timeout = c.idle_timeout;
        task.lb_weight = c.task.lb_weight;
        update.progress_deadline = c.update.progress_deadline;
        rollback.progress_deadline = c.rollback.progress_deadline;
        for p in &mut ports {
            p.proxy_protocol = c
                .ports
                .iter()
                .find(|q| (q.target, q.protocol, q.mode) == (p.target, p.protocol, p.mode))
                .and_then(|q| q.proxy_protocol);
        }
    }
    spec.task = task;
    spec.ports = ports;
    spec.update = update;
    spec.rollback = rollback;
    Ok(spec)
}

/// Warn about each key of `extra` that holds more than a zero value.
fn warn_extra(path: &str, extra: &Extra, w: &mut Vec<String>) {
    for (k, v) in extra {
        if !is_zero(v) && !is_default(k, v) {
            w.push(format!("{path}{k}: not supported by shoal, ignored"));
        }
    }
}

/// Values clients send that ask for what shoal does anyway.
fn is_default(key: &str, v: &Value) -> bool {
    matches!(
        (key, v.as_str()),
        ("Runtime", Some("container")) | ("Isolation", Some("default"))
    )
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

fn mode(m: &ServiceMode, w: &mut Vec<String>) -> Result<api::ServiceMode, DockerError> {
    for job in ["ReplicatedJob", "GlobalJob"] {
        if m.extra.get(job).is_some_and(|v| !v.is_null()) {
            return Err(DockerError::invalid(
                format!("Mode.{job}"),
                "shoal runs services, not jobs: use Replicated or Global",
            ));
        }
    }
    warn_extra("Mode.", &m.extra, w);
    match (&m.replicated, &m.global) {
        (Some(_), Some(_)) => Err(DockerError::invalid(
            "Mode",
            "Replicated and Global are exclusive",
        )),
        (_, Some(g)) => {
            warn_extra("Mode.Global.", &g.extra, w);
            Ok(api::ServiceMode::Global)
        }
        (Some(r), None) => {
            warn_extra("Mode.Replicated.", &r.extra, w);
            let replicas = count("Mode.Replicated.Replicas", r.replicas)?.unwrap_or(1);
            Ok(api::ServiceMode::Replicated { replicas })
        }
        (None, None) => Ok(api::ServiceMode::default()),
    }
}

/// A count that must not be negative.
fn count(field: &str, n: Option<i64>) -> Result<Option<u64>, DockerError> {
    match n {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| DockerError::invalid(field, format!("{n} is negative"))),
    }
}

/// Nanoseconds that must not be negative; `default` when absent or 0 (Docker's "unset").
fn duration(field: &str, ns: Option<i64>, default: Duration) -> Result<Duration, DockerError> {
    match ns {
        None | Some(0) => Ok(default),
        Some(n) => u64::try_from(n)
            .map(Duration::from_nanos)
            .map_err(|_| DockerError::invalid(field, format!("{n}ns is negative"))),
    }
}

fn port_number(field: &str, n: i64) -> Result<u16, DockerError> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| DockerError::invalid(field, format!("{n} is not a port (1-65535)")))
}

/// `TaskTemplate` to shoal's task template; `process` from the service's runtime label.
pub fn task_template(
    t: &TaskSpec,
    process: bool,
    w: &mut Vec<String>,
) -> Result<api::TaskTemplate, DockerError> {
    warn_extra("TaskTemplate.", &t.extra, w);
    let c = t.container_spec.as_ref().ok_or_else(|| {
        DockerError::invalid(
            "TaskTemplate.ContainerSpec",
            "missing: shoal runs a container spec (Image is the image, or the program of a process service)",
        )
    })?;
    let base = "TaskTemplate.ContainerSpec";
    let mut task = api::TaskTemplate {
        runtime: runtime(c, process, w)?,
        env: c.env.clone().unwrap_or_default(),
        workdir: c.dir.clone().filter(|d| !d.is_empty()),
        stop_signal: c
            .stop_signal
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "SIGTERM".into()),
        // An explicit 0 stops at once; absent is the 10 s default.
        stop_grace_period: match c.stop_grace_period {
            Some(0) => Duration::ZERO,
            ns => duration(
                &format!("{base}.StopGracePeriod"),
                ns,
                Duration::from_secs(10),
            )?,
        },
        ..api::TaskTemplate::default()
    };
    let (health, none) = health(c.healthcheck.as_ref(), w)?;
    task.health = health;
    if let Runtime::Container(cs) = &mut task.runtime {
        cs.no_healthcheck = none;
    }
    for (i, r) in c.secrets.iter().flatten().enumerate() {
        let field = format!("{base}.Secrets[{i}]");
        let default = &r.secret_name;
        task.secrets.push(file_ref(
            &field,
            &r.secret_id,
            &r.secret_name,
            r.file.as_ref(),
            default,
            w,
        )?);
    }
    for (i, r) in c.configs.iter().flatten().enumerate() {
        let field = format!("{base}.Configs[{i}]");
        // Swarm puts a config without a file name at /<config name>.
        let default = format!("/{}", r.config_name);
        task.configs.push(file_ref(
            &field,
            &r.config_id,
            &r.config_name,
            r.file.as_ref(),
            &default,
            w,
        )?);
    }
    warn_extra(&format!("{base}."), &c.extra, w);
    if let Some(r) = &t.restart_policy {
        task.restart = restart(r, w)?;
    }
    if let Some(p) = &t.placement {
        placement(p, &mut task, w)?;
    }
    if let Some(r) = &t.resources {
        task.resources = resources(r, w)?;
    }
    for (i, n) in t.networks.iter().flatten().enumerate() {
        let field = format!("TaskTemplate.Networks[{i}]");
        warn_extra(&format!("{field}."), &n.extra, w);
        if n.target.is_empty() {
            return Err(DockerError::invalid(
                format!("{field}.Target"),
                "missing: name the network",
            ));
        }
        task.networks.push(api::NetworkAttachment {
            network: n.target.clone(),
            aliases: n.aliases.clone().unwrap_or_default(),
        });
    }
    if t.log_driver.as_ref().is_some_and(|d| !d.name.is_empty()) {
        w.push("TaskTemplate.LogDriver: shoal keeps task logs itself; ignored".into());
    }
    Ok(task)
}

/// A secret or config reference: by ID, or by name when no ID is given (the manager
/// resolves and checks it); the file is `default` unless named.
fn file_ref(
    field: &str,
    id: &str,
    name: &str,
    file: Option<&FileTarget>,
    default: &str,
    w: &mut Vec<String>,
) -> Result<api::FileRef, DockerError> {
    if id.is_empty() && name.is_empty() {
        return Err(DockerError::invalid(
            field,
            "missing: name the object or give its ID",
        ));
    }
    let number = |what: &str, v: &str| -> Result<Option<u32>, DockerError> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<u32>().map(Some).map_err(|_| {
            DockerError::invalid(
                format!("{field}.File.{what}"),
                format!("{v:?} is not a number"),
            )
        })
    };
    let target = file
        .map(|f| f.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default.to_owned());
    if let Some(f) = file {
        warn_extra(&format!("{field}.File."), &f.extra, w);
    }
    Ok(api::FileRef {
        id: id.to_owned(),
        name: name.to_owned(),
        target,
        uid: file.map(|f| number("UID", &f.uid)).transpose()?.flatten(),
        gid: file.map(|f| number("GID", &f.gid)).transpose()?.flatten(),
        mode: file.and_then(|f| f.mode),
    })
}

fn runtime(c: &ContainerSpec, process: bool, w: &mut Vec<String>) -> Result<Runtime, DockerError> {
    let base = "TaskTemplate.ContainerSpec";
    if c.image.is_empty() {
        return Err(DockerError::invalid(
            format!("{base}.Image"),
            if process {
                "empty: a process service names its program here"
            } else {
                "empty: name the image to run"
            },
        ));
    }
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    if process {
        let container_only = [
            ("User", c.user.as_ref().is_some_and(|u| !u.is_empty())),
            (
                "Hostname",
                c.hostname.as_ref().is_some_and(|h| !h.is_empty()),
            ),
            ("Init", c.init == Some(true)),
            ("ReadOnly", c.read_only == Some(true)),
            ("TTY", c.tty == Some(true)),
            ("Labels", c.labels.as_ref().is_some_and(|l| !l.is_empty())),
            (
                "CapabilityAdd",
                c.capability_add.as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "CapabilityDrop",
                c.capability_drop.as_ref().is_some_and(|v| !v.is_empty()),
            ),
            ("Mounts", c.mounts.as_ref().is_some_and(|v| !v.is_empty())),
            ("Ulimits", c.ulimits.as_ref().is_some_and(|v| !v.is_empty())),
        ];
        for (name, set) in container_only {
            if set {
                w.push(format!(
                    "{base}.{name}: a process service runs on the node itself, ignored"
                ));
            }
        }
        // The docker CLI tags an untagged image name `:latest`; a program has no tag.
        let program = c.image.strip_suffix(":latest").unwrap_or(&c.image);
        return Ok(Runtime::Process(api::ProcessSpec {
            command: vec![program.to_owned()],
            args: command.into_iter().chain(args).collect(),
        }));
    }
    let mut mounts = Vec::new();
    for (i, m) in c.mounts.iter().flatten().enumerate() {
        mounts.push(mount(&format!("{base}.Mounts[{i}]"), m, w)?);
    }
    let mut ulimits = Vec::new();
    for (i, u) in c.ulimits.iter().flatten().enumerate() {
        let field = format!("{base}.Ulimits[{i}]");
        warn_extra(&format!("{field}."), &u.extra, w);
        let name = u.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
            DockerError::invalid(
                format!("{field}.Name"),
                "missing: name the limit (nofile...)",
            )
        })?;
        ulimits.push(api::Ulimit {
            name,
            soft: u.soft.unwrap_or(0),
            hard: u.hard.unwrap_or(0),
        });
    }
    Ok(Runtime::Container(api::ContainerSpec {
        image: c.image.clone(),
        entrypoint: c.command.clone().filter(|c| !c.is_empty()),
        args,
        user: c.user.clone().filter(|u| !u.is_empty()),
        hostname: c.hostname.clone().filter(|h| !h.is_empty()),
        init: c.init == Some(true),
        read_only: c.read_only == Some(true),
        tty: c.tty == Some(true),
        labels: c.labels.clone().unwrap_or_default(),
        cap_add: c.capability_add.clone().unwrap_or_default(),
        cap_drop: c.capability_drop.clone().unwrap_or_default(),
        no_healthcheck: false,
        mounts,
        ulimits,
    }))
}

fn mount(field: &str, m: &Mount, w: &mut Vec<String>) -> Result<api::Mount, DockerError> {
    let kind = match m.r#type.as_deref().unwrap_or("volume") {
        "bind" => api::MountType::Bind,
        "volume" | "" => api::MountType::Volume,
        "tmpfs" => api::MountType::Tmpfs,
        other => {
            return Err(DockerError::invalid(
                format!("{field}.Type"),
                format!("{other:?}: shoal mounts bind, volume or tmpfs"),
            ))
        }
    };
    warn_extra(&format!("{field}."), &m.extra, w);
    let mut out = api::Mount {
        kind,
        source: m.source.clone().unwrap_or_default(),
        target: m.target.clone().unwrap_or_default(),
        read_only: m.read_only == Some(true),
        ..api::Mount::default()
    };
    if let Some(b) = &m.bind_options {
        out.bind_propagation = b.propagation.clone().filter(|p| !p.is_empty());
        warn_extra(&format!("{field}.BindOptions."), &b.extra, w);
    }
    if let Some(v) = &m.volume_options {
        out.volume_nocopy = v.no_copy == Some(true);
        out.volume_labels = v.labels.clone().unwrap_or_default();
        if let Some(d) = &v.driver_config {
            out.volume_driver = Some(d.name.clone()).filter(|n| !n.is_empty());
            out.volume_options = d.options.clone().unwrap_or_default();
        }
        warn_extra(&format!("{field}.VolumeOptions."), &v.extra, w);
    }
    if let Some(t) = &m.tmpfs_options {
        out.tmpfs_size =
            count(&format!("{field}.TmpfsOptions.SizeBytes"), t.size_bytes)?.unwrap_or(0);
        out.tmpfs_mode = t.mode;
        warn_extra(&format!("{field}.TmpfsOptions."), &t.extra, w);
    }
    Ok(out)
}

/// The health check and whether the image's own check is turned off (`["NONE"]`).
fn health(
    h: Option<&HealthConfig>,
    w: &mut Vec<String>,
) -> Result<(Option<HealthCheck>, bool), DockerError> {
    let Some(h) = h else {
        return Ok((None, false));
    };
    let base = "TaskTemplate.ContainerSpec.Healthcheck";
    warn_extra(&format!("{base}."), &h.extra, w);
    let test = h.test.clone().unwrap_or_default();
    let probe = match test.split_first() {
        // No test: the image's own check, as Docker does.
        None => return Ok((None, false)),
        Some((kind, rest)) => match (kind.as_str(), rest) {
            ("NONE", _) => return Ok((None, true)),
            ("CMD", [_, ..]) => HealthProbe::Cmd {
                command: shell_join(rest),
            },
            ("CMD-SHELL", [line]) => HealthProbe::Cmd {
                command: line.clone(),
            },
            (TEST_HTTP, [path]) => HealthProbe::Http { path: path.clone() },
            (TEST_TCP, []) => HealthProbe::Tcp,
            ("CMD", []) => {
                return Err(DockerError::invalid(
                    format!("{base}.Test"),
                    "CMD needs a command after it",
                ))
            }
            ("CMD-SHELL", _) => {
                return Err(DockerError::invalid(
                    format!("{base}.Test"),
                    "CMD-SHELL takes one command line",
                ))
            }
            (other, _) => {
                return Err(DockerError::invalid(
                    format!("{base}.Test"),
                    format!("{other:?}: expected NONE, CMD or CMD-SHELL first"),
                ))
            }
        },
    };
    let d = HealthCheck::new(probe);
    let retries = count(&format!("{base}.Retries"), h.retries)?.filter(|r| *r > 0);
    Ok((
        Some(HealthCheck {
            interval: duration(&format!("{base}.Interval"), h.interval, d.interval)?,
            timeout: duration(&format!("{base}.Timeout"), h.timeout, d.timeout)?,
            start_period: duration(
                &format!("{base}.StartPeriod"),
                h.start_period,
                d.start_period,
            )?,
            retries: match retries {
                Some(r) => u32::try_from(r).map_err(|_| {
                    DockerError::invalid(format!("{base}.Retries"), format!("{r} is too large"))
                })?,
                None => d.retries,
            },
            probe: d.probe,
        }),
        false,
    ))
}

/// `["CMD", prog, args...]` as one shell line, each word quoted where it needs to be.
fn shell_join(words: &[String]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c);
    words
        .iter()
        .map(|s| {
            if !s.is_empty() && s.chars().all(plain) {
                s.clone()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn restart(r: &RestartPolicy, w: &mut Vec<String>) -> Result<api::RestartPolicy, DockerError> {
    warn_extra("TaskTemplate.RestartPolicy.", &r.extra, w);
    let d = api::RestartPolicy::default();
    let condition = match r.condition.as_deref() {
        None | Some("") => d.condition,
        Some(c) => api::RestartCondition::parse(c).map_err(|_| {
            DockerError::invalid(
                "TaskTemplate.RestartPolicy.Condition",
                format!("{c:?}: expected none, on-failure or any"),
            )
        })?,
    };
    let attempts = count("TaskTemplate.RestartPolicy.MaxAttempts", r.max_attempts)?.unwrap_or(0);
    Ok(api::RestartPolicy {
        condition,
        // An explicit 0 is no delay, unlike the other durations.
        delay: match r.delay {
            Some(0) => Duration::ZERO,
            ns => duration("TaskTemplate.RestartPolicy.Delay", ns, d.delay)?,
        },
        max_attempts: u32::try_from(attempts).map_err(|_| {
            DockerError::invalid(
                "TaskTemplate.RestartPolicy.MaxAttempts",
                format!("{attempts} is too large"),
            )
        })?,
        window: duration(
            "TaskTemplate.RestartPolicy.Window",
            r.window,
            Duration::ZERO,
        )?,
    })
}

fn placement(
    p: &Placement,
    task: &mut api::TaskTemplate,
    w: &mut Vec<String>,
) -> Result<(), DockerError> {
    warn_extra("TaskTemplate.Placement.", &p.extra, w);
    task.constraints = p.constraints.clone().unwrap_or_default();
    for (i, pref) in p.preferences.iter().flatten().enumerate() {
        let field = format!("TaskTemplate.Placement.Preferences[{i}]");
        warn_extra(&format!("{field}."), &pref.extra, w);
        match &pref.spread {
            Some(s) => {
                let on = s.spread_descriptor.as_deref().unwrap_or_default();
                task.placement_prefs.push(format!("spread={on}"));
            }
            None => w.push(format!("{field}: only Spread is supported, ignored")),
        }
    }
    task.max_replicas_per_node =
        count("TaskTemplate.Placement.MaxReplicas", p.max_replicas)?.unwrap_or(0);
    Ok(())
}

fn resources(r: &ResourceRequirements, w: &mut Vec<String>) -> Result<api::Resources, DockerError> {
    let base = "TaskTemplate.Resources";
    warn_extra(&format!("{base}."), &r.extra, w);
    let mut out = api::Resources::default();
    if let Some(l) = &r.limits {
        warn_extra(&format!("{base}.Limits."), &l.extra, w);
        out.limits.nano_cpus = count(&format!("{base}.Limits.NanoCPUs"), l.nano_cpus)?.unwrap_or(0);
        out.limits.memory_bytes =
            count(&format!("{base}.Limits.MemoryBytes"), l.memory_bytes)?.unwrap_or(0);
        out.limits.pids = count(&format!("{base}.Limits.Pids"), l.pids)?.unwrap_or(0);
    }
    if let Some(v) = &r.reservations {
        warn_extra(&format!("{base}.Reservations."), &v.extra, w);
        out.reservations.nano_cpus =
            count(&format!("{base}.Reservations.NanoCPUs"), v.nano_cpus)?.unwrap_or(0);
        out.reservations.memory_bytes =
            count(&format!("{base}.Reservations.MemoryBytes"), v.memory_bytes)?.unwrap_or(0);
        if v.pids.is_some_and(|p| p != 0) {
            w.push(format!(
                "{base}.Reservations.Pids: not supported by shoal, ignored"
            ));
        }
    }
    Ok(out)
}

fn update_config(
    field: &str,
    u: Option<&UpdateConfig>,
    w: &mut Vec<String>,
) -> Result<api::UpdateConfig, DockerError> {
    let d = api::UpdateConfig::default();
    let Some(u) = u else {
        return Ok(d);
    };
    warn_extra(&format!("{field}."), &u.extra, w);
    let failure_action = match u.failure_action.as_deref() {
        None | Some("") => d.failure_action,
        Some(a) => api::FailureAction::parse(a).map_err(|_| {
            DockerError::invalid(
                format!("{field}.FailureAction"),
                format!("{a:?}: expected pause, continue or rollback"),
            )
        })?,
    };
    let order = match u.order.as_deref() {
        None | Some("") => d.order,
        Some(o) => api::UpdateOrder::parse(o).map_err(|_| {
            DockerError::invalid(
                format!("{field}.Order"),
                format!("{o:?}: expected stop-first or start-first"),
            )
        })?,
    };
    let ratio = u.max_failure_ratio.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(DockerError::invalid(
            format!("{field}.MaxFailureRatio"),
            format!("{ratio} is not between 0 and 1"),
        ));
    }
    Ok(api::UpdateConfig {
        // Present without Parallelism: Go's zero, every task at once.
        parallelism: count(&format!("{field}.Parallelism"), u.parallelism)?.unwrap_or(0),
        delay: match u.delay {
            Some(0) | None => Duration::ZERO,
            ns => duration(&format!("{field}.Delay"), ns, Duration::ZERO)?,
        },
        failure_action,
        monitor: duration(&format!("{field}.Monitor"), u.monitor, d.monitor)?,
        max_failure_ratio: ratio,
        order,
        progress_deadline: d.progress_deadline,
    })
}

fn endpoint(
    e: Option<&EndpointSpec>,
    w: &mut Vec<String>,
) -> Result<(api::EndpointMode, Vec<api::PortConfig>), DockerError> {
    let Some(e) = e else {
        return Ok((api::EndpointMode::default(), Vec::new()));
    };
    warn_extra("EndpointSpec.", &e.extra, w);
    let mode = match e.mode.as_deref() {
        None | Some("") => api::EndpointMode::Vip,
        Some(m) => api::EndpointMode::parse(m).map_err(|_| {
            DockerError::invalid("EndpointSpec.Mode", format!("{m:?}: expected vip or dnsrr"))
        })?,
    };
    let mut ports = Vec::new();
    for (i, p) in e.ports.iter().flatten().enumerate() {
        ports.push(port(&format!("EndpointSpec.Ports[{i}]"), p, w)?);
    }
    Ok((mode, ports))
}

fn port(field: &str, p: &PortConfig, w: &mut Vec<String>) -> Result<api::PortConfig, DockerError> {
    warn_extra(&format!("{field}."), &p.extra, w);
    if p.name.as_ref().is_some_and(|n| !n.is_empty()) {
        w.push(format!("{field}.Name: not supported by shoal, ignored"));
    }
    let protocol = match p.protocol.as_deref() {
        None | Some("") | Some("tcp") => api::Protocol::Tcp,
        Some("udp") => api::Protocol::Udp,
        Some(other) => {
            return Err(DockerError::invalid(
                format!("{field}.Protocol"),
                format!("{other:?}: shoal publishes tcp or udp"),
            ))
        }
    };
    let mode = match p.publish_mode.as_deref() {
        None | Some("") | Some("ingress") => api::PublishMode::Ingress,
        Some("host") => api::PublishMode::Host,
        Some("internal") => api::PublishMode::Internal,
        Some(other) => {
            return Err(DockerError::invalid(
                format!("{field}.PublishMode"),
                format!("{other:?}: expected ingress or host"),
            ))
        }
    };
    let target = port_number(
        &format!("{field}.TargetPort"),
        p.target_port.ok_or_else(|| {
            DockerError::invalid(
                format!("{field}.TargetPort"),
                "missing: the port tasks listen on",
            )
        })?,
    )?;
    let published = match p.published_port {
        None | Some(0) => None,
        Some(n) => Some(port_number(&format!("{field}.PublishedPort"), n)?),
    };
    if mode == api::PublishMode::Host && published.is_none() {
        return Err(DockerError::invalid(
            format!("{field}.PublishedPort"),
            "missing: a host-mode port names the port it takes on the node",
        ));
    }
    Ok(api::PortConfig {
        published,
        target,
        protocol,
        mode,
        proxy_protocol: None,
    })
}
