//! The manager node's own dispatcher: assignments straight from the local store, reports
//! straight into it.

use shoal_agent::{Assignments, Dispatcher, TaskReport};
use shoal_manager::dispatcher::assigned_tasks;
use shoal_manager::reports::apply_reports;
use shoal_store::Store;
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
                if sender.is_closed() {
                    return;
                }
            }
        });
        d
    }
}

fn assignments_of(state: &shoal_api::ClusterState, node_id: &str) -> Assignments {
    Assignments {
        version: state.version,
        tasks: assigned_tasks(state, node_id),
    }
}

impl Dispatcher for LocalDispatcher {
    fn assignments(&self) -> watch::Receiver<Arc<Assignments>> {
        self.assignments.subscribe()
    }

    fn report(&self, reports: Vec<TaskReport>) -> anyhow::Result<()> {
        apply_reports(&self.store, &reports, None)?;
        Ok(())
    }
}
