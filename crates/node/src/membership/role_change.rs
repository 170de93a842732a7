//! Role changes the cluster asks of this node (`node promote`/`demote`): a task follows the
//! role the store wants for it and restarts the node's roles to match.

use super::record::Membership;
use super::state::{Change, Step};
use super::store;
use crate::daemon::bind_control;
use crate::data_plane::DataPlane;
use crate::roles::Roles;
use crate::runtime::Runtime;
use anyhow::Context;
use shoal_agent::AgentStop;
use shoal_api::NodeRole;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

impl Runtime {
    /// Follow the role the cluster wants this node to have; a later call replaces the
    /// task an earlier one started.
    pub(crate) fn watch_role(self: &Arc<Self>) {
        let generation = self.role_watch.fetch_add(1, Ordering::SeqCst) + 1;
        let rt = self.clone();
        tokio::spawn(async move {
            loop {
                let current = rt.role_watch.load(Ordering::SeqCst);
                if current != generation {
                    return;
                }
                let wanted = match rt.roles.lock().await.as_ref() {
                    Some(r) => r.wanted_role.clone(),
                    None => return,
                };
                let Some(target) =
                    wait_for_other_role(wanted, rt.membership().map(|m| m.role)).await
                else {
                    // Roles were replaced or stopped: look again.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                if let Err(e) = rt.switch_role(target).await {
                    tracing::error!(error = %format!("{e:#}"), role = target.as_str(), "changing role failed; will retry");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        });
    }

    async fn switch_role(self: &Arc<Self>, target: NodeRole) -> anyhow::Result<()> {
        let mut roles = self.roles.lock().await;
        let Step::SwitchRole { from: m, .. } = self.standing().check(Change::Role(target))? else {
            return Ok(());
        };
        let (_, certs) = store::load(&self.cfg.data_dir, self.store.sealer().as_ref())?
            .context("the membership file vanished")?;
        tracing::info!(
            from = m.role.as_str(),
            to = target.as_str(),
            "the cluster changed this node's role"
        );
        match target {
            NodeRole::Worker => {
                let managers = self
                    .store
                    .state()
                    .cluster
                    .as_ref()
                    .map(|c| c.managers.clone())
                    .unwrap_or_else(|| m.managers.clone());
                let plane = stop_keeping_data_plane(&mut roles).await;
                self.forget_cluster_state()
                    .await
                    .map_err(|e| anyhow::anyhow!(e.to_string()))?;
                let m = m.demoted(managers);
                store::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())?;
                *roles = Some(self.start_worker(&m, certs, plane).await?);
                self.set_membership(Some(m));
            }
            NodeRole::Manager => {
                let managers: Vec<SocketAddr> =
                    m.managers.iter().filter_map(|a| a.parse().ok()).collect();
                let certs = crate::renew::renew_from(&managers, &certs).await?;
                let m: Membership = m.promoted();
                let listener = bind_control(&m).await?;
                let plane = stop_keeping_data_plane(&mut roles).await;
                store::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())?;
                *roles = Some(
                    self.start_manager(&m, certs, listener, false, plane)
                        .await?,
                );
                self.set_membership(Some(m));
            }
        }
        Ok(())
    }
}

/// Stop the node's roles, if it has any, and keep their data plane for the next ones.
async fn stop_keeping_data_plane(roles: &mut Option<Roles>) -> Option<DataPlane> {
    let r = roles.take()?;
    Some(r.stop(AgentStop::Daemon).await)
}

/// The next wanted role different from `current` (None when the roles stopped).
async fn wait_for_other_role(
    mut wanted: watch::Receiver<Option<NodeRole>>,
    current: Option<NodeRole>,
) -> Option<NodeRole> {
    loop {
        let w = *wanted.borrow_and_update();
        if w.is_some() && w != current {
            return w;
        }
        wanted.changed().await.ok()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_past_the_current_role() {
        let (tx, rx) = watch::channel(Some(NodeRole::Worker));
        let waiting = tokio::spawn(wait_for_other_role(rx, Some(NodeRole::Worker)));
        tokio::task::yield_now().await;
        tx.send_replace(Some(NodeRole::Manager));
        assert_eq!(waiting.await.ok().flatten(), Some(NodeRole::Manager));
    }

    #[tokio::test]
    async fn none_once_the_roles_stop() {
        let (tx, rx) = watch::channel(None);
        drop(tx);
        assert_eq!(wait_for_other_role(rx, Some(NodeRole::Worker)).await, None);
    }
}
