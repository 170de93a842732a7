//! Applying agents' task reports to the store.

use crate::now_millis;
use shoal_api::TaskReport;
use shoal_store::{Store, StoreError};

/// Apply the reports of the agent of `from_node` in one write. Reports for unknown tasks,
/// for tasks of another node or that would move a task backwards are dropped with a log
/// line. An endpoint is always the node's own address (the one its session comes from):
/// only the port is the agent's to report.
pub async fn apply_reports(
    store: &Store,
    reports: &[TaskReport],
    from_node: &str,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.update(|tx| {
        let node_addr = tx.state().nodes.get(from_node).map(|n| n.addr.clone());
        for r in reports {
            let Some(mut task) = tx.state().tasks.get(&r.task_id).cloned() else {
                continue;
            };
            if task.node_id.as_deref() != Some(from_node) {
                tracing::warn!(task = %r.task_id, node = %from_node, "report for a task of another node refused");
                continue;
            }
            let mut r = r.clone();
            if let Some(e) = r.endpoint.as_mut() {
                match &node_addr {
                    Some(a) if *a != e.addr => {
                        tracing::warn!(task = %r.task_id, node = %from_node, reported = %e.addr, "endpoint address replaced by the node's own");
                        e.addr = a.clone();
                    }
                    Some(_) => {}
                    None => continue,
                }
            }
            match task.apply_report(&r, now) {
                Ok(()) => tx.put(task),
                Err(e) => tracing::debug!(error = %e, "task report refused"),
            }
        }
        Ok(())
    }).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::task::EndpointPort;
    use shoal_api::{Node, NodeRole, Protocol, Task, TaskEndpoint, TaskState, TaskStatus};

    /// A worker reported its task at `127.0.0.1:19999` and the manager's published port then
    /// served a loopback-only page of the manager's host.
    #[tokio::test]
    async fn worker_cannot_point_the_mesh_at_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state.redb")).expect("store");
        let task = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: Some("w1".into()),
            spec_version: 1,
            spec: Default::default(),
            ports: vec![],
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Starting, 0, ""),
            endpoint: None,
            created_at: 0,
            attempt: 0,
            pending_reason: None,
            quick_exits: 0,
        };
        store
            .update(|tx| {
                tx.put(Node::new(
                    "w1".into(),
                    "w1".into(),
                    NodeRole::Worker,
                    "10.0.0.5".into(),
                    0,
                ));
                tx.put(task);
                Ok::<_, StoreError>(())
            })
            .await
            .expect("setup");
        let mut report = TaskReport::new("t1", TaskState::Running, "started");
        report.endpoint = Some(TaskEndpoint {
            addr: "127.0.0.1".into(),
            ports: vec![EndpointPort {
                target: 80,
                host_port: 19999,
                protocol: Protocol::Tcp,
            }],
        });
        apply_reports(&store, &[report], "w1")
            .await
            .expect("report");
        let t = store.state().tasks["t1"].clone();
        assert_eq!(t.status.state, TaskState::Running);
        let e = t.endpoint.expect("endpoint");
        assert_eq!(
            e.addr, "10.0.0.5",
            "the endpoint must be the node's own address"
        );
        assert_eq!(e.ports[0].host_port, 19999);
    }
}
