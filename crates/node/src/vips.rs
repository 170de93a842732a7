//! Service VIPs on this node: the data-plane member that keeps every service's VIP (and the
//! DNS resolver address) on the node's VIP interface and listens on VIP:target for each of
//! the service's ports, spreading connections over its ready tasks on any node.
//!
//! Each VIP is served by a routing mesh of its own bound to that address, so a VIP gets
//! what a published port gets: the balancer, fall-through on a refused connect, splice
//! proxying, connection caps (each VIP capped at the node's per-port cap).

use crate::data_plane::{BoxFuture, DataPlaneStatus, Member};
use crate::vip_iface::VipInterface;
use shoal_api::VipPool;
use shoal_balance::DataPlaneSnapshot;
use shoal_mesh::{ConnectionCaps, Mesh, MeshConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// The VIP member of a node's data plane.
#[derive(Debug)]
pub struct Vips {
    iface: Arc<Mutex<VipInterface>>,
    caps: ConnectionCaps,
    /// One mesh per VIP, bound to it.
    meshes: tokio::sync::Mutex<BTreeMap<Ipv4Addr, Mesh>>,
    acked: watch::Sender<u64>,
    /// VIPs served now, for the node's status.
    serving: Mutex<Vec<Ipv4Addr>>,
}

impl Vips {
    /// VIPs on the dummy interface `iface`, each with the per-port cap of `caps`.
    pub fn new(iface: &str, caps: ConnectionCaps) -> Vips {
        Vips {
            iface: Arc::new(Mutex::new(VipInterface::new(iface))),
            caps: ConnectionCaps {
                total: caps.per_port,
                per_port: caps.per_port,
            },
            meshes: tokio::sync::Mutex::new(BTreeMap::new()),
            acked: watch::Sender::new(0),
            serving: Mutex::new(Vec::new()),
        }
    }

    async fn set_addresses(&self, pool: VipPool, wanted: BTreeSet<Ipv4Addr>) -> Result<(), String> {
        let iface = self.iface.clone();
        tokio::task::spawn_blocking(move || {
            iface
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set(pool, &wanted)
        })
        .await
        .map_err(|e| format!("VIP interface: {e}"))?
    }

    async fn route(&self, snapshot: &DataPlaneSnapshot) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(pool) = snapshot.vip_pool else {
            return errors;
        };
        let vips: BTreeMap<Ipv4Addr, &shoal_balance::ServiceEntry> = snapshot
            .services
            .iter()
            .filter_map(|s| match s.vip {
                Some(IpAddr::V4(v)) if pool.contains(v) => Some((v, s)),
                _ => None,
            })
            .collect();
        let mut meshes = self.meshes.lock().await;
        // Addresses first, so a new VIP's listeners can bind; old ones go after their
        // listeners closed.
        let mut wanted: BTreeSet<Ipv4Addr> = vips.keys().copied().collect();
        wanted.insert(pool.resolver());
        wanted.extend(meshes.keys().copied());
        if let Err(e) = self.set_addresses(pool, wanted).await {
            errors.push(e);
        }
        let gone: Vec<Ipv4Addr> = meshes
            .keys()
            .filter(|v| !vips.contains_key(v))
            .copied()
            .collect();
        for v in gone {
            if let Some(mesh) = meshes.remove(&v) {
                mesh.apply(Arc::new(shoal_balance::EndpointTable {
                    version: snapshot.version,
                    ..Default::default()
                }))
                .await;
            }
        }
        for (vip, service) in &vips {
            let mesh = meshes.entry(*vip).or_insert_with(|| {
                Mesh::new(MeshConfig {
                    bind_ip: IpAddr::V4(*vip),
                    caps: self.caps,
                })
            });
            for e in mesh
                .apply(Arc::new(service.vip_table(snapshot.version)))
                .await
            {
                errors.push(format!("VIP {vip} of service {}: {e}", service.name));
            }
        }
        let mut wanted: BTreeSet<Ipv4Addr> = vips.keys().copied().collect();
        wanted.insert(pool.resolver());
        if let Err(e) = self.set_addresses(pool, wanted).await {
            errors.push(e);
        }
        *self.serving.lock().unwrap_or_else(PoisonError::into_inner) =
            meshes.keys().copied().collect();
        errors
    }
}

impl Member for Vips {
    fn name(&self) -> &'static str {
        "service VIPs"
    }

    fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let errors = self.route(&snapshot).await;
            self.acked.send_replace(snapshot.version);
            errors
        })
    }

    fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }

    fn status(&self, status: &mut DataPlaneStatus) {
        status.vips = self
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
    }
}
