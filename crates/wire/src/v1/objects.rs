//! `/v1/networks`, `/v1/secrets` and `/v1/configs`: create, list, inspect, relabel (secrets
//! and configs), remove.
//!
//! A network is answered as stored (`Network`). A secret or config is answered as a
//! [`BlobInfo`]: its data is shown for a config and never for a secret, as Docker does.

use base64::Engine;
use serde::{Deserialize, Serialize};
use shoal_api::{network, Blob, BlobKind, ConfigKind, Network, SpecError};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// `POST /v1/networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Standalone containers may attach (kept and shown).
    #[serde(default)]
    pub attachable: bool,
    /// No route out of the network (kept and shown, not enforced).
    #[serde(default)]
    pub internal: bool,
}

impl NetworkCreate {
    /// The network to write (without its ID and times), checked.
    pub fn checked(self) -> Result<Network, SpecError> {
        network::check_object_name("network", &self.name)?;
        shoal_api::limits::check_labels(self.labels.iter())?;
        Ok(Network {
            id: String::new(),
            name: self.name,
            driver: network::OVERLAY.into(),
            labels: self.labels,
            attachable: self.attachable,
            internal: self.internal,
            created_at: 0,
            updated_at: 0,
        })
    }
}

/// `POST /v1/secrets` and `POST /v1/configs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobCreate {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The payload, base64 (standard alphabet, padded).
    pub data: String,
    /// `golang` for a config whose payload is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<String>,
}

impl BlobCreate {
    /// A request carrying `data`.
    pub fn new(
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        data: &[u8],
        templating: Option<String>,
    ) -> Self {
        BlobCreate {
            name: name.into(),
            labels,
            data: base64::engine::general_purpose::STANDARD.encode(data),
            templating,
        }
    }

    /// The blob to write (without its ID and times), checked: name, labels, size, driver.
    pub fn checked<K: BlobKind>(self) -> Result<Blob<K>, SpecError> {
        let data = base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| SpecError::Other(format!("{} data is not base64: {e}", K::NAME)))?;
        Blob::<K>::check(&self.name, &self.labels, &data, self.templating.as_deref())?;
        Ok(Blob {
            id: String::new(),
            name: self.name,
            labels: self.labels,
            data,
            templating: self.templating,
            created_at: 0,
            updated_at: 0,
            kind: PhantomData,
        })
    }
}

/// `POST /v1/secrets/{id}/update` and `/v1/configs/{id}/update`: the new labels, the only
/// part of a secret or config that may change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobLabels {
    pub labels: BTreeMap<String, String>,
}

/// A secret or config as listed and inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The payload's length in bytes.
    pub size: u64,
    /// A config's payload, base64; never sent for a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl BlobInfo {
    /// `b` as the API shows it: with its data if it is a config.
    pub fn new<K: BlobKind>(b: &Blob<K>) -> Self {
        let shows_data = K::NAME == <ConfigKind as BlobKind>::NAME;
        BlobInfo {
            id: b.id.clone(),
            name: b.name.clone(),
            labels: b.labels.clone(),
            size: b.data.len() as u64,
            data: shows_data.then(|| base64::engine::general_purpose::STANDARD.encode(&b.data)),
            templating: b.templating.clone(),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }

    /// A config's payload, decoded (`None` for a secret).
    pub fn decoded(&self) -> Option<Vec<u8>> {
        let text = self.data.as_deref()?;
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    }
}
