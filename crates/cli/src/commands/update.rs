//! `shoal service update` and `shoal service rollback`, and the rollout flags they share
//! with `service create`.

use crate::client::{encode, Client};
use crate::commands::daemon::parse_duration;
use crate::progress::{wait_rollout, WaitOutcome};
use shoal_api::{
    FailureAction, HealthCheck, HealthProbe, Mount, PortConfig, RestartCondition, Runtime,
    ServiceMode, Ulimit, UpdateConfig, UpdateOrder, UpdateState,
};
use shoal_wire::v1::services::{ServiceInfo, UpdateRequest};
use std::process::ExitCode;
use std::time::Duration;

fn parse_ratio(text: &str) -> Result<f64, String> {
    let r: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("{text} is outside 0..1"));
    }
    Ok(r)
}

/// `--update-*` and `--rollback-*`: only the given ones change the config.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RolloutFlags {
    /// Tasks updated at once (0: all at once; default 1)
    #[arg(long)]
    update_parallelism: Option<u64>,
    /// Pause between batches (default 0s)
    #[arg(long, value_parser = parse_duration)]
    update_delay: Option<Duration>,
    /// pause, continue or rollback (default pause)
    #[arg(long, value_parser = ["pause", "continue", "rollback"])]
    update_failure_action: Option<String>,
    /// How long each new task is watched for failure (default 5s)
    #[arg(long, value_parser = parse_duration)]
    update_monitor: Option<Duration>,
    /// Failures tolerated, 0 to 1 (default 0)
    #[arg(long, value_parser = parse_ratio)]
    update_max_failure_ratio: Option<f64>,
    /// stop-first or start-first (default stop-first)
    #[arg(long, value_parser = ["stop-first", "start-first"])]
    update_order: Option<String>,
    /// A task not ready this long after its update began counts as failed (default 60s)
    #[arg(long, value_parser = parse_duration)]
    update_progress_deadline: Option<Duration>,
    #[arg(long)]
    rollback_parallelism: Option<u64>,
    #[arg(long, value_parser = parse_duration)]
    rollback_delay: Option<Duration>,
    #[arg(long, value_parser = ["pause", "continue"])]
    rollback_failure_action: Option<String>,
    #[arg(long, value_parser = parse_duration)]
    rollback_monitor: Option<Duration>,
    #[arg(long, value_parser = parse_ratio)]
    rollback_max_failure_ratio: Option<f64>,
    #[arg(long, value_parser = ["stop-first", "start-first"])]
    rollback_order: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn apply_config(
    c: &mut UpdateConfig,
    parallelism: Option<u64>,
    delay: Option<Duration>,
    action: &Option<String>,
    monitor: Option<Duration>,
    ratio: Option<f64>,
    order: &Option<String>,
    deadline: Option<Duration>,
) -> anyhow::Result<()> {
    if let Some(p) = parallelism {
        c.parallelism = p;
    }
    if let Some(d) = delay {
        c.delay = d;
    }
    if let Some(a) = action {
        c.failure_action = FailureAction::parse(a)?;
    }
    if let Some(m) = monitor {
        c.monitor = m;
    }
    if let Some(r) = ratio {
        c.max_failure_ratio = r;
    }
    if let Some(o) = order {
        c.order = UpdateOrder::parse(o)?;
    }
    if let Some(d) = deadline {
        c.progress_deadline = d;
    }
    Ok(())
}

impl RolloutFlags {
    pub fn apply(
        &self,
        update: &mut UpdateConfig,
        rollback: &mut UpdateConfig,
    ) -> anyhow::Result<()> {
        apply_config(
            update,
            self.update_parallelism,
            self.update_delay,
            &self.update_failure_action,
            self.update_monitor,
            self.update_max_failure_ratio,
            &self.update_order,
            self.update_progress_deadline,
        )?;
        apply_config(
            rollback,
            self.rollback_parallelism,
            self.rollback_delay,
            &self.rollback_failure_action,
            self.rollback_monitor,
            self.rollback_max_failure_ratio,
            &self.rollback_order,
            None,
        )
    }
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    service: String,
    /// Run this image (a container service)
    #[arg(long)]
    image: Option<String>,
    /// Replace the image's entrypoint (split on spaces; "" for the image's own)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Replace the program and its leading arguments (split on spaces)
    #[arg(long)]
    command: Option<String>,
    /// Replace the arguments (split on spaces)
    #[arg(long)]
    args: Option<String>,
    #[arg(long)]
    env_add: Vec<String>,
    #[arg(long)]
    env_rm: Vec<String>,
    #[arg(long)]
    label_add: Vec<String>,
    #[arg(long)]
    label_rm: Vec<String>,
    #[arg(long)]
    replicas: Option<u64>,
    /// Add a mount, or replace the one at its target (type=...,source=...,target=...)
    #[arg(long, value_name = "MOUNT")]
    mount_add: Vec<String>,
    /// Remove the mount at this target
    #[arg(long, value_name = "TARGET")]
    mount_rm: Vec<String>,
    /// Add a secret, or replace the one with its target (NAME or source=NAME,target=...)
    #[arg(long, value_name = "SECRET")]
    secret_add: Vec<String>,
    /// Remove a secret, by name or ID
    #[arg(long, value_name = "SECRET")]
    secret_rm: Vec<String>,
    /// Add a config, or replace the one with its target (NAME or source=NAME,target=...)
    #[arg(long, value_name = "CONFIG")]
    config_add: Vec<String>,
    /// Remove a config, by name or ID
    #[arg(long, value_name = "CONFIG")]
    config_rm: Vec<String>,
    /// Add or replace a ulimit (name=soft[:hard])
    #[arg(long, value_name = "ULIMIT")]
    ulimit_add: Vec<String>,
    /// Remove the ulimit of this name
    #[arg(long, value_name = "NAME")]
    ulimit_rm: Vec<String>,
    #[arg(long)]
    publish_add: Vec<String>,
    /// How the service's name resolves: vip or dnsrr
    #[arg(long)]
    endpoint_mode: Option<String>,
    /// Load-balancing algorithm: round-robin, least-conn, p2c, source-hash, maglev, random
    #[arg(long)]
    lb: Option<String>,
    /// Who forwards its TCP connections: proxy or nat (the kernel)
    #[arg(long)]
    lb_mode: Option<String>,
    /// Prefer a ready task on the receiving node (--lb-local-first=false to stop)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    lb_local_first: Option<bool>,
    /// Each new task's share of new connections (default 100; tasks made before keep theirs)
    #[arg(long)]
    lb_weight: Option<u32>,
    /// Close TCP connections (forget UDP flows) idle for this long; 0 for the default
    #[arg(long, value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Published port to remove (PORT or PORT/udp)
    #[arg(long)]
    publish_rm: Vec<String>,
    /// Add a port reached only through the VIP: PORT[/PROTO]
    #[arg(long)]
    expose_add: Vec<String>,
    /// Exposed port to remove: PORT[/PROTO]
    #[arg(long)]
    expose_rm: Vec<String>,
    #[arg(long, value_parser = ["any", "on-failure", "none"])]
    restart_condition: Option<String>,
    #[arg(long, value_parser = parse_duration)]
    restart_delay: Option<Duration>,
    #[arg(long)]
    restart_max_attempts: Option<u32>,
    #[arg(long, value_parser = parse_duration)]
    restart_window: Option<Duration>,
    #[arg(long, conflicts_with_all = ["health_http", "health_tcp", "no_healthcheck"])]
    health_cmd: Option<String>,
    #[arg(long, conflicts_with_all = ["health_tcp", "no_healthcheck"])]
    health_http: Option<String>,
    #[arg(long, conflicts_with = "no_healthcheck")]
    health_tcp: bool,
    /// Remove the health check (and, for a container, turn off the image's HEALTHCHECK)
    #[arg(long)]
    no_healthcheck: bool,
    #[arg(long, value_parser = parse_duration)]
    health_interval: Option<Duration>,
    #[arg(long, value_parser = parse_duration)]
    health_timeout: Option<Duration>,
    #[arg(long)]
    health_retries: Option<u32>,
    #[arg(long, value_parser = parse_duration)]
    health_start_period: Option<Duration>,
    #[arg(long, value_parser = parse_duration)]
    stop_grace_period: Option<Duration>,
    #[arg(long)]
    stop_signal: Option<String>,
    #[command(flatten)]
    rollout: RolloutFlags,
    #[command(flatten)]
    resources: super::resources::ResourceFlags,
    /// Replace every task even if the spec is unchanged
    #[arg(long)]
    force: bool,
    /// Exit right away instead of following the rollout
    #[arg(short, long)]
    detach: bool,
    /// Give up following after this long (exit 1; the rollout goes on)
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

impl UpdateArgs {
    fn apply(&self, spec: &mut shoal_api::ServiceSpec) -> anyhow::Result<()> {
        let t = &mut spec.task;
        if let Some(image) = &self.image {
            let Runtime::Container(c) = &mut t.runtime else {
                anyhow::bail!("--image changes a container service; this service runs a process (use --command)");
            };
            c.image = image.clone();
        }
        if let Some(e) = &self.entrypoint {
            let Runtime::Container(c) = &mut t.runtime else {
                anyhow::bail!(
                    "--entrypoint changes a container service; use --command for a process"
                );
            };
            c.entrypoint = Some(words(e)).filter(|w| !w.is_empty());
        }
        if let Some(c) = &self.command {
            let w = words(c);
            anyhow::ensure!(!w.is_empty(), "invalid --command: empty");
            let Some(p) = t.process_mut() else {
                anyhow::bail!("--command changes a process service; use --entrypoint or --args for a container service");
            };
            p.command = w;
        }
        if let Some(a) = &self.args {
            match &mut t.runtime {
                Runtime::Process(p) => p.args = words(a),
                Runtime::Container(c) => c.args = words(a),
            }
        }
        self.apply_container(t)?;
        files::<shoal_api::SecretKind>(&mut t.secrets, &self.secret_rm, &self.secret_add)?;
        files::<shoal_api::ConfigKind>(&mut t.configs, &self.config_rm, &self.config_add)?;
        for k in &self.env_rm {
            t.env.retain(|e| e.split('=').next() != Some(k.as_str()));
        }
        for e in &self.env_add {
            let (k, _) = e
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid --env-add {e:?}: expected KEY=VALUE"))?;
            t.env.retain(|x| x.split('=').next() != Some(k));
            t.env.push(e.clone());
        }
        for k in &self.label_rm {
            spec.labels.remove(k);
        }
        for l in &self.label_add {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            anyhow::ensure!(
                !k.is_empty(),
                "invalid --label-add {l:?}: expected KEY=VALUE"
            );
            spec.labels.insert(k.to_string(), v.to_string());
        }
        if let Some(r) = self.replicas {
            match &mut spec.mode {
                ServiceMode::Replicated { replicas } => *replicas = r,
                ServiceMode::Global => {
                    anyhow::bail!("--replicas cannot be used with a global service")
                }
            }
        }
        for p in &self.publish_rm {
            let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let port: u16 = port.parse().map_err(|_| {
                anyhow::anyhow!("invalid --publish-rm {p:?}: expected PORT[/PROTO]")
            })?;
            let before = spec.ports.len();
            spec.ports
                .retain(|q| !(q.published == Some(port) && q.protocol.as_str() == proto));
            anyhow::ensure!(
                spec.ports.len() < before,
                "invalid --publish-rm {p:?}: the service does not publish it"
            );
        }
        for p in &self.publish_add {
            spec.ports.push(PortConfig::parse(p)?);
        }
        for p in &self.expose_rm {
            let gone = PortConfig::expose(p)?;
            let before = spec.ports.len();
            spec.ports.retain(|q| {
                q.is_published() || (q.target, q.protocol) != (gone.target, gone.protocol)
            });
            anyhow::ensure!(
                spec.ports.len() < before,
                "invalid --expose-rm {p:?}: the service does not expose it"
            );
        }
        for p in &self.expose_add {
            let port = PortConfig::expose(p)?;
            if !spec.ports.contains(&port) {
                spec.ports.push(port);
            }
        }
        if let Some(m) = &self.endpoint_mode {
            spec.endpoint_mode = shoal_api::EndpointMode::parse(m)?;
        }
        if let Some(lb) = &self.lb {
            spec.lb = shoal_api::Policy::parse(lb)?;
        }
        if let Some(m) = &self.lb_mode {
            spec.lb_mode = shoal_api::LbMode::parse(m)?;
        }
        if let Some(local) = self.lb_local_first {
            spec.lb_local_first = local;
        }
        if let Some(d) = self.idle_timeout {
            spec.idle_timeout = d;
        }
        if let Some(w) = self.lb_weight {
            spec.task.lb_weight = Some(w);
        }
        let t = &mut spec.task;
        if let Some(c) = &self.restart_condition {
            t.restart.condition = RestartCondition::parse(c)?;
        }
        if let Some(d) = self.restart_delay {
            t.restart.delay = d;
        }
        if let Some(n) = self.restart_max_attempts {
            t.restart.max_attempts = n;
        }
        if let Some(w) = self.restart_window {
            t.restart.window = w;
        }
        let probe = match (&self.health_cmd, &self.health_http, self.health_tcp) {
            (Some(c), _, _) => Some(HealthProbe::Cmd { command: c.clone() }),
            (_, Some(p), _) => Some(HealthProbe::Http { path: p.clone() }),
            (_, _, true) => Some(HealthProbe::Tcp),
            _ => None,
        };
        if let Runtime::Container(c) = &mut t.runtime {
            // A new check replaces `--no-healthcheck`, as with docker.
            if self.no_healthcheck {
                c.no_healthcheck = true;
            } else if probe.is_some() {
                c.no_healthcheck = false;
            }
        }
        if self.no_healthcheck {
            t.health = None;
        } else if let Some(probe) = probe {
            let base = t
                .health
                .clone()
                .unwrap_or_else(|| HealthCheck::new(probe.clone()));
            t.health = Some(HealthCheck { probe, ..base });
        }
        let touches_health = self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some();
        if touches_health {
            let h = t
                .health
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("the service has no health check: add one with --health-cmd, --health-http or --health-tcp"))?;
            if let Some(v) = self.health_interval {
                h.interval = v;
            }
            if let Some(v) = self.health_timeout {
                h.timeout = v;
            }
            if let Some(v) = self.health_retries {
                h.retries = v;
            }
            if let Some(v) = self.health_start_period {
                h.start_period = v;
            }
        }
        if let Some(g) = self.stop_grace_period {
            t.stop_grace_period = g;
        }
        if let Some(s) = &self.stop_signal {
            t.stop_signal = s.clone();
        }
        self.resources.apply(&mut spec.task.resources);
        self.rollout.apply(&mut spec.update, &mut spec.rollback)?;
        spec.validate()?;
        Ok(())
    }
}

/// `--secret-rm/--secret-add` (or the config ones): removals by name or ID first, then
/// additions replacing the file at their target. The manager resolves the names.
fn files<K: shoal_api::BlobKind>(
    refs: &mut Vec<shoal_api::FileRef>,
    rm: &[String],
    add: &[String],
) -> anyhow::Result<()> {
    for key in rm {
        let before = refs.len();
        refs.retain(|r| r.name != *key && r.id != *key);
        anyhow::ensure!(
            refs.len() < before,
            "invalid --{}-rm {key:?}: the service uses no such {}",
            K::NAME,
            K::NAME
        );
    }
    for text in add {
        let r = shoal_api::FileRef::parse::<K>(text)?;
        refs.retain(|x| x.target != r.target);
        refs.push(r);
    }
    Ok(())
}

impl UpdateArgs {
    /// `--mount-rm/--mount-add` (by target) and `--ulimit-rm/--ulimit-add` (by name):
    /// removals first, then additions replacing what they name.
    fn apply_container(&self, t: &mut shoal_api::TaskTemplate) -> anyhow::Result<()> {
        let given = !self.mount_add.is_empty()
            || !self.mount_rm.is_empty()
            || !self.ulimit_add.is_empty()
            || !self.ulimit_rm.is_empty();
        let Runtime::Container(c) = &mut t.runtime else {
            anyhow::ensure!(
                !given,
                "--mount-add, --mount-rm, --ulimit-add and --ulimit-rm change a container service; this service runs a process"
            );
            return Ok(());
        };
        for target in &self.mount_rm {
            let key = target.trim_end_matches('/');
            let before = c.mounts.len();
            c.mounts.retain(|m| m.target_key() != key);
            anyhow::ensure!(
                c.mounts.len() < before,
                "invalid --mount-rm {target:?}: the service has no mount at that target"
            );
        }
        for text in &self.mount_add {
            let m = Mount::parse(text)?;
            c.mounts.retain(|x| x.target_key() != m.target_key());
            c.mounts.push(m);
        }
        for name in &self.ulimit_rm {
            let before = c.ulimits.len();
            c.ulimits.retain(|u| u.name != *name);
            anyhow::ensure!(
                c.ulimits.len() < before,
                "invalid --ulimit-rm {name:?}: the service sets no such ulimit"
            );
        }
        for text in &self.ulimit_add {
            Ulimit::parse(text)?.set_in(&mut c.ulimits);
        }
        Ok(())
    }
}

pub async fn update(client: &Client, args: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let current: ServiceInfo = client
        .get(&format!("/v1/services/{}", encode(&args.service)))
        .await?;
    let mut spec = current.service.spec.clone();
    args.apply(&mut spec)?;
    let updated: ServiceInfo = client
        .post(
            &format!("/v1/services/{}/update", current.service.id),
            &UpdateRequest {
                spec,
                force: args.force,
            },
        )
        .await?;
    println!("{}", updated.service.spec.name);
    follow(client, &updated, args.detach, args.timeout).await
}

pub async fn rollback(
    client: &Client,
    service: &str,
    detach: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let rolled: ServiceInfo = client
        .post(
            &format!("/v1/services/{}/rollback", encode(service)),
            &serde_json::json!({}),
        )
        .await?;
    println!("{}", rolled.service.spec.name);
    println!("rollback: manually requested rollback");
    follow(client, &rolled, detach, timeout).await
}

async fn follow(
    client: &Client,
    info: &ServiceInfo,
    detach: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    if info.service.update_status.as_ref().is_none_or(|u| {
        u.version != info.service.version
            || matches!(
                u.state,
                UpdateState::Completed | UpdateState::RollbackCompleted
            )
    }) {
        // Only the replica count changed: a scale, not a rollout (a rollout's status would
        // be in progress; a finished one's says nothing about the new replicas).
        return match crate::progress::wait_converged(client, &info.service.id, timeout).await? {
            WaitOutcome::Converged => Ok(ExitCode::SUCCESS),
            WaitOutcome::TimedOut(why) => anyhow::bail!("{why}"),
        };
    }
    match wait_rollout(client, &info.service.id, info.service.version, timeout).await? {
        WaitOutcome::Converged => Ok(ExitCode::SUCCESS),
        WaitOutcome::TimedOut(why) => anyhow::bail!("{why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use shoal_api::{ServiceSpec, TaskTemplate};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: UpdateArgs,
    }

    fn update(spec: &ServiceSpec, line: &str) -> anyhow::Result<ServiceSpec> {
        let words = std::iter::once("update").chain(line.split_whitespace());
        let mut spec = spec.clone();
        Cli::try_parse_from(words)?.args.apply(&mut spec)?;
        Ok(spec)
    }

    fn container(spec: &ServiceSpec) -> &shoal_api::ContainerSpec {
        match &spec.task.runtime {
            Runtime::Container(c) => c,
            Runtime::Process(_) => panic!("container"),
        }
    }

    fn service(task: TaskTemplate) -> ServiceSpec {
        ServiceSpec {
            endpoint_mode: Default::default(),
            lb: Default::default(),
            lb_local_first: false,
            lb_mode: Default::default(),
            idle_timeout: Default::default(),
            name: "web".into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas: 1 },
            task,
            ports: vec![],
            update: Default::default(),
            rollback: Default::default(),
        }
    }

    #[test]
    fn mounts_and_ulimits_are_added_replaced_and_removed() {
        let base = service(TaskTemplate::with_image("nginx"));
        let s = update(
            &base,
            "--mount-add type=volume,source=v1,target=/data --mount-add type=tmpfs,target=/t \
             --ulimit-add nofile=10 --ulimit-add core=0 web",
        )
        .expect("add");
        assert_eq!(container(&s).mounts.len(), 2);
        let s = update(
            &s,
            "--mount-add type=bind,source=/srv,target=/data/ --mount-rm /t \
             --ulimit-add nofile=1024:2048 --ulimit-rm core web",
        )
        .expect("replace and remove");
        let c = container(&s);
        let mounts: Vec<String> = c.mounts.iter().map(Mount::to_string).collect();
        assert_eq!(mounts, ["type=bind,source=/srv,target=/data/"]);
        let ulimits: Vec<String> = c.ulimits.iter().map(Ulimit::to_string).collect();
        assert_eq!(ulimits, ["nofile=1024:2048"]);

        for (line, want) in [
            ("--mount-rm /nope web", r#"invalid --mount-rm "/nope""#),
            ("--ulimit-rm nproc web", r#"invalid --ulimit-rm "nproc""#),
            (
                "--mount-add type=bind,target=/x web",
                "a bind mount needs a source",
            ),
        ] {
            let err = update(&s, line).expect_err(line).to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
        let process = service(TaskTemplate::with_command(vec!["shoal".into()]));
        let err = update(&process, "--mount-add type=tmpfs,target=/t web")
            .expect_err("process")
            .to_string();
        assert!(err.contains("change a container service"), "{err}");
    }

    #[test]
    fn no_healthcheck_turns_off_the_images_check_and_a_new_check_turns_it_back() {
        let base = service(TaskTemplate::with_image("nginx"));
        let s = update(&base, "--health-cmd true web").expect("cmd");
        assert!(s.task.health.is_some());
        let s = update(&s, "--no-healthcheck web").expect("off");
        assert!(s.task.health.is_none() && container(&s).no_healthcheck);
        let s = update(&s, "--health-cmd true web").expect("on again");
        assert!(s.task.health.is_some() && !container(&s).no_healthcheck);
    }
}
