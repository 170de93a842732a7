//! The swarm part of the Docker Engine API (API 1.44), as the `docker` CLI, `docker stack
//! deploy`, Traefik's swarm provider and docker-py read and write it: the JSON types, the
//! `filters` query parameter, and the pure conversions between them and shoal's model.
//!
//! - [`spec`]: what clients post (`ServiceSpec`, `TaskSpec`, `ContainerSpec`...);
//!   [`objects`]: what shoal answers (`Service`, `Task`, `Node`, `Swarm`, `Info`, `Version`).
//!   Keys are PascalCase as in moby's `api/types/swarm`; durations are integer nanoseconds;
//!   times are RFC 3339 with nanoseconds ([`rfc3339`]); addresses of VIPs and network
//!   attachments are CIDR strings (`10.96.0.2/16`), never bare IPs.
//! - [`filters`]: the `filters` parameter in both JSON forms, the keys each resource
//!   accepts, and the prefix and label matches.
//! - [`events`]: the messages of `GET /events`, its filters and its `since`/`until` times.
//! - [`to_shoal`]: a Docker `ServiceSpec` to shoal's `ServiceSpec`, with a warning for each
//!   field shoal does not act on and an error naming a malformed one.
//! - [`to_docker`]: shoal's stored `Service`, `Task`, `Node` and cluster to Docker's.
//! - [`networks`] and [`blobs`]: `/networks`, `/secrets` and `/configs`, their bodies and
//!   the checks and conversions of each.
//!
//! **A spec is kept as it was sent.** Clients post the whole spec back on every update, so
//! what shoal does not model must come back unchanged. Every struct of [`spec`] holds the
//! keys it does not name in `extra` (`#[serde(flatten)]`), at every level, and every field
//! a client may leave out is an `Option` left out again when absent: parsing a spec and
//! writing it back gives the same JSON value. (An explicit `null` reads as absent, as
//! Docker's own server reads it.) [`to_docker::service_spec`] renders shoal's spec over the
//! Docker spec it came from, replacing only the sections whose meaning changed since.
//!
//! **Process services.** A service whose `Labels` hold `com.shoal.runtime=process` runs
//! `ContainerSpec.Image` as a program on the node (a path, or a built-in such as `shoal`)
//! with `Command` followed by `Args` as its arguments; any other service runs `Image` as a
//! container, `Command` being its entrypoint.

pub mod blobs;
pub mod events;
pub mod filters;
pub mod networks;
pub mod objects;
pub mod spec;
pub mod to_docker;
pub mod to_shoal;

pub use filters::{FilterError, Filters};
pub use objects::*;
pub use spec::*;

/// The keys a struct does not model, kept as sent.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The API version shoal speaks (docker-py's default; the CLI negotiates down to it).
pub const API_VERSION: &str = "1.44";
/// The oldest API version whose paths shoal accepts.
pub const MIN_API_VERSION: &str = "1.24";
/// The service label that makes a Docker service a process service.
pub const RUNTIME_LABEL: &str = "com.shoal.runtime";
/// The name of the one swarm-scoped network shoal reports.
pub const NETWORK_NAME: &str = "shoal";

/// A malformed request: one line naming the field (`invalid Mode.Replicated.Replicas: ...`),
/// or what shoal's own validation refused. Both are HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// Not JSON, or JSON of the wrong shape, with where in the body.
    #[error("invalid request body: {0}")]
    Body(String),
    #[error(transparent)]
    Spec(#[from] shoal_api::SpecError),
}

impl DockerError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DockerError {
        DockerError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Read a posted `ServiceSpec`; a body of the wrong shape is refused naming where.
pub fn parse_service_spec(body: &[u8]) -> Result<ServiceSpec, DockerError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let spec: ServiceSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        DockerError::Body(if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        })
    })?;
    de.end().map_err(|e| DockerError::Body(e.to_string()))?;
    Ok(spec)
}

/// Milliseconds since the epoch as Docker writes times: RFC 3339, UTC, nanoseconds
/// (`2026-12-01T03:58:15.123000000Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let nanos = (ms % 1000) * 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A duration as Docker's integer nanoseconds.
pub fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Version {
    /// The `/version` body of a shoal daemon of `server_version` on `os`/`arch`.
    pub fn shoal(server_version: &str, os: &str, arch: &str, kernel: &str) -> Version {
        Version {
            platform: VersionPlatform {
                name: format!("shoal {server_version}"),
            },
            components: vec![ComponentVersion {
                name: "Engine".into(),
                version: server_version.into(),
                details: [
                    ("ApiVersion", API_VERSION),
                    ("MinAPIVersion", MIN_API_VERSION),
                    ("Os", os),
                    ("Arch", arch),
                    ("KernelVersion", kernel),
                    ("Experimental", "false"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            }],
            version: server_version.into(),
            api_version: API_VERSION.into(),
            min_api_version: MIN_API_VERSION.into(),
            git_commit: String::new(),
            go_version: String::new(),
            os: os.into(),
            arch: arch.into(),
            kernel_version: kernel.into(),
        }
    }
}

#[cfg(test)]
mod tests;
