//! A node's data plane: everything that routes requests by the cluster's endpoints: the
//! routing mesh, the service VIPs, the kernel's NAT rules for services forwarded by it
//! (`--lb-mode nat`) and the DNS server, each a [`Member`].
//!
//! Each snapshot the node's session delivers is applied to every member, and the data plane
//! acknowledges the *lowest* version its members route by: the manager lets a task stop
//! only once every node acknowledged a table without it, so drain-before-stop covers every
//! path a request can take into the node. Manager and worker roles both build theirs with
//! [`DataPlane::start`].
//!
//! The data plane runs on threads of its own ([`DataPlaneThreads`]), apart from the
//! control plane's runtime: one thread by default, so a request's reads, writes and
//! wake-ups stay on one core with no hand-over between threads.

use shoal_api::NodeRole;
use shoal_balance::DataPlaneSnapshot;
use shoal_mesh::Mesh;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the health endpoint reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPlaneStatus {
    pub role: Option<NodeRole>,
    /// Endpoint-table version the data plane routes by (0: none yet).
    pub table_version: u64,
    /// Published TCP ports listened on.
    pub published_ports: Vec<u16>,
    /// Published UDP ports received on.
    pub published_udp_ports: Vec<u16>,
}

/// One part of the data plane.
pub trait Member: Send + Sync {
    fn name(&self) -> &'static str;
    /// Route by `snapshot` from now on. Returns what could not be set up; the member still
    /// routes by the rest, and still acknowledges the snapshot.
    fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>>;
    /// The version of the snapshot the member routes by.
    fn acked(&self) -> watch::Receiver<u64>;
    /// Add what the member has to say to the node's status.
    fn status(&self, _status: &mut DataPlaneStatus) {}
}

impl Member for Mesh {
    fn name(&self) -> &'static str {
        "routing mesh"
    }

    fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            Mesh::apply(self, Arc::new(snapshot.ingress()))
                .await
                .into_iter()
                .map(|e| e.to_string())
                .collect()
        })
    }

    fn acked(&self) -> watch::Receiver<u64> {
        Mesh::acked(self)
    }

    fn status(&self, status: &mut DataPlaneStatus) {
        status.published_ports = self.listening();
        status.published_udp_ports = self.listening_udp();
    }
}

/// The threads the data plane runs on: its listeners, connections, flows and DNS
/// answers, apart from the control plane's runtime.
///
/// One thread (the default) runs a single-threaded runtime: every connection's reads,
/// writes and wake-ups stay on that thread, with no work stealing and no waking of parked
/// workers between them. More threads run a multi-threaded runtime of that many workers,
/// for more than one core's worth of traffic.
pub struct DataPlaneThreads {
    handle: tokio::runtime::Handle,
    /// A multi-threaded runtime, shut down when this is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Ends the single thread's runtime when this is dropped.
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for DataPlaneThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlaneThreads").finish_non_exhaustive()
    }
}

/// The threads' name, as `top -H` and `/proc/PID/task/*/comm` show it.
const THREAD_NAME: &str = "shoal-data";

impl DataPlaneThreads {
    /// Starts `threads` threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<DataPlaneThreads> {
        if threads > 1 {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(THREAD_NAME)
                .enable_all()
                .build()?;
            return Ok(DataPlaneThreads {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                _stop: None,
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                // Runs the spawned tasks until the sender is dropped; the runtime and every
                // task still on it are dropped on this thread.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(DataPlaneThreads {
            handle,
            runtime: None,
            _stop: Some(stop),
        })
    }

    /// Where data-plane tasks are spawned.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for DataPlaneThreads {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Not waiting: the drop may happen on an async thread, where blocking is refused.
            rt.shutdown_background();
        }
    }
}

/// The members of a node's data plane, fed together, acknowledged together.
pub struct DataPlane {
    members: Vec<Arc<dyn Member>>,
    /// Where the members run (their listeners, connections and servers are spawned by
    /// `apply`, which runs there).
    threads: tokio::runtime::Handle,
    /// The DNS resolver address tasks are given, once the node's DNS server answers.
    resolver: watch::Receiver<Option<std::net::IpAddr>>,
    acked: watch::Receiver<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|m| m.name()).collect();
        f.debug_struct("DataPlane")
            .field("members", &names)
            .finish()
    }
}

impl DataPlane {
    /// The data plane of `members`, acknowledging the lowest version among them.
    pub fn new(members: Vec<Arc<dyn Member>>) -> DataPlane {
        let (acked_tx, acked) = watch::channel(lowest(&members));
        let changed = Arc::new(Notify::new());
        let mut tasks: Vec<JoinHandle<()>> = members
            .iter()
            .map(|m| {
                let mut rx = m.acked();
                let changed = changed.clone();
                tokio::spawn(async move {
                    while rx.changed().await.is_ok() {
                        changed.notify_one();
                    }
                })
            })
            .collect();
        let all = members.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                changed.notified().await;
                let low = lowest(&all);
                acked_tx.send_if_modified(|v| std::mem::replace(v, low) != low);
                if acked_tx.is_closed() {
                    return;
                }
            }
        }));
        DataPlane {
            members,
            threads: tokio::runtime::Handle::current(),
            resolver: watch::channel(None).1,
            acked,
            tasks,
        }
    }

    /// The standard data plane of node `node_id`: its routing mesh, and — unless
    /// `vip_interface` is `None` — its service VIPs on that interface, its NAT rules for
    /// services forwarded by the kernel, and its DNS server (forwarding to
    /// `dns_upstreams`, or the host's resolvers); all of them run on `threads`.
    pub fn start(
        threads: &tokio::runtime::Handle,
        node_id: &str,
        mesh: Mesh,
        caps: shoal_mesh::ConnectionCaps,
        vip_interface: Option<&str>,
        dns_upstreams: Option<Vec<std::net::SocketAddr>>,
    ) -> DataPlane {
        let mut members: Vec<Arc<dyn Member>> = vec![Arc::new(mesh)];
        let Some(iface) = vip_interface else {
            return DataPlane::new(members).on(threads);
        };
        // VIPs before DNS: the VIP member puts the resolver address on the interface.
        members.push(Arc::new(crate::vips::Vips::new(iface, caps)));
        members.push(Arc::new(crate::nat::Nat::new(node_id)));
        let dns = Arc::new(crate::dns::Dns::new(dns_upstreams));
        let resolver = dns.resolver();
        members.push(dns);
        let mut plane = DataPlane::new(members).on(threads);
        plane.resolver = resolver;
        plane
    }

    /// Runs the members on `threads` instead of the caller's runtime.
    fn on(mut self, threads: &tokio::runtime::Handle) -> DataPlane {
        self.threads = threads.clone();
        self
    }

    /// The address of the node's DNS server, once it answers (`None` without one).
    pub fn resolver(&self) -> watch::Receiver<Option<std::net::IpAddr>> {
        self.resolver.clone()
    }

    /// The lowest table version every member routes by.
    pub fn acked(&self) -> watch::Receiver<u64> {
        self.acked.clone()
    }

    /// Apply every snapshot `snapshots` yields to every member (from the first with a
    /// version), and publish the node's status, until `stop` turns true: checked between
    /// snapshots, never in the middle of one, so a data plane handed to the next role set
    /// has every member at the snapshot it last acknowledged.
    ///
    /// Each snapshot is routed by as node `node_id` sees it
    /// ([`DataPlaneSnapshot::for_node`]: services that prefer local tasks keep to this
    /// node's while it has one ready).
    pub fn feed(
        &self,
        mut tables: watch::Receiver<Arc<DataPlaneSnapshot>>,
        status: watch::Sender<DataPlaneStatus>,
        role: NodeRole,
        node_id: String,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let members = self.members.clone();
        let acked = self.acked.clone();
        // Applied on the data plane's threads: what `apply` spawns runs there.
        self.threads.spawn(async move {
            loop {
                if *stop.borrow_and_update() {
                    return;
                }
                let table = tables.borrow_and_update().clone();
                // Version 0 is a session's placeholder before its first snapshot: the members
                // go on routing by what they have (a data plane kept from the role set
                // before), and the status says so.
                let version = if table.version == 0 {
                    *acked.borrow()
                } else {
                    let table = if table.has_local_first() {
                        Arc::new(table.for_node(&node_id))
                    } else {
                        table
                    };
                    for m in &members {
                        for e in m.apply(table.clone()).await {
                            tracing::error!(member = m.name(), error = %e, "data plane");
                        }
                    }
                    table.version
                };
                let mut now = DataPlaneStatus {
                    role: Some(role),
                    table_version: version,
                    ..DataPlaneStatus::default()
                };
                for m in &members {
                    m.status(&mut now);
                }
                status.send_replace(now);
                tokio::select! {
                    changed = tables.changed() => if changed.is_err() { return },
                    stopping = stop.changed() => if stopping.is_err() { return },
                }
            }
        })
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lowest(members: &[Arc<dyn Member>]) -> u64 {
    members
        .iter()
        .map(|m| *m.acked().borrow())
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A member that acknowledges what the test says.
    struct Fake {
        acked: watch::Sender<u64>,
        applied: std::sync::Mutex<Vec<u64>>,
        /// The thread each apply ran on.
        threads: std::sync::Mutex<Vec<Option<String>>>,
    }

    impl Member for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn apply(&self, table: Arc<DataPlaneSnapshot>) -> BoxFuture<'_, Vec<String>> {
            self.applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(table.version);
            self.threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(std::thread::current().name().map(str::to_owned));
            Box::pin(async { Vec::new() })
        }
        fn acked(&self) -> watch::Receiver<u64> {
            self.acked.subscribe()
        }
    }

    fn applied(m: &Fake) -> Vec<u64> {
        m.applied.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn table(version: u64) -> Arc<DataPlaneSnapshot> {
        Arc::new(DataPlaneSnapshot {
            version,
            ..DataPlaneSnapshot::default()
        })
    }

    fn fake() -> Arc<Fake> {
        Arc::new(Fake {
            acked: watch::channel(0).0,
            applied: Default::default(),
            threads: Default::default(),
        })
    }

    /// Waits until the node's status says it routes by table `version`.
    async fn routes_by(status: &mut watch::Receiver<DataPlaneStatus>, version: u64) {
        tokio::time::timeout(
            Duration::from_secs(10),
            status.wait_for(|s| s.table_version == version),
        )
        .await
        .expect("in time")
        .expect("open");
    }

    async fn becomes(rx: &mut watch::Receiver<u64>, want: u64) {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v == want))
            .await
            .expect("in time")
            .expect("open");
    }

    #[tokio::test]
    async fn the_node_acknowledges_the_lowest_version_of_its_members() {
        let (a, b) = (fake(), fake());
        let plane = DataPlane::new(vec![a.clone(), b.clone()]);
        let mut acked = plane.acked();
        a.acked.send_replace(5);
        b.acked.send_replace(3);
        becomes(&mut acked, 3).await;
        b.acked.send_replace(7);
        becomes(&mut acked, 5).await;
        a.acked.send_replace(9);
        becomes(&mut acked, 7).await;
    }

    #[tokio::test]
    async fn every_snapshot_reaches_every_member() {
        let (a, b) = (fake(), fake());
        let plane = DataPlane::new(vec![a.clone(), b.clone()]);
        let (tables, tables_rx) = watch::channel(table(1));
        let (status, mut status_rx) = watch::channel(DataPlaneStatus::default());
        let (_stop, stop) = watch::channel(false);
        let _feed = plane.feed(tables_rx, status, NodeRole::Worker, "n1".into(), stop);
        routes_by(&mut status_rx, 1).await;
        tables.send_replace(table(2));
        routes_by(&mut status_rx, 2).await;
        for m in [&a, &b] {
            assert_eq!(applied(m), [1, 2]);
        }
        assert_eq!(status_rx.borrow().role, Some(NodeRole::Worker));
    }

    /// A data plane handed from one role set's session to the next: the first feed stops
    /// between snapshots; the next session's placeholder (version 0) leaves the members as
    /// they are, with the status at what they acknowledged and the new role; its first
    /// snapshot is applied.
    #[tokio::test]
    async fn a_kept_data_plane_routes_on_until_the_next_session_has_a_snapshot() {
        let a = fake();
        let plane = DataPlane::new(vec![a.clone()]);
        let (status, mut status_rx) = watch::channel(DataPlaneStatus::default());
        let (first_tables, tables_rx) = watch::channel(table(1));
        let (stop, stop_rx) = watch::channel(false);
        let first = plane.feed(
            tables_rx,
            status.clone(),
            NodeRole::Worker,
            "n1".into(),
            stop_rx,
        );
        routes_by(&mut status_rx, 1).await;
        a.acked.send_replace(1);
        becomes(&mut plane.acked(), 1).await;
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), first)
            .await
            .expect("the first feed stops")
            .expect("and does not panic");
        // No longer fed from the first session.
        first_tables.send_replace(table(2));

        let (next_tables, tables_rx) = watch::channel(table(0));
        let (_stop, stop_rx) = watch::channel(false);
        let _next = plane.feed(tables_rx, status, NodeRole::Manager, "n1".into(), stop_rx);
        tokio::time::timeout(
            Duration::from_secs(10),
            status_rx.wait_for(|s| s.role == Some(NodeRole::Manager)),
        )
        .await
        .expect("in time")
        .expect("open");
        assert_eq!(status_rx.borrow().table_version, 1);
        assert_eq!(applied(&a), [1]);
        next_tables.send_replace(table(3));
        routes_by(&mut status_rx, 3).await;
        assert_eq!(applied(&a), [1, 3]);
    }

    /// Members apply snapshots on the data plane's own threads (one thread, or a runtime of
    /// several), and the threads go away when dropped from async code.
    #[tokio::test]
    async fn members_run_on_the_data_plane_threads() {
        for n in [1, 2] {
            let threads = DataPlaneThreads::start(n).expect("threads");
            let a = fake();
            let plane = DataPlane::new(vec![a.clone()]).on(threads.handle());
            let (_tables, tables_rx) = watch::channel(table(1));
            let (status, mut status_rx) = watch::channel(DataPlaneStatus::default());
            let (_stop, stop) = watch::channel(false);
            let _feed = plane.feed(tables_rx, status, NodeRole::Worker, "n1".into(), stop);
            routes_by(&mut status_rx, 1).await;
            let on = a.threads.lock().unwrap_or_else(|p| p.into_inner()).clone();
            assert_eq!(on, vec![Some(THREAD_NAME.to_owned())], "{n} thread(s)");
            drop(plane);
            drop(threads);
        }
    }
}
