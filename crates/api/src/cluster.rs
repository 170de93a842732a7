//! The cluster object: identity, CA material, join-token secrets and cluster-wide settings.

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// Secret part of the worker join token.
    pub worker_secret: String,
    /// Secret part of the manager join token.
    pub manager_secret: String,
    /// How often agents send heartbeats; a node is down after 3 missed beats.
    pub heartbeat_period_ms: u64,
    /// Lifetime of node certificates, in seconds.
    pub cert_lifetime_secs: u64,
    /// Control addresses (`ip:port`) of the managers.
    pub managers: Vec<String>,
    pub created_at: u64,
    /// Client certificates issued for remote CLIs (`shoal client-cert`): only those listed
    /// here and not revoked are accepted on the control port.
    #[serde(default)]
    pub clients: Vec<ClientRecord>,
    /// Autolock: managers keep their data key wrapped with this key and start locked until
    /// `shoal unlock` gives it back. `None`: autolock is off.
    #[serde(default)]
    pub autolock_key: Option<String>,
    /// Where service VIPs come from; `None` in a cluster created before VIPs, which uses
    /// the default pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_pool: Option<crate::VipPool>,
}

impl Cluster {
    /// The cluster's VIP pool.
    pub fn vip_pool(&self) -> crate::VipPool {
        self.vip_pool.unwrap_or_default()
    }
}

/// A client certificate the cluster issued. Its certificate's subject CN is [`ClientRecord::cn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub id: String,
    /// What the operator called it (`--name`), for `shoal client-cert ls`.
    pub name: String,
    pub created_at: u64,
    pub expires_at: u64,
    /// When it was revoked (`shoal client-cert revoke`); a revoked certificate is refused.
    #[serde(default)]
    pub revoked_at: Option<u64>,
}

impl ClientRecord {
    /// The subject CN of its certificate.
    pub fn cn(&self) -> String {
        format!("client-{}", self.id)
    }
}

impl Cluster {
    /// The client whose certificate names `cn`, if it was issued here and is not revoked.
    pub fn valid_client(&self, cn: &str) -> Option<&ClientRecord> {
        self.clients
            .iter()
            .find(|c| c.revoked_at.is_none() && c.cn() == cn)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and keys never reach logs.
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("heartbeat_period_ms", &self.heartbeat_period_ms)
            .field("managers", &self.managers)
            .finish_non_exhaustive()
    }
}

/// Swarm's default dispatcher heartbeat period is 5 s; shoal detects failures faster.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// The heartbeat periods a cluster accepts, in milliseconds (50 ms to 1 min).
pub const HEARTBEAT_MS_RANGE: std::ops::RangeInclusive<u64> = 50..=60_000;
/// The shortest node certificate lifetime a cluster accepts, in seconds.
pub const MIN_CERT_LIFETIME_SECS: u64 = 10;
/// A node is declared down after this many missed heartbeats.
pub const MISSED_HEARTBEATS_DOWN: u64 = 3;
