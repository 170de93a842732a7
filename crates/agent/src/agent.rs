//! The agent loop: one actor that owns every task of this node.

use crate::controller::{Controller, Registry};
use crate::dispatcher::{Assignments, Dispatcher, TaskReport};
use crate::executor::{ExitInfo, LaunchSpec, Running};
use crate::health::run_checks;
use crate::host_ports::{unbound, HostPorts, TASK_PORTS};
use crate::launch::{launch_spec, node_check, targets, NodeIdentity};
use crate::log_cleanup::{remove_task_logs, sweep_task_logs};
use shoal_api::service::signal_number;
use shoal_api::task::EndpointPort;
use shoal_api::{Health, PublishMode, Task, TaskEndpoint, TaskState};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: NodeIdentity,
    pub logs_dir: PathBuf,
    /// Longest wait for the data plane to drop a task before it is signalled anyway.
    pub drain_timeout: Duration,
    /// The node's DNS server, once it answers: tasks resolve service names with it.
    pub resolver: tokio::sync::watch::Receiver<Option<std::net::IpAddr>>,
    /// Where tasks' secrets and configs are written, on a tmpfs (`files::node_dir`).
    pub files_dir: PathBuf,
}

/// How the agent is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStop {
    /// Keep going.
    Run,
    /// The daemon stops: stop the tasks that would die with it; tasks that survive a daemon
    /// restart (containers) keep running, to be adopted when it comes back.
    Daemon,
    /// The node leaves the cluster: stop and remove every task.
    Leave,
}

pub struct Agent {
    cfg: AgentConfig,
    executors: Registry,
    dispatcher: Arc<dyn Dispatcher>,
    /// The endpoint-table version the node's data plane routes by.
    acked: watch::Receiver<u64>,
    /// Host ports the node's tasks hold.
    host_ports: std::sync::Mutex<HostPorts>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.cfg.node.id)
            .finish()
    }
}

/// A task this agent started (or is starting) and that has not been seen to exit.
struct Live {
    ctl: Controller,
    /// `None` while it is being prepared and started.
    running: Option<Running>,
    stopping: bool,
    unhealthy: bool,
    watchers: Vec<JoinHandle<()>>,
}

enum Event {
    Started(String, Result<Box<Started>, String>),
    Exited(String, ExitInfo),
    Health(String, Health, String),
}

/// A task that started: what the agent reports and watches.
struct Started {
    running: Running,
    endpoint: TaskEndpoint,
    spec: LaunchSpec,
}

impl Agent {
    pub fn new(
        cfg: AgentConfig,
        executors: Registry,
        dispatcher: Arc<dyn Dispatcher>,
        acked: watch::Receiver<u64>,
    ) -> Agent {
        // A random first port (RandomState is seeded per process).
        let start = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            std::process::id(),
        );
        Agent {
            cfg,
            executors,
            dispatcher,
            acked,
            host_ports: std::sync::Mutex::new(HostPorts::new(TASK_PORTS, start as u16)),
        }
    }

    /// Run until `stop` leaves [`AgentStop::Run`]; then stop tasks as it says (grace
    /// periods honoured) and return.
    pub async fn run(self, mut stop: watch::Receiver<AgentStop>) {
        let mut assignments = self.dispatcher.assignments();
        let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(1024);
        let mut live: HashMap<String, Live> = HashMap::new();
        // Tasks this agent already ended (rejected, exited) whose report the assignments may
        // not reflect yet: never started twice.
        let mut ended: HashSet<String> = HashSet::new();
        // Tasks whose log files may be on disk.
        let mut logged: HashSet<String> = HashSet::new();
        // The tasks running here when task files were last swept.
        let mut swept_for: Option<HashSet<String>> = None;
        // The first assignments from a manager (version 0: none received yet) tell which
        // tasks the previous run of this daemon left.
        let mut recovered = false;
        let how = loop {
            let current = assignments.borrow_and_update().clone();
            if !recovered && current.version > 0 {
                self.recover(&current, &mut live, &ev_tx).await;
                recovered = true;
            }
            ended.retain(|id| current.tasks.iter().any(|t| &t.id == id));
            self.reconcile(&current, &mut live, &ended, &ev_tx);
            if current.version > 0 {
                self.forget_logs(&current, &live, &mut logged);
                // Secrets and configs stay on the node only while their task runs here: swept
                // when the tasks running here change (the first pass clears what a killed
                // daemon left), not on every event.
                let same = swept_for
                    .as_ref()
                    .is_some_and(|s| s.len() == live.len() && live.keys().all(|k| s.contains(k)));
                if !same {
                    crate::files::sweep(&self.cfg.files_dir, |id| live.contains_key(id));
                    swept_for = Some(live.keys().cloned().collect());
                }
            }
            tokio::select! {
                r = assignments.changed() => if r.is_err() { break AgentStop::Daemon },
                Some(ev) = ev_rx.recv() => {
                    if let Some(id) = self.handle(ev, &mut live, &ev_tx) {
                        ended.insert(id);
                    }
                }
                r = stop.changed() => {
                    let how = *stop.borrow();
                    if r.is_err() { break AgentStop::Daemon }
                    if how != AgentStop::Run { break how }
                }
            }
        };
        // Secrets and configs stay only for tasks that outlive the daemon (containers, to be
        // adopted by the next start); the others' files go with them.
        let survivors: HashSet<String> = live
            .iter()
            .filter(|(_, l)| how == AgentStop::Daemon && l.ctl.survives_daemon())
            .map(|(id, _)| id.clone())
            .collect();
        self.stop_all(live, &mut ev_rx, &ev_tx, how).await;
        crate::files::sweep(&self.cfg.files_dir, |id| survivors.contains(id));
    }

    /// After a restart: take back the tasks that still run (containers), report the others
    /// shut down (their process died with the daemon) so the orchestrator replaces each
    /// exactly once, and remove workloads of tasks no longer assigned here.
    async fn recover(
        &self,
        a: &Assignments,
        live: &mut HashMap<String, Live>,
        ev_tx: &mpsc::Sender<Event>,
    ) {
        let mut reports = Vec::new();
        for t in &a.tasks {
            let s = &t.status;
            if s.state < TaskState::Accepted || s.state.is_terminal() {
                continue;
            }
            let adopted = match &s.runtime {
                Some(rt) => match self.executors.controller_of(&t.id, rt) {
                    Some(ctl) => ctl.adopt(rt).await.map(|r| (ctl, r)),
                    None => None,
                },
                None => None,
            };
            match adopted {
                Some((ctl, running)) => {
                    tracing::info!(task = %t.name(), runtime = %running.runtime.describe(), "task adopted after restart");
                    let mut l = Live {
                        ctl,
                        running: Some(running.clone()),
                        stopping: false,
                        unhealthy: false,
                        watchers: Vec::new(),
                    };
                    let env = launch_spec(
                        t,
                        &self.cfg.node,
                        *self.cfg.resolver.borrow(),
                        t.endpoint.as_ref().unwrap_or(&TaskEndpoint {
                            addr: self.cfg.node.addr.clone(),
                            ports: vec![],
                        }),
                        &self.cfg.logs_dir,
                    )
                    .map(|s| s.env)
                    .unwrap_or_default();
                    let first_port = t
                        .endpoint
                        .as_ref()
                        .and_then(|e| e.ports.first())
                        .map(|p| p.host_port);
                    self.watch(t, &running, env, first_port, &mut l, ev_tx);
                    let mut host_ports = self
                        .host_ports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for p in t.endpoint.iter().flat_map(|e| &e.ports) {
                        host_ports.hold(p.host_port, &t.id);
                    }
                    drop(host_ports);
                    live.insert(t.id.clone(), l);
                }
                None => {
                    let mut r = TaskReport::new(&t.id, TaskState::Shutdown, "daemon restarted");
                    r.err = Some("task lost when the daemon stopped".into());
                    reports.push(r);
                }
            }
        }
        self.report(reports);
        // Workloads of tasks this node no longer runs.
        for exec in self.executors.executors() {
            for (id, rt) in exec.list().await {
                if !live.contains_key(&id) {
                    tracing::info!(task = %id, runtime = %rt.describe(), "removing a workload this node no longer wants");
                    let running = exec.adopt(&id, &rt).await;
                    if let Some(r) = running {
                        exec.stop(&r, libc::SIGTERM, Duration::from_secs(10)).await;
                    }
                    exec.remove(&rt).await;
                }
            }
        }
        // Logs of tasks forgotten while this daemon was not running.
        let assigned: HashSet<&str> = a.tasks.iter().map(|t| t.id.as_str()).collect();
        let swept = sweep_task_logs(&self.cfg.logs_dir, |id| assigned.contains(id));
        if swept > 0 {
            tracing::info!(
                files = swept,
                "deleted logs of tasks no longer assigned to this node"
            );
        }
    }

    /// Delete the logs of tasks the manager has forgotten (service removed, history pruned)
    /// once they no longer run here.
    fn forget_logs(
        &self,
        a: &Assignments,
        live: &HashMap<String, Live>,
        logged: &mut HashSet<String>,
    ) {
        let assigned: HashSet<&str> = a.tasks.iter().map(|t| t.id.as_str()).collect();
        logged.retain(|id| {
            let keep = assigned.contains(id.as_str()) || live.contains_key(id);
            if !keep {
                let files = remove_task_logs(&self.cfg.logs_dir, id);
                tracing::debug!(task = %id, files, "task forgotten: logs deleted");
            }
            keep
        });
        logged.extend(assigned.iter().map(|id| id.to_string()));
    }

    fn reconcile(
        &self,
        a: &Assignments,
        live: &mut HashMap<String, Live>,
        ended: &HashSet<String>,
        ev_tx: &mpsc::Sender<Event>,
    ) {
        let mut reports = Vec::new();
        for t in &a.tasks {
            if let Some(l) = live.get_mut(&t.id) {
                if t.desired_state > TaskState::Running && !l.stopping {
                    l.stopping = true;
                    // Only a task that was routable needs the data plane to let go of it first.
                    let was_ready = t.status.state == TaskState::Running
                        && matches!(t.status.health, None | Some(Health::Healthy));
                    if let Some(running) = &l.running {
                        self.spawn_stop(t, &l.ctl, running.clone(), a.version, was_ready);
                    }
                }
                continue;
            }
            if ended.contains(&t.id) {
                continue;
            }
            if t.desired_state == TaskState::Running && t.status.state == TaskState::Assigned {
                if let Some(l) = self.start(t, &a.files, live, ev_tx) {
                    live.insert(t.id.clone(), l);
                }
            } else if t.desired_state > TaskState::Running && !t.status.state.is_terminal() {
                reports.push(TaskReport::new(
                    &t.id,
                    TaskState::Shutdown,
                    "shut down before it started",
                ));
            }
        }
        // Tasks this node runs but is no longer assigned: stop them.
        for (id, l) in live.iter_mut() {
            if !l.stopping && !a.tasks.iter().any(|t| &t.id == id) {
                l.stopping = true;
                if let Some(running) = l.running.clone() {
                    let ctl = l.ctl.clone();
                    tokio::spawn(async move {
                        ctl.shutdown(&running, libc::SIGTERM, Duration::from_secs(10))
                            .await;
                    });
                }
            }
        }
        self.report(reports);
    }

    /// Stop a task: first wait until the data plane no longer routes to it (drain), then
    /// send its stop signal and give it its grace period.
    fn spawn_stop(&self, t: &Task, ctl: &Controller, running: Running, version: u64, drain: bool) {
        let ctl = ctl.clone();
        let mut acked = self.acked.clone();
        let drain_timeout = self.cfg.drain_timeout;
        let signal = signal_number(&t.spec.stop_signal).unwrap_or(libc::SIGTERM);
        let grace = t.spec.stop_grace_period;
        let name = t.name();
        tokio::spawn(async move {
            if drain {
                let drained =
                    tokio::time::timeout(drain_timeout, acked.wait_for(|v| *v >= version)).await;
                if drained.is_err() {
                    tracing::warn!(task = %name, version, "data plane did not acknowledge in time; stopping anyway");
                }
            }
            tracing::info!(task = %name, signal, "stopping task");
            ctl.shutdown(&running, signal, grace).await;
        });
    }

    /// Begin starting a task: ports, launch spec and executor are chosen here; preparing
    /// (an image pull, say) and starting run in the background and end in `Started`.
    fn start(
        &self,
        t: &Task,
        files: &shoal_api::TaskFiles,
        live: &HashMap<String, Live>,
        ev_tx: &mpsc::Sender<Event>,
    ) -> Option<Live> {
        let reject = |err: String| {
            let mut r = TaskReport::new(&t.id, TaskState::Rejected, "rejected");
            r.err = Some(err);
            r
        };
        let ctl = match self.executors.controller(&t.id, t.spec.runtime.kind()) {
            Ok(c) => c,
            Err(e) => {
                self.report(vec![reject(e.to_string())]);
                return None;
            }
        };
        let endpoint = match self.allocate_ports(t, live) {
            Ok(e) => e,
            Err(e) => {
                self.report(vec![reject(e)]);
                return None;
            }
        };
        let spec = launch_spec(
            t,
            &self.cfg.node,
            *self.cfg.resolver.borrow(),
            &endpoint,
            &self.cfg.logs_dir,
        )
        .map_err(|e| e.to_string())
        .and_then(|mut spec| {
            let values = crate::launch::template_values(t, &self.cfg.node);
            crate::files::write(&self.cfg.files_dir, t, files, &values, &mut spec)?;
            Ok(spec)
        });
        let spec = match spec {
            Ok(s) => s,
            Err(e) => {
                self.report(vec![reject(e)]);
                return None;
            }
        };
        self.report(vec![
            TaskReport::new(&t.id, TaskState::Accepted, "accepted"),
            TaskReport::new(&t.id, TaskState::Preparing, "preparing"),
        ]);
        let dispatcher = self.dispatcher.clone();
        let tx = ev_tx.clone();
        let id = t.id.clone();
        let job_ctl = ctl.clone();
        tokio::spawn(async move {
            let report = |reports| {
                if let Err(e) = dispatcher.report(reports) {
                    tracing::error!(error = %e, "reporting task status failed");
                }
            };
            let result = launch(&job_ctl, &spec, report).await;
            let started = result.map(|running| {
                Box::new(Started {
                    running,
                    endpoint,
                    spec,
                })
            });
            let _ = tx.send(Event::Started(id, started)).await;
        });
        Some(Live {
            ctl,
            running: None,
            stopping: false,
            unhealthy: false,
            watchers: Vec::new(),
        })
    }

    /// A started task: report it running and watch its exit and health.
    fn started(&self, t: &Task, s: Started, l: &mut Live, ev_tx: &mpsc::Sender<Event>) {
        let Started {
            running,
            endpoint,
            spec,
        } = s;
        let has_check = node_check(&t.spec).is_some() || running.health.is_some();
        let mut r = TaskReport::new(&t.id, TaskState::Running, "started");
        r.runtime = Some(running.runtime.clone());
        r.health = has_check.then_some(Health::Starting);
        let first_port = endpoint.ports.first().map(|p| p.host_port);
        r.endpoint = Some(endpoint);
        self.report(vec![r]);
        tracing::info!(task = %t.name(), runtime = %running.runtime.describe(), "task started");
        self.watch(t, &running, spec.env, first_port, l, ev_tx);
        l.running = Some(running);
    }

    /// Watch a running task: its exit, the runtime's own health, the service's checks.
    fn watch(
        &self,
        t: &Task,
        running: &Running,
        env: Vec<(String, String)>,
        first_port: Option<u16>,
        l: &mut Live,
        ev_tx: &mpsc::Sender<Event>,
    ) {
        self.watch_exit_only(&t.id, running, l, ev_tx);
        if let Some(mut health) = running.health.clone() {
            let id = t.id.clone();
            let tx = ev_tx.clone();
            l.watchers.push(tokio::spawn(async move {
                let mut last = None;
                loop {
                    let h = *health.borrow_and_update();
                    if h != last {
                        last = h;
                        if let Some(h) = h {
                            if tx
                                .send(Event::Health(id.clone(), h, String::new()))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    if health.changed().await.is_err() {
                        return;
                    }
                }
            }));
        }
        // The service's check that runs on the node (a container's engine runs a command
        // check itself, and its verdict comes in above).
        if let Some(check) = node_check(&t.spec) {
            let (htx, mut hrx) = mpsc::channel::<(String, Health, String)>(16);
            l.watchers.push(tokio::spawn(run_checks(
                t.id.clone(),
                check,
                env,
                first_port,
                htx,
            )));
            let tx = ev_tx.clone();
            l.watchers.push(tokio::spawn(async move {
                while let Some((id, h, detail)) = hrx.recv().await {
                    if tx.send(Event::Health(id, h, detail)).await.is_err() {
                        return;
                    }
                }
            }));
        }
    }

    /// A host port per target: the published port in host mode, a free one otherwise.
    fn allocate_ports(
        &self,
        t: &Task,
        live: &HashMap<String, Live>,
    ) -> Result<TaskEndpoint, String> {
        let mut ports = Vec::new();
        let mut host_ports = self
            .host_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for p in targets(&t.ports) {
            let host_port = match (p.mode, p.published) {
                (PublishMode::Host, Some(n)) => n,
                _ => host_ports
                    .take(&t.id, |id| id == t.id || live.contains_key(id), unbound)
                    .ok_or_else(|| {
                        format!(
                            "no free host port for target {} in {}-{}",
                            p.target,
                            TASK_PORTS.start(),
                            TASK_PORTS.end()
                        )
                    })?,
            };
            for q in t.ports.iter().filter(|q| q.target == p.target) {
                ports.push(EndpointPort {
                    target: q.target,
                    host_port,
                    protocol: q.protocol,
                });
            }
        }
        Ok(TaskEndpoint {
            addr: self.cfg.node.addr.clone(),
            ports,
        })
    }

    /// Act on one event; returns the ID of a task that ended with it.
    fn handle(
        &self,
        ev: Event,
        live: &mut HashMap<String, Live>,
        ev_tx: &mpsc::Sender<Event>,
    ) -> Option<String> {
        match ev {
            Event::Started(id, Err(err)) => {
                live.remove(&id);
                let mut r = TaskReport::new(&id, TaskState::Rejected, "rejected");
                r.err = Some(err);
                self.report(vec![r]);
                return Some(id);
            }
            Event::Started(id, Ok(s)) => {
                let l = live.get_mut(&id)?;
                let task = self
                    .dispatcher
                    .assignments()
                    .borrow()
                    .tasks
                    .iter()
                    .find(|t| t.id == id)
                    .cloned();
                match task {
                    Some(t) if !l.stopping => self.started(&t, *s, l, ev_tx),
                    _ => {
                        // Stopped while it started: it never served, so no drain.
                        l.stopping = true;
                        let running = s.running.clone();
                        l.running = Some(s.running);
                        self.watch_exit_only(&id, &running, l, ev_tx);
                        let ctl = l.ctl.clone();
                        tokio::spawn(async move {
                            ctl.shutdown(&running, libc::SIGTERM, Duration::from_secs(10))
                                .await;
                        });
                    }
                }
            }
            Event::Exited(id, info) => {
                let l = live.remove(&id)?;
                for w in l.watchers {
                    w.abort();
                }
                let mut r = if l.stopping && !l.unhealthy {
                    TaskReport::new(&id, TaskState::Shutdown, "shutdown")
                } else if l.unhealthy {
                    let mut r = TaskReport::new(&id, TaskState::Failed, "unhealthy");
                    r.err = Some("task: unhealthy: health check failed".into());
                    r
                } else if info.code == 0 && !info.oom_killed {
                    TaskReport::new(&id, TaskState::Complete, "finished")
                } else {
                    let mut r = TaskReport::new(&id, TaskState::Failed, "failed");
                    r.err = Some(info.describe());
                    r
                };
                r.exit_code = Some(info.code);
                r.oom_killed = info.oom_killed;
                tracing::info!(task = %id, code = info.code, "task exited");
                self.report(vec![r]);
                if let Some(rt) = l.running.map(|r| r.runtime) {
                    let ctl = l.ctl;
                    tokio::spawn(async move { ctl.remove(&rt).await });
                }
                return Some(id);
            }
            Event::Health(id, health, detail) => {
                let l = live.get_mut(&id)?;
                let mut r = TaskReport::new(&id, TaskState::Running, "started");
                r.health = Some(health);
                if !detail.is_empty() {
                    r.err = Some(detail);
                }
                self.report(vec![r]);
                if health == Health::Unhealthy && !l.stopping {
                    l.stopping = true;
                    l.unhealthy = true;
                    if let Some(running) = l.running.clone() {
                        let ctl = l.ctl.clone();
                        tokio::spawn(async move {
                            ctl.shutdown(&running, libc::SIGTERM, Duration::from_secs(10))
                                .await;
                        });
                    }
                }
            }
        }
        None
    }

    fn watch_exit_only(
        &self,
        id: &str,
        running: &Running,
        l: &mut Live,
        ev_tx: &mpsc::Sender<Event>,
    ) {
        let id = id.to_string();
        let tx = ev_tx.clone();
        let r = running.clone();
        l.watchers.push(tokio::spawn(async move {
            if let Some(info) = Controller::wait(&r).await {
                let _ = tx.send(Event::Exited(id, info)).await;
            }
        }));
    }

    async fn stop_all(
        &self,
        mut live: HashMap<String, Live>,
        ev_rx: &mut mpsc::Receiver<Event>,
        ev_tx: &mpsc::Sender<Event>,
        how: AgentStop,
    ) {
        // Tasks still starting: wait for them to start so they can be stopped too.
        let mut waiting = live.values().filter(|l| l.running.is_none()).count();
        while waiting > 0 {
            match tokio::time::timeout(Duration::from_secs(60), ev_rx.recv()).await {
                Ok(Some(Event::Started(id, r))) => {
                    waiting -= 1;
                    match (r, live.get_mut(&id)) {
                        (Ok(s), Some(l)) => {
                            let running = s.running.clone();
                            l.running = Some(s.running);
                            self.watch_exit_only(&id, &running, l, ev_tx);
                        }
                        (Err(e), _) => {
                            live.remove(&id);
                            let mut r = TaskReport::new(&id, TaskState::Rejected, "rejected");
                            r.err = Some(e);
                            self.report(vec![r]);
                        }
                        (Ok(_), None) => {}
                    }
                }
                Ok(Some(ev)) => {
                    self.handle(ev, &mut live, ev_tx);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut jobs = Vec::new();
        for (id, l) in live.iter_mut() {
            let Some(running) = l.running.clone() else {
                continue;
            };
            if how == AgentStop::Daemon && l.ctl.survives_daemon() {
                // Left running for the next start of this daemon to adopt.
                for w in l.watchers.drain(..) {
                    w.abort();
                }
                continue;
            }
            l.stopping = true;
            let ctl = l.ctl.clone();
            let id = id.clone();
            jobs.push(tokio::spawn(async move {
                let info = ctl
                    .shutdown(&running, libc::SIGTERM, Duration::from_secs(10))
                    .await;
                ctl.remove(&running.runtime).await;
                (id, info)
            }));
        }
        for job in jobs {
            if let Ok((id, info)) = job.await {
                if let Some(l) = live.get_mut(&id) {
                    // Already removed above; do not remove twice.
                    l.running = None;
                }
                self.handle(Event::Exited(id, info), &mut live, ev_tx);
            }
        }
        while let Ok(ev) = ev_rx.try_recv() {
            self.handle(ev, &mut live, ev_tx);
        }
    }

    fn report(&self, reports: Vec<TaskReport>) {
        if reports.is_empty() {
            return;
        }
        if let Err(e) = self.dispatcher.report(reports) {
            tracing::error!(error = %e, "reporting task status failed");
        }
    }
}

/// Prepare and start one task, reporting READY and STARTING on the way.
async fn launch(
    ctl: &Controller,
    spec: &LaunchSpec,
    report: impl Fn(Vec<TaskReport>),
) -> Result<Running, String> {
    let id = ctl.task_id().to_string();
    let prepared = ctl.prepare(spec).await.map_err(|e| e.to_string())?;
    report(vec![
        TaskReport::new(&id, TaskState::Ready, "ready"),
        TaskReport::new(&id, TaskState::Starting, "starting"),
    ]);
    ctl.start(prepared).await.map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
