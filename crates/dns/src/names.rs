//! The names one data-plane snapshot answers for, built once per snapshot so that a query
//! costs one hash lookup: `web`, `tasks.web` and `<task id>.tasks.web` (all relative to the
//! domain), with the addresses, ports and wire-encoded names their answers need.

use shoal_api::task::EndpointPort;
use shoal_api::Protocol;
use shoal_balance::snapshot::{EndpointMode, EndpointState};
use shoal_balance::DataPlaneSnapshot;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The domain service names are answered under when none is configured.
pub const DEFAULT_DOMAIN: &str = "shoal.internal";

/// Longest name on the wire, root label included (RFC 1035 2.3.4).
const MAX_WIRE_NAME: usize = 255;
/// Longest label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;

/// Every name of one snapshot, lowercased. Immutable: a new snapshot builds new `Names`.
#[derive(Debug)]
pub struct Names {
    version: u64,
    /// Lowercase, no trailing dot.
    domain: Box<str>,
    services: Vec<ServiceNames>,
    /// Name relative to the domain (lowercase, dotted, no trailing dot) → what it names.
    index: HashMap<Box<[u8]>, Node>,
}

/// What a known name stands for: indexes into [`Names::service`] and its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// `web`: its VIP, or its tasks' addresses without one.
    Service(usize),
    /// `tasks.web`: its tasks' addresses.
    Tasks(usize),
    /// `<task id>.tasks.web`: one task's address.
    Task(usize, usize),
}

/// One service's answers.
#[derive(Debug)]
pub(crate) struct ServiceNames {
    /// Its VIP when it is reached by one (endpoint mode vip and a VIP assigned).
    pub(crate) vip: Option<IpAddr>,
    /// The distinct addresses of its ready tasks, by family.
    pub(crate) v4: Vec<Ipv4Addr>,
    pub(crate) v6: Vec<Ipv6Addr>,
    /// Its distinct target ports.
    pub(crate) ports: Vec<(u16, Protocol)>,
    /// Its ready tasks whose name fits in DNS.
    pub(crate) tasks: Vec<TaskNames>,
    /// `web.<domain>.` on the wire.
    pub(crate) fqdn: Box<[u8]>,
    /// `tasks.web.<domain>.` on the wire.
    pub(crate) tasks_fqdn: Box<[u8]>,
}

/// One ready task's answers.
#[derive(Debug)]
pub(crate) struct TaskNames {
    /// Its ID as one wire label (length byte first), lowercased.
    pub(crate) label: Box<[u8]>,
    pub(crate) addr: IpAddr,
    /// Target → host port, one per target and protocol.
    pub(crate) ports: Vec<EndpointPort>,
}

impl Names {
    /// The names of `snapshot`'s services under `domain` (case and a trailing dot do not
    /// matter). A domain that is not a valid DNS name is replaced by [`DEFAULT_DOMAIN`]
    /// (`DnsServer::start` refuses one). A service or task whose name cannot be a DNS name
    /// (a label longer than 63 bytes, an empty label, a name over 255 bytes) is left out;
    /// of two services whose names differ only in case, the first in the snapshot wins.
    pub fn new(snapshot: &DataPlaneSnapshot, domain: &str) -> Names {
        let domain = normalize_domain(domain).unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
        let mut names = Names {
            version: snapshot.version,
            domain: domain.into(),
            services: Vec::with_capacity(snapshot.services.len()),
            index: HashMap::new(),
        };
        // Service names first, so that a service literally named `tasks.x` keeps its name.
        let mut entries = Vec::with_capacity(snapshot.services.len());
        let mut aliased = Vec::with_capacity(snapshot.services.len());
        for entry in &snapshot.services {
            let name = entry.name.to_ascii_lowercase();
            if !valid_relative(&name) || names.index.contains_key(name.as_bytes()) {
                continue;
            }
            let Some(service) = names.service_names(entry, &name) else {
                continue;
            };
            let at = names.services.len();
            names.services.push(service);
            names
                .index
                .insert(name.clone().into_bytes().into(), Node::Service(at));
            entries.push((at, name));
            aliased.push((at, &entry.aliases));
        }
        // Aliases after every service's own name, so a name always wins over an alias; of
        // two services with one alias, the first in the snapshot has it.
        for (at, list) in aliased {
            for alias in list {
                let alias = alias.to_ascii_lowercase();
                if !valid_relative(&alias) {
                    continue;
                }
                names
                    .index
                    .entry(alias.clone().into_bytes().into())
                    .or_insert(Node::Service(at));
                entries.push((at, alias));
            }
        }
        for (at, name) in entries {
            let tasks = format!("tasks.{name}");
            names
                .index
                .entry(tasks.clone().into_bytes().into())
                .or_insert(Node::Tasks(at));
            for (t, task) in names.services[at].tasks.iter().enumerate() {
                let mut key = Vec::with_capacity(task.label.len() + tasks.len());
                key.extend(&task.label[1..]);
                key.push(b'.');
                key.extend(tasks.as_bytes());
                names.index.entry(key.into()).or_insert(Node::Task(at, t));
            }
        }
        names
    }

    /// The store version of the snapshot these names were built from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The domain names are answered under: lowercase, without the trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// How many services have a name.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// What `relative` (lowercase, dotted, relative to the domain) names, if anything.
    pub(crate) fn find(&self, relative: &[u8]) -> Option<Node> {
        self.index.get(relative).copied()
    }

    pub(crate) fn service(&self, at: usize) -> &ServiceNames {
        &self.services[at]
    }

    fn service_names(
        &self,
        entry: &shoal_balance::ServiceEntry,
        name: &str,
    ) -> Option<ServiceNames> {
        let fqdn = encode(&[name, &self.domain])?;
        let tasks_fqdn = encode(&["tasks", name, &self.domain])?;
        let vip = match entry.endpoint_mode {
            EndpointMode::Vip => entry.vip,
            EndpointMode::Dnsrr => None,
        };
        let ready = || {
            entry
                .endpoints
                .iter()
                .filter(|e| e.state == EndpointState::Ready)
        };
        let mut v4: Vec<Ipv4Addr> = Vec::new();
        let mut v6: Vec<Ipv6Addr> = Vec::new();
        for e in ready() {
            match e.addr {
                IpAddr::V4(a) => v4.push(a),
                IpAddr::V6(a) => v6.push(a),
            }
        }
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        let mut ports: Vec<(u16, Protocol)> = Vec::new();
        for p in &entry.ports {
            if !ports.contains(&(p.target, p.protocol)) {
                ports.push((p.target, p.protocol));
            }
        }
        let tasks = ready()
            .filter_map(|e| {
                let id = e.task_id.to_ascii_lowercase();
                if !valid_label(&id) || tasks_fqdn.len() + 1 + id.len() > MAX_WIRE_NAME {
                    return None;
                }
                let mut label = Vec::with_capacity(1 + id.len());
                label.push(id.len() as u8);
                label.extend(id.as_bytes());
                let mut task_ports: Vec<EndpointPort> = Vec::with_capacity(e.ports.len());
                for p in &e.ports {
                    if !task_ports
                        .iter()
                        .any(|q| q.target == p.target && q.protocol == p.protocol)
                    {
                        task_ports.push(*p);
                    }
                }
                Some(TaskNames {
                    label: label.into(),
                    addr: e.addr,
                    ports: task_ports,
                })
            })
            .collect();
        Some(ServiceNames {
            vip,
            v4,
            v6,
            ports,
            tasks,
            fqdn,
            tasks_fqdn,
        })
    }
}

/// `domain` lowercased without its trailing dot, if it is a valid DNS name of at least one
/// label, each of letters, digits, `-` and `_`.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let ok = !domain.is_empty()
        && domain.split('.').all(valid_label)
        && domain.len() + 2 <= MAX_WIRE_NAME;
    ok.then_some(domain)
}

/// A dotted relative name whose every label is valid.
fn valid_relative(name: &str) -> bool {
    !name.is_empty() && name.split('.').all(valid_label)
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The wire form of the dotted names joined in order, root label included; `None` if it
/// does not fit in 255 bytes.
fn encode(parts: &[&str]) -> Option<Box<[u8]>> {
    let mut wire = Vec::new();
    for label in parts.iter().flat_map(|p| p.split('.')) {
        wire.push(u8::try_from(label.len()).ok()?);
        wire.extend(label.as_bytes());
    }
    wire.push(0);
    (wire.len() <= MAX_WIRE_NAME).then(|| wire.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_balance::{ServiceEndpoint, ServiceEntry};

    fn endpoint(task: &str, addr: [u8; 4], state: EndpointState) -> ServiceEndpoint {
        ServiceEndpoint {
            task_id: task.into(),
            addr: IpAddr::from(addr),
            state,
            ..ServiceEndpoint::default()
        }
    }

    #[test]
    fn names_index_services_their_tasks_and_ready_task_names() {
        let snapshot = DataPlaneSnapshot {
            vip_pool: None,
            version: 7,
            services: vec![
                ServiceEntry {
                    id: "s1".into(),
                    name: "Web".into(),
                    vip: Some(IpAddr::from([10, 255, 0, 2])),
                    endpoints: vec![
                        endpoint("T1", [10, 0, 0, 1], EndpointState::Ready),
                        endpoint("t2", [10, 0, 0, 1], EndpointState::Ready),
                        endpoint("t3", [10, 0, 0, 3], EndpointState::Terminating),
                    ],
                    ..ServiceEntry::default()
                },
                ServiceEntry {
                    id: "s2".into(),
                    name: "WEB".into(),
                    ..ServiceEntry::default()
                },
                ServiceEntry {
                    id: "s3".into(),
                    name: "bad..name".into(),
                    ..ServiceEntry::default()
                },
            ],
        };
        let names = Names::new(&snapshot, "Shoal.Internal.");
        assert_eq!(names.version(), 7);
        assert_eq!(names.domain(), "shoal.internal");
        assert_eq!(names.service_count(), 1);
        assert_eq!(names.find(b"web"), Some(Node::Service(0)));
        assert_eq!(names.find(b"tasks.web"), Some(Node::Tasks(0)));
        assert_eq!(names.find(b"t1.tasks.web"), Some(Node::Task(0, 0)));
        assert_eq!(names.find(b"t2.tasks.web"), Some(Node::Task(0, 1)));
        assert_eq!(names.find(b"t3.tasks.web"), None);
        assert_eq!(names.find(b"Web"), None, "lookups are by lowercase name");
        let web = names.service(0);
        assert_eq!(web.v4, vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(&*web.fqdn, b"\x03web\x05shoal\x08internal\x00");
        assert_eq!(
            &*web.tasks_fqdn,
            b"\x05tasks\x03web\x05shoal\x08internal\x00"
        );
        assert_eq!(&*web.tasks[0].label, b"\x02t1");
    }

    #[test]
    fn aliases_answer_for_their_service_and_never_over_a_name() {
        let entry = |id: &str, name: &str, aliases: &[&str]| ServiceEntry {
            id: id.into(),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            vip: Some(IpAddr::from([10, 255, 0, 2])),
            ..ServiceEntry::default()
        };
        let snapshot = DataPlaneSnapshot {
            vip_pool: None,
            version: 1,
            services: vec![
                entry("s1", "st_web", &["web", "api", "Front"]),
                entry("s2", "api", &[]),
                entry("s3", "other_web", &["web", "bad..alias"]),
            ],
        };
        let names = Names::new(&snapshot, "shoal.internal");
        assert_eq!(names.find(b"web"), Some(Node::Service(0)));
        assert_eq!(names.find(b"tasks.web"), Some(Node::Tasks(0)));
        assert_eq!(names.find(b"front"), Some(Node::Service(0)));
        // A service's own name wins over another's alias; the first alias holder keeps it.
        assert_eq!(names.find(b"api"), Some(Node::Service(1)));
        assert_eq!(names.find(b"tasks.api"), Some(Node::Tasks(1)));
        assert_eq!(names.find(b"other_web"), Some(Node::Service(2)));
        assert_eq!(names.find(b"bad..alias"), None);
    }

    #[test]
    fn an_invalid_domain_falls_back_to_the_default() {
        for domain in ["", ".", "a..b", "bad domain", &"x".repeat(64)] {
            assert_eq!(normalize_domain(domain), None, "{domain:?}");
            let names = Names::new(&DataPlaneSnapshot::default(), domain);
            assert_eq!(names.domain(), DEFAULT_DOMAIN);
        }
        assert_eq!(
            normalize_domain("Cluster.Local."),
            Some("cluster.local".into())
        );
    }
}
