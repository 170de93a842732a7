//! Certificate renewal: at a random point between 50% and 80% of the certificate's life,
//! a new key and certificate replace the old ones on disk and in the TLS configurations.

use crate::membership::store::save_certs;
use crate::membership::Certs;
use rand::Rng;
use rustls::{ClientConfig, ServerConfig};
use shoal_manager::ca::{issue, manager_ips};
use shoal_rpc::pki::{self, renewal_time, CertRole};
use shoal_rpc::proto::ca_client::CaClient;
use shoal_rpc::proto::RenewRequest;
use shoal_rpc::tls;
use shoal_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const RETRY: Duration = Duration::from_secs(5);

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sleep until this certificate is due for renewal; false if told to stop first.
async fn wait_until_due(cert_pem: &str, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = match tls::pem_identity(cert_pem) {
        Ok(id) => {
            let at = renewal_time(id.issued(), id.not_after, rand::rng().random::<f64>());
            tracing::info!(
                renew_in_secs = at - now_secs(),
                "node certificate renewal scheduled"
            );
            Duration::from_secs((at - now_secs()).max(1) as u64)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read own certificate; renewing now");
            Duration::from_secs(1)
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// A manager's TLS configurations, all from its one certificate: the control port's
/// server side, gRPC to other managers (h2) and the API forwarded to the leader (HTTP/1.1).
#[derive(Debug)]
pub struct ManagerTls {
    pub server: watch::Sender<Arc<ServerConfig>>,
    pub grpc: watch::Sender<Arc<ClientConfig>>,
    /// Shared with the node's local API, which forwards to the leader too.
    pub http: watch::Sender<Option<Arc<ClientConfig>>>,
}

impl ManagerTls {
    pub fn new(
        certs: &Certs,
        http: watch::Sender<Option<Arc<ClientConfig>>>,
    ) -> anyhow::Result<ManagerTls> {
        let (server, grpc, http_cfg) = Self::configs(certs)?;
        http.send_replace(Some(http_cfg));
        Ok(ManagerTls {
            server: watch::channel(server).0,
            grpc: watch::channel(grpc).0,
            http,
        })
    }

    #[allow(clippy::type_complexity)]
    fn configs(
        c: &Certs,
    ) -> anyhow::Result<(Arc<ServerConfig>, Arc<ClientConfig>, Arc<ClientConfig>)> {
        let id = Some((c.cert_pem.as_str(), c.key_pem.as_str()));
        Ok((
            tls::server_config(&c.ca_pem, &c.cert_pem, &c.key_pem)?,
            tls::client_config(&c.ca_pem, id, &[b"h2"])?,
            tls::client_config(&c.ca_pem, id, &[b"http/1.1"])?,
        ))
    }

    fn apply(&self, certs: &Certs) -> anyhow::Result<()> {
        let (server, grpc, http) = Self::configs(certs)?;
        self.server.send_replace(server);
        self.grpc.send_replace(grpc);
        self.http.send_replace(Some(http));
        Ok(())
    }
}

pub async fn manager_loop(
    store: Arc<Store>,
    data_dir: PathBuf,
    node_id: String,
    mut certs: Certs,
    tls_set: Arc<ManagerTls>,
    mut stop: watch::Receiver<bool>,
) {
    while wait_until_due(&certs.cert_pem, &mut stop).await {
        let renewed = (|| {
            let cluster = store
                .state()
                .cluster
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no cluster"))?;
            let ips = store
                .state()
                .nodes
                .get(&node_id)
                .map(|n| manager_ips(&n.addr, n.control_addr.as_deref()))
                .unwrap_or_default();
            let key = pki::new_node_key()?;
            let cert_pem = issue(&cluster, &key.csr_pem, &node_id, CertRole::Manager, &ips)?;
            let next = Certs {
                ca_pem: certs.ca_pem.clone(),
                cert_pem,
                key_pem: key.key_pem,
            };
            tls_set.apply(&next)?;
            save_certs(
                &data_dir,
                &next,
                crate::state_key::node_key_sealer(&store).as_ref(),
            )?;
            Ok::<_, anyhow::Error>(next)
        })();
        match renewed {
            Ok(next) => {
                tracing::info!("manager certificate renewed");
                certs = next;
            }
            Err(e) => {
                tracing::error!(error = %e, "certificate renewal failed");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

pub async fn worker_loop(
    data_dir: PathBuf,
    managers: Vec<SocketAddr>,
    mut certs: Certs,
    client_tls: watch::Sender<Arc<ClientConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt = 0usize;
    while wait_until_due(&certs.cert_pem, &mut stop).await {
        loop {
            let addr = managers[attempt % managers.len()];
            attempt += 1;
            let cfg = client_tls.borrow().clone();
            match renew_once(addr, &certs, cfg).await {
                Ok((next, cfg)) => {
                    // Workers hold no cluster state: autolock is for managers.
                    if let Err(e) = save_certs(&data_dir, &next, None) {
                        tracing::error!(error = %e, "saving renewed certificate failed");
                    }
                    client_tls.send_replace(cfg);
                    tracing::info!("node certificate renewed");
                    certs = next;
                    break;
                }
                Err(e) => {
                    tracing::warn!(manager = %addr, error = %e, "certificate renewal failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {},
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }
}

/// A new certificate (with the role the cluster now gives this node) from the first
/// manager that issues one.
pub async fn renew_from(managers: &[SocketAddr], certs: &Certs) -> anyhow::Result<Certs> {
    let cfg = tls::client_config(
        &certs.ca_pem,
        Some((&certs.cert_pem, &certs.key_pem)),
        &[b"h2"],
    )?;
    let mut last = anyhow::anyhow!("no manager address known");
    for addr in managers {
        match renew_once(*addr, certs, cfg.clone()).await {
            Ok((next, _)) => return Ok(next),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn renew_once(
    addr: SocketAddr,
    certs: &Certs,
    cfg: Arc<ClientConfig>,
) -> anyhow::Result<(Certs, Arc<ClientConfig>)> {
    let key = pki::new_node_key()?;
    let mut client = CaClient::new(tls::channel(addr, cfg)?);
    let resp = client
        .renew_node_certificate(RenewRequest {
            csr_pem: key.csr_pem,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let next = Certs {
        ca_pem: certs.ca_pem.clone(),
        cert_pem: resp.cert_pem,
        key_pem: key.key_pem,
    };
    let cfg = tls::client_config(
        &next.ca_pem,
        Some((&next.cert_pem, &next.key_pem)),
        &[b"h2"],
    )?;
    Ok((next, cfg))
}
