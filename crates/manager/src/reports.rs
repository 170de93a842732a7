//! Applying agents' task reports to the store.

use crate::now_millis;
use shoal_api::TaskReport;
use shoal_store::{Store, StoreError};

/// Apply the reports of the agent of `from_node` in one write. Reports for unknown tasks,
/// for tasks of another node or that would move a task backwards are dropped with a log
/// line.
pub async fn apply_reports(
    store: &Store,
    reports: &[TaskReport],
    from_node: &str,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.update(|tx| {
        for r in reports {
            let Some(mut task) = tx.state().tasks.get(&r.task_id).cloned() else {
                continue;
            };
            if task.node_id.as_deref() != Some(from_node) {
                tracing::warn!(task = %r.task_id, node = %from_node, "report for a task of another node refused");
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
