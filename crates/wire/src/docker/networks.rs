//! `/networks`: cluster networks as Docker shows them, and what `docker network create`
//! posts. Every network shoal reports is swarm-scoped with the `overlay` driver; the
//! cluster's own network ([`super::NETWORK_NAME`], the one every service's VIP is on) is
//! listed beside the networks users made.

use super::spec::nullable;
use super::{rfc3339, DockerError, Extra};
use serde::{Deserialize, Serialize};
use shoal_api as api;
use std::collections::BTreeMap;

/// Filters `GET /networks` accepts.
pub const NETWORK_FILTERS: &[&str] = &["id", "name", "label", "scope", "driver", "type"];

/// A network as `GET /networks` and `GET /networks/{id}` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, serde_json::Value>,
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

// Docker names the network's ID `Id` here, unlike every swarm object's `ID`.
impl NetworkResource {
    fn new(id: &str, name: &str, created: u64, subnet: &str) -> NetworkResource {
        NetworkResource {
            name: name.to_owned(),
            id: id.to_owned(),
            created: rfc3339(created),
            scope: "swarm".into(),
            driver: api::network::OVERLAY.into(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: vec![IpamConfig {
                    subnet: subnet.to_owned(),
                }],
            },
            internal: false,
            attachable: false,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers: BTreeMap::new(),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    /// The cluster's own network, whose subnet is the VIP pool (`pool` in CIDR form).
    pub fn cluster(id: &str, created: u64, pool: &str) -> NetworkResource {
        NetworkResource {
            ingress: true,
            ..NetworkResource::new(id, super::NETWORK_NAME, created, pool)
        }
    }

    /// A network a user made; its services' VIPs come from the same pool.
    pub fn stored(n: &api::Network, pool: &str) -> NetworkResource {
        NetworkResource {
            internal: n.internal,
            attachable: n.attachable,
            labels: n.labels.clone(),
            ..NetworkResource::new(&n.id, &n.name, n.created_at, pool)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    pub network: String,
}

/// What `docker network create` posts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    pub name: String,
    pub driver: String,
    pub scope: String,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<serde_json::Value>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub config_only: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to `POST /networks/create` (201).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCreateResponse {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Warning")]
    pub warning: String,
}

impl NetworkCreateRequest {
    /// The network to store (without its ID and times), and a warning for each setting
    /// shoal keeps but does not act on; an error names what shoal cannot make.
    pub fn checked(&self) -> Result<(api::Network, Vec<String>), DockerError> {
        api::network::check_object_name("network name", &self.name)?;
        api::limits::check_labels(self.labels.iter())?;
        if !matches!(self.driver.as_str(), "" | api::network::OVERLAY) {
            return Err(DockerError::invalid(
                "Driver",
                format!(
                    "{:?}: a shoal cluster makes overlay networks only (docker network create -d overlay)",
                    self.driver
                ),
            ));
        }
        if !matches!(self.scope.as_str(), "" | "swarm") {
            return Err(DockerError::invalid(
                "Scope",
                format!("{:?}: cluster networks are swarm-scoped", self.scope),
            ));
        }
        if self.ingress {
            return Err(DockerError::invalid(
                "Ingress",
                "the cluster's routing mesh is built in: no ingress network can be made",
            ));
        }
        if self.config_only {
            return Err(DockerError::invalid(
                "ConfigOnly",
                "shoal has no configuration-only networks",
            ));
        }
        let mut warnings = Vec::new();
        if self.enable_ipv6 == Some(true) {
            warnings.push("EnableIPv6: service VIPs are IPv4 only; ignored".into());
        }
        if self.ipam.as_ref().is_some_and(|v| !v.is_null()) {
            warnings.push("IPAM: VIPs come from the cluster's VIP pool; ignored".into());
        }
        if !self.options.is_empty() {
            warnings.push("Options: ignored".into());
        }
        if self.internal {
            warnings.push("Internal: kept, not enforced".into());
        }
        let network = api::Network {
            id: String::new(),
            name: self.name.clone(),
            driver: api::network::OVERLAY.into(),
            labels: self.labels.clone(),
            attachable: self.attachable,
            internal: self.internal,
            created_at: 0,
            updated_at: 0,
        };
        Ok((network, warnings))
    }
}
