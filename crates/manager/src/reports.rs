//! Applying agents' task reports to the store.

use crate::now_millis;
use shoal_api::TaskReport;
use shoal_store::{Store, StoreError};

/// Apply `reports` in one write. Reports for unknown tasks, for tasks of another node (when
/// `from_node` is set) or that would move a task backwards are dropped with a log line.
pub async fn apply_reports(
    store: &Store,
    reports: &[TaskReport],
    from_node: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.update(|tx| {
        for r in reports {
            let Some(mut task) = tx.state().tasks.get(&r.task_id).cloned() else {
                continue;
            };
            if from_node.is_some_and(|n| task.node_id.as_deref() != Some(n)) {
                tracing::warn!(task = %r.task_id, node = ?from_node, "report for a task of another node refused");
                continue;
            }
            match task.apply_report(r, now) {
                Ok(()) => tx.put_task(task),
                Err(e) => tracing::debug!(error = %e, "task report refused"),
            }
        }
        Ok(())
    }).await
}
