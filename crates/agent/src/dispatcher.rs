//! The seam between agent and control plane.

use shoal_api::Task;
pub use shoal_api::TaskReport;
use std::sync::Arc;
use tokio::sync::watch;

/// The tasks assigned to this node, at one control-plane version.
#[derive(Debug, Clone, Default)]
pub struct Assignments {
    /// 0 until the first assignments arrive from a manager.
    pub version: u64,
    pub tasks: Vec<Task>,
    /// The secrets and configs the tasks use.
    pub files: shoal_api::TaskFiles,
}

/// Where assignments come from and reports go to.
pub trait Dispatcher: Send + Sync + 'static {
    /// Wakes whenever this node's assignments change.
    fn assignments(&self) -> watch::Receiver<Arc<Assignments>>;
    /// Record observed changes; a refused transition is logged by the implementation.
    fn report(&self, reports: Vec<TaskReport>) -> anyhow::Result<()>;
}
