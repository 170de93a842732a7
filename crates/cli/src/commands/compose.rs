//! A compose file, read for `shoal stack deploy`, and turned into Docker `ServiceSpec`s.
//!
//! **YAML crate.** `serde_norway`, the maintained fork of `serde_yaml` (archived and marked
//! deprecated by its author in 2024). `serde_yml`, the other fork, carries a RustSec advisory
//! (unsound, unmaintained) and `docker-compose-types` reads through one of those two, while
//! pinning compose's whole schema we would then have to map anyway. serde_norway keeps
//! serde_yaml's errors: the key path and the line and column of a value of the wrong shape.
//! Values are checked while they are read (durations, sizes, CPUs, ports, enums), so a bad
//! value is refused with its file, line and key. Keys shoal does not know are collected with
//! `serde_ignored` and printed as warnings, one line each naming the key's path (`x-`
//! extension keys are compose's own way to say "ignore this" and stay silent).
//!
//! **One mapping.** A compose service becomes the Docker `ServiceSpec` the docker CLI would
//! post for it (`cli/compose/convert/service.go`: names prefixed with the stack, the
//! `com.docker.stack.namespace` label, `<stack>_default` with the service's name as its
//! alias), and that spec goes through `shoal_wire::docker::to_shoal`, the conversion the
//! Docker API itself uses. So a stack deployed by `shoal stack deploy` and by `docker stack
//! deploy` gives the same shoal services, a process service (`com.shoal.runtime: process` in
//! `deploy.labels`) included, and what shoal ignores is reported by the same words.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use shoal_wire::docker::spec::ServiceSpec as DockerSpec;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The label that names a stack on each of its objects.
pub const NAMESPACE: &str = "com.docker.stack.namespace";
/// The label the docker CLI puts on a stack's service with the image it names.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

/// A compose file, as far as a stack on a cluster reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Compose {
    /// Accepted and not needed: every version 3 file reads the same.
    #[serde(rename = "version")]
    _version: Option<Scalar>,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Option<NetworkDef>>,
    pub secrets: BTreeMap<String, FileDef>,
    pub configs: BTreeMap<String, FileDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    pub image: Option<String>,
    pub command: Option<Words>,
    pub entrypoint: Option<Words>,
    pub environment: Option<KeyValues>,
    pub ports: Vec<Port>,
    pub healthcheck: Option<Healthcheck>,
    pub secrets: Vec<FileUse>,
    pub configs: Vec<FileUse>,
    pub networks: Option<ServiceNetworks>,
    pub deploy: Option<Deploy>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// Container labels (service labels are `deploy.labels`).
    pub labels: Option<KeyValues>,
    pub stop_grace_period: Option<Dur>,
    pub stop_signal: Option<String>,
    pub init: Option<bool>,
    pub read_only: Option<bool>,
    pub tty: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Deploy {
    pub mode: Option<Mode>,
    pub replicas: Option<u64>,
    pub labels: Option<KeyValues>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    pub restart_policy: Option<RestartPolicy>,
    pub resources: Option<ResourcesDef>,
    pub placement: Option<PlacementDef>,
    pub endpoint_mode: Option<EndpointMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Replicated,
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<Dur>,
    pub failure_action: Option<FailureAction>,
    pub monitor: Option<Dur>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<Order>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Continue,
    Pause,
    Rollback,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    StopFirst,
    StartFirst,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    pub condition: Option<RestartCondition>,
    pub delay: Option<Dur>,
    pub max_attempts: Option<u64>,
    pub window: Option<Dur>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResourcesDef {
    pub limits: Option<Limits>,
    pub reservations: Option<Reservations>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub cpus: Option<Cpus>,
    pub memory: Option<Size>,
    pub pids: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reservations {
    pub cpus: Option<Cpus>,
    pub memory: Option<Size>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlacementDef {
    pub constraints: Vec<String>,
    pub preferences: Vec<Preference>,
    pub max_replicas_per_node: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Preference {
    pub spread: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    pub test: Option<Words>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub retries: Option<u64>,
    pub start_period: Option<Dur>,
    pub disable: bool,
}

/// A top-level network.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkDef {
    /// Only `overlay`; checked, nothing else to do with it.
    #[serde(rename = "driver")]
    _driver: Option<Driver>,
    pub external: bool,
    /// The network's own name (for an external one), instead of `<stack>_<key>`.
    pub name: Option<String>,
    pub labels: Option<KeyValues>,
    pub attachable: bool,
    pub internal: bool,
}

/// The one network driver of a cluster.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Overlay,
}

/// A top-level secret or config.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileDef {
    /// The file holding the payload, relative to the compose file.
    pub file: Option<PathBuf>,
    /// Made beforehand (`shoal secret create`): used by its name, never created.
    pub external: bool,
    pub name: Option<String>,
    pub labels: Option<KeyValues>,
    pub template_driver: Option<TemplateDriver>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateDriver {
    Golang,
}

/// A service's use of a secret or config: its key, or the long form.
#[derive(Debug)]
pub struct FileUse {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct FileUseLong {
    source: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    gid: Option<String>,
    #[serde(default)]
    mode: Option<u32>,
}

impl<'de> Deserialize<'de> for FileUse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileUse;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a map with source, target, uid, gid, mode")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileUse, E> {
                Ok(FileUse {
                    source: v.to_owned(),
                    target: None,
                    uid: None,
                    gid: None,
                    mode: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileUse, A::Error> {
                let l = FileUseLong::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FileUse {
                    source: l.source,
                    target: l.target,
                    uid: l.uid,
                    gid: l.gid,
                    mode: l.mode,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A service's networks: a list of keys, or a map of keys to `{aliases}`.
#[derive(Debug, Default)]
pub struct ServiceNetworks(pub Vec<(String, Vec<String>)>);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetworkUse {
    aliases: Vec<String>,
}

impl<'de> Deserialize<'de> for ServiceNetworks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ServiceNetworks;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of network names or a map of names to {aliases}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    out.push((name, Vec::new()));
                }
                Ok(ServiceNetworks(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((name, u)) = map.next_entry::<String, Option<NetworkUse>>()? {
                    out.push((name, u.unwrap_or_default().aliases));
                }
                Ok(ServiceNetworks(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A YAML scalar as text (`"true"`, `3`, `1.5`); null is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scalar(pub Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `KEY: value` pairs, written as a map or as a list of `KEY=value`; a bare `KEY` (or a
/// null value) has no value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyValues(pub BTreeMap<String, Option<String>>);

impl KeyValues {
    /// As labels: a missing value is empty.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect()
    }
}

impl<'de> Deserialize<'de> for KeyValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of KEY: value or a list of KEY=value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(item) = seq.next_element::<String>()? {
                    let (k, v) = match item.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (item, None),
                    };
                    if k.is_empty() {
                        return Err(de::Error::custom(
                            "an entry has no key (expected KEY=value)",
                        ));
                    }
                    out.insert(k, v);
                }
                Ok(KeyValues(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
                    out.insert(k, v.0);
                }
                Ok(KeyValues(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command: a list of words, or one string split as a shell would (quotes kept together).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Words {
    pub words: Vec<String>,
    /// Written as one string (a health check's test then runs it with the shell).
    pub string: bool,
}

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Words;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command as a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Words, E> {
                Ok(Words {
                    words: split_words(v).map_err(E::custom)?,
                    string: true,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Words, A::Error> {
                let mut words = Vec::new();
                while let Some(Scalar(w)) = seq.next_element::<Scalar>()? {
                    words.push(w.unwrap_or_default());
                }
                Ok(Words {
                    words,
                    string: false,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Split `text` into words on whitespace, keeping what single or double quotes hold
/// together (compose's reading of a command string).
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err("a command ends in a lone backslash".into()),
            },
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in command {text:?}"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A Go-style duration (`10s`, `1m30s`), checked as it is read; in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub u64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Scalar(text) = Scalar::deserialize(d)?;
        let text = text.unwrap_or_default();
        shoal_api::duration::parse("duration", &text)
            .map(|d| Dur(d.as_nanos() as u64))
            .map_err(de::Error::custom)
    }
}

/// A size in bytes (`512M`, `1g`, `1048576`), checked as it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Scalar(text) = Scalar::deserialize(d)?;
        shoal_api::resources::parse_size(&text.unwrap_or_default())
            .map(Size)
            .map_err(de::Error::custom)
    }
}

/// CPUs (`0.5`, `"2"`), as nano-CPUs, checked as they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus(pub u64);

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Scalar(text) = Scalar::deserialize(d)?;
        let text = text.unwrap_or_default();
        match text.trim().parse::<f64>() {
            Ok(c) if c.is_finite() && c > 0.0 && c <= 1024.0 => Ok(Cpus((c * 1e9).round() as u64)),
            _ => Err(de::Error::custom(format!(
                "invalid cpus {text:?}: expected a number of CPUs such as 0.5 or 2"
            ))),
        }
    }
}

/// A published port: `"8080:80"`, `"80/udp"`, or the long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub target: u16,
    pub published: Option<u16>,
    pub protocol: String,
    pub mode: String,
}

#[derive(Debug, Deserialize)]
struct PortLong {
    target: u16,
    #[serde(default)]
    published: Option<u16>,
    #[serde(default)]
    protocol: Option<Protocol>,
    #[serde(default)]
    mode: Option<PublishMode>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PublishMode {
    Ingress,
    Host,
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port such as \"8080:80\" or a map with target and published")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                let p = shoal_api::PortConfig::parse(v).map_err(E::custom)?;
                Ok(Port {
                    target: p.target,
                    published: p.published,
                    protocol: p.protocol.as_str().to_owned(),
                    mode: p.mode.as_str().to_owned(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Port, A::Error> {
                let l = PortLong::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if l.target == 0 {
                    return Err(de::Error::custom("target: 0 is not a port (1-65535)"));
                }
                Ok(Port {
                    target: l.target,
                    published: l.published.filter(|p| *p != 0),
                    protocol: match l.protocol {
                        Some(Protocol::Udp) => "udp",
                        _ => "tcp",
                    }
                    .into(),
                    mode: match l.mode {
                        Some(PublishMode::Host) => "host",
                        _ => "ingress",
                    }
                    .into(),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A compose file read: the file and what was in it, and the keys it did not know.
#[derive(Debug)]
pub struct Loaded {
    pub compose: Compose,
    /// The directory `file:` paths are relative to.
    pub dir: PathBuf,
    /// One line per key shoal does not read, by its path.
    pub unknown: Vec<String>,
}

/// Read `text` (from `file`): a malformed file or value is refused naming the file, the
/// key and its line; keys not known are returned, not refused.
pub fn parse(file: &Path, text: &str) -> anyhow::Result<Loaded> {
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| {
        // `?` is serde_ignored's step into an optional value, not a key.
        let segs: Vec<String> = path
            .to_string()
            .split('.')
            .filter(|s| *s != "?")
            .map(str::to_owned)
            .collect();
        if !segs.iter().any(|seg| seg.starts_with("x-")) {
            unknown.push(segs.join("."));
        }
    };
    let de = serde_norway::Deserializer::from_str(text);
    let ignoring = serde_ignored::Deserializer::new(de, &mut note);
    let compose: Compose = serde_path_to_error::deserialize(ignoring)
        .map_err(|e| anyhow::anyhow!("{}", located(file, &e)))?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Loaded {
        compose,
        dir,
        unknown,
    })
}

/// `FILE:LINE:COLUMN: KEY.PATH: what is wrong`, from a failed read.
fn located(file: &Path, e: &serde_path_to_error::Error<serde_norway::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner();
    let mut msg = inner.to_string();
    // serde_norway words its own (shorter) path and the place into the message: keep the
    // reason only.
    if let Some(l) = inner.location() {
        let tail = format!(" at line {} column {}", l.line(), l.column());
        if let Some(cut) = msg.find(&tail) {
            msg.truncate(cut);
        }
    }
    if let Some((head, rest)) = msg.split_once(": ") {
        if !head.contains(' ') && path.starts_with(head) {
            msg = rest.to_owned();
        }
    }
    let place = match inner.location() {
        Some(l) => format!("{}:{}:{}", file.display(), l.line(), l.column()),
        None => file.display().to_string(),
    };
    if path == "." || path.is_empty() {
        format!("{place}: {msg}")
    } else {
        format!("{place}: {path}: {msg}")
    }
}

/// `FILE:LINE: message` for an error found after reading (an undefined secret, a spec the
/// conversion refuses) whose message starts with the key path it is about
/// (`services.web.secrets: ...`): the line is where that key is written in `text`.
pub fn locate(file: &Path, text: &str, message: &str) -> String {
    let line = message
        .split_once(": ")
        .filter(|(path, _)| !path.contains(' '))
        .and_then(|(path, _)| line_of(text, path));
    match line {
        Some(l) => format!("{}:{l}: {message}", file.display()),
        None => format!("{}: {message}", file.display()),
    }
}

/// The 1-based line where the key at `path` (`services.web.deploy`) is written, for keys
/// in block style (`key:` at the start of an indented line); the deepest key found along
/// the path when the rest is written in flow style.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let want: Vec<&str> = path.split('.').collect();
    // The keys above the current line, with their indents.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        let depth = stack.len();
        let matches = depth <= want.len() && stack.iter().zip(&want).all(|((_, k), w)| k == w);
        if matches && best.is_none_or(|(d, _)| depth > d) {
            best = Some((depth, i + 1));
        }
    }
    best.map(|(_, line)| line)
}

/// The name a stack gives its object `key`: `<stack>_<key>`.
pub fn scoped(stack: &str, key: &str) -> String {
    format!("{stack}_{key}")
}

/// The stack's name of network `key` (`default` is `<stack>_default`), and whether the
/// stack makes it.
pub fn network_name(stack: &str, c: &Compose, key: &str) -> (String, bool) {
    match c.networks.get(key).and_then(Option::as_ref) {
        Some(n) if n.external => (n.name.clone().unwrap_or_else(|| key.to_owned()), false),
        Some(n) => (n.name.clone().unwrap_or_else(|| scoped(stack, key)), true),
        None => (scoped(stack, key), true),
    }
}

/// The stack's name of secret or config `key`.
pub fn file_name(stack: &str, def: &FileDef, key: &str) -> String {
    match (&def.name, def.external) {
        (Some(n), _) => n.clone(),
        (None, true) => key.to_owned(),
        (None, false) => scoped(stack, key),
    }
}

/// The networks service `svc` attaches to: keys with their extra aliases (`default` when it
/// names none).
pub fn service_networks(s: &Service) -> Vec<(String, Vec<String>)> {
    match &s.networks {
        Some(n) if !n.0.is_empty() => n.0.clone(),
        _ => vec![("default".to_owned(), Vec::new())],
    }
}

/// The Docker `ServiceSpec` the docker CLI posts for service `key` of stack `stack`
/// (`cli/compose/convert/service.go`).
pub fn docker_spec(stack: &str, c: &Compose, key: &str, s: &Service) -> anyhow::Result<DockerSpec> {
    let at = |what: &str| format!("services.{key}.{what}");
    let image = s.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: missing: name the image (or the program of a process service)",
            at("image")
        )
    })?;
    let deploy = s.deploy.as_ref();
    let mut labels = deploy
        .and_then(|d| d.labels.as_ref())
        .map(KeyValues::labels)
        .unwrap_or_default();
    labels.insert(NAMESPACE.into(), stack.into());
    labels.insert(IMAGE_LABEL.into(), image.clone());
    let process = labels
        .get(shoal_wire::docker::RUNTIME_LABEL)
        .is_some_and(|v| v == "process");
    let mut container_labels = s.labels.as_ref().map(KeyValues::labels).unwrap_or_default();
    // A process service has no container to label.
    if !process {
        container_labels.insert(NAMESPACE.into(), stack.into());
    }
    let mut env: Vec<String> = s
        .environment
        .iter()
        .flat_map(|e| e.0.iter())
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => std::env::var(k)
                .map(|v| format!("{k}={v}"))
                .unwrap_or_else(|_| k.clone()),
        })
        .collect();
    env.sort();
    let mut secrets = Vec::new();
    for u in &s.secrets {
        let def = c.secrets.get(&u.source).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: secret {:?} is not defined under the top-level secrets",
                at("secrets"),
                u.source
            )
        })?;
        secrets.push(json!({
            "File": {
                "Name": u.target.clone().unwrap_or_else(|| u.source.clone()),
                "UID": u.uid.clone().unwrap_or_else(|| "0".into()),
                "GID": u.gid.clone().unwrap_or_else(|| "0".into()),
                "Mode": u.mode.unwrap_or(0o444),
            },
            "SecretName": file_name(stack, def, &u.source),
        }));
    }
    let mut configs = Vec::new();
    for u in &s.configs {
        let def = c.configs.get(&u.source).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: config {:?} is not defined under the top-level configs",
                at("configs"),
                u.source
            )
        })?;
        configs.push(json!({
            "File": {
                "Name": u.target.clone().unwrap_or_else(|| format!("/{}", u.source)),
                "UID": u.uid.clone().unwrap_or_else(|| "0".into()),
                "GID": u.gid.clone().unwrap_or_else(|| "0".into()),
                "Mode": u.mode.unwrap_or(0o444),
            },
            "ConfigName": file_name(stack, def, &u.source),
        }));
    }
    let mut networks = Vec::new();
    for (net, extra) in service_networks(s) {
        if net != "default" && !c.networks.contains_key(&net) {
            anyhow::bail!(
                "{}: network {net:?} is not defined under the top-level networks",
                at("networks")
            );
        }
        let mut aliases = vec![key.to_owned()];
        aliases.extend(extra);
        networks.push(json!({"Target": network_name(stack, c, &net).0, "Aliases": aliases}));
    }
    let mut container = json!({
        "Image": image,
        "Labels": container_labels,
        "Env": env,
        "Secrets": secrets,
        "Configs": configs,
    });
    let cs = container.as_object_mut().expect("an object");
    if let Some(e) = &s.entrypoint {
        cs.insert("Command".into(), json!(e.words));
    }
    if let Some(a) = &s.command {
        cs.insert("Args".into(), json!(a.words));
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cs.insert(k.into(), v);
        }
    };
    set("Dir", s.working_dir.clone().map(Value::from));
    set("User", s.user.clone().map(Value::from));
    set("Hostname", s.hostname.clone().map(Value::from));
    set("StopGracePeriod", s.stop_grace_period.map(|d| json!(d.0)));
    set("StopSignal", s.stop_signal.clone().map(Value::from));
    set("Init", s.init.map(Value::from));
    set("ReadOnly", s.read_only.map(Value::from));
    set("TTY", s.tty.map(Value::from));
    set("Healthcheck", s.healthcheck.as_ref().map(healthcheck));
    let mut task = json!({
        "ContainerSpec": container,
        "Networks": networks,
    });
    let t = task.as_object_mut().expect("an object");
    if let Some(r) = deploy.and_then(|d| d.restart_policy.as_ref()) {
        let mut p = serde_json::Map::new();
        if let Some(c) = r.condition {
            let c = match c {
                RestartCondition::None => "none",
                RestartCondition::OnFailure => "on-failure",
                RestartCondition::Any => "any",
            };
            p.insert("Condition".into(), c.into());
        }
        if let Some(d) = r.delay {
            p.insert("Delay".into(), d.0.into());
        }
        if let Some(m) = r.max_attempts {
            p.insert("MaxAttempts".into(), m.into());
        }
        if let Some(w) = r.window {
            p.insert("Window".into(), w.0.into());
        }
        t.insert("RestartPolicy".into(), Value::Object(p));
    }
    if let Some(r) = deploy.and_then(|d| d.resources.as_ref()) {
        let mut res = serde_json::Map::new();
        if let Some(l) = &r.limits {
            res.insert(
                "Limits".into(),
                json!({
                    "NanoCPUs": l.cpus.map(|c| c.0).unwrap_or(0),
                    "MemoryBytes": l.memory.map(|m| m.0).unwrap_or(0),
                    "Pids": l.pids.unwrap_or(0),
                }),
            );
        }
        if let Some(r) = &r.reservations {
            res.insert(
                "Reservations".into(),
                json!({
                    "NanoCPUs": r.cpus.map(|c| c.0).unwrap_or(0),
                    "MemoryBytes": r.memory.map(|m| m.0).unwrap_or(0),
                }),
            );
        }
        t.insert("Resources".into(), Value::Object(res));
    }
    if let Some(p) = deploy.and_then(|d| d.placement.as_ref()) {
        let prefs: Vec<Value> = p
            .preferences
            .iter()
            .map(|x| json!({"Spread": {"SpreadDescriptor": x.spread}}))
            .collect();
        t.insert(
            "Placement".into(),
            json!({
                "Constraints": p.constraints,
                "Preferences": prefs,
                "MaxReplicas": p.max_replicas_per_node.unwrap_or(0),
            }),
        );
    }
    let mode = match deploy.and_then(|d| d.mode) {
        Some(Mode::Global) => {
            if deploy.and_then(|d| d.replicas).is_some() {
                anyhow::bail!(
                    "{}: replicas cannot be set with mode global",
                    at("deploy.replicas")
                );
            }
            json!({"Global": {}})
        }
        _ => json!({"Replicated": {"Replicas": deploy.and_then(|d| d.replicas).unwrap_or(1)}}),
    };
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|p| {
            let mut v = json!({
                "Protocol": p.protocol,
                "TargetPort": p.target,
                "PublishMode": p.mode,
            });
            if let Some(published) = p.published {
                v["PublishedPort"] = json!(published);
            }
            v
        })
        .collect();
    let endpoint_mode = match deploy.and_then(|d| d.endpoint_mode) {
        Some(EndpointMode::Dnsrr) => "dnsrr",
        _ => "vip",
    };
    let mut spec = json!({
        "Name": scoped(stack, key),
        "Labels": labels,
        "TaskTemplate": task,
        "Mode": mode,
        "EndpointSpec": {"Mode": endpoint_mode, "Ports": ports},
    });
    if let Some(u) = deploy.and_then(|d| d.update_config.as_ref()) {
        spec["UpdateConfig"] = update_config(u);
    }
    if let Some(u) = deploy.and_then(|d| d.rollback_config.as_ref()) {
        spec["RollbackConfig"] = update_config(u);
    }
    serde_json::from_value(spec)
        .map_err(|e| anyhow::anyhow!("services.{key}: cannot make its service spec: {e}"))
}

fn healthcheck(h: &Healthcheck) -> Value {
    if h.disable {
        return json!({"Test": ["NONE"]});
    }
    let mut v = serde_json::Map::new();
    if let Some(t) = &h.test {
        let test: Vec<String> = if t.string {
            // One string runs with the shell.
            vec!["CMD-SHELL".into(), t.words.join(" ")]
        } else {
            t.words.clone()
        };
        v.insert("Test".into(), json!(test));
    }
    let mut dur = |k: &str, d: Option<Dur>| {
        if let Some(d) = d {
            v.insert(k.into(), json!(d.0));
        }
    };
    dur("Interval", h.interval);
    dur("Timeout", h.timeout);
    dur("StartPeriod", h.start_period);
    if let Some(r) = h.retries {
        v.insert("Retries".into(), json!(r));
    }
    Value::Object(v)
}

fn update_config(u: &UpdateConfig) -> Value {
    let mut v = serde_json::Map::new();
    if let Some(p) = u.parallelism {
        v.insert("Parallelism".into(), json!(p));
    }
    if let Some(d) = u.delay {
        v.insert("Delay".into(), json!(d.0));
    }
    if let Some(a) = u.failure_action {
        let a = match a {
            FailureAction::Continue => "continue",
            FailureAction::Pause => "pause",
            FailureAction::Rollback => "rollback",
        };
        v.insert("FailureAction".into(), json!(a));
    }
    if let Some(m) = u.monitor {
        v.insert("Monitor".into(), json!(m.0));
    }
    if let Some(r) = u.max_failure_ratio {
        v.insert("MaxFailureRatio".into(), json!(r));
    }
    if let Some(o) = u.order {
        let o = match o {
            Order::StopFirst => "stop-first",
            Order::StartFirst => "start-first",
        };
        v.insert("Order".into(), json!(o));
    }
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Loaded> {
        parse(Path::new("dir/compose.yml"), text)
    }

    #[test]
    fn the_golden_file_reads_and_converts() {
        let text = include_str!("../../tests/golden/docker/stack/compose.yml");
        let l = load(text).expect("reads");
        assert!(l.unknown.is_empty(), "{:?}", l.unknown);
        assert_eq!(l.dir, Path::new("dir"));
        let c = &l.compose;
        let web = docker_spec("st", c, "web", &c.services["web"]).expect("web");
        let v = serde_json::to_value(&web).expect("json");
        assert_eq!(v["Name"], "st_web");
        assert_eq!(v["Labels"][NAMESPACE], "st");
        assert_eq!(v["Labels"]["traefik.enable"], "true");
        assert_eq!(v["Mode"]["Replicated"]["Replicas"], 2);
        let t = &v["TaskTemplate"];
        assert_eq!(
            t["Networks"],
            json!([{"Target": "st_default", "Aliases": ["web"]}])
        );
        assert_eq!(
            t["ContainerSpec"]["Args"],
            json!(["shoal", "whoami", "--port", "80"])
        );
        assert_eq!(t["ContainerSpec"]["Secrets"][0]["SecretName"], "st_s1");
        assert_eq!(t["ContainerSpec"]["Secrets"][0]["File"]["Name"], "s1");
        assert_eq!(
            t["ContainerSpec"]["Configs"][0]["File"]["Name"],
            "/etc/c1.conf"
        );
        assert_eq!(v["EndpointSpec"]["Ports"][0]["PublishedPort"], 8081);
        let shoal = shoal_wire::docker::to_shoal::service_spec(&web, None).expect("converts");
        assert_eq!(shoal.spec.name, "st_web");
        assert_eq!(shoal.spec.task.networks[0].network, "st_default");
    }

    #[test]
    fn a_bad_value_names_the_file_the_line_and_the_key() {
        let text = "services:\n  web:\n    image: x\n    deploy:\n      replicas: many\n";
        let e = load(text).expect_err("refused").to_string();
        assert!(
            e.starts_with("dir/compose.yml:5:17: services.web.deploy.replicas: invalid type"),
            "{e}"
        );
        let text = "services:\n  web:\n    image: x\n    deploy:\n      update_config:\n        delay: 10x\n";
        let e = load(text).expect_err("refused").to_string();
        assert!(
            e.starts_with("dir/compose.yml:6:")
                && e.contains(": services.web.deploy.update_config.delay: invalid duration"),
            "{e}"
        );
        let e = load("services:\n  web:\n    image: x\n    ports: [\"70000:80\"]\n")
            .expect_err("refused")
            .to_string();
        assert!(
            e.starts_with("dir/compose.yml:4:") && e.contains("services.web.ports"),
            "{e}"
        );
        let e = load("services: [\n").expect_err("refused").to_string();
        assert!(
            e.starts_with("dir/compose.yml:1:11: services: invalid type: sequence"),
            "{e}"
        );
        let e = load("services:\n  web: {image: \"x}\n")
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with("dir/compose.yml:"), "{e}");
    }

    #[test]
    fn a_key_path_is_found_by_its_line() {
        let text = "services:\n  web:\n    image: x\n    secrets:\n      - s2\n  db: {image: y}\n";
        assert_eq!(line_of(text, "services.web.secrets"), Some(4));
        assert_eq!(line_of(text, "services.web"), Some(2));
        assert_eq!(line_of(text, "services.db.image"), Some(6));
        assert_eq!(line_of(text, "networks"), None);
        assert_eq!(
            locate(
                Path::new("c.yml"),
                text,
                "services.web.secrets: secret \"s2\" is not defined"
            ),
            "c.yml:4: services.web.secrets: secret \"s2\" is not defined"
        );
        assert_eq!(
            locate(Path::new("c.yml"), text, "no services"),
            "c.yml: no services"
        );
    }

    #[test]
    fn unknown_keys_are_named_by_path() {
        let text = "x-common: &c {a: 1}\nservices:\n  web:\n    image: x\n    build: .\n    deploy:\n      replicas: 1\n      rollback_speed: 3\nvolumes:\n  data: {}\n";
        let l = load(text).expect("reads");
        assert_eq!(
            l.unknown,
            [
                "services.web.build",
                "services.web.deploy.rollback_speed",
                "volumes"
            ]
        );
    }

    #[test]
    fn short_and_long_forms() {
        let text = r#"
services:
  a:
    image: shoal
    command: shoal whoami --name "two words"
    environment: ["A=1", "B"]
    ports: ["8080:80/udp", {target: 81, published: 9090, mode: host}, 82]
    healthcheck: {test: "curl -f localhost", interval: 5s, retries: 2}
    deploy:
      mode: global
      labels: ["k=v"]
      resources: {limits: {cpus: "0.5", memory: 64M}}
      placement: {constraints: ["node.role==manager"], preferences: [{spread: node.labels.zone}]}
networks:
  back: {}
"#;
        let l = load(text).expect("reads");
        let c = &l.compose;
        let a = &c.services["a"];
        assert_eq!(
            a.command.as_ref().map(|w| w.words.clone()),
            Some(vec![
                "shoal".into(),
                "whoami".into(),
                "--name".into(),
                "two words".into()
            ])
        );
        assert_eq!(a.ports.len(), 3);
        assert_eq!(
            (a.ports[1].published, a.ports[1].mode.as_str()),
            (Some(9090), "host")
        );
        let v = serde_json::to_value(docker_spec("s", c, "a", a).expect("spec")).expect("json");
        assert_eq!(v["Mode"], json!({"Global": {}}));
        assert_eq!(v["Labels"]["k"], "v");
        assert_eq!(
            v["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"],
            500_000_000
        );
        assert_eq!(
            v["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"],
            json!(["CMD-SHELL", "curl -f localhost"])
        );
        assert_eq!(network_name("s", c, "back"), ("s_back".into(), true));
        let bad = "services:\n  a:\n    image: x\n    secrets: [nope]\n";
        let l = load(bad).expect("reads");
        let e = docker_spec("s", &l.compose, "a", &l.compose.services["a"])
            .expect_err("undefined")
            .to_string();
        assert!(
            e.contains("services.a.secrets") && e.contains("nope"),
            "{e}"
        );
    }
}
