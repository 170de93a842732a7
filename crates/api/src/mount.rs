//! A container's mounts (`--mount`): a path of the node (bind), a volume of the engine
//! (named, or anonymous and removed with the container) or a tmpfs, in Docker's CSV syntax:
//! `type=bind,source=/srv/data,target=/data,readonly`.

use crate::SpecError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a mount mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A file or directory of the node.
    Bind,
    /// A volume of the engine, created on first use.
    #[default]
    Volume,
    /// A file system in memory, gone with the container.
    Tmpfs,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// Bind propagation modes the engine knows.
pub const BIND_PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type", default)]
    pub kind: MountType,
    /// Bind: an absolute path on the node. Volume: the volume's name, empty for an
    /// anonymous volume. Tmpfs: none. `{{.Task.Slot}}`-style templates allowed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Where it appears in the container (absolute; templates allowed).
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Bind: how mounts below the source propagate (the engine's default, `rprivate`,
    /// when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_propagation: Option<String>,
    /// Volume: the driver that creates it (`local` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<String>,
    /// Volume: labels of a volume the engine creates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_labels: BTreeMap<String, String>,
    /// Volume: options for its driver (`volume-opt`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_options: BTreeMap<String, String>,
    /// Volume: do not copy what the image holds at the target into a new volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volume_nocopy: bool,
    /// Tmpfs: its size in bytes (0: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tmpfs_size: u64,
    /// Tmpfs: the mode of its root (`0o1777` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_mode: Option<u32>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Mount {
    /// Parse one `--mount` value, as `docker service create` reads it: comma-separated
    /// `key=value` fields (CSV: a field may be double-quoted), keys `type` (default
    /// `volume`), `source|src`, `target|destination|dst`, `readonly|ro[=BOOL]`,
    /// `bind-propagation`, `volume-driver`, `volume-label=K=V`, `volume-opt=K=V`,
    /// `volume-nocopy[=BOOL]`, `tmpfs-size`, `tmpfs-mode` (octal). The result is checked.
    pub fn parse(text: &str) -> Result<Mount, SpecError> {
        let bad = |reason: String| SpecError::invalid("--mount", text, reason);
        let mut m = Mount::default();
        for field in csv_fields(text).map_err(|r| bad(r.into()))? {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (field.to_ascii_lowercase(), None),
            };
            let flag = |v: Option<&str>| match v {
                None => Ok(true),
                Some(v) => parse_bool(v)
                    .ok_or_else(|| bad(format!("invalid value for {key}: {v:?} (true or false)"))),
            };
            let value_of = |v: Option<&str>| {
                v.map(str::to_string)
                    .ok_or_else(|| bad(format!("{key} needs a value ({key}=...)")))
            };
            match key.as_str() {
                "readonly" | "ro" => m.read_only = flag(value)?,
                "volume-nocopy" => m.volume_nocopy = flag(value)?,
                "type" => {
                    let v = value_of(value)?.to_ascii_lowercase();
                    m.kind = match v.as_str() {
                        "bind" => MountType::Bind,
                        "volume" => MountType::Volume,
                        "tmpfs" => MountType::Tmpfs,
                        _ => {
                            return Err(bad(format!("unknown type {v:?} (bind, volume or tmpfs)")))
                        }
                    };
                }
                "source" | "src" => m.source = value_of(value)?,
                "target" | "destination" | "dst" => m.target = value_of(value)?,
                "bind-propagation" => {
                    m.bind_propagation = Some(value_of(value)?.to_ascii_lowercase())
                }
                "volume-driver" => m.volume_driver = Some(value_of(value)?),
                "volume-label" => {
                    let (k, v) = key_value(&value_of(value)?);
                    m.volume_labels.insert(k, v);
                }
                "volume-opt" => {
                    let (k, v) = key_value(&value_of(value)?);
                    m.volume_options.insert(k, v);
                }
                "tmpfs-size" => {
                    let v = value_of(value)?;
                    m.tmpfs_size = crate::resources::parse_size(&v).map_err(|_| {
                        bad(format!(
                            "invalid tmpfs-size {v:?} (bytes, or a number with k, m, g or t)"
                        ))
                    })?;
                }
                "tmpfs-mode" => {
                    let v = value_of(value)?;
                    let mode = u32::from_str_radix(&v, 8)
                        .map_err(|_| bad(format!("invalid tmpfs-mode {v:?} (octal, e.g. 1770)")))?;
                    m.tmpfs_mode = Some(mode);
                }
                // Docker accepts it and ignores it on Linux.
                "consistency" => {}
                _ => return Err(bad(format!("unknown key {key:?}"))),
            }
        }
        m.check().map_err(bad)?;
        Ok(m)
    }

    /// What is wrong with this mount on its own, in a few words.
    pub fn check(&self) -> Result<(), String> {
        if self.target.is_empty() {
            return Err("target is required (target=/path)".into());
        }
        let target = sample(&self.target)?;
        if !target.starts_with('/') {
            return Err(format!("target {:?} is not an absolute path", self.target));
        }
        if target.trim_end_matches('/').is_empty() {
            return Err("target cannot be /".into());
        }
        let source = sample(&self.source)?;
        match self.kind {
            MountType::Bind if source.is_empty() => {
                return Err("a bind mount needs a source: an absolute path on the node".into())
            }
            MountType::Bind if !source.starts_with('/') => {
                return Err(format!(
                    "bind source {:?} is not an absolute path",
                    self.source
                ))
            }
            MountType::Tmpfs if !source.is_empty() => {
                return Err("a tmpfs mount takes no source".into())
            }
            MountType::Volume if !source.is_empty() && !volume_name(&source) => {
                return Err(format!(
                    "invalid volume name {:?} (letters, digits, '_', '.', '-', starting with a letter or digit, at least 2 characters)",
                    self.source
                ));
            }
            _ => {}
        }
        let volume_opts = self.volume_driver.is_some()
            || !self.volume_labels.is_empty()
            || !self.volume_options.is_empty()
            || self.volume_nocopy;
        let tmpfs_opts = self.tmpfs_size > 0 || self.tmpfs_mode.is_some();
        for (given, prefix, kind) in [
            (self.bind_propagation.is_some(), "bind-*", MountType::Bind),
            (volume_opts, "volume-*", MountType::Volume),
            (tmpfs_opts, "tmpfs-*", MountType::Tmpfs),
        ] {
            if given && self.kind != kind {
                return Err(format!(
                    "{prefix} options are for type={} mounts, not {}",
                    kind.as_str(),
                    self.kind.as_str()
                ));
            }
        }
        if let Some(p) = &self.bind_propagation {
            if !BIND_PROPAGATIONS.contains(&p.as_str()) {
                return Err(format!(
                    "unknown bind-propagation {p:?} ({})",
                    BIND_PROPAGATIONS.join(", ")
                ));
            }
        }
        if let Some(d) = &self.volume_driver {
            if d.is_empty() || d.contains(char::is_whitespace) {
                return Err(format!("invalid volume-driver {d:?}"));
            }
        }
        for (what, map) in [
            ("volume-label", &self.volume_labels),
            ("volume-opt", &self.volume_options),
        ] {
            if map.keys().any(|k| k.is_empty()) {
                return Err(format!("{what} needs a key ({what}=KEY=VALUE)"));
            }
        }
        if self.tmpfs_mode.is_some_and(|m| m > 0o7777) {
            return Err("tmpfs-mode is at most 7777".into());
        }
        if i64::try_from(self.tmpfs_size).is_err() {
            return Err("tmpfs-size is too large".into());
        }
        Ok(())
    }

    /// Check a mount of a spec: its text bounds, then [`Mount::check`].
    pub fn validate(&self) -> Result<(), SpecError> {
        use crate::limits::{check_count, check_text, MAX_LABELS, MAX_PATH_LEN};
        check_text("mount", &self.source, MAX_PATH_LEN)?;
        check_text("mount", &self.target, MAX_PATH_LEN)?;
        check_count("volume-label", self.volume_labels.len(), MAX_LABELS)?;
        check_count("volume-opt", self.volume_options.len(), MAX_LABELS)?;
        for (k, v) in self.volume_labels.iter().chain(&self.volume_options) {
            crate::limits::check_label(k, v)?;
        }
        for text in self.volume_driver.iter().chain(&self.bind_propagation) {
            check_text("mount", text, MAX_PATH_LEN)?;
        }
        self.check()
            .map_err(|reason| SpecError::invalid("mount", self.to_string(), reason))
    }

    /// The target as the engine compares it (no trailing slash).
    pub fn target_key(&self) -> &str {
        let t = self.target.trim_end_matches('/');
        if t.is_empty() {
            &self.target
        } else {
            t
        }
    }
}

impl std::fmt::Display for Mount {
    /// The `--mount` form it was read from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut fields = vec![format!("type={}", self.kind.as_str())];
        if !self.source.is_empty() {
            fields.push(format!("source={}", self.source));
        }
        fields.push(format!("target={}", self.target));
        if self.read_only {
            fields.push("readonly".into());
        }
        if let Some(p) = &self.bind_propagation {
            fields.push(format!("bind-propagation={p}"));
        }
        if let Some(d) = &self.volume_driver {
            fields.push(format!("volume-driver={d}"));
        }
        for (k, v) in &self.volume_labels {
            fields.push(format!("volume-label={k}={v}"));
        }
        for (k, v) in &self.volume_options {
            fields.push(format!("volume-opt={k}={v}"));
        }
        if self.volume_nocopy {
            fields.push("volume-nocopy".into());
        }
        if self.tmpfs_size > 0 {
            fields.push(format!("tmpfs-size={}", self.tmpfs_size));
        }
        if let Some(m) = self.tmpfs_mode {
            fields.push(format!("tmpfs-mode={m:o}"));
        }
        let quoted: Vec<String> = fields.iter().map(|f| csv_quote(f)).collect();
        f.write_str(&quoted.join(","))
    }
}

/// The fields of one CSV record: split on commas, a field that starts with `"` runs to its
/// closing `"` (`""` inside is one quote).
fn csv_fields(text: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unclosed quote"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err("a quoted field must end at a comma");
            }
        }
        while let Some(c) = chars.next_if(|c| *c != ',') {
            field.push(c);
        }
        if field.is_empty() {
            return Err("empty field");
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

fn csv_quote(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// `true`/`false` as Go's `strconv.ParseBool` reads them (Docker's flags do).
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `K=V` (a bare `K` has an empty value).
fn key_value(text: &str) -> (String, String) {
    let (k, v) = text.split_once('=').unwrap_or((text, ""));
    (k.to_string(), v.to_string())
}

/// `text` with its templates filled with sample values, to check what it will be.
fn sample(text: &str) -> Result<String, String> {
    let values = crate::template::TemplateValues {
        task_id: "t0".into(),
        task_name: "s.1.t0".into(),
        task_slot: "1".into(),
        service_id: "s0".into(),
        service_name: "s".into(),
        node_id: "n0".into(),
        node_hostname: "node".into(),
    };
    crate::template::expand(text, &values).map_err(|e| match e {
        SpecError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// A volume name as the engine's local driver takes one.
fn volume_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_mount_syntax() {
        let m = Mount::parse("type=bind,source=/srv/data,target=/data,readonly").expect("bind");
        assert_eq!(m.kind, MountType::Bind);
        assert_eq!(
            (m.source.as_str(), m.target.as_str()),
            ("/srv/data", "/data")
        );
        assert!(m.read_only);

        let m = Mount::parse("src=cache,dst=/cache,ro=false,volume-label=team=a,volume-nocopy")
            .expect("volume by default");
        assert_eq!(m.kind, MountType::Volume);
        assert_eq!(m.source, "cache");
        assert!(!m.read_only && m.volume_nocopy);
        assert_eq!(m.volume_labels.get("team").map(String::as_str), Some("a"));

        let m =
            Mount::parse("type=volume,destination=/anon,volume-driver=local,volume-opt=o=size=1m")
                .expect("anonymous volume");
        assert!(m.source.is_empty());
        assert_eq!(m.volume_driver.as_deref(), Some("local"));
        assert_eq!(
            m.volume_options.get("o").map(String::as_str),
            Some("size=1m")
        );

        let m = Mount::parse("TYPE=TMPFS,target=/scratch,tmpfs-size=64m,tmpfs-mode=1770,RO=1")
            .expect("tmpfs");
        assert_eq!(m.kind, MountType::Tmpfs);
        assert_eq!(m.tmpfs_size, 64 << 20);
        assert_eq!(m.tmpfs_mode, Some(0o1770));
        assert!(m.read_only);

        let m = Mount::parse("type=bind,source=/a,target=/b,bind-propagation=RSHARED")
            .expect("propagation");
        assert_eq!(m.bind_propagation.as_deref(), Some("rshared"));

        let m = Mount::parse(
            r#"type=volume,source=data-{{.Task.Slot}},target=/d,"volume-label=a=b,c""#,
        )
        .expect("template and quoted field");
        assert_eq!(m.source, "data-{{.Task.Slot}}");
        assert_eq!(m.volume_labels.get("a").map(String::as_str), Some("b,c"));
    }

    #[test]
    fn a_mount_reads_back_from_its_display() {
        for text in [
            "type=bind,source=/srv,target=/data,readonly,bind-propagation=rslave",
            "type=volume,source=v1,target=/v,volume-driver=local,volume-label=k=v,volume-opt=type=tmpfs,volume-nocopy",
            "type=volume,target=/anon",
            "type=tmpfs,target=/t,tmpfs-size=1024,tmpfs-mode=700",
            r#"type=volume,source=v1,target=/v,"volume-label=a=b,c""#,
        ] {
            let m = Mount::parse(text).expect(text);
            assert_eq!(m.to_string(), text);
            assert_eq!(Mount::parse(&m.to_string()).expect(text), m);
        }
    }

    #[test]
    fn mounts_docker_refuses_say_why_in_one_line() {
        for (text, why) in [
            (
                "type=foo,target=/x",
                r#"unknown type "foo" (bind, volume or tmpfs)"#,
            ),
            ("type=bind,source=/a", "target is required"),
            ("type=bind,target=/x", "a bind mount needs a source"),
            (
                "type=bind,source=rel,target=/x",
                r#"bind source "rel" is not an absolute path"#,
            ),
            (
                "type=bind,source=/a,target=x",
                r#"target "x" is not an absolute path"#,
            ),
            ("type=volume,target=/", "target cannot be /"),
            (
                "type=tmpfs,source=/a,target=/x",
                "a tmpfs mount takes no source",
            ),
            ("type=volume,source=a/b,target=/x", "invalid volume name"),
            ("type=volume,source=x,target=/x", "invalid volume name"),
            ("type=volume,target=/x,ro=maybe", "invalid value for ro"),
            ("type=volume,target=/x,color=red", r#"unknown key "color""#),
            ("type=volume,target=/x,,ro", "empty field"),
            ("type=volume,target", "target needs a value"),
            (
                "type=bind,source=/a,target=/x,volume-nocopy",
                "volume-* options are for type=volume mounts, not bind",
            ),
            (
                "type=volume,target=/x,tmpfs-size=1m",
                "tmpfs-* options are for type=tmpfs",
            ),
            (
                "type=volume,target=/x,bind-propagation=shared",
                "bind-* options are for type=bind",
            ),
            (
                "type=bind,source=/a,target=/x,bind-propagation=up",
                "unknown bind-propagation",
            ),
            ("type=tmpfs,target=/x,tmpfs-size=big", "invalid tmpfs-size"),
            ("type=tmpfs,target=/x,tmpfs-mode=999", "invalid tmpfs-mode"),
            (
                "type=bind,source=/{{.Nope}},target=/x",
                "unknown placeholder",
            ),
            (r#"type=volume,target=/x,"ro"#, "unclosed quote"),
        ] {
            let err = Mount::parse(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("invalid --mount {text:?}: ")) && err.contains(why),
                "{text}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn stored_mounts_tolerate_fields_they_do_not_know() {
        let m: Mount =
            serde_json::from_str(r#"{"type":"bind","source":"/a","target":"/b","future":1}"#)
                .expect("lenient");
        assert_eq!(m.kind, MountType::Bind);
        let m: Mount = serde_json::from_str(r#"{"target":"/b"}"#).expect("defaults");
        assert_eq!(m.kind, MountType::Volume);
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"type":"volume","target":"/b"}"#
        );
    }
}
