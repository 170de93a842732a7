//! What a task runs (a process of the node or a container on its engine), what a node can
//! run, and what a running task is, as the agent observed it.

use serde::{Deserialize, Serialize};

/// The runtime a task template names, with what that runtime needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// A process group of the node; the program `shoal` is the daemon's own binary.
    Process(ProcessSpec),
    /// A container on the node's Docker Engine.
    Container(ContainerSpec),
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::Process(ProcessSpec::default())
    }
}

impl Runtime {
    pub fn kind(&self) -> RuntimeKind {
        match self {
            Runtime::Process(_) => RuntimeKind::Process,
            Runtime::Container(_) => RuntimeKind::Container,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Program and leading arguments (`["shoal", "whoami"]`).
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Image reference (`redis:3.0.6`, `nginx`).
    pub image: String,
    /// Replaces the image's ENTRYPOINT (`--entrypoint`); `None` keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD (`IMAGE COMMAND ARG...`); empty keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The user the container runs as (`--user`, `name|uid[:group|gid]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The container's hostname (`--hostname`, `{{.Task.Slot}}`-style templates allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Run an init process as PID 1 that reaps zombies and forwards signals (`--init`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Mount the container's root file system read-only (`--read-only`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Allocate a pseudo-TTY (`--tty`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Labels on the container itself (`--container-label`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Turn off the image's HEALTHCHECK (`--no-healthcheck`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_healthcheck: bool,
    /// Bind mounts, volumes and tmpfs mounts (`--mount`), each at its own target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::Mount>,
    /// Per-process resource limits (`--ulimit`), one per name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<crate::Ulimit>,
}

impl ContainerSpec {
    /// Check the options a user gave.
    pub fn validate(&self) -> Result<(), crate::SpecError> {
        use crate::limits::{check_labels, check_text, MAX_ARG_LEN};
        validate_image(&self.image)?;
        if let Some(u) = &self.user {
            check_text("user", u, MAX_ARG_LEN)?;
            if u.is_empty() || u.contains(char::is_whitespace) {
                return Err(crate::SpecError::invalid(
                    "user",
                    u.as_str(),
                    "expected name|uid[:group|gid]",
                ));
            }
        }
        if let Some(h) = &self.hostname {
            check_text("hostname", h, 253)?;
            crate::template::validate(h)?;
        }
        check_labels(self.labels.iter())?;
        for cap in self.cap_add.iter().chain(&self.cap_drop) {
            let ok = !cap.is_empty()
                && cap.len() <= 64
                && cap.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(crate::SpecError::invalid(
                    "capability",
                    cap.as_str(),
                    "expected a capability name such as NET_ADMIN or ALL",
                ));
            }
        }
        crate::limits::check_count("mounts", self.mounts.len(), crate::limits::MAX_MOUNTS)?;
        for (i, m) in self.mounts.iter().enumerate() {
            m.validate()?;
            if self.mounts[..i]
                .iter()
                .any(|other| other.target_key() == m.target_key())
            {
                return Err(crate::SpecError::invalid(
                    "mount",
                    m.to_string(),
                    format!("another mount has target {}", m.target),
                ));
            }
        }
        for (i, u) in self.ulimits.iter().enumerate() {
            u.validate()?;
            if self.ulimits[..i].iter().any(|other| other.name == u.name) {
                return Err(crate::SpecError::invalid(
                    "ulimit",
                    u.to_string(),
                    format!("another ulimit sets {}", u.name),
                ));
            }
        }
        Ok(())
    }
}

/// The kinds of runtime, for capability checks and executor choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Process,
    Container,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Container => "container",
        }
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<RuntimeKind, String> {
        match s {
            "process" => Ok(RuntimeKind::Process),
            "container" => Ok(RuntimeKind::Container),
            other => Err(format!(
                "unknown runtime {other:?}: expected process or container"
            )),
        }
    }
}

/// What runs a started task, as its node reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeStatus {
    /// The task's process group leader and its start time (clock ticks since boot), so a
    /// reused PID is never mistaken for it.
    Process { pid: u32, start: u64 },
    /// The task's container on the node's engine, and its own address on the engine's
    /// network as a CIDR string (`172.17.0.3/16`), as the engine reported it once started.
    Container {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
    },
}

impl RuntimeStatus {
    /// A short name for logs and tables: `pid 123` or the container ID's first 12 digits.
    pub fn describe(&self) -> String {
        match self {
            RuntimeStatus::Process { pid, .. } => format!("pid {pid}"),
            RuntimeStatus::Container { id, .. } => {
                format!("container {}", id.get(..12).unwrap_or(id))
            }
        }
    }
}

/// Check an image reference the way Docker reads one: `[registry[:port]/]path[:tag][@digest]`,
/// path components lowercase letters and digits with single `.`, `_`, `__` or `-` runs
/// between them, a tag of at most 128 word characters, dots and dashes.
pub fn validate_image(image: &str) -> Result<(), crate::SpecError> {
    let bad = |reason: &str| Err(crate::SpecError::invalid("image", image, reason));
    if image.is_empty() {
        return bad("empty image reference");
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo.chars().all(|c| c.is_ascii_alphanumeric())
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return bad("digest must look like sha256:<hex>");
        }
    }
    // A tag follows the last ':' unless that ':' belongs to a registry's port.
    let (path, tag) = match name.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, Some(t)),
        _ => (name, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return bad("invalid tag (letters, digits, '_', '.', '-'; at most 128)");
        }
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    // A first component with a '.' or ':' or equal to "localhost" names a registry.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let registry = parts.remove(0);
        if !registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
        {
            return bad("invalid registry host");
        }
    }
    for part in parts {
        if !path_component(part) {
            return bad("repository names use lowercase letters, digits and single separators");
        }
    }
    Ok(())
}

fn path_component(part: &str) -> bool {
    let starts_ends = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .last()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if !starts_ends(part) {
        return false;
    }
    let mut run = String::new();
    for c in part.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if !matches!(run.as_str(), "" | "." | "_" | "__") && !run.chars().all(|r| r == '-') {
                return false;
            }
            run.clear();
        } else if "._-".contains(c) {
            run.push(c);
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_docker_accepts() {
        for ok in [
            "nginx",
            "redis:3.0.6",
            "alpine:latest",
            "library/alpine",
            "localhost:5000/team/app:v1.2-rc_3",
            "registry.example.com/a/b__c/d-e:1",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "shoal-test/whoami:2",
        ] {
            validate_image(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn image_references_docker_refuses() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "-nginx",
            "a//b",
            "a..b",
            "nginx@sha256:xyz",
            "has space",
        ] {
            let err = validate_image(bad).expect_err(bad);
            assert!(err.to_string().starts_with("invalid image"), "{err}");
        }
    }

    #[test]
    fn container_mounts_and_ulimits_are_checked_together() {
        let mut c = ContainerSpec {
            image: "nginx".into(),
            ..Default::default()
        };
        for m in [
            "type=bind,source=/srv,target=/data",
            "type=tmpfs,target=/tmp",
        ] {
            c.mounts.push(crate::Mount::parse(m).expect(m));
        }
        c.ulimits
            .push(crate::Ulimit::parse("nofile=1024:2048").expect("ulimit"));
        c.validate().expect("valid");

        let mut dup = c.clone();
        dup.mounts
            .push(crate::Mount::parse("type=volume,source=v1,target=/data/").expect("volume"));
        let err = dup.validate().expect_err("same target").to_string();
        assert_eq!(
            err,
            r#"invalid mount "type=volume,source=v1,target=/data/": another mount has target /data/"#
        );

        let mut dup = c.clone();
        dup.ulimits
            .push(crate::Ulimit::parse("nofile=10").expect("ulimit"));
        let err = dup.validate().expect_err("same name").to_string();
        assert!(err.contains("another ulimit sets nofile"), "{err}");

        // A stored mount is checked like a parsed one.
        let mut bad = c.clone();
        bad.mounts[0].source = "relative".into();
        let err = bad.validate().expect_err("relative source").to_string();
        assert!(
            err.contains(r#"bind source "relative" is not an absolute path"#),
            "{err}"
        );
    }
}
