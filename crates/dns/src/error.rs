//! Errors the DNS server reports to its caller.

use std::net::SocketAddr;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The listen address could not be bound (in use, no permission, ...).
    #[error("cannot listen for DNS on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The configured domain is not a DNS name.
    #[error(
        "invalid DNS domain {domain:?}: use dot-separated labels of letters, digits, '-' or '_', at most 63 characters each"
    )]
    Domain { domain: String },
}
