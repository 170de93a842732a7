//! The published ports of a service, decided from the cluster state alone (no I/O).
//!
//! One table of the ports every service publishes, ingress and host mode alike; two sets of
//! rules over it. A user's request (create, update, manual rollback) is refused on a
//! conflict, so the user can pick another port. An automatic rollback has no one to refuse:
//! it restores the spec's explicit ports as written and gives its auto-assigned ports what is
//! left. Whether a port is free on the leader's own host is for the caller to find out
//! before the write (`checks::ports_in_use`); it comes in here as data.
//!
//! Service VIPs come from the cluster's VIP pool: a service keeps its VIP for life, a new
//! one gets the lowest address no other service holds.

use shoal_api::port::{AUTO_PORT_MAX, AUTO_PORT_MIN};
use shoal_api::{ClusterState, PortConfig, Protocol, Service};
use std::collections::HashMap;

/// Why a service got no VIP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free VIP left in the cluster's pool {pool} ({used} services hold one); a new cluster can take a larger pool with --vip-pool")]
pub struct VipExhausted {
    pub pool: shoal_api::VipPool,
    pub used: usize,
}

/// The VIP of `service` (`None`: a new one): the one it has, if it lies in the pool, else
/// the lowest address of the pool no other service holds.
pub fn vip(
    state: &ClusterState,
    service: Option<&Service>,
) -> Result<std::net::Ipv4Addr, VipExhausted> {
    let pool = state
        .cluster
        .as_ref()
        .map(|c| c.vip_pool())
        .unwrap_or_default();
    let own_id = service.map(|s| s.id.as_str());
    if let Some(v) = service.and_then(|s| s.vip).filter(|v| pool.contains(*v)) {
        return Ok(v);
    }
    let used: std::collections::HashSet<std::net::Ipv4Addr> = state
        .services
        .values()
        .filter(|s| Some(s.id.as_str()) != own_id)
        .filter_map(|s| s.vip)
        .collect();
    pool.vips().find(|v| !used.contains(v)).ok_or(VipExhausted {
        pool,
        used: used.len(),
    })
}

/// Who holds a port the allocator could not give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Another service publishes it.
    Service(String),
    /// An earlier port of the same request names it too.
    ThisService,
    /// Something other than the cluster listens on it on the leader's host.
    Host,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Service(name) => write!(f, "published by service {name}"),
            Holder::ThisService => f.write_str("named by another --publish of this service"),
            Holder::Host => f.write_str("in use on this node by another program"),
        }
    }
}

/// Why a request's published ports were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("port {port}/{} is already {holder}", .protocol.as_str())]
    Taken {
        port: u16,
        protocol: Protocol,
        holder: Holder,
    },
    #[error("no free port left in {AUTO_PORT_MIN}-{AUTO_PORT_MAX} to publish on")]
    Exhausted { protocol: Protocol },
}

/// The published ports of one request: `wanted` with every auto-assigned port filled in.
/// `service` is the service being changed (`None` for a new one): the ports it publishes
/// now stay its own, and an auto-assigned port keeps the number it has for the same target
/// and protocol. `host_busy` are ports found in use on the leader's host before the write;
/// they are refused like another service's ports, except those the service publishes
/// already (its own mesh holds them). Refused: a port another service publishes, a port the
/// request names twice, a range with no port left. Explicit ports are decided first, in
/// the request's order (the first refused one is reported), then the auto-assigned ones, so
/// those never take a number the request names.
pub fn published_ports(
    state: &ClusterState,
    service: Option<&Service>,
    wanted: &[PortConfig],
    host_busy: &[(u16, Protocol)],
) -> Result<Vec<PortConfig>, PortError> {
    let mut table = PortTable::new(state, service);
    for &(port, protocol) in host_busy {
        if !table.is_current(port, protocol) {
            table.taken.entry((port, protocol)).or_insert(Holder::Host);
        }
    }
    // Explicit ports first, so an auto-assigned port never takes a number the same
    // request names later on.
    let mut out = wanted.to_vec();
    for p in &out {
        let Some(port) = p.published else { continue };
        if let Some(holder) = table.taken.get(&(port, p.protocol)) {
            return Err(PortError::Taken {
                port,
                protocol: p.protocol,
                holder: holder.clone(),
            });
        }
        table.claim(port, p.protocol);
    }
    for p in out
        .iter_mut()
        .filter(|p| p.is_published() && p.published.is_none())
    {
        // The number the service has for this target, unless the request names it
        // elsewhere; else the lowest free one.
        let kept = table
            .current(p)
            .next()
            .flatten()
            .filter(|n| !table.taken.contains_key(&(*n, p.protocol)));
        let port = match kept {
            Some(n) => n,
            None => table.lowest_free(p.protocol).ok_or(PortError::Exhausted {
                protocol: p.protocol,
            })?,
        };
        p.published = Some(port);
        table.claim(port, p.protocol);
    }
    Ok(out)
}

/// The published ports of `wanted` when an automatic rollback brings it back to `service`.
/// Nothing is refused: explicit ports are taken as written (they win over auto-assigned
/// ones, the service's and others'); an auto-assigned port keeps a number the service has
/// for the same target and protocol if no one else holds it, else gets the lowest free port
/// of the range, else stays unassigned (`published: None`).
pub fn rollback_ports(
    state: &ClusterState,
    service: &Service,
    wanted: &[PortConfig],
) -> Vec<PortConfig> {
    let mut table = PortTable::new(state, Some(service));
    for p in wanted {
        if let Some(port) = p.published {
            table.claim(port, p.protocol);
        }
    }
    let mut out = Vec::with_capacity(wanted.len());
    for p in wanted {
        let mut p = *p;
        if p.is_published() && p.published.is_none() {
            p.published = table
                .current(&p)
                .flatten()
                .find(|n| !table.taken.contains_key(&(*n, p.protocol)))
                .or_else(|| table.lowest_free(p.protocol));
            if let Some(port) = p.published {
                table.claim(port, p.protocol);
            }
        }
        out.push(p);
    }
    out
}

/// The ports held across the cluster, seen from one service.
struct PortTable<'a> {
    /// Ports the other services publish, and those this allocation has given.
    taken: HashMap<(u16, Protocol), Holder>,
    /// The ports the service publishes now.
    current: &'a [PortConfig],
}

impl<'a> PortTable<'a> {
    fn new(state: &ClusterState, service: Option<&'a Service>) -> Self {
        let service_id = service.map(|s| s.id.as_str());
        let mut taken = HashMap::new();
        for svc in state
            .services
            .values()
            .filter(|s| Some(s.id.as_str()) != service_id)
        {
            for p in &svc.ports {
                if let Some(port) = p.published {
                    taken.insert((port, p.protocol), Holder::Service(svc.spec.name.clone()));
                }
            }
        }
        let current = service.map_or(&[][..], |s| s.ports.as_slice());
        PortTable { taken, current }
    }

    fn is_current(&self, port: u16, protocol: Protocol) -> bool {
        self.current
            .iter()
            .any(|c| c.published == Some(port) && c.protocol == protocol)
    }

    /// The numbers the service has now for `p`'s target and protocol, in its order (`None`
    /// for a port an automatic rollback left unassigned).
    fn current(&self, p: &PortConfig) -> impl Iterator<Item = Option<u16>> + 'a {
        let (target, protocol) = (p.target, p.protocol);
        self.current
            .iter()
            .filter(move |c| c.target == target && c.protocol == protocol)
            .map(|c| c.published)
    }

    fn lowest_free(&self, protocol: Protocol) -> Option<u16> {
        (AUTO_PORT_MIN..=AUTO_PORT_MAX).find(|n| !self.taken.contains_key(&(*n, protocol)))
    }

    fn claim(&mut self, port: u16, protocol: Protocol) {
        self.taken.insert((port, protocol), Holder::ThisService);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{ServiceMode, ServiceSpec, TaskTemplate};

    fn ports(text: &[&str]) -> Vec<PortConfig> {
        text.iter()
            .map(|t| PortConfig::parse(t).expect("port"))
            .collect()
    }

    /// A service `name` (its id too) publishing `published`.
    fn service(name: &str, published: &[&str]) -> Service {
        let spec = ServiceSpec {
            endpoint_mode: Default::default(),
            lb: Default::default(),
            lb_local_first: false,
            lb_mode: Default::default(),
            idle_timeout: Default::default(),
            name: name.into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas: 1 },
            task: TaskTemplate::with_command(vec!["true".into()]),
            ports: vec![],
            update: Default::default(),
            rollback: Default::default(),
        };
        Service {
            vip: None,
            id: name.into(),
            version: 1,
            spec,
            previous_spec: None,
            ports: ports(published),
            update_status: None,
            docker_spec: None,
            docker_previous_spec: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn state(services: &[(&str, &[&str])]) -> ClusterState {
        let mut state = ClusterState::default();
        for (name, published) in services {
            state
                .services
                .insert(name.to_string(), service(name, published));
        }
        state
    }

    /// Every port of the auto range taken, for `protocol`, by service `full`.
    fn full_range(protocol: &str) -> ClusterState {
        let mut state = state(&[]);
        let mut svc = service("full", &[]);
        svc.ports = (AUTO_PORT_MIN..=AUTO_PORT_MAX)
            .map(|n| PortConfig::parse(&format!("{n}:80/{protocol}")).expect("port"))
            .collect();
        state.services.insert(svc.id.clone(), svc);
        state
    }

    fn published(out: &[PortConfig]) -> Vec<Option<u16>> {
        out.iter().map(|p| p.published).collect()
    }

    fn taken(port: u16, protocol: Protocol, holder: Holder) -> PortError {
        PortError::Taken {
            port,
            protocol,
            holder,
        }
    }

    #[test]
    fn vips_are_kept_for_life_and_the_lowest_free_one_is_given() {
        use std::net::Ipv4Addr;
        let mut state = state(&[("a", &[]), ("b", &[])]);
        let pool = shoal_api::VipPool::parse("10.9.0.0/24").expect("pool");
        state.cluster = Some(shoal_api::Cluster {
            vip_pool: Some(pool),
            ..test_cluster()
        });
        let first = vip(&state, None).expect("free");
        assert_eq!(
            first,
            Ipv4Addr::new(10, 9, 0, 2),
            "the resolver .1 is never given"
        );
        if let Some(a) = state.services.get_mut("a") {
            a.vip = Some(first);
        }
        let a = state.services["a"].clone();
        assert_eq!(vip(&state, Some(&a)), Ok(first), "a service keeps its VIP");
        assert_eq!(vip(&state, None), Ok(Ipv4Addr::new(10, 9, 0, 3)));
        // One outside the pool (a pool that changed) is replaced.
        if let Some(b) = state.services.get_mut("b") {
            b.vip = Some(Ipv4Addr::new(10, 96, 0, 2));
        }
        let b = state.services["b"].clone();
        assert_eq!(vip(&state, Some(&b)), Ok(Ipv4Addr::new(10, 9, 0, 3)));
        // A full pool says so.
        for (i, v) in pool.vips().enumerate() {
            let mut s = service(&format!("s{i}"), &[]);
            s.vip = Some(v);
            state.services.insert(s.id.clone(), s);
        }
        let err = vip(&state, None).expect_err("full").to_string();
        assert!(
            err.starts_with("no free VIP left in the cluster's pool 10.9.0.0/24"),
            "{err}"
        );
    }

    fn test_cluster() -> shoal_api::Cluster {
        shoal_api::Cluster {
            id: "c".into(),
            ca_cert_pem: String::new(),
            ca_key_pem: String::new(),
            worker_secret: String::new(),
            manager_secret: String::new(),
            heartbeat_period_ms: 1000,
            cert_lifetime_secs: 1,
            managers: vec![],
            created_at: 0,
            clients: vec![],
            autolock_key: None,
            vip_pool: None,
        }
    }

    #[test]
    fn requests() {
        use Protocol::*;
        let web = || Holder::Service("web".into());
        // (what, services, service changed, wanted, busy on the host, expected)
        type Case<'a> = (
            &'a str,
            ClusterState,
            Option<&'a str>,
            &'a [&'a str],
            &'a [(u16, Protocol)],
            Result<Vec<Option<u16>>, PortError>,
        );
        let cases: Vec<Case> = vec![
            (
                "explicit port of another service",
                state(&[("web", &["8080:80"])]),
                None,
                &["8080:81"],
                &[],
                Err(taken(8080, Tcp, web())),
            ),
            (
                "host mode is in the same table as ingress",
                state(&[("web", &["published=8080,target=80,mode=host"])]),
                None,
                &["8080:81"],
                &[],
                Err(taken(8080, Tcp, web())),
            ),
            (
                "host mode against host mode",
                state(&[("web", &["published=8080,target=80,mode=host"])]),
                None,
                &["published=8080,target=81,mode=host"],
                &[],
                Err(taken(8080, Tcp, web())),
            ),
            (
                "tcp and udp are separate",
                state(&[("web", &["8080:80", "30000:80"])]),
                None,
                &["8080:80/udp", "80/udp"],
                &[],
                Ok(vec![Some(8080), Some(30000)]),
            ),
            (
                "auto-assignment skips taken ports",
                state(&[("web", &["30000:80", "30001:80"])]),
                None,
                &["80", "81"],
                &[],
                Ok(vec![Some(30002), Some(30003)]),
            ),
            (
                "an update keeps the service's own explicit port",
                state(&[("web", &["8080:80"]), ("api", &["8081:80"])]),
                Some("web"),
                &["8080:80"],
                &[],
                Ok(vec![Some(8080)]),
            ),
            (
                "an update keeps the auto-assigned port of the same target",
                state(&[("web", &["30005:80", "30000:81"])]),
                Some("web"),
                &["81", "80"],
                &[],
                Ok(vec![Some(30000), Some(30005)]),
            ),
            (
                "a port the service has without a number gets one",
                state(&[("web", &["80"])]),
                Some("web"),
                &["80"],
                &[],
                Ok(vec![Some(30000)]),
            ),
            (
                "a new target gets a new port",
                state(&[("web", &["30000:80"])]),
                Some("web"),
                &["80", "81"],
                &[],
                Ok(vec![Some(30000), Some(30001)]),
            ),
            (
                "busy on the host",
                state(&[]),
                None,
                &["8080:80"],
                &[(8080, Tcp)],
                Err(taken(8080, Tcp, Holder::Host)),
            ),
            (
                "busy on the host because the service publishes it",
                state(&[("web", &["8080:80"])]),
                Some("web"),
                &["8080:80"],
                &[(8080, Tcp)],
                Ok(vec![Some(8080)]),
            ),
            (
                "another service's port is named as such, not as the host's",
                state(&[("web", &["8080:80"])]),
                None,
                &["8080:80"],
                &[(8080, Tcp)],
                Err(taken(8080, Tcp, web())),
            ),
            (
                "the first refused port is the one reported",
                state(&[("web", &["8081:80"])]),
                None,
                &["8080:80", "8081:80"],
                &[(8080, Tcp)],
                Err(taken(8080, Tcp, Holder::Host)),
            ),
            (
                "an auto-assigned port leaves a number the request names to it",
                state(&[]),
                None,
                &["80", "30000:81"],
                &[],
                Ok(vec![Some(30001), Some(30000)]),
            ),
            (
                "an update moves an auto port off a number the request now names",
                state(&[("web", &["30000:80"])]),
                Some("web"),
                &["80", "30000:81"],
                &[],
                Ok(vec![Some(30001), Some(30000)]),
            ),
            (
                "a port named twice",
                state(&[]),
                None,
                &["8080:80", "8080:81"],
                &[],
                Err(taken(8080, Tcp, Holder::ThisService)),
            ),
            (
                "exhausted range",
                full_range("tcp"),
                None,
                &["80"],
                &[],
                Err(PortError::Exhausted { protocol: Tcp }),
            ),
            (
                "the other protocol's range is still free",
                full_range("tcp"),
                None,
                &["80/udp"],
                &[],
                Ok(vec![Some(AUTO_PORT_MIN)]),
            ),
        ];
        for (what, state, id, wanted, busy, expected) in cases {
            let service = id.and_then(|id| state.services.get(id));
            let out = published_ports(&state, service, &ports(wanted), busy);
            assert_eq!(out.map(|o| published(&o)), expected, "{what}");
        }
    }

    #[test]
    fn rollbacks() {
        // (what, services, wanted, expected); the service rolled back is `web`.
        type Case<'a> = (&'a str, ClusterState, &'a [&'a str], Vec<Option<u16>>);
        let cases: Vec<Case> = vec![
            (
                "explicit ports as written, even if another service took them",
                state(&[("web", &[]), ("api", &["8080:80"])]),
                &["8080:80"],
                vec![Some(8080)],
            ),
            (
                "the auto-assigned port of the same target is kept",
                state(&[("web", &["30007:80"])]),
                &["80"],
                vec![Some(30007)],
            ),
            (
                "a kept port another service took is given up",
                state(&[("web", &["30007:80"]), ("api", &["30007:81"])]),
                &["80"],
                vec![Some(30000)],
            ),
            (
                "explicit ports win over auto-assigned ones of the same spec",
                state(&[("web", &["30000:80"])]),
                &["80", "30000:81"],
                vec![Some(30001), Some(30000)],
            ),
            (
                "auto-assignment skips taken ports",
                state(&[("web", &[]), ("api", &["30000:80"])]),
                &["80", "81"],
                vec![Some(30001), Some(30002)],
            ),
        ];
        for (what, state, wanted, expected) in cases {
            let web = state.services.get("web").expect("web");
            let out = rollback_ports(&state, web, &ports(wanted));
            assert_eq!(published(&out), expected, "{what}");
        }
    }

    #[test]
    fn rollback_leaves_a_port_unassigned_when_the_range_is_exhausted() {
        let mut state = full_range("tcp");
        let web = service("web", &["8080:81"]);
        state.services.insert("web".into(), web.clone());
        let out = rollback_ports(&state, &web, &ports(&["80", "8080:81"]));
        assert_eq!(published(&out), vec![None, Some(8080)]);
    }

    #[test]
    fn errors_name_the_port_and_its_holder() {
        let cases = [
            (
                taken(8080, Protocol::Tcp, Holder::Service("web".into())),
                "port 8080/tcp is already published by service web",
            ),
            (
                taken(8080, Protocol::Tcp, Holder::ThisService),
                "port 8080/tcp is already named by another --publish of this service",
            ),
            (
                taken(53, Protocol::Udp, Holder::Host),
                "port 53/udp is already in use on this node by another program",
            ),
            (
                PortError::Exhausted {
                    protocol: Protocol::Tcp,
                },
                "no free port left in 30000-32767 to publish on",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
        }
    }
}
