//! The agent loop: one actor that owns every task process of this node.

use crate::dispatcher::{Assignments, Dispatcher, TaskReport};
use crate::executor::{Executor, ExitInfo, Running};
use crate::health::run_checks;
use crate::launch::{launch_spec, targets, NodeIdentity};
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
}

pub struct Agent<E: Executor> {
    cfg: AgentConfig,
    executor: Arc<E>,
    dispatcher: Arc<dyn Dispatcher>,
    /// The endpoint-table version the node's data plane routes by.
    acked: watch::Receiver<u64>,
}

impl<E: Executor> std::fmt::Debug for Agent<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.cfg.node.id)
            .finish()
    }
}

/// A task this agent started and that has not been seen to exit.
struct Live {
    running: Running,
    stopping: bool,
    unhealthy: bool,
    health: Option<JoinHandle<()>>,
}

enum Event {
    Exited(String, ExitInfo),
    Health(String, Health, String),
}

impl<E: Executor> Agent<E> {
    pub fn new(
        cfg: AgentConfig,
        executor: Arc<E>,
        dispatcher: Arc<dyn Dispatcher>,
        acked: watch::Receiver<u64>,
    ) -> Agent<E> {
        Agent {
            cfg,
            executor,
            dispatcher,
            acked,
        }
    }

    /// Run until `stop` flips; then stop every task (grace periods honoured) and return.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut assignments = self.dispatcher.assignments();
        let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(1024);
        let (health_tx, mut health_rx) = mpsc::channel::<(String, Health, String)>(1024);
        let mut live: HashMap<String, Live> = HashMap::new();
        // Tasks whose log files may be on disk.
        let mut logged: HashSet<String> = HashSet::new();
        // The first assignments from a manager (version 0: none received yet) tell which
        // tasks the previous run of this daemon left.
        let mut recovered = false;
        loop {
            let current = assignments.borrow_and_update().clone();
            if !recovered && current.version > 0 {
                self.recover(&current);
                recovered = true;
            }
            self.reconcile(&current, &mut live, &ev_tx, &health_tx)
                .await;
            if current.version > 0 {
                self.forget_logs(&current, &live, &mut logged);
            }
            tokio::select! {
                r = assignments.changed() => if r.is_err() { break },
                Some(ev) = ev_rx.recv() => self.handle(ev, &mut live),
                Some((id, h, detail)) = health_rx.recv() => {
                    self.handle(Event::Health(id, h, detail), &mut live)
                }
                _ = stop.changed() => break,
            }
        }
        self.stop_all(live, &mut ev_rx).await;
    }

    /// After a restart: tasks recorded as started have lost their process (the kernel
    /// killed it with the daemon). Kill any remains and report them shut down, so the
    /// orchestrator replaces each exactly once. Logs of tasks no longer assigned here go.
    fn recover(&self, a: &Assignments) {
        let mut reports = Vec::new();
        for t in &a.tasks {
            let s = &t.status;
            if s.state >= TaskState::Accepted && !s.state.is_terminal() {
                if let Some(runtime) = &s.runtime {
                    self.executor.reap_stale(runtime);
                }
                let mut r = TaskReport::new(&t.id, TaskState::Shutdown, "daemon restarted");
                r.err = Some("task process lost when the daemon stopped".into());
                reports.push(r);
            }
        }
        self.report(reports);
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

    async fn reconcile(
        &self,
        a: &Assignments,
        live: &mut HashMap<String, Live>,
        ev_tx: &mpsc::Sender<Event>,
        health_tx: &mpsc::Sender<(String, Health, String)>,
    ) {
        let mut reports = Vec::new();
        for t in &a.tasks {
            if let Some(l) = live.get_mut(&t.id) {
                if t.desired_state > TaskState::Running && !l.stopping {
                    l.stopping = true;
                    // Only a task that was routable needs the data plane to let go of it first.
                    let was_ready = t.status.state == TaskState::Running
                        && matches!(t.status.health, None | Some(Health::Healthy));
                    self.spawn_stop(t, l.running.clone(), a.version, was_ready);
                }
                continue;
            }
            if t.desired_state == TaskState::Running && t.status.state == TaskState::Assigned {
                if let Some(l) = self.start(t, ev_tx, health_tx).await {
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
                let grace = Duration::from_secs(10);
                let exec = self.executor.clone();
                let running = l.running.clone();
                tokio::spawn(async move {
                    exec.stop(&running, libc::SIGTERM, grace).await;
                });
            }
        }
        self.report(reports);
    }

    /// Stop a task: first wait until the data plane no longer routes to it (drain), then
    /// send its stop signal and give it its grace period.
    fn spawn_stop(&self, t: &Task, running: Running, version: u64, drain: bool) {
        let exec = self.executor.clone();
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
            exec.stop(&running, signal, grace).await;
        });
    }

    async fn start(
        &self,
        t: &Task,
        ev_tx: &mpsc::Sender<Event>,
        health_tx: &mpsc::Sender<(String, Health, String)>,
    ) -> Option<Live> {
        let reject = |err: String| {
            let mut r = TaskReport::new(&t.id, TaskState::Rejected, "rejected");
            r.err = Some(err);
            r
        };
        let endpoint = match self.allocate_ports(t) {
            Ok(e) => e,
            Err(e) => {
                self.report(vec![reject(e)]);
                return None;
            }
        };
        let spec = match launch_spec(t, &self.cfg.node, &endpoint, &self.cfg.logs_dir) {
            Ok(s) => s,
            Err(e) => {
                self.report(vec![reject(e.to_string())]);
                return None;
            }
        };
        self.report(vec![
            TaskReport::new(&t.id, TaskState::Accepted, "accepted"),
            TaskReport::new(&t.id, TaskState::Preparing, "preparing"),
            TaskReport::new(&t.id, TaskState::Ready, "ready"),
            TaskReport::new(&t.id, TaskState::Starting, "starting"),
        ]);
        let running = match self.executor.start(&spec).await {
            Ok(r) => r,
            Err(e) => {
                self.report(vec![reject(e.to_string())]);
                return None;
            }
        };
        let mut r = TaskReport::new(&t.id, TaskState::Running, "started");
        r.runtime = Some(running.runtime.clone());
        r.health = t.spec.health.as_ref().map(|_| Health::Starting);
        let first_port = endpoint.ports.first().map(|p| p.host_port);
        r.endpoint = Some(endpoint);
        self.report(vec![r]);
        tracing::info!(task = %t.name(), runtime = %running.runtime.describe(), "task started");

        let mut exited = running.exited.clone();
        let tx = ev_tx.clone();
        let id = t.id.clone();
        tokio::spawn(async move {
            let info = exited.wait_for(|e| e.is_some()).await.ok().and_then(|e| *e);
            if let Some(info) = info {
                let _ = tx.send(Event::Exited(id, info)).await;
            }
        });
        let health = t.spec.health.clone().map(|check| {
            tokio::spawn(run_checks(
                t.id.clone(),
                check,
                spec.env.clone(),
                first_port,
                health_tx.clone(),
            ))
        });
        Some(Live {
            running,
            stopping: false,
            unhealthy: false,
            health,
        })
    }

    /// A host port per target: the published port in host mode, a free one otherwise.
    fn allocate_ports(&self, t: &Task) -> Result<TaskEndpoint, String> {
        let mut ports = Vec::new();
        for p in targets(&t.ports) {
            let host_port = match (p.mode, p.published) {
                (PublishMode::Host, Some(n)) => n,
                _ => std::net::TcpListener::bind(("0.0.0.0", 0))
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .map_err(|e| format!("no free port for target {}: {e}", p.target))?,
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

    fn handle(&self, ev: Event, live: &mut HashMap<String, Live>) {
        match ev {
            Event::Exited(id, info) => {
                let Some(l) = live.remove(&id) else { return };
                if let Some(h) = l.health {
                    h.abort();
                }
                let mut r = if l.stopping && !l.unhealthy {
                    TaskReport::new(&id, TaskState::Shutdown, "shutdown")
                } else if l.unhealthy {
                    let mut r = TaskReport::new(&id, TaskState::Failed, "unhealthy");
                    r.err = Some("task: unhealthy: health check failed".into());
                    r
                } else if info.code == 0 {
                    TaskReport::new(&id, TaskState::Complete, "finished")
                } else {
                    let mut r = TaskReport::new(&id, TaskState::Failed, "failed");
                    r.err = Some(info.describe());
                    r
                };
                r.exit_code = Some(info.code);
                tracing::info!(task = %id, code = info.code, "task exited");
                self.report(vec![r]);
            }
            Event::Health(id, health, detail) => {
                let Some(l) = live.get_mut(&id) else { return };
                let mut r = TaskReport::new(&id, TaskState::Running, "started");
                r.health = Some(health);
                if !detail.is_empty() {
                    r.err = Some(detail);
                }
                self.report(vec![r]);
                if health == Health::Unhealthy && !l.stopping {
                    l.stopping = true;
                    l.unhealthy = true;
                    let exec = self.executor.clone();
                    let running = l.running.clone();
                    tokio::spawn(async move {
                        exec.stop(&running, libc::SIGTERM, Duration::from_secs(10))
                            .await;
                    });
                }
            }
        }
    }

    async fn stop_all(&self, mut live: HashMap<String, Live>, ev_rx: &mut mpsc::Receiver<Event>) {
        let mut jobs = Vec::new();
        for (id, l) in live.iter_mut() {
            l.stopping = true;
            let exec = self.executor.clone();
            let running = l.running.clone();
            let id = id.clone();
            jobs.push(tokio::spawn(async move {
                let info = exec
                    .stop(&running, libc::SIGTERM, Duration::from_secs(10))
                    .await;
                (id, info)
            }));
        }
        for job in jobs {
            if let Ok((id, info)) = job.await {
                self.handle(Event::Exited(id, info), &mut live);
            }
        }
        while let Ok(ev) = ev_rx.try_recv() {
            self.handle(ev, &mut live);
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
