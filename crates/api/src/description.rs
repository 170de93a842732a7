//! What a node reports about itself when its session opens: its CPUs and memory, the
//! runtimes it can run tasks with, and its container engine, if it has one.

use crate::RuntimeKind;
use serde::{Deserialize, Deserializer, Serialize};

/// Longest engine version kept.
pub const MAX_ENGINE_VERSION: usize = 64;

/// A node's capacity and capabilities. All zero and empty until the node first reports
/// (nodes of versions that do not report stay so): such a node takes only process tasks
/// that reserve nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeDescription {
    #[serde(default)]
    pub nano_cpus: u64,
    #[serde(default)]
    pub memory_bytes: u64,
    /// Runtimes the node runs tasks with; kinds this version does not know are dropped (a
    /// newer node may report more).
    #[serde(default, deserialize_with = "known_kinds")]
    pub runtimes: Vec<RuntimeKind>,
    /// The container engine (Docker Engine), when the node has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    /// The machine's architecture as `uname -m` names it (`x86_64`, `aarch64`); empty from
    /// a node that does not report it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EngineInfo {
    #[serde(default)]
    pub version: String,
}

fn known_kinds<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<RuntimeKind>, D::Error> {
    let names: Vec<String> = Vec::deserialize(de)?;
    Ok(names.iter().filter_map(|n| n.parse().ok()).collect())
}

impl NodeDescription {
    /// The node can run tasks of this kind. Processes run on every shoal node, reported
    /// or not.
    pub fn runs(&self, kind: RuntimeKind) -> bool {
        kind == RuntimeKind::Process || self.runtimes.contains(&kind)
    }

    /// The description as stored: runtimes sorted without repeats, the engine version safe
    /// to print (what a node reports is not trusted to be well formed).
    pub fn cleaned(mut self) -> NodeDescription {
        self.runtimes.sort();
        self.runtimes.dedup();
        if let Some(e) = &mut self.engine {
            e.version = e
                .version
                .chars()
                .take(MAX_ENGINE_VERSION)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '~') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_runtimes_and_fields_are_ignored() {
        let d: NodeDescription = serde_json::from_str(
            r#"{"nano_cpus":2000000000,"runtimes":["process","wasm","container"],"gpus":1}"#,
        )
        .expect("lenient");
        assert_eq!(d.nano_cpus, 2_000_000_000);
        assert_eq!(
            d.runtimes,
            vec![RuntimeKind::Process, RuntimeKind::Container]
        );
        assert_eq!(
            serde_json::from_str::<NodeDescription>("{}").expect("empty"),
            NodeDescription::default()
        );
    }

    #[test]
    fn processes_run_everywhere_containers_only_with_an_engine() {
        let unreported = NodeDescription::default();
        assert!(unreported.runs(RuntimeKind::Process));
        assert!(!unreported.runs(RuntimeKind::Container));
        let docker = NodeDescription {
            runtimes: vec![RuntimeKind::Process, RuntimeKind::Container],
            ..NodeDescription::default()
        };
        assert!(docker.runs(RuntimeKind::Container));
    }

    #[test]
    fn reported_text_is_cleaned() {
        let d = NodeDescription {
            runtimes: vec![
                RuntimeKind::Container,
                RuntimeKind::Process,
                RuntimeKind::Container,
            ],
            engine: Some(EngineInfo {
                version: format!("24.0.7\u{1b}[31m{}", "x".repeat(100)),
            }),
            ..NodeDescription::default()
        }
        .cleaned();
        assert_eq!(
            d.runtimes,
            vec![RuntimeKind::Process, RuntimeKind::Container]
        );
        let v = d.engine.expect("engine").version;
        assert!(v.starts_with("24.0.7__31mx"), "{v}");
        assert_eq!(v.len(), MAX_ENGINE_VERSION);
    }
}
