//! `leave`: stop this node's tasks and forget the cluster.

use super::error::MembershipError;
use super::state::{Change, Step};
use super::store;
use crate::data_plane::DataPlaneStatus;
use crate::runtime::Runtime;
use shoal_agent::AgentStop;
use shoal_api::NodeRole;
use shoal_wire::v1::membership::LeaveRequest;

use MembershipError as E;

impl Runtime {
    /// `shoal leave`: stop this node's tasks and forget the cluster. A manager leaves only
    /// with `force` (it would take the cluster or a quorum's member with it).
    pub async fn leave(&self, req: LeaveRequest) -> Result<(), E> {
        let mut roles = self.roles.lock().await;
        let other_managers = self
            .store
            .replica()
            .map_or(0, |r| r.status().voters.len().saturating_sub(1));
        let change = Change::Leave {
            force: req.force,
            other_managers,
        };
        let Step::Leave { from: m } = self.standing().check(change)? else {
            return Err(E::NotMember);
        };
        if self.cfg.vip_interface.is_some() {
            // Before the tasks stop: the kernel would go on sending them connections the
            // proxy can take elsewhere.
            let _ = tokio::task::spawn_blocking(crate::nat::remove).await;
        }
        if let Some(r) = roles.take() {
            drop(r.stop(AgentStop::Leave).await);
        }
        if m.role == NodeRole::Manager {
            self.forget_cluster_state().await?;
        }
        store::remove(&self.cfg.data_dir).map_err(E::internal)?;
        // The cluster's VIPs and resolver address go with it.
        if self.cfg.vip_interface.is_some() {
            let _ = tokio::task::spawn_blocking(|| {
                crate::vip_iface::remove();
                crate::vips::remove_redirect_rules();
            })
            .await;
        }
        self.set_membership(None);
        self.status.send_replace(DataPlaneStatus::default());
        tracing::info!(cluster = %m.cluster_id, "left the cluster");
        Ok(())
    }

    /// Drop this node's copy of the cluster state and its Raft log (roles are stopped).
    pub(super) async fn forget_cluster_state(&self) -> Result<(), E> {
        let dir = self.cfg.raft_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| E::internal(format!("cannot remove {}: {e}", dir.display())))?;
        }
        self.store.forget().map_err(E::internal)
    }
}
