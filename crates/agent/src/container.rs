//! The container executor: each task is a container on the node's Docker Engine, driven
//! through the Engine API.
//!
//! PREPARING makes sure the image is on the node (pulled through the engine when missing)
//! and creates the container, labelled with the cluster, node, service, task and slot. The
//! engine's own restart policy stays off: shoal's applies. Output is copied from the
//! engine's log stream to the task's log file, as for a process, so `service logs` reads
//! both the same way. A container outlives the daemon: after a restart the agent adopts it
//! again by its labels. This node touches only containers labelled with its own node ID,
//! so several nodes may share one engine.

use crate::executor::{
    signal_then_kill, BoxFuture, ExecError, Executor, ExitInfo, LaunchSpec, Prepared, Running,
};
use crate::launch::ContainerHealth;
use crate::launch::{LABEL_NODE, LABEL_TASK};
use crate::log_writer::{LogRotation, RotatingLog};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HealthConfig, HealthStatusEnum, HostConfig,
    Mount, MountBindOptions, MountTmpfsOptions, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig, PortBinding, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use shoal_api::task::EndpointPort;
use shoal_api::{Health, RuntimeKind, RuntimeStatus};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::StreamExt;

/// Where the engine is when neither `--docker-host` nor `DOCKER_HOST` says.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long a SIGKILLed container may take to be reported dead.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long, once a container has exited, its output may take to reach the log file.
const OUTPUT_WAIT: Duration = Duration::from_secs(2);

/// Longest wait for a started container to listen on its target port.
const LISTEN_WAIT: Duration = Duration::from_secs(60);

/// How often a container's health is read from the engine.
const HEALTH_POLL: Duration = Duration::from_millis(500);

/// Timeout of one Engine API call, in seconds (an image pull streams within it).
const API_TIMEOUT: u64 = 300;

#[derive(Debug, Clone)]
pub struct ContainerExecutor {
    docker: Docker,
    node_id: String,
    /// For messages: the node a pull failed on.
    node_name: String,
    /// The engine's version, as `docker version` prints it.
    version: String,
    /// Where task logs go (`<task id>.log`), also for containers adopted after a restart.
    logs_dir: PathBuf,
    logs: LogRotation,
}

/// The engine's address from `--docker-host`, else `DOCKER_HOST`, else the default socket.
pub fn docker_host(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string())
}

/// The version of the engine at `host`, or why none answers there.
pub async fn engine_version(host: &str) -> Result<String, String> {
    let logs = std::env::temp_dir();
    ContainerExecutor::connect(host, "", "", &logs, LogRotation::default())
        .await
        .map(|e| e.version)
}

impl ContainerExecutor {
    /// Connect to the engine at `host` (`unix:///path` or a bare socket path) and ask its
    /// version; an error says why this node cannot run containers.
    pub async fn connect(
        host: &str,
        node_id: &str,
        node_name: &str,
        logs_dir: &Path,
        logs: LogRotation,
    ) -> Result<ContainerExecutor, String> {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if host.contains("://") && !host.starts_with("unix://") {
            return Err(format!(
                "docker host {host}: only unix sockets are supported (unix:///path)"
            ));
        }
        let docker = Docker::connect_with_socket(path, API_TIMEOUT, bollard::API_DEFAULT_VERSION)
            .map_err(|e| format!("no container engine at {host}: {e}"))?;
        let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
            .await
            .map_err(|_| format!("no container engine at {host}: no answer in 5s"))?
            .map_err(|e| format!("no container engine at {host}: {e}"))?;
        let version = docker
            .version()
            .await
            .map_err(|e| format!("no container engine at {host}: {e}"))?
            .version
            .unwrap_or_default();
        Ok(ContainerExecutor {
            docker,
            node_id: node_id.to_string(),
            node_name: node_name.to_string(),
            version,
            logs_dir: logs_dir.to_path_buf(),
            logs,
        })
    }

    /// The engine's version (`20.10.24+dfsg1`).
    pub fn engine_version(&self) -> &str {
        &self.version
    }

    fn engine_err(&self, task: &str, what: &str, e: bollard::errors::Error) -> ExecError {
        ExecError::Engine {
            task: task.to_string(),
            message: format!("{what}: {}", engine_message(&e)),
        }
    }

    /// Make sure `image` is on this node, pulling it through the engine when missing.
    async fn ensure_image(&self, task: &str, image: &str) -> Result<(), ExecError> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let (from, tag) = split_tag(image);
        let opts = CreateImageOptions {
            from_image: Some(from.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(opts), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                return Err(ExecError::Engine {
                    task: task.to_string(),
                    message: format!(
                        "image {image} is not on node {} and could not be pulled: {}",
                        self.node_name,
                        engine_message(&e)
                    ),
                });
            }
        }
        Ok(())
    }

    fn create_body(&self, spec: &LaunchSpec) -> ContainerCreateBody {
        let c = spec.container.clone().unwrap_or_default();
        let mut exposed = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &c.ports {
            let key = format!("{}/{}", p.target, p.protocol.as_str());
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("0.0.0.0".into()),
                    host_port: Some(p.host_port.to_string()),
                }]),
            );
        }
        let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        ContainerCreateBody {
            image: Some(c.image.clone()),
            cmd: (!spec.argv.is_empty()).then(|| spec.argv.clone()),
            entrypoint: c.entrypoint.clone(),
            env: Some(env),
            working_dir: spec.workdir.clone(),
            labels: Some(c.labels.clone().into_iter().collect()),
            user: c.user.clone(),
            hostname: c.hostname.clone(),
            tty: Some(c.tty),
            healthcheck: health_config(&c.health),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            stop_signal: Some(c.stop_signal.clone()),
            host_config: Some(HostConfig {
                dns: (!c.dns.is_empty()).then(|| c.dns.iter().map(|ip| ip.to_string()).collect()),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                init: c.init.then_some(true),
                readonly_rootfs: c.read_only.then_some(true),
                cap_add: (!c.cap_add.is_empty()).then(|| c.cap_add.clone()),
                cap_drop: (!c.cap_drop.is_empty()).then(|| c.cap_drop.clone()),
                mounts: (!c.mounts.is_empty()).then(|| c.mounts.iter().map(engine_mount).collect()),
                ulimits: (!c.ulimits.is_empty()).then(|| {
                    c.ulimits
                        .iter()
                        .map(|u| ResourcesUlimits {
                            name: Some(u.name.clone()),
                            soft: Some(u.soft),
                            hard: Some(u.hard),
                        })
                        .collect()
                }),
                nano_cpus: positive(c.limits.nano_cpus),
                memory: positive(c.limits.memory_bytes),
                pids_limit: positive(c.limits.pids),
                // shoal's restart policy applies, never the engine's.
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Follow a started container: copy its output, report its exit and its health.
    fn follow(&self, id: &str, log: Option<RotatingLog>, since: i32) -> Running {
        let (tx, exited) = watch::channel(None);
        let copier = log.map(|log| {
            let stream = self.docker.logs(
                id,
                Some(LogsOptions {
                    follow: true,
                    stdout: true,
                    stderr: true,
                    since,
                    ..Default::default()
                }),
            );
            tokio::spawn(copy_logs(stream, log))
        });
        let docker = self.docker.clone();
        let cid = id.to_string();
        tokio::spawn(async move {
            let mut wait = docker.wait_container(&cid, None);
            // An error item is how the API reports a non-zero exit: either way it ended
            // (or the engine went away); the container's state says how.
            let _ = wait.next().await;
            let info = exit_of(&docker, &cid).await;
            if let Some(copier) = copier {
                if tokio::time::timeout(OUTPUT_WAIT, copier).await.is_err() {
                    tracing::warn!(container = %cid, "container output still open after exit");
                }
            }
            tx.send_replace(Some(info));
        });
        let (htx, health) = watch::channel(None);
        let docker = self.docker.clone();
        let cid = id.to_string();
        let mut done = exited.clone();
        tokio::spawn(async move {
            loop {
                let h = health_of(&docker, &cid).await;
                if h.is_none() {
                    return;
                }
                htx.send_if_modified(|old| {
                    let changed = *old != h;
                    *old = h;
                    changed
                });
                tokio::select! {
                    _ = tokio::time::sleep(HEALTH_POLL) => {}
                    _ = done.wait_for(|e| e.is_some()) => return,
                }
            }
        });
        Running {
            runtime: RuntimeStatus::Container {
                id: id.to_string(),
                addr: None,
            },
            exited,
            health: Some(health),
        }
    }

    /// Wait until the container accepts connections on its first TCP target port (or
    /// exits). The engine's port proxy accepts on the host port at once, before the program
    /// in the container listens, and then drops what it cannot forward: a task reported
    /// running too early would lose the mesh's first connections to it. Probed on the
    /// container's own address, where a port nobody listens on refuses.
    async fn wait_listening(
        &self,
        ip: Option<std::net::IpAddr>,
        id: &str,
        ports: &[EndpointPort],
        running: &Running,
    ) {
        let Some(target) = ports
            .iter()
            .find(|p| p.protocol == shoal_api::Protocol::Tcp)
            .map(|p| p.target)
        else {
            return;
        };
        let Some(ip) = ip else {
            return;
        };
        let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
        let mut exited = running.exited.clone();
        loop {
            let connect = tokio::net::TcpStream::connect((ip, target));
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                return;
            }
            if exited.borrow().is_some() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(container = %id, port = target, "container does not listen on its target port; reporting it running anyway");
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = exited.wait_for(|e| e.is_some()) => return,
            }
        }
    }
}

/// The container's address on its network (the default bridge) and that network's prefix
/// length (a host prefix when the engine gives none).
fn container_ip(c: &ContainerInspectResponse) -> Option<(std::net::IpAddr, u8)> {
    c.network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .values()
        .find_map(|n| {
            let ip: std::net::IpAddr = n.ip_address.as_deref()?.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = n
                .ip_prefix_len
                .and_then(|l| u8::try_from(l).ok())
                .filter(|l| (1..=max).contains(l))
                .unwrap_or(max);
            Some((ip, len))
        })
}

/// Whether the container checks its own health (an image HEALTHCHECK not turned off), so
/// the agent follows the engine's verdict.
fn checks_own_health(c: &ContainerInspectResponse) -> bool {
    c.config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| t.first().is_some_and(|w| w != "NONE"))
}

/// The container's `Healthcheck`: `None` keeps the image's.
fn health_config(h: &ContainerHealth) -> Option<HealthConfig> {
    let nanos = |d: Duration| Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    match h {
        ContainerHealth::Image => None,
        ContainerHealth::Off => Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        ContainerHealth::Cmd {
            command,
            interval,
            timeout,
            retries,
            start_period,
        } => Some(HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), command.clone()]),
            interval: nanos(*interval),
            timeout: nanos(*timeout),
            // 0 would mean the engine's default (3); shoal counts 0 as 1, as on the node.
            retries: Some(i64::from((*retries).max(1))),
            start_period: nanos(*start_period),
            ..Default::default()
        }),
    }
}

/// A mount as the engine takes it.
fn engine_mount(m: &shoal_api::Mount) -> Mount {
    use shoal_api::MountType as Kind;
    let volume = m.kind == Kind::Volume
        && (m.volume_nocopy
            || m.volume_driver.is_some()
            || !m.volume_labels.is_empty()
            || !m.volume_options.is_empty());
    let tmpfs = m.kind == Kind::Tmpfs && (m.tmpfs_size > 0 || m.tmpfs_mode.is_some());
    Mount {
        target: Some(m.target.clone()),
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        typ: Some(match m.kind {
            Kind::Bind => MountType::BIND,
            Kind::Volume => MountType::VOLUME,
            Kind::Tmpfs => MountType::TMPFS,
        }),
        read_only: m.read_only.then_some(true),
        bind_options: m
            .bind_propagation
            .as_deref()
            .and_then(|p| p.parse().ok())
            .map(|p| MountBindOptions {
                propagation: Some(p),
                ..Default::default()
            }),
        volume_options: volume.then(|| MountVolumeOptions {
            no_copy: m.volume_nocopy.then_some(true),
            labels: (!m.volume_labels.is_empty())
                .then(|| m.volume_labels.clone().into_iter().collect()),
            driver_config: (m.volume_driver.is_some() || !m.volume_options.is_empty()).then(|| {
                MountVolumeOptionsDriverConfig {
                    name: m.volume_driver.clone(),
                    options: (!m.volume_options.is_empty())
                        .then(|| m.volume_options.clone().into_iter().collect()),
                }
            }),
            ..Default::default()
        }),
        tmpfs_options: tmpfs.then(|| MountTmpfsOptions {
            size_bytes: positive(m.tmpfs_size),
            mode: m.tmpfs_mode.map(i64::from),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A limit for the engine: `None` (unlimited) for 0.
fn positive(n: u64) -> Option<i64> {
    (n > 0).then(|| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The engine's own words for an error (the message of its JSON answer when it sent one).
fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// `redis:3.0.6` → (`redis`, `3.0.6`); no tag means `latest`; a digest stays whole.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

async fn copy_logs(
    mut stream: impl tokio_stream::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
        + Unpin,
    mut log: RotatingLog,
) {
    let mut failed = false;
    while let Some(item) = stream.next().await {
        let Ok(out) = item else { return };
        if let Err(e) = log.write_output(&out.into_bytes(), crate::now_nanos()) {
            if !failed {
                tracing::warn!(log = %log.path().display(), error = %e, "cannot write container output; dropping it");
            }
            failed = true;
        }
    }
}

/// How a container ended, from its state.
async fn exit_of(docker: &Docker, id: &str) -> ExitInfo {
    let state = docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|c| c.state);
    let code = state
        .as_ref()
        .and_then(|s| s.exit_code)
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(-1);
    let oom_killed = state.and_then(|s| s.oom_killed).unwrap_or(false);
    ExitInfo {
        code,
        // The shell convention the engine follows: 128 + n means killed by signal n.
        signal: (129..=192).contains(&code).then(|| code - 128),
        oom_killed,
    }
}

/// The container's health as shoal names it; `None` once the container is gone.
async fn health_of(docker: &Docker, id: &str) -> Option<Health> {
    let c = docker.inspect_container(id, None).await.ok()?;
    let h = c.state.and_then(|s| s.health)?;
    Some(match h.status {
        Some(HealthStatusEnum::HEALTHY) if h.failing_streak.unwrap_or(0) > 0 => Health::Failing,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        _ => Health::Starting,
    })
}

fn signal_name(signal: i32) -> String {
    shoal_api::service::STOP_SIGNALS
        .iter()
        .find(|(_, n)| *n == signal)
        .map(|(name, _)| name.to_string())
        .unwrap_or_else(|| signal.to_string())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl Executor for ContainerExecutor {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }

    fn prepare<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Prepared, ExecError>> {
        Box::pin(async move {
            let task = &spec.task_id;
            let Some(c) = &spec.container else {
                return Err(ExecError::Engine {
                    task: task.clone(),
                    message: "not a container task".into(),
                });
            };
            self.ensure_image(task, &c.image).await?;
            // Named like Swarm's (`web.1.<task id>`); unnamed, the engine picks a name.
            let name = c.labels.get(crate::launch::LABEL_TASK_NAME).cloned();
            let created = self
                .docker
                .create_container(
                    Some(CreateContainerOptions {
                        name,
                        ..Default::default()
                    }),
                    self.create_body(spec),
                )
                .await
                .map_err(|e| self.engine_err(task, "cannot create container", e))?;
            Ok(Prepared {
                spec: spec.clone(),
                runtime: Some(RuntimeStatus::Container {
                    id: created.id,
                    addr: None,
                }),
            })
        })
    }

    fn start(&self, prepared: Prepared) -> BoxFuture<'_, Result<Running, ExecError>> {
        Box::pin(async move {
            let spec = &prepared.spec;
            let task = &spec.task_id;
            let Some(RuntimeStatus::Container { id, .. }) = prepared.runtime.clone() else {
                return Err(ExecError::Engine {
                    task: task.clone(),
                    message: "container was not created".into(),
                });
            };
            let log = RotatingLog::open(spec.logs_dir(), task, self.logs).map_err(|source| {
                ExecError::Log {
                    task: task.clone(),
                    path: spec.log_path.display().to_string(),
                    source,
                }
            })?;
            self.docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(|e| self.engine_err(task, "cannot start container", e))?;
            let mut running = self.follow(&id, Some(log), 0);
            // One look at the started container: its health check and its address.
            let started = self.docker.inspect_container(&id, None).await.ok();
            if !started.as_ref().is_some_and(checks_own_health) {
                running.health = None;
            }
            let ports = spec
                .container
                .as_ref()
                .map(|c| c.ports.clone())
                .unwrap_or_default();
            let ip = started.as_ref().and_then(container_ip);
            running.runtime = RuntimeStatus::Container {
                id: id.clone(),
                addr: ip.map(|(ip, len)| format!("{ip}/{len}")),
            };
            self.wait_listening(ip.map(|(ip, _)| ip), &id, &ports, &running)
                .await;
            Ok(running)
        })
    }

    fn stop<'a>(
        &'a self,
        running: &'a Running,
        signal: i32,
        grace: Duration,
    ) -> BoxFuture<'a, ExitInfo> {
        Box::pin(async move {
            let RuntimeStatus::Container { id, .. } = &running.runtime else {
                return ExitInfo::code(-1);
            };
            signal_then_kill(running, signal, grace, KILL_WAIT, |sig| async move {
                let opts = KillContainerOptions {
                    signal: signal_name(sig),
                };
                // A container that already stopped answers 409: its exit follows anyway.
                let _ = self.docker.kill_container(id, Some(opts)).await;
            })
            .await
        })
    }

    fn remove<'a>(&'a self, runtime: &'a RuntimeStatus) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let RuntimeStatus::Container { id, .. } = runtime else {
                return;
            };
            let opts = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match self.docker.remove_container(id, Some(opts)).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(container = %id, error = %engine_message(&e), "cannot remove container")
                }
            }
        })
    }

    fn adopt<'a>(
        &'a self,
        task_id: &'a str,
        runtime: &'a RuntimeStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async move {
            let RuntimeStatus::Container { id, .. } = runtime else {
                return None;
            };
            let c = self.docker.inspect_container(id, None).await.ok()?;
            let labels = c
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            let ours = labels.get(LABEL_NODE) == Some(&self.node_id)
                && labels.get(LABEL_TASK).map(String::as_str) == Some(task_id);
            if !ours {
                return None;
            }
            let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            if !running {
                self.remove(runtime).await;
                return None;
            }
            let has_check = checks_own_health(&c);
            // Output from now on; what came while the daemon was down is not copied.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
                .unwrap_or(0);
            let log = RotatingLog::open(&self.logs_dir, task_id, self.logs)
                .map_err(|e| tracing::warn!(task = %task_id, error = %e, "cannot open task log"))
                .ok();
            let mut r = self.follow(id, log, now);
            if !has_check {
                r.health = None;
            }
            r.runtime = RuntimeStatus::Container {
                id: id.clone(),
                addr: container_ip(&c).map(|(ip, len)| format!("{ip}/{len}")),
            };
            Some(r)
        })
    }

    fn list(&self) -> BoxFuture<'_, Vec<(String, RuntimeStatus)>> {
        Box::pin(async move {
            let filters = HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_NODE}={}", self.node_id)],
            )]);
            let opts = ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            let Ok(list) = self.docker.list_containers(Some(opts)).await else {
                return Vec::new();
            };
            list.into_iter()
                .filter_map(|c| {
                    let task = c.labels.as_ref()?.get(LABEL_TASK)?.clone();
                    Some((
                        task,
                        RuntimeStatus::Container {
                            id: c.id?,
                            addr: None,
                        },
                    ))
                })
                .collect()
        })
    }

    fn survives_daemon(&self) -> bool {
        true
    }
}
