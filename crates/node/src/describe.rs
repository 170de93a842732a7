//! What this node reports about itself when its session opens (`NodeDescription`): its
//! CPUs (what the scheduler lets the daemon use: affinity and cgroup quota), its memory,
//! and the runtimes it runs tasks with: processes always, containers when it has an engine.

use shoal_api::resources::NANO_CPUS;
use shoal_api::{EngineInfo, NodeDescription, RuntimeKind};

/// Read this node's description; `engine` is its container engine, if the daemon found one.
pub fn describe(engine: Option<EngineInfo>) -> NodeDescription {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as u64);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text))
        .unwrap_or(0);
    compose(cpus, memory, engine)
}

fn compose(cpus: u64, memory_bytes: u64, engine: Option<EngineInfo>) -> NodeDescription {
    let mut runtimes = vec![RuntimeKind::Process];
    if engine.is_some() {
        runtimes.push(RuntimeKind::Container);
    }
    NodeDescription {
        nano_cpus: cpus.saturating_mul(NANO_CPUS),
        memory_bytes,
        runtimes,
        engine,
        arch: std::env::consts::ARCH.to_owned(),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes (the file counts in kB, meaning KiB).
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_reads_kibibytes() {
        let text = "MemTotal:       16318412 kB\nMemFree:         1 kB\n";
        assert_eq!(mem_total(text), Some(16_318_412 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total("MemTotal: 12 MB\n"), None);
    }

    #[test]
    fn an_engine_adds_the_container_runtime() {
        let plain = compose(2, 1 << 30, None);
        assert_eq!(plain.nano_cpus, 2 * NANO_CPUS);
        assert_eq!(plain.runtimes, vec![RuntimeKind::Process]);
        let docker = compose(
            1,
            0,
            Some(EngineInfo {
                version: "27.3.1".into(),
            }),
        );
        assert_eq!(
            docker.runtimes,
            vec![RuntimeKind::Process, RuntimeKind::Container]
        );
    }

    #[test]
    fn this_machine_reports_cpus_and_memory() {
        let d = describe(None);
        assert!(d.nano_cpus >= NANO_CPUS, "{d:?}");
        assert!(d.memory_bytes > 0, "{d:?}");
    }
}
