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

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
