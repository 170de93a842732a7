//! The agent's decisions, driven with a fake executor and a fake dispatcher: no processes,
//! no containers, no manager.

use crate::controller::Registry;
use crate::dispatcher::{Assignments, Dispatcher, TaskReport};
use crate::executor::{BoxFuture, ExecError, Executor, ExitInfo, LaunchSpec, Prepared, Running};
use crate::launch::NodeIdentity;
use crate::{Agent, AgentConfig, AgentStop};
use shoal_api::{RuntimeKind, RuntimeStatus, Task, TaskState, TaskStatus, TaskTemplate};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// Records every call; a started task runs until stopped.
#[derive(Debug)]
struct FakeExecutor {
    kind: RuntimeKind,
    survives: bool,
    fail_prepare: Option<String>,
    calls: Mutex<Vec<String>>,
    running: Mutex<HashMap<String, watch::Sender<Option<ExitInfo>>>>,
    /// Workloads left from "before the restart", adoptable by task ID.
    left: Mutex<Vec<String>>,
}

impl FakeExecutor {
    fn new(kind: RuntimeKind) -> FakeExecutor {
        FakeExecutor {
            kind,
            survives: kind == RuntimeKind::Container,
            fail_prepare: None,
            calls: Mutex::new(Vec::new()),
            running: Mutex::new(HashMap::new()),
            left: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }

    fn call(&self, c: String) {
        self.calls.lock().expect("calls").push(c);
    }

    fn runtime(&self, id: &str) -> RuntimeStatus {
        RuntimeStatus::Container {
            id: format!("c-{id}"),
            addr: Some("172.17.0.9/16".into()),
        }
    }

    fn run(&self, id: &str) -> Running {
        let (tx, rx) = watch::channel(None);
        self.running.lock().expect("running").insert(id.into(), tx);
        Running {
            runtime: self.runtime(id),
            exited: rx,
            health: None,
        }
    }
}

fn task_of(rt: &RuntimeStatus) -> String {
    match rt {
        RuntimeStatus::Container { id, .. } => id.trim_start_matches("c-").to_string(),
        RuntimeStatus::Process { pid, .. } => pid.to_string(),
    }
}

impl Executor for FakeExecutor {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    fn prepare<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Prepared, ExecError>> {
        Box::pin(async move {
            self.call(format!("prepare {}", spec.task_id));
            if let Some(m) = &self.fail_prepare {
                return Err(ExecError::Engine {
                    task: spec.task_id.clone(),
                    message: m.clone(),
                });
            }
            Ok(Prepared {
                spec: spec.clone(),
                runtime: Some(self.runtime(&spec.task_id)),
            })
        })
    }

    fn start(&self, prepared: Prepared) -> BoxFuture<'_, Result<Running, ExecError>> {
        Box::pin(async move {
            self.call(format!("start {}", prepared.spec.task_id));
            Ok(self.run(&prepared.spec.task_id))
        })
    }

    fn stop<'a>(
        &'a self,
        running: &'a Running,
        signal: i32,
        _: Duration,
    ) -> BoxFuture<'a, ExitInfo> {
        Box::pin(async move {
            let id = task_of(&running.runtime);
            self.call(format!("stop {id} {signal}"));
            let info = ExitInfo::code(128 + signal);
            if let Some(tx) = self.running.lock().expect("running").remove(&id) {
                tx.send_replace(Some(info));
            }
            info
        })
    }

    fn remove<'a>(&'a self, runtime: &'a RuntimeStatus) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let id = task_of(runtime);
            self.call(format!("remove {id}"));
            self.left.lock().expect("left").retain(|l| *l != id);
        })
    }

    fn adopt<'a>(
        &'a self,
        task_id: &'a str,
        _: &'a RuntimeStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async move {
            self.call(format!("adopt {task_id}"));
            let there = self.left.lock().expect("left").iter().any(|l| l == task_id);
            there.then(|| self.run(task_id))
        })
    }

    fn list(&self) -> BoxFuture<'_, Vec<(String, RuntimeStatus)>> {
        Box::pin(async move {
            let left = self.left.lock().expect("left").clone();
            left.iter()
                .map(|id| (id.clone(), self.runtime(id)))
                .collect()
        })
    }

    fn survives_daemon(&self) -> bool {
        self.survives
    }
}

/// Assignments set by the test; reports collected.
#[derive(Debug)]
struct FakeDispatcher {
    tx: watch::Sender<Arc<Assignments>>,
    reports: Mutex<Vec<TaskReport>>,
}

impl Dispatcher for FakeDispatcher {
    fn assignments(&self) -> watch::Receiver<Arc<Assignments>> {
        self.tx.subscribe()
    }
    fn report(&self, reports: Vec<TaskReport>) -> anyhow::Result<()> {
        self.reports.lock().expect("reports").extend(reports);
        Ok(())
    }
}

impl FakeDispatcher {
    fn assign(&self, version: u64, tasks: Vec<Task>) {
        self.tx.send_replace(Arc::new(Assignments {
            version,
            tasks,
            files: Default::default(),
        }));
    }

    fn states(&self, id: &str) -> Vec<TaskState> {
        let r = self.reports.lock().expect("reports");
        r.iter()
            .filter(|r| r.task_id == id)
            .map(|r| r.state)
            .collect()
    }

    fn last(&self, id: &str) -> Option<TaskReport> {
        let r = self.reports.lock().expect("reports");
        r.iter().rev().find(|r| r.task_id == id).cloned()
    }
}

fn container_task(id: &str, state: TaskState) -> Task {
    let mut spec = TaskTemplate::with_image("shoal-test/app:1");
    spec.stop_grace_period = Duration::from_millis(100);
    Task {
        id: id.into(),
        service_id: "s1".into(),
        service_name: "web".into(),
        slot: 1,
        node_id: Some("n1".into()),
        spec_version: 1,
        spec,
        ports: vec![],
        desired_state: TaskState::Running,
        status: TaskStatus::new(state, 0, ""),
        endpoint: None,
        created_at: 0,
        attempt: 0,
        quick_exits: 0,
        pending_reason: None,
    }
}

struct Harness {
    dispatcher: Arc<FakeDispatcher>,
    acked: watch::Sender<u64>,
    stop: watch::Sender<AgentStop>,
    agent: tokio::task::JoinHandle<()>,
}

fn start(registry: Registry, tasks: Vec<Task>) -> Harness {
    let (tx, _) = watch::channel(Arc::new(Assignments::default()));
    let dispatcher = Arc::new(FakeDispatcher {
        tx,
        reports: Mutex::new(Vec::new()),
    });
    dispatcher.assign(1, tasks);
    let (acked, acked_rx) = watch::channel(0);
    let (stop, stop_rx) = watch::channel(AgentStop::Run);
    let dir = std::env::temp_dir().join("shoal-agent-fake-logs");
    let agent = Agent::new(
        AgentConfig {
            node: NodeIdentity {
                id: "n1".into(),
                cluster_id: "c1".into(),
                hostname: "h1".into(),
                addr: "127.0.0.1".into(),
            },
            logs_dir: dir,
            drain_timeout: Duration::from_secs(30),
            resolver: watch::channel(None).1,
            files_dir: std::env::temp_dir().join("shoal-agent-fake-files"),
        },
        registry,
        dispatcher.clone(),
        acked_rx,
    );
    Harness {
        dispatcher,
        acked,
        stop,
        agent: tokio::spawn(agent.run(stop_rx)),
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !f() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_assigned_task_is_prepared_started_and_reported_running() {
    let exec = Arc::new(FakeExecutor::new(RuntimeKind::Container));
    let h = start(
        Registry::new().with(exec.clone()),
        vec![container_task("t1", TaskState::Assigned)],
    );
    until("running", || {
        h.dispatcher.states("t1").contains(&TaskState::Running)
    })
    .await;
    use TaskState::*;
    assert_eq!(
        h.dispatcher.states("t1"),
        vec![Accepted, Preparing, Ready, Starting, Running]
    );
    let last = h.dispatcher.last("t1").expect("report");
    assert_eq!(
        last.runtime,
        Some(RuntimeStatus::Container {
            id: "c-t1".into(),
            addr: Some("172.17.0.9/16".into()),
        }),
        "the report carries what runs the task and its address"
    );
    assert_eq!(exec.calls(), vec!["prepare t1", "start t1"]);
    h.stop.send_replace(AgentStop::Leave);
    h.agent.await.expect("agent ends");
    assert_eq!(h.dispatcher.last("t1").map(|r| r.state), Some(Shutdown));
    assert!(
        exec.calls().contains(&"remove t1".to_string()),
        "{:?}",
        exec.calls()
    );
}

#[tokio::test]
async fn a_task_of_a_runtime_the_node_lacks_is_rejected_saying_why() {
    let exec = Arc::new(FakeExecutor::new(RuntimeKind::Process));
    let h = start(
        Registry::new().with(exec.clone()).without(
            RuntimeKind::Container,
            "no container engine at /var/run/docker.sock",
        ),
        vec![container_task("t1", TaskState::Assigned)],
    );
    until("rejected", || {
        h.dispatcher.states("t1").contains(&TaskState::Rejected)
    })
    .await;
    let err = h
        .dispatcher
        .last("t1")
        .and_then(|r| r.err)
        .unwrap_or_default();
    assert!(
        err.contains("cannot run container tasks") && err.contains("docker.sock"),
        "{err}"
    );
    assert!(exec.calls().is_empty());
}

#[tokio::test]
async fn a_failed_prepare_rejects_the_task_with_the_engines_message() {
    let mut fake = FakeExecutor::new(RuntimeKind::Container);
    fake.fail_prepare = Some("no such image: shoal-test/app:1".into());
    let h = start(
        Registry::new().with(Arc::new(fake)),
        vec![container_task("t1", TaskState::Assigned)],
    );
    until("rejected", || {
        h.dispatcher.states("t1").contains(&TaskState::Rejected)
    })
    .await;
    let err = h
        .dispatcher
        .last("t1")
        .and_then(|r| r.err)
        .unwrap_or_default();
    assert!(
        err.contains("no such image: shoal-test/app:1"),
        "{err} {:?}",
        h.dispatcher.reports.lock().expect("r")
    );
    assert!(!h.dispatcher.states("t1").contains(&TaskState::Ready));
}

#[tokio::test]
async fn a_ready_task_is_signalled_only_once_the_data_plane_let_go() {
    let exec = Arc::new(FakeExecutor::new(RuntimeKind::Container));
    let h = start(
        Registry::new().with(exec.clone()),
        vec![container_task("t1", TaskState::Assigned)],
    );
    until("running", || {
        h.dispatcher.states("t1").contains(&TaskState::Running)
    })
    .await;
    let mut t = container_task("t1", TaskState::Running);
    t.desired_state = TaskState::Shutdown;
    h.dispatcher.assign(7, vec![t]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !exec.calls().iter().any(|c| c.starts_with("stop")),
        "not before the ack"
    );
    h.acked.send_replace(7);
    until("shutdown", || {
        h.dispatcher.states("t1").contains(&TaskState::Shutdown)
    })
    .await;
    assert!(exec.calls().contains(&"stop t1 15".to_string()));
}

#[tokio::test]
async fn after_a_restart_running_containers_are_adopted_and_unwanted_ones_removed() {
    let exec = Arc::new(FakeExecutor::new(RuntimeKind::Container));
    *exec.left.lock().expect("left") = vec!["t1".into(), "old".into()];
    let mut t1 = container_task("t1", TaskState::Running);
    t1.status.runtime = Some(RuntimeStatus::Container {
        id: "c-t1".into(),
        addr: None,
    });
    let mut lost = container_task("t2", TaskState::Running);
    lost.status.runtime = Some(RuntimeStatus::Container {
        id: "c-t2".into(),
        addr: None,
    });
    let h = start(Registry::new().with(exec.clone()), vec![t1, lost]);
    until("lost one reported", || {
        !h.dispatcher.states("t2").is_empty()
    })
    .await;
    until("old removed", || {
        exec.calls().contains(&"remove old".to_string())
    })
    .await;
    assert_eq!(h.dispatcher.states("t2"), vec![TaskState::Shutdown]);
    assert!(
        h.dispatcher.states("t1").is_empty(),
        "adopted without a report"
    );
    assert!(
        !exec.calls().iter().any(|c| c.starts_with("start")),
        "nothing restarted"
    );
    // A daemon stop leaves the adopted container running for the next start.
    h.stop.send_replace(AgentStop::Daemon);
    h.agent.await.expect("agent ends");
    assert!(
        !exec.calls().contains(&"stop t1 15".to_string()),
        "{:?}",
        exec.calls()
    );
}
