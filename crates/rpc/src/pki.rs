//! The cluster PKI: a root CA per cluster, node certificates that name the node.
//!
//! A node certificate's subject is `CN=<node id>, OU=<role>, O=<cluster id>`; manager
//! certificates also carry the DNS name [`crate::MANAGER_SERVER_NAME`], which nodes and the
//! shoal CLI verify, and the manager's addresses as IP names, which a client that checks
//! the address it dialled (the docker CLI with `--tlsverify`) verifies. Keys are ECDSA
//! P-256, made and used through aws-lc-rs.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::time::Duration;
use time::OffsetDateTime;

/// Default node certificate lifetime (Swarm's).
pub const DEFAULT_CERT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Root CA lifetime.
const CA_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate: {0}")]
    Parse(String),
}

/// Roles a certificate can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    Manager,
    Worker,
    /// A CLI user talking to the control API.
    Client,
}

impl CertRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::Manager => "manager",
            CertRole::Worker => "worker",
            CertRole::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<CertRole> {
        match s {
            "manager" => Some(CertRole::Manager),
            "worker" => Some(CertRole::Worker),
            "client" => Some(CertRole::Client),
            _ => None,
        }
    }
}

/// A root CA: certificate and private key, PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never goes to logs.
        f.debug_struct("CaMaterial")
            .field("cert_pem", &"<pem>")
            .finish()
    }
}

/// Certificates are valid from this long before they are issued, for clocks slightly apart.
pub const BACKDATE_SECS: i64 = 300;

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(BACKDATE_SECS);
    params.not_after = now + time::Duration::seconds(lifetime.as_secs() as i64);
}

/// Make a new root CA for cluster `cluster_id`.
pub fn new_root_ca(cluster_id: &str) -> Result<CaMaterial, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "shoal-ca");
    dn.push(DnType::OrganizationName, cluster_id);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_LIFETIME);
    let cert = params.self_signed(&key)?;
    Ok(CaMaterial {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A fresh node key and a CSR for it, both PEM.
#[derive(Clone)]
pub struct NodeKey {
    pub key_pem: String,
    pub csr_pem: String,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").finish_non_exhaustive()
    }
}

pub fn new_node_key() -> Result<NodeKey, PkiError> {
    let key = KeyPair::generate()?;
    let params = CertificateParams::default();
    let csr = params.serialize_request(&key)?;
    Ok(NodeKey {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

/// Sign a node certificate for the public key in `csr_pem`. The subject comes from the
/// arguments, never from the CSR: the CA decides who the node is. A manager's certificate
/// also names `ips`, the addresses its control port is reached at (ignored for other roles).
pub fn sign_node_cert(
    ca: &CaMaterial,
    csr_pem: &str,
    node_id: &str,
    role: CertRole,
    cluster_id: &str,
    lifetime: Duration,
    ips: &[std::net::IpAddr],
) -> Result<String, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::Parse(format!("certificate request: {e}")))?;
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_id);
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    dn.push(DnType::OrganizationName, cluster_id);
    params.distinguished_name = dn;
    let mut sans = vec![SanType::DnsName(node_id.try_into()?)];
    if role == CertRole::Manager {
        sans.push(SanType::DnsName(crate::MANAGER_SERVER_NAME.try_into()?));
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, lifetime);
    let cert = params.signed_by(&csr.public_key, &issuer)?;
    Ok(cert.pem())
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub node_id: String,
    pub role: CertRole,
    pub cluster_id: String,
    /// Validity, as Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// Read the identity out of a DER certificate.
pub fn identity(der: &[u8]) -> Result<CertIdentity, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let node_id =
        first(&mut subject.iter_common_name()).ok_or_else(|| PkiError::Parse("no CN".into()))?;
    let role = first(&mut subject.iter_organizational_unit())
        .and_then(|r| CertRole::parse(&r))
        .ok_or_else(|| PkiError::Parse("no role (OU)".into()))?;
    let cluster_id = first(&mut subject.iter_organization())
        .ok_or_else(|| PkiError::Parse("no cluster (O)".into()))?;
    Ok(CertIdentity {
        node_id,
        role,
        cluster_id,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The first certificate of a PEM bundle, as DER.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let mut reader = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut reader)
        .next()
        .ok_or_else(|| PkiError::Parse("no certificate in PEM".into()))?;
    first
        .map(|c| c.to_vec())
        .map_err(|e| PkiError::Parse(e.to_string()))
}

/// When to renew a certificate issued at `issued` and valid until `not_after`: at a random
/// point between 50% and 80% of its life (Swarm's rule), as Unix seconds.
pub fn renewal_time(issued: i64, not_after: i64, random_fraction: f64) -> i64 {
    let life = (not_after - issued).max(0) as f64;
    let at = 0.5 + 0.3 * random_fraction.clamp(0.0, 1.0);
    issued + (life * at) as i64
}

impl CertIdentity {
    /// When this certificate was issued (its validity starts [`BACKDATE_SECS`] earlier).
    pub fn issued(&self) -> i64 {
        self.not_before + BACKDATE_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_names_the_node() {
        let ca = new_root_ca("c1").unwrap();
        let key = new_node_key().unwrap();
        let pem = sign_node_cert(
            &ca,
            &key.csr_pem,
            "node1",
            CertRole::Worker,
            "c1",
            Duration::from_secs(3600),
            &[],
        )
        .unwrap();
        let id = identity(&pem_to_der(&pem).unwrap()).unwrap();
        assert_eq!(
            (id.node_id.as_str(), id.role, id.cluster_id.as_str()),
            ("node1", CertRole::Worker, "c1")
        );
        assert!(id.not_after - id.not_before >= 3600);
    }

    #[test]
    fn bad_csr_is_refused() {
        let ca = new_root_ca("c1").unwrap();
        assert!(sign_node_cert(
            &ca,
            "not a csr",
            "n",
            CertRole::Worker,
            "c1",
            DEFAULT_CERT_LIFETIME,
            &[]
        )
        .is_err());
    }

    #[test]
    fn a_manager_certificate_names_its_addresses_and_a_worker_certificate_does_not() {
        let ca = new_root_ca("c1").unwrap();
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let sans = |role| {
            let key = new_node_key().unwrap();
            let pem = sign_node_cert(
                &ca,
                &key.csr_pem,
                "n1",
                role,
                "c1",
                DEFAULT_CERT_LIFETIME,
                &[ip],
            )
            .unwrap();
            let der = pem_to_der(&pem).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            let names = cert.subject_alternative_name().unwrap().unwrap().value;
            format!("{:?}", names.general_names)
        };
        let manager = sans(CertRole::Manager);
        assert!(manager.contains("shoal-manager"), "{manager}");
        assert!(manager.contains("[192, 0, 2, 7]"), "{manager}");
        let worker = sans(CertRole::Worker);
        assert!(!worker.contains("[192, 0, 2, 7]"), "{worker}");
    }

    #[test]
    fn renewal_between_half_and_eighty_percent() {
        assert_eq!(renewal_time(0, 100, 0.0), 50);
        assert_eq!(renewal_time(0, 100, 1.0), 80);
        assert_eq!(renewal_time(0, 100, 0.5), 65);
    }
}
