//! TLS for every node-to-node and remote-CLI connection: rustls with aws-lc-rs only.
//!
//! Servers ask for a client certificate but also accept connections without one: the CA
//! calls (`GetRootCa`, `IssueNodeCertificate`) are authenticated by the join token instead.
//! Every other call checks the verified peer identity ([`PeerIdentity`]) the server attaches
//! to each request.

use crate::pki::{identity, pem_to_der, CertIdentity};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls configuration: {0}")]
    Config(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn config_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut reader = pem.as_bytes();
    rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(config_err)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut reader = pem.as_bytes();
    rustls_pemfile::private_key(&mut reader)
        .map_err(config_err)?
        .ok_or_else(|| TlsError::Config("no private key in PEM".into()))
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).map_err(config_err)?;
    }
    Ok(roots)
}

/// Server side: our certificate, client certificates verified against the cluster CA when
/// presented. ALPN offers HTTP/2 (gRPC) and HTTP/1.1 (the JSON API for remote CLIs).
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
            .allow_unauthenticated()
            .build()
            .map_err(config_err)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem)?, key(key_pem)?)
        .map_err(config_err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Client side: the server must present a manager certificate of our cluster CA; we present
/// ours when we have one.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_root_certificates(roots(ca_pem)?);
    let mut cfg = match identity {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(certs(cert_pem)?, key(key_pem)?)
            .map_err(config_err)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// First contact only: accept whatever certificate the server shows. The caller must check
/// the root CA it then receives against the digest in its join token.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Client configuration for the first contact (no verification, no client certificate).
pub fn first_contact_config() -> Result<Arc<ClientConfig>, TlsError> {
    let p = provider();
    let mut cfg = ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(p)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// A gRPC channel to `addr` over TLS with `cfg`. Connects lazily and reconnects on use.
pub fn channel(addr: SocketAddr, cfg: Arc<ClientConfig>) -> Result<Channel, TlsError> {
    let endpoint = Endpoint::from_shared(format!("http://{}", crate::MANAGER_SERVER_NAME))
        .map_err(config_err)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
        let cfg = cfg.clone();
        async move {
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(crate::MANAGER_SERVER_NAME)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// The verified identity of the peer of a server connection, attached to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub Option<CertIdentity>);

/// The address a server connection comes from, attached to every request beside
/// [`PeerIdentity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Identity from the certificates a verified peer presented.
pub fn peer_identity(peer_certs: Option<&[CertificateDer<'_>]>) -> PeerIdentity {
    PeerIdentity(
        peer_certs
            .and_then(|c| c.first())
            .and_then(|c| identity(c).ok()),
    )
}

/// The certificate identity of a PEM certificate (for a node's own certificate).
pub fn pem_identity(cert_pem: &str) -> Result<CertIdentity, crate::pki::PkiError> {
    identity(&pem_to_der(cert_pem)?)
}
