//! `init`: a new cluster with this node as its only manager, and its disaster-recovery
//! form `--force-new-cluster`.

use super::error::MembershipError;
use super::record::{Certs, Membership};
use super::settings::InitSettings;
use super::state::{Change, Step};
use super::store;
use crate::daemon::bind_control;
use crate::roles;
use crate::runtime::Runtime;
use shoal_agent::AgentStop;
use shoal_api::{Node, NodeRole, VipPool};
use shoal_manager::ca::{self, join_token};
use shoal_manager::now_millis;
use shoal_rpc::pki::{self, CertRole};
use shoal_store::raft::Replica;
use shoal_store::{Op, Store};
use shoal_wire::v1::membership::{InitRequest, InitResponse};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use MembershipError as E;

impl Runtime {
    /// `shoal init`: a new cluster with this node as its manager.
    pub async fn init(self: &Arc<Self>, req: InitRequest) -> Result<InitResponse, E> {
        if req.force_new_cluster {
            return self.force_new_cluster().await;
        }
        let mut roles = self.roles.lock().await;
        self.standing().check(Change::Init)?;
        let settings = InitSettings::try_from(&req)?;
        self.check_vip_pool(&settings.vip_pool)?;
        let listen = settings.listen;
        let listener = super::error::bind_listen(listen).await?;
        let manager_addr = SocketAddr::new(
            settings.advertise_ip,
            listener.local_addr().map_err(E::internal)?.port(),
        )
        .to_string();
        let mut cluster =
            ca::new_cluster(settings.heartbeat_ms, settings.cert_expiry, &manager_addr)
                .map_err(E::internal)?;
        cluster.vip_pool = Some(settings.vip_pool);
        if req.autolock {
            cluster.autolock_key = Some(shoal_store::seal::new_unlock_key().map_err(E::internal)?);
        }
        let unlock_key = cluster.autolock_key.clone();
        let key = pki::new_node_key().map_err(E::internal)?;
        let certs = Certs {
            ca_pem: cluster.ca_cert_pem.clone(),
            cert_pem: ca::issue(
                &cluster,
                &key.csr_pem,
                &self.node_id,
                CertRole::Manager,
                &ca::manager_ips(&settings.advertise_ip.to_string(), Some(&manager_addr)),
            )
            .map_err(E::internal)?,
            key_pem: key.key_pem,
        };
        let m = Membership {
            role: NodeRole::Manager,
            cluster_id: cluster.id.clone(),
            managers: vec![manager_addr.clone()],
            advertise_addr: settings.advertise_ip.to_string(),
            listen_addr: Some(listen.to_string()),
        };
        let worker_token = join_token(&cluster, NodeRole::Worker).map_err(E::internal)?;
        store::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
            .map_err(E::internal)?;
        let cluster_id = cluster.id.clone();
        // The group starts with this node as its only voter; the cluster's first records
        // are its first entries.
        let started = async {
            let r = self.start_manager(&m, certs, listener, true, None).await?;
            let mut node = Node::new(
                self.node_id.clone(),
                self.hostname.clone(),
                NodeRole::Manager,
                settings.advertise_ip.to_string(),
                now_millis(),
            );
            node.control_addr = Some(manager_addr.clone());
            let written = async {
                wait_leader(&self.store).await?;
                self.store
                    .update(|tx| {
                        tx.push(Op::SetCluster(Box::new(cluster)));
                        tx.put(node);
                        Ok::<_, shoal_store::StoreError>(())
                    })
                    .await
                    .map_err(anyhow::Error::from)
            };
            match written.await {
                Ok(()) => Ok(r),
                Err(e) => {
                    drop(r.stop(AgentStop::Daemon).await);
                    Err(e)
                }
            }
        };
        match started.await {
            Ok(r) => *roles = Some(r),
            Err(e) => {
                // Nothing of the half-made cluster stays behind.
                let _ = store::remove(&self.cfg.data_dir);
                let _ = std::fs::remove_dir_all(self.cfg.raft_dir());
                let _ = self.store.forget();
                return Err(E::internal(format!("cannot start the cluster: {e:#}")));
            }
        }
        self.set_membership(Some(m));
        self.watch_role();
        tracing::info!(cluster = %cluster_id, node = %self.node_id, addr = %manager_addr, "cluster initialised");
        Ok(InitResponse {
            cluster_id,
            node_id: self.node_id.clone(),
            worker_token,
            manager_addr,
            unlock_key,
        })
    }

    /// Refuse a VIP pool that overlaps a network this node has an address in: its VIPs
    /// would shadow real hosts.
    fn check_vip_pool(&self, pool: &VipPool) -> Result<(), E> {
        if let Some((addr, len, dev)) = self
            .local_networks()
            .into_iter()
            .find(|(addr, len, _)| pool.overlaps(*addr, *len))
        {
            return Err(E::VipPoolOverlaps {
                pool: pool.to_string(),
                network: format!("{addr}/{len}"),
                dev,
            });
        }
        Ok(())
    }

    /// `shoal init --force-new-cluster`: this manager's log gets a membership naming it
    /// alone, and it starts again as the only manager, with every service and task.
    async fn force_new_cluster(self: &Arc<Self>) -> Result<InitResponse, E> {
        let mut roles = self.roles.lock().await;
        let Step::ForceNewCluster(m) = self.standing().check(Change::ForceNewCluster)? else {
            return Err(E::NotAManager);
        };
        let (_, certs) = store::load(&self.cfg.data_dir, self.store.sealer().as_ref())
            .map_err(E::internal)?
            .ok_or_else(|| E::internal("membership file vanished"))?;
        if let Some(r) = roles.take() {
            drop(r.stop(AgentStop::Daemon).await);
        }
        let listener = bind_control(&m).await.map_err(E::internal)?;
        let addr = roles::control_addr(&m, &listener).map_err(E::internal)?;
        Replica::force_new_cluster(
            &self.cfg.raft_dir(),
            &self.node_id,
            &addr,
            self.store.sealer(),
        )
        .map_err(E::internal)?;
        let m = m.sole_manager(addr.clone());
        store::save(&self.cfg.data_dir, &m, &certs, self.key_sealer().as_ref())
            .map_err(E::internal)?;
        *roles = Some(
            self.start_manager(&m, certs, listener, false, None)
                .await
                .map_err(E::internal)?,
        );
        self.set_membership(Some(m));
        drop(roles);
        self.watch_role();
        wait_leader(&self.store).await.map_err(E::internal)?;
        // The other managers are gone for good: they become workers, left to be removed.
        let now = now_millis();
        let me = self.node_id.clone();
        let cluster = self
            .store
            .update(|tx| {
                let others: Vec<Node> = tx
                    .state()
                    .nodes
                    .values()
                    .filter(|n| n.role == NodeRole::Manager && n.id != me)
                    .cloned()
                    .collect();
                for mut n in others {
                    n.role = NodeRole::Worker;
                    n.control_addr = None;
                    n.state = shoal_api::NodeState::Down;
                    n.updated_at = now;
                    tx.put(n);
                }
                let mut c = tx
                    .state()
                    .cluster
                    .clone()
                    .ok_or_else(|| E::internal("the local state holds no cluster"))?;
                c.managers = vec![addr.clone()];
                tx.push(Op::SetCluster(Box::new(c.clone())));
                Ok::<_, E>(c)
            })
            .await?;
        tracing::warn!(cluster = %cluster.id, "forced a new cluster from the local state: this node is its only manager");
        Ok(InitResponse {
            cluster_id: cluster.id.clone(),
            node_id: self.node_id.clone(),
            worker_token: join_token(&cluster, NodeRole::Worker).map_err(E::internal)?,
            manager_addr: addr,
            unlock_key: None,
        })
    }
}

/// Wait (up to 5 s) until this manager leads its group.
async fn wait_leader(store: &Store) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if store.replica().is_some_and(|r| r.is_leader()) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("this manager did not become the leader of its group within 5s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
