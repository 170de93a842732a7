//! `shoal unlock` of an autolocked manager, and keeping the data key wrapped (or not) as
//! the cluster's autolock setting says.

use crate::membership::store;
use crate::runtime::Runtime;
use crate::state_key::{self, DataKey};
use shoal_manager::control::ApiError;
use std::sync::Arc;
use std::time::Duration;

impl Runtime {
    /// `shoal unlock`: open the data key with the cluster's unlock key, load the state and
    /// start the roles. A wrong key is answered after a pause, one guess at a time.
    pub async fn unlock(self: &Arc<Self>, unlock_key: &str) -> Result<(), ApiError> {
        if !self.store.is_locked() {
            return Err(ApiError::conflict("this node is not locked: nothing to do"));
        }
        let key = match state_key::unlock(&self.cfg.data_dir, unlock_key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(reason = %e, "unlock refused");
                let _one_at_a_time = self.failed_unlocks.lock().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Err(ApiError::bad_request(e.to_string()));
            }
        };
        let sealer = key
            .sealer()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.store
            .unlock(sealer)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        *self.data_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        tracing::info!("unlocked: starting the roles");
        self.resume()
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}")))
    }

    /// Keep the data key wrapped or in the clear as the cluster's autolock setting says,
    /// following rotations of the unlock key, and the node key sealed with it or not.
    pub(crate) async fn keep_data_key(self: Arc<Self>) {
        let mut changes = self.store.subscribe();
        let mut kept: Option<Option<String>> = None;
        loop {
            let wanted = changes
                .borrow_and_update()
                .cluster
                .as_ref()
                .and_then(|c| c.autolock_key.clone());
            let key = self
                .data_key
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(key) = key {
                if kept.as_ref() != Some(&wanted) {
                    match self.keep_keys(&key, wanted.as_deref()).await {
                        Ok(()) => kept = Some(wanted),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "cannot store the data key")
                        }
                    }
                }
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    async fn keep_keys(&self, key: &DataKey, unlock_key: Option<&str>) -> anyhow::Result<()> {
        // Under the roles lock: role changes and init write the certificates too.
        let _roles = self.roles.lock().await;
        let sealer = key.sealer()?;
        if let Some((_, certs)) = store::load(&self.cfg.data_dir, Some(&sealer))? {
            let node_key = unlock_key.map(|_| &sealer);
            store::save_certs(&self.cfg.data_dir, &certs, node_key)?;
        }
        state_key::keep(&self.cfg.data_dir, key, unlock_key)
    }
}
