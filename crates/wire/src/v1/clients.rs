//! `/v1/clients`: client certificates for remote CLIs (listed and revoked as `ClientRecord`).

use serde::{Deserialize, Serialize};
use shoal_api::{ClientRecord, SpecError};

/// Longest client name.
pub const MAX_CLIENT_NAME: usize = 64;

/// `POST /v1/clients`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueClient {
    /// What to call it in `shoal client-cert ls` (default `client`).
    #[serde(default)]
    pub name: Option<String>,
}

impl IssueClient {
    /// The name to issue the certificate under, or why it cannot be one.
    pub fn checked_name(&self) -> Result<String, SpecError> {
        let name = self.name.as_deref().unwrap_or("client");
        let ok = !name.is_empty()
            && name.len() <= MAX_CLIENT_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok {
            Ok(name.to_string())
        } else {
            Err(SpecError::Other(format!(
                "invalid client name {name:?}: use 1 to {MAX_CLIENT_NAME} letters, digits, '.', '_', '-' or '@'"
            )))
        }
    }
}

/// A newly issued client certificate with its private key (shown once, never stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedClient {
    pub client: ClientRecord,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}
