//! `/secrets` and `/configs`: what `docker secret|config create` posts and what the routes
//! answer. One spec and one object type serve both; a secret's data is never sent back,
//! a config's is.

use super::spec::nullable;
use super::{rfc3339, DockerError, Extra, ObjectVersion};
use base64::Engine;
use serde::{Deserialize, Serialize};
use shoal_api as api;
use std::collections::BTreeMap;

/// Filters `GET /secrets` and `GET /configs` accept (`name` and `id` are prefixes, `names`
/// exact).
pub const BLOB_FILTERS: &[&str] = &["id", "name", "names", "label"];

/// `SecretSpec` / `ConfigSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BlobSpec {
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Base64; left out when a secret is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templating: Option<TemplatingDriver>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TemplatingDriver {
    pub name: String,
}

/// A secret or config as listed and inspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Blob {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: ObjectVersion,
    pub created_at: String,
    pub updated_at: String,
    pub spec: BlobSpec,
}

/// The answer to `POST /secrets/create` and `/configs/create` (201).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    #[serde(rename = "ID")]
    pub id: String,
}

impl BlobSpec {
    /// A new blob (without its ID and times) from what a client posted, checked.
    pub fn checked<K: api::BlobKind>(&self) -> Result<api::Blob<K>, DockerError> {
        if self.driver.as_ref().is_some_and(|d| !d.is_null()) {
            return Err(DockerError::invalid(
                "Driver",
                format!(
                    "shoal keeps {}s in its own store: no external driver",
                    K::NAME
                ),
            ));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(self.data.as_deref().unwrap_or(""))
            .map_err(|e| DockerError::invalid("Data", format!("not base64: {e}")))?;
        let templating = self
            .templating
            .as_ref()
            .map(|t| t.name.clone())
            .filter(|t| !t.is_empty());
        api::Blob::<K>::check(&self.name, &self.labels, &data, templating.as_deref())?;
        Ok(api::Blob {
            id: String::new(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            data,
            templating,
            created_at: 0,
            updated_at: 0,
            kind: std::marker::PhantomData,
        })
    }
}

/// A stored blob as Docker shows it: a secret without its data, a config with it.
pub fn blob<K: api::BlobKind>(b: &api::Blob<K>, version: u64, show_data: bool) -> Blob {
    Blob {
        id: b.id.clone(),
        version: ObjectVersion { index: version },
        created_at: rfc3339(b.created_at),
        updated_at: rfc3339(b.updated_at),
        spec: BlobSpec {
            name: b.name.clone(),
            labels: b.labels.clone(),
            data: show_data.then(|| base64::engine::general_purpose::STANDARD.encode(&b.data)),
            driver: None,
            templating: b
                .templating
                .as_ref()
                .map(|name| TemplatingDriver { name: name.clone() }),
            extra: Extra::new(),
        },
    }
}
