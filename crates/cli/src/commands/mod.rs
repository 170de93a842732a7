pub mod cluster;
pub mod compose;
pub mod daemon;
pub mod logs;
pub mod node;
pub mod objects;
pub mod resources;
pub mod service;
pub mod stack;
pub mod update;
pub mod workload;

/// `--format` for commands that can print JSON instead of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `KEY=VALUE` labels; a bare `KEY` has an empty value, an empty key is refused.
pub fn labels(pairs: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for l in pairs {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        anyhow::ensure!(!k.is_empty(), "invalid label {l:?}: expected KEY=VALUE");
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
