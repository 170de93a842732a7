//! Secrets and configs: small named payloads stored in the cluster and given to the tasks
//! that reference them as files (`/run/secrets/<name>` in a container).
//!
//! Both are one type, [`Blob`], told apart by a marker ([`SecretKind`], [`ConfigKind`]) that
//! gives each its own store table, name and size limit. A blob is immutable: only its labels
//! change, rotation is create-new then remove-old, as in Swarm. Its data never reaches a log
//! line (`Debug` shows its length only) and is stored sealed like every row of the store.

use crate::SpecError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// What differs between secrets and configs.
pub trait BlobKind: Clone + Send + Sync + 'static {
    /// `secret` or `config`, as messages name it.
    const NAME: &'static str;
    /// The largest payload, as Swarm bounds it.
    const MAX_SIZE: usize;
    /// A task template's references to blobs of this kind.
    fn refs(t: &crate::TaskTemplate) -> &[FileRef];
    fn refs_mut(t: &mut crate::TaskTemplate) -> &mut Vec<FileRef>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {}

impl BlobKind for SecretKind {
    const NAME: &'static str = "secret";
    const MAX_SIZE: usize = 500 * 1024;
    fn refs(t: &crate::TaskTemplate) -> &[FileRef] {
        &t.secrets
    }
    fn refs_mut(t: &mut crate::TaskTemplate) -> &mut Vec<FileRef> {
        &mut t.secrets
    }
}

impl BlobKind for ConfigKind {
    const NAME: &'static str = "config";
    const MAX_SIZE: usize = 1000 * 1024;
    fn refs(t: &crate::TaskTemplate) -> &[FileRef] {
        &t.configs
    }
    fn refs_mut(t: &mut crate::TaskTemplate) -> &mut Vec<FileRef> {
        &mut t.configs
    }
}

/// A stored secret.
pub type Secret = Blob<SecretKind>;
/// A stored config.
pub type Config = Blob<ConfigKind>;

/// The only templating driver: `{{.Task.Slot}}`-style placeholders (template.rs), expanded
/// per task when the file is written.
pub const TEMPLATE_DRIVER: &str = "golang";

/// A named payload with labels.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Blob<K: BlobKind> {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// `Templating.Name` ([`TEMPLATE_DRIVER`]), if the payload is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(skip)]
    pub kind: PhantomData<K>,
}

impl<K: BlobKind> std::fmt::Debug for Blob<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::NAME)
            .field("id", &self.id)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("templating", &self.templating)
            .finish()
    }
}

impl<K: BlobKind> Blob<K> {
    /// Check what a user gives a new blob: its name, labels, size and template driver.
    pub fn check(
        name: &str,
        labels: &BTreeMap<String, String>,
        data: &[u8],
        templating: Option<&str>,
    ) -> Result<(), SpecError> {
        crate::network::check_object_name(K::NAME, name)?;
        crate::limits::check_labels(labels.iter())?;
        if data.is_empty() {
            return Err(SpecError::Other(format!("{} data is empty", K::NAME)));
        }
        if data.len() > K::MAX_SIZE {
            return Err(SpecError::Other(format!(
                "{} data is {} bytes: at most {} allowed",
                K::NAME,
                data.len(),
                K::MAX_SIZE
            )));
        }
        if let Some(t) = templating.filter(|t| *t != TEMPLATE_DRIVER) {
            return Err(SpecError::invalid(
                "templating driver",
                t,
                format!("only {TEMPLATE_DRIVER} is supported"),
            ));
        }
        Ok(())
    }
}

/// A task's use of a secret or config: which one, and the file it appears as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The blob's ID.
    pub id: String,
    /// The blob's name when the reference was made.
    pub name: String,
    /// The file: a name under `/run/secrets` for a secret, a path for a config.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// File mode (default 0o444).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// The secrets and configs a node's tasks use: what a session carries to the node, and
/// nothing more (a node never receives a blob none of its tasks references).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFiles {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<Config>,
}

impl TaskFiles {
    /// The blobs `tasks` reference, each once, from `state`.
    pub fn for_tasks(state: &crate::ClusterState, tasks: &[crate::Task]) -> TaskFiles {
        fn pick<K: BlobKind>(
            map: &BTreeMap<String, Blob<K>>,
            tasks: &[crate::Task],
        ) -> Vec<Blob<K>> {
            let ids: std::collections::BTreeSet<&str> = tasks
                .iter()
                .flat_map(|t| K::refs(&t.spec))
                .map(|r| r.id.as_str())
                .collect();
            ids.into_iter()
                .filter_map(|id| map.get(id).cloned())
                .collect()
        }
        TaskFiles {
            secrets: pick(&state.secrets, tasks),
            configs: pick(&state.configs, tasks),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.configs.is_empty()
    }
}

/// Most secrets (and most configs) one service uses.
pub const MAX_REFS: usize = 100;

/// Where a container sees its secrets.
pub const SECRETS_DIR: &str = "/run/secrets";

impl FileRef {
    /// Check the target: no `..`, no NUL, a plain file name for a secret relative to
    /// [`SECRETS_DIR`] or an absolute path.
    pub fn check(&self, what: &'static str) -> Result<(), SpecError> {
        let t = &self.target;
        if t.is_empty() || t.contains('\0') || t.split('/').any(|p| p == "..") || t.len() > 1024 {
            return Err(SpecError::invalid(
                what,
                t.as_str(),
                "the target must be a file name or an absolute path without '..'",
            ));
        }
        Ok(())
    }

    /// Docker's `--secret` / `--config` syntax: `NAME`, or
    /// `source=NAME[,target=T][,uid=N][,gid=N][,mode=0444]`; the target defaults to the
    /// name (a secret) or `/NAME` (a config). The name is resolved by the manager.
    pub fn parse<K: BlobKind>(text: &str) -> Result<FileRef, SpecError> {
        let flag = if K::NAME == "secret" {
            "--secret"
        } else {
            "--config"
        };
        let bad = |why: String| SpecError::Other(format!("invalid {flag} {text:?}: {why}"));
        let mut r = FileRef {
            id: String::new(),
            name: String::new(),
            target: String::new(),
            uid: None,
            gid: None,
            mode: None,
        };
        if !text.contains('=') {
            r.name = text.to_owned();
        } else {
            for part in text.split(',') {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
                let number = |radix: u32| {
                    u32::from_str_radix(v, radix)
                        .map_err(|_| bad(format!("{k}={v} is not a number")))
                };
                match k {
                    "source" | "src" => r.name = v.to_owned(),
                    "target" | "dst" | "destination" => r.target = v.to_owned(),
                    "uid" => r.uid = Some(number(10)?),
                    "gid" => r.gid = Some(number(10)?),
                    "mode" => r.mode = Some(number(8)?),
                    other => return Err(bad(format!("unknown key {other:?}"))),
                }
            }
        }
        if r.name.is_empty() {
            return Err(bad("name the source".into()));
        }
        crate::network::check_object_name(K::NAME, &r.name)?;
        if r.target.is_empty() {
            r.target = if K::NAME == "secret" {
                r.name.clone()
            } else {
                format!("/{}", r.name)
            };
        }
        r.check(if K::NAME == "secret" {
            "secret target"
        } else {
            "config target"
        })?;
        Ok(r)
    }

    /// The path inside a container.
    pub fn container_path(&self) -> String {
        if self.target.starts_with('/') {
            self.target.clone()
        } else {
            format!("{SECRETS_DIR}/{}", self.target)
        }
    }
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: &[u8]) -> Secret {
        Secret {
            id: "s1".into(),
            name: "db_password".into(),
            labels: BTreeMap::new(),
            data: data.to_vec(),
            templating: None,
            created_at: 1,
            updated_at: 1,
            kind: PhantomData,
        }
    }

    #[test]
    fn data_is_base64_in_json_and_never_in_debug() {
        let s = secret(b"hunter2");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"data\":\"aHVudGVyMg==\""), "{json}");
        assert!(!json.contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn sizes_are_swarms() {
        let labels = BTreeMap::new();
        Secret::check("a", &labels, &vec![0; 500 * 1024], None).unwrap();
        let e = Secret::check("a", &labels, &vec![0; 500 * 1024 + 1], None).unwrap_err();
        assert!(e.to_string().contains("at most 512000"), "{e}");
        Config::check("a", &labels, &vec![0; 1000 * 1024], None).unwrap();
        assert!(Config::check("a", &labels, &[], None).is_err());
        assert!(Config::check("a", &labels, b"x", Some("jinja")).is_err());
        Config::check("a", &labels, b"x", Some("golang")).unwrap();
    }

    #[test]
    fn targets_stay_where_they_belong() {
        let r = |t: &str| FileRef {
            id: "i".into(),
            name: "n".into(),
            target: t.into(),
            uid: None,
            gid: None,
            mode: None,
        };
        assert_eq!(r("db").container_path(), "/run/secrets/db");
        assert_eq!(r("/etc/app.conf").container_path(), "/etc/app.conf");
        assert!(r("../etc/passwd").check("secret target").is_err());
        assert!(r("").check("secret target").is_err());
    }

    #[test]
    fn references_parse_as_docker_writes_them() {
        let s = FileRef::parse::<SecretKind>("db").unwrap();
        assert_eq!((s.name.as_str(), s.target.as_str()), ("db", "db"));
        let c = FileRef::parse::<ConfigKind>("app").unwrap();
        assert_eq!(c.target, "/app");
        let c = FileRef::parse::<ConfigKind>("source=app,target=/etc/app.conf,mode=0400,uid=5")
            .unwrap();
        assert_eq!(
            (c.name.as_str(), c.target.as_str(), c.mode, c.uid),
            ("app", "/etc/app.conf", Some(0o400), Some(5))
        );
        for bad in [
            "",
            "source=",
            "target=/x",
            "source=a,mode=9",
            "source=a,colour=red",
        ] {
            let e = FileRef::parse::<SecretKind>(bad).unwrap_err().to_string();
            assert!(!e.is_empty() && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
