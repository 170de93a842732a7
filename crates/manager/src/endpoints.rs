//! Builds the data plane's snapshot of the services from cluster state; the routing mesh's
//! endpoint table is its ingress view.

use shoal_api::{ClusterState, Service, Task, TaskState};
use shoal_balance::snapshot::{EndpointState, ServiceEndpoint, ServiceEntry};
use shoal_balance::{DataPlaneSnapshot, EndpointTable};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Every service with its published ports and the ready tasks behind it, at
/// `state.version`, in one pass over the tasks.
///
/// Only ready tasks appear (running, wanted, healthy if checked): a task whose desired state
/// moved past running has already left the snapshot, which is what lets the agent wait for
/// the data plane to acknowledge before it signals the task.
pub fn snapshot(state: &ClusterState) -> DataPlaneSnapshot {
    let mut ready: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values().filter(|t| t.is_ready()) {
        ready.entry(t.service_id.as_str()).or_default().push(t);
    }
    let services = state
        .services
        .values()
        .map(|service| {
            let tasks = ready.get(service.id.as_str()).into_iter().flatten();
            entry(service, tasks.map(|t| (*t, EndpointState::Ready)))
        })
        .collect();
    DataPlaneSnapshot {
        version: state.version,
        services,
        vip_pool: state.cluster.as_ref().map(|c| c.vip_pool()),
    }
}

/// One service as an external proxy follows it: its ready tasks, and its terminating ones
/// (still running, on their way out: connections open to them may finish, no new one
/// should go there).
pub fn watched(state: &ClusterState, service: &Service) -> ServiceEntry {
    let tasks = state.tasks_of(&service.id).filter_map(|t| {
        if t.is_ready() {
            Some((t, EndpointState::Ready))
        } else if t.status.state == TaskState::Running && t.desired_state != TaskState::Running {
            Some((t, EndpointState::Terminating))
        } else {
            None
        }
    });
    entry(service, tasks)
}

fn entry<'a>(
    service: &Service,
    tasks: impl Iterator<Item = (&'a Task, EndpointState)>,
) -> ServiceEntry {
    let mut endpoints: Vec<ServiceEndpoint> = tasks
        .filter_map(|(t, state)| {
            let ep = t.endpoint.as_ref()?;
            let addr: IpAddr = ep.addr.parse().ok()?;
            Some(ServiceEndpoint {
                task_id: t.id.clone(),
                addr,
                ports: ep.ports.clone(),
                state,
                weight: t
                    .spec
                    .lb_weight
                    .unwrap_or(shoal_api::service::DEFAULT_WEIGHT),
                node_id: t.node_id.clone().unwrap_or_default(),
            })
        })
        .collect();
    endpoints.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    let mut aliases: Vec<String> = service
        .spec
        .task
        .networks
        .iter()
        .flat_map(|n| n.aliases.iter().cloned())
        .filter(|a| *a != service.spec.name)
        .collect();
    aliases.sort();
    aliases.dedup();
    ServiceEntry {
        id: service.id.clone(),
        name: service.spec.name.clone(),
        aliases,
        vip: service.vip.map(IpAddr::V4),
        endpoint_mode: service.spec.endpoint_mode,
        policy: service.spec.lb,
        lb_mode: service.spec.lb_mode,
        local_first: service.spec.lb_local_first,
        idle_timeout_ms: duration_ms(service.spec.idle_timeout),
        // Every port: the VIP serves each target; the mesh only those published.
        ports: service.ports.clone(),
        endpoints,
    }
}

fn duration_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A snapshot and the mesh's table derived from it, shared by every session.
#[derive(Debug, Clone)]
pub struct Built {
    pub snapshot: Arc<DataPlaneSnapshot>,
    pub ingress: Arc<EndpointTable>,
}

/// The snapshot of the newest store version asked for, built once however many sessions
/// ask (each used to build its own, for every change).
#[derive(Debug, Default)]
pub struct SnapshotCache {
    newest: Mutex<Option<Built>>,
}

impl SnapshotCache {
    /// The snapshot of exactly `state`: the one built for its version, or built now (and
    /// kept, unless a newer one is).
    pub fn get(&self, state: &ClusterState) -> Built {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = newest.as_ref() {
            if b.snapshot.version == state.version {
                return b.clone();
            }
        }
        let snapshot = snapshot(state);
        let built = Built {
            ingress: Arc::new(snapshot.ingress()),
            snapshot: Arc::new(snapshot),
        };
        if newest
            .as_ref()
            .is_none_or(|b| b.snapshot.version < state.version)
        {
            *newest = Some(built.clone());
        }
        built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::task::EndpointPort;
    use shoal_api::{
        Health, PortConfig, Protocol, PublishMode, Service, ServiceMode, ServiceSpec, TaskEndpoint,
        TaskState, TaskStatus, TaskTemplate,
    };
    use shoal_balance::{Endpoint, PortKey};
    use std::net::SocketAddr;

    fn port(published: Option<u16>, target: u16, mode: PublishMode) -> PortConfig {
        PortConfig {
            published,
            target,
            protocol: Protocol::Tcp,
            mode,
            proxy_protocol: None,
        }
    }

    fn service(id: &str, ports: Vec<PortConfig>) -> Service {
        Service {
            vip: None,
            id: id.into(),
            version: 1,
            spec: ServiceSpec {
                endpoint_mode: Default::default(),
                lb: Default::default(),
                lb_local_first: false,
                lb_mode: Default::default(),
                idle_timeout: Default::default(),
                name: format!("{id}-name"),
                labels: Default::default(),
                mode: ServiceMode::Replicated { replicas: 3 },
                task: TaskTemplate::default(),
                ports: vec![],
                update: Default::default(),
                rollback: Default::default(),
            },
            previous_spec: None,
            update_status: None,
            docker_spec: None,
            docker_previous_spec: None,
            ports,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn task(id: &str, service: &str, host_port: u16) -> Task {
        Task {
            id: id.into(),
            service_id: service.into(),
            service_name: format!("{service}-name"),
            slot: 1,
            node_id: Some("n1".into()),
            spec_version: 1,
            spec: TaskTemplate::default(),
            ports: vec![],
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Running, 1, ""),
            endpoint: Some(TaskEndpoint {
                addr: "10.0.0.2".into(),
                ports: vec![EndpointPort {
                    target: 80,
                    host_port,
                    protocol: Protocol::Tcp,
                }],
            }),
            created_at: 1,
            attempt: 0,
            quick_exits: 0,
            pending_reason: None,
        }
    }

    #[test]
    fn only_ready_tasks_of_ingress_ports_reach_the_mesh() {
        let mut state = ClusterState {
            version: 9,
            ..ClusterState::default()
        };
        let published = vec![
            port(Some(8080), 80, PublishMode::Ingress),
            port(None, 81, PublishMode::Ingress),
            port(Some(9090), 80, PublishMode::Host),
        ];
        state.services.insert("s1".into(), service("s1", published));
        state.services.insert("s2".into(), service("s2", vec![]));
        let mut unhealthy = task("t2", "s1", 30002);
        unhealthy.status.health = Some(Health::Unhealthy);
        let mut stopping = task("t3", "s1", 30003);
        stopping.desired_state = TaskState::Shutdown;
        let mut no_endpoint = task("t4", "s1", 30004);
        no_endpoint.endpoint = None;
        for t in [
            task("t5", "s1", 30005),
            task("t1", "s1", 30001),
            unhealthy,
            stopping,
            no_endpoint,
            task("u1", "s2", 30010),
        ] {
            state.tasks.insert(t.id.clone(), t);
        }

        let snap = snapshot(&state);
        assert_eq!(snap.version, 9);
        let ids: Vec<&str> = snap.services.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2"]);
        let s1 = &snap.services[0];
        assert_eq!(s1.name, "s1-name");
        // Every port is in the entry (the VIP serves each target); the mesh's view below
        // leaves out the port not assigned yet and the host-mode one.
        assert_eq!(s1.ports.len(), 3);
        let ready: Vec<&str> = s1.endpoints.iter().map(|e| e.task_id.as_str()).collect();
        assert_eq!(ready, ["t1", "t5"]);

        // The watched view adds the terminating task (desired shutdown, still running).
        let watched = watched(&state, &state.services["s1"]);
        let states: Vec<(&str, EndpointState)> = watched
            .endpoints
            .iter()
            .map(|e| (e.task_id.as_str(), e.state))
            .collect();
        assert_eq!(
            states,
            [
                ("t1", EndpointState::Ready),
                ("t3", EndpointState::Terminating),
                ("t5", EndpointState::Ready)
            ]
        );

        let table = snapshot(&state).ingress();
        assert_eq!(table.version, 9);
        assert_eq!(table.ports.len(), 1, "one ingress port: {table:?}");
        let set = &table.ports[&PortKey {
            port: 8080,
            protocol: Protocol::Tcp,
        }];
        assert_eq!(set.service_id, "s1");
        assert_eq!(set.service_name, "s1-name");
        let ip: IpAddr = "10.0.0.2".parse().expect("ip");
        let cache = SnapshotCache::default();
        let once = cache.get(&state);
        assert!(
            Arc::ptr_eq(&once.ingress, &cache.get(&state).ingress),
            "built once"
        );
        assert_eq!(*once.ingress, table);
        let older = ClusterState {
            version: 8,
            ..state.clone()
        };
        assert_eq!(
            cache.get(&older).ingress.version,
            8,
            "exactly the state asked"
        );
        assert!(
            Arc::ptr_eq(&once.ingress, &cache.get(&state).ingress),
            "newest kept"
        );
        assert_eq!(
            set.endpoints,
            vec![
                Endpoint {
                    task_id: "t1".into(),
                    addr: SocketAddr::new(ip, 30001),
                    weight: shoal_api::service::DEFAULT_WEIGHT,
                },
                Endpoint {
                    task_id: "t5".into(),
                    addr: SocketAddr::new(ip, 30005),
                    weight: shoal_api::service::DEFAULT_WEIGHT,
                },
            ]
        );
    }
}
