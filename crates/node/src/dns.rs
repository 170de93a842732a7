//! The node's DNS server as a data-plane member: it listens on the cluster's resolver
//! address (the VIP pool's first address, put on the VIP interface by the VIP member, which
//! is applied first) once the first snapshot names the pool, and answers from every
//! snapshot after that.

use crate::data_plane::{BoxFuture, Member};
use shoal_balance::DataPlaneSnapshot;
use shoal_dns::{DnsConfig, DnsServer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;

/// Port the resolver answers on.
pub const DNS_PORT: u16 = 53;

/// The DNS member of a node's data plane.
#[derive(Debug)]
pub struct Dns {
    /// Resolvers for names outside the cluster; `None`: the host's, from /etc/resolv.conf.
    upstreams: Option<Vec<SocketAddr>>,
    server: tokio::sync::Mutex<Option<DnsServer>>,
    acked: watch::Sender<u64>,
    /// The address tasks are told to resolve with, once the server listens.
    resolver: watch::Sender<Option<IpAddr>>,
}

impl Dns {
    pub fn new(upstreams: Option<Vec<SocketAddr>>) -> Dns {
        Dns {
            upstreams,
            server: tokio::sync::Mutex::new(None),
            acked: watch::Sender::new(0),
            resolver: watch::Sender::new(None),
        }
    }

    /// The resolver address, once the server answers on it.
    pub fn resolver(&self) -> watch::Receiver<Option<IpAddr>> {
        self.resolver.subscribe()
    }

    async fn serve(&self, snapshot: Arc<DataPlaneSnapshot>) -> Vec<String> {
        let Some(pool) = snapshot.vip_pool else {
            return Vec::new();
        };
        let listen = SocketAddr::new(IpAddr::V4(pool.resolver()), DNS_PORT);
        let mut server = self.server.lock().await;
        if server.as_ref().is_some_and(|s| s.local_addr() != listen) {
            *server = None;
        }
        if server.is_none() {
            let upstreams = match &self.upstreams {
                Some(u) => u.clone(),
                None => shoal_dns::host_resolvers("/etc/resolv.conf", listen),
            };
            match DnsServer::start(DnsConfig::new(listen, upstreams)).await {
                Ok(s) => {
                    tracing::info!(%listen, "DNS server listening");
                    *server = Some(s);
                    self.resolver.send_replace(Some(listen.ip()));
                }
                Err(e) => return vec![format!("DNS server: {e}")],
            }
        }
        if let Some(s) = server.as_ref() {
            s.apply(snapshot);
        }
        Vec::new()
    }
}

impl Member for Dns {
    fn name(&self) -> &'static str {
        "DNS"
    }

    fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let version = snapshot.version;
            let errors = self.serve(snapshot).await;
            self.acked.send_replace(version);
            errors
        })
    }

    fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }
}
