//! The single-node dispatcher: assignments straight from the local store, reports
//! straight into it.

use shoal_agent::{Assignments, Dispatcher, TaskReport};
use shoal_manager::now_millis;
use shoal_store::{Store, StoreError};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug)]
pub struct LocalDispatcher {
    store: Arc<Store>,
    assignments: watch::Sender<Arc<Assignments>>,
}

impl LocalDispatcher {
    /// Start following the store for tasks assigned to `node_id`.
    pub fn start(store: Arc<Store>, node_id: String) -> Arc<LocalDispatcher> {
        let initial = assignments_of(&store.state(), &node_id);
        let (tx, _) = watch::channel(Arc::new(initial));
        let d = Arc::new(LocalDispatcher {
            store: store.clone(),
            assignments: tx,
        });
        let sender = d.assignments.clone();
        tokio::spawn(async move {
            let mut rx = store.subscribe();
            while rx.changed().await.is_ok() {
                let state = rx.borrow_and_update().clone();
                let next = assignments_of(&state, &node_id);
                sender.send_if_modified(|cur| {
                    let changed = cur.tasks != next.tasks;
                    if changed {
                        *cur = Arc::new(next);
                    }
                    changed
                });
            }
        });
        d
    }
}

fn assignments_of(state: &shoal_api::ClusterState, node_id: &str) -> Assignments {
    Assignments {
        version: state.version,
        tasks: state
            .tasks
            .values()
            .filter(|t| t.node_id.as_deref() == Some(node_id))
            .filter(|t| t.status.state >= shoal_api::TaskState::Assigned)
            .cloned()
            .collect(),
    }
}

impl Dispatcher for LocalDispatcher {
    fn assignments(&self) -> watch::Receiver<Arc<Assignments>> {
        self.assignments.subscribe()
    }

    fn report(&self, reports: Vec<TaskReport>) -> anyhow::Result<()> {
        let now = now_millis();
        self.store.update(|tx| {
            for r in &reports {
                let Some(mut task) = tx.state().tasks.get(&r.task_id).cloned() else {
                    continue;
                };
                if let Err(e) = task.advance(r.state, now, r.message.clone()) {
                    tracing::warn!(error = %e, "task report refused");
                    continue;
                }
                if r.err.is_some() {
                    task.status.err = r.err.clone();
                }
                if r.exit_code.is_some() {
                    task.status.exit_code = r.exit_code;
                }
                if let Some((pid, start)) = r.process {
                    task.status.pid = Some(pid);
                    task.status.pid_start = Some(start);
                }
                if r.health.is_some() {
                    task.status.health = r.health;
                }
                if r.endpoint.is_some() {
                    task.endpoint = r.endpoint.clone();
                }
                tx.put_task(task);
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(())
    }
}
