//! Raft benchmarks on one machine: three replicas of the store, each with its own redb log
//! and state, talking gRPC over mTLS on loopback exactly as managers do. Ignored by
//! default; `bench/raft` runs them in release mode and writes docs/benchmarks.md.
//!
//! - throughput: writers commit batches of task-status updates (the dispatcher applies
//!   each agent's report batch as one write); figures are committed updates per second and
//!   the commit latency of each write.
//! - snapshot: a state of 100,000 tasks; a fourth replica joins and receives it as a
//!   snapshot in chunks; figures are the time until it has applied the leader's state, and
//!   the snapshot's size.

use shoal_api::{Task, TaskState, TaskStatus, TaskTemplate};
use shoal_manager::ca;
use shoal_node::raft_net::{self, GrpcTransport};
use shoal_rpc::pki::{self, CertRole};
use shoal_rpc::tls;
use shoal_store::raft::{Change, Replica, ReplicaConfig, Timing};
use shoal_store::{Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

struct Member {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    replica: Arc<Replica>,
    name: String,
    _stop: watch::Sender<bool>,
}

async fn member(cluster: &shoal_api::Cluster, name: &str, timing: Timing) -> Member {
    let dir = tempfile::tempdir().expect("tempdir");
    // Sealed at rest with a data key of its own, as a daemon's store is.
    let sealer = shoal_store::Sealer::new(&shoal_store::Sealer::new_key().expect("data key"))
        .expect("sealer");
    let store =
        Arc::new(Store::open_with(&dir.path().join("state.redb"), Some(sealer)).expect("store"));
    let key = pki::new_node_key().expect("key");
    let cert = ca::issue(cluster, &key.csr_pem, name, CertRole::Manager, &[]).expect("cert");
    let server = tls::server_config(&cluster.ca_cert_pem, &cert, &key.key_pem).expect("tls");
    let client = tls::client_config(&cluster.ca_cert_pem, Some((&cert, &key.key_pem)), &[b"h2"])
        .expect("tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop, stop_rx) = watch::channel(false);
    let app = tonic::service::Routes::new(raft_net::server(store.clone())).into_axum_router();
    tokio::spawn(shoal_rpc::server::serve(
        listener,
        watch::channel(server).1,
        app,
        stop_rx,
    ));
    let replica = Replica::start(
        ReplicaConfig {
            node: name.into(),
            addr,
            dir: dir.path().join("raft"),
            timing,
        },
        store.clone(),
        Arc::new(GrpcTransport::new(watch::channel(client).1)),
    )
    .await
    .expect("replica");
    Member {
        dir,
        store,
        replica,
        name: name.into(),
        _stop: stop,
    }
}

async fn group(n: usize, timing: Timing) -> (shoal_api::Cluster, Vec<Member>) {
    let cluster = ca::new_cluster(1000, Duration::from_secs(3600), "127.0.0.1:1").expect("ca");
    let mut members = Vec::new();
    for i in 0..n {
        members.push(member(&cluster, &format!("m{i}"), timing.clone()).await);
    }
    members[0].replica.bootstrap().await.expect("bootstrap");
    wait(|| members[0].replica.is_leader(), "leader").await;
    for m in &members[1..] {
        let p = m.replica.me().clone();
        members[0]
            .replica
            .add_learner(&p.node, &p.addr)
            .await
            .expect("learner");
    }
    let others: Vec<String> = members[1..].iter().map(|m| m.name.clone()).collect();
    members[0]
        .replica
        .change(Change::Promote(others))
        .await
        .expect("promote");
    (cluster, members)
}

async fn wait(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn task(i: usize) -> Task {
    Task {
        id: format!("task{i:07}"),
        service_id: "svc".into(),
        service_name: "web".into(),
        slot: i as u64 + 1,
        node_id: Some(format!("node{}", i % 100)),
        spec_version: 1,
        spec: TaskTemplate::with_command(vec!["shoal".into(), "whoami".into()]),
        ports: vec![],
        desired_state: TaskState::Running,
        status: TaskStatus::new(TaskState::Assigned, 0, "assigned"),
        endpoint: None,
        created_at: 0,
        attempt: 0,
        quick_exits: 0,
        pending_reason: None,
    }
}

async fn fill(store: &Store, n: usize) {
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(5000) {
        store
            .update(|tx| {
                for i in chunk {
                    tx.put(task(*i));
                }
                Ok::<_, StoreError>(())
            })
            .await
            .expect("fill");
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/raft"]
async fn bench_task_status_throughput() {
    let (_c, members) = group(3, Timing::default()).await;
    let leader = members[0].store.clone();
    const TASKS: usize = 2000;
    fill(&leader, TASKS).await;
    let batch = env("BATCH", 100);
    let writers = env("WRITERS", 4);
    let secs = env("SECS", 10) as u64;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = leader.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut updates = 0usize;
            let mut round = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let first = (w * 997 + round * batch) % TASKS;
                store
                    .update(|tx| {
                        for k in 0..batch {
                            let id = format!("task{:07}", (first + k) % TASKS);
                            if let Some(mut t) = tx.state().tasks.get(&id).cloned() {
                                t.status.timestamp += 1;
                                t.status.message = format!("beat {round}");
                                tx.put(t);
                            }
                        }
                        Ok::<_, StoreError>(())
                    })
                    .await
                    .expect("write");
                lat.push(t0.elapsed());
                updates += batch;
                round += 1;
            }
            (updates, lat)
        }));
    }
    let mut updates = 0;
    let mut lat = Vec::new();
    for h in handles {
        let (u, l) = h.await.expect("writer");
        updates += u;
        lat.extend(l);
    }
    let elapsed = started.elapsed();
    lat.sort();
    // Followers apply the same state.
    let want = leader.state().tasks.clone();
    wait(
        || members[1..].iter().all(|m| m.store.state().tasks == want),
        "followers",
    )
    .await;
    println!(
        "RESULT throughput updates_per_s={:.0} writes={} batch={} writers={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} secs={:.1}",
        updates as f64 / elapsed.as_secs_f64(),
        lat.len(),
        batch,
        writers,
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/raft"]
async fn bench_snapshot_install_100k_tasks() {
    // Snapshot often and keep no log behind it, so a joining replica must take the snapshot.
    let timing = Timing {
        snapshot_every: 10,
        logs_kept: 0,
        ..Timing::default()
    };
    let (cluster, members) = group(3, timing.clone()).await;
    let n = env("TASKS", 100_000);
    fill(&members[0].store, n).await;
    // Let the leader take a snapshot of the full state.
    let leader = &members[0].replica;
    wait(
        || leader.status().snapshot + 10 >= leader.status().last_log,
        "snapshot",
    )
    .await;
    let snap_bytes = std::fs::metadata(members[0].dir.path().join("raft/snapshot.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    let joiner = member(&cluster, "m3", timing).await;
    let t0 = Instant::now();
    let p = joiner.replica.me().clone();
    leader.add_learner(&p.node, &p.addr).await.expect("learner");
    let target = members[0].store.state().version;
    wait(
        || joiner.store.state().version >= target,
        "snapshot install",
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(joiner.store.state().tasks.len(), n);
    println!(
        "RESULT snapshot tasks={n} bytes={snap_bytes} install_s={:.2} chunk_bytes={}",
        took.as_secs_f64(),
        Timing::default().snapshot_chunk
    );
}
