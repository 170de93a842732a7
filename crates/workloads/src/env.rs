//! The environment the shoal agent gives a task.

use std::env;

/// Port a workload listens on: the `PORT` variable if set and valid, else `default`.
pub fn port_from_env(default: u16) -> u16 {
    parse_port(env::var("PORT").ok().as_deref()).unwrap_or(default)
}

fn parse_port(value: Option<&str>) -> Option<u16> {
    value?.trim().parse().ok()
}

/// Identity of the task a workload runs as, read from the `SHOAL_*` variables.
///
/// Missing variables fall back to `whoami` for the name, `0` for the slot and empty strings
/// otherwise, so the workloads also run by hand outside a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnv {
    /// `SHOAL_TASK_NAME`, e.g. `web.1.<task id>`.
    pub task_name: String,
    /// `SHOAL_TASK_SLOT`.
    pub slot: String,
    /// `SHOAL_TASK_ID`.
    pub task_id: String,
    /// `SHOAL_SERVICE_NAME`.
    pub service: String,
    /// `SHOAL_NODE_ID`.
    pub node_id: String,
    /// `SHOAL_NODE_HOSTNAME`.
    pub node_hostname: String,
}

impl TaskEnv {
    /// Reads the task identity from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| env::var(key).ok())
    }

    /// Reads the task identity through `lookup`, which maps a variable name to its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str, default: &str| {
            lookup(key)
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            task_name: get("SHOAL_TASK_NAME", "whoami"),
            slot: get("SHOAL_TASK_SLOT", "0"),
            task_id: get("SHOAL_TASK_ID", ""),
            service: get("SHOAL_SERVICE_NAME", ""),
            node_id: get("SHOAL_NODE_ID", ""),
            node_hostname: get("SHOAL_NODE_HOSTNAME", ""),
        }
    }
}

impl Default for TaskEnv {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}

/// Host name of the machine (or container) the workload runs on.
pub(crate) fn hostname() -> String {
    // /proc avoids an unsafe gethostname(2) call; HOSTNAME covers the rare system without it.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| env::var("HOSTNAME").ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn port_parses_valid_values_only() {
        assert_eq!(parse_port(Some("8080")), Some(8080));
        assert_eq!(parse_port(Some(" 81 ")), Some(81));
        assert_eq!(parse_port(Some("70000")), None);
        assert_eq!(parse_port(Some("web")), None);
        assert_eq!(parse_port(Some("")), None);
        assert_eq!(parse_port(None), None);
    }

    #[test]
    fn task_env_defaults_when_variables_are_missing() {
        let env = TaskEnv::default();
        assert_eq!(env.task_name, "whoami");
        assert_eq!(env.slot, "0");
        assert_eq!(env.service, "");
        assert_eq!(env.node_id, "");
    }

    #[test]
    fn task_env_reads_variables() {
        let vars: HashMap<&str, &str> = [
            ("SHOAL_TASK_NAME", "web.2.abc"),
            ("SHOAL_TASK_SLOT", "2"),
            ("SHOAL_TASK_ID", "abc"),
            ("SHOAL_SERVICE_NAME", "web"),
            ("SHOAL_NODE_ID", "n1"),
            ("SHOAL_NODE_HOSTNAME", "host1"),
        ]
        .into_iter()
        .collect();
        let env = TaskEnv::from_lookup(|key| vars.get(key).map(|v| v.to_string()));
        assert_eq!(env.task_name, "web.2.abc");
        assert_eq!(env.slot, "2");
        assert_eq!(env.task_id, "abc");
        assert_eq!(env.service, "web");
        assert_eq!(env.node_id, "n1");
        assert_eq!(env.node_hostname, "host1");
    }

    #[test]
    fn hostname_is_not_empty() {
        assert!(!hostname().is_empty());
    }
}
