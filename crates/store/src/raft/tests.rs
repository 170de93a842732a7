//! Replicas in one process over an in-memory transport that can cut nodes off.

use super::*;
use shoal_api::{Node, NodeRole};
use std::collections::HashSet;
use std::sync::Weak;

#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<String, Weak<Replica>>>,
    /// Addresses cut off from everyone.
    cut: Mutex<HashSet<String>>,
}

struct Link {
    net: Arc<Net>,
    from: String,
}

impl Transport for Link {
    fn call(&self, addr: &str, rpc: Rpc, body: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let net = self.net.clone();
        let from = self.from.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            let blocked = {
                let cut = net.cut.lock().unwrap_or_else(|p| p.into_inner());
                cut.contains(&from) || cut.contains(&addr)
            };
            let target = net
                .nodes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&addr)
                .and_then(Weak::upgrade);
            match target {
                Some(r) if !blocked => r.handle(&from, rpc, &body).await,
                _ => Err(format!("{addr} unreachable")),
            }
        })
    }
}

struct Member {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    replica: Arc<Replica>,
}

async fn member(net: &Arc<Net>, name: &str) -> Member {
    let dir = tempfile::tempdir().expect("tempdir");
    // Sealed at rest, as a daemon's store is: log entries and snapshots go through it.
    let sealer = crate::Sealer::new(&crate::Sealer::new_key().expect("data key")).expect("sealer");
    let store =
        Arc::new(Store::open_with(&dir.path().join("state.redb"), Some(sealer)).expect("store"));
    let replica = Replica::start(
        ReplicaConfig {
            node: name.into(),
            addr: name.into(),
            dir: dir.path().join("raft"),
            timing: Timing {
                snapshot_every: 50,
                ..Timing::default()
            },
        },
        store.clone(),
        Arc::new(Link {
            net: net.clone(),
            from: name.into(),
        }),
    )
    .await
    .expect("replica");
    net.nodes
        .lock()
        .expect("lock")
        .insert(name.into(), Arc::downgrade(&replica));
    Member {
        _dir: dir,
        store,
        replica,
    }
}

async fn wait_leader(members: &[&Member], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        if let Some(i) = members.iter().position(|m| m.replica.is_leader()) {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn node(id: &str) -> Node {
    Node::new(
        id.into(),
        id.into(),
        NodeRole::Worker,
        "127.0.0.1".into(),
        0,
    )
}

async fn put(m: &Member, id: &str) -> Result<(), StoreError> {
    m.store
        .update(|tx| {
            tx.put(node(id));
            Ok::<_, StoreError>(())
        })
        .await
}

/// "a" bootstraps the group and leads, writes node `first` alone if given, then adds "b"
/// and "c" as learners and promotes them: three voters.
async fn three_voters(net: &Arc<Net>, first: Option<&str>) -> (Member, Member, Member) {
    let a = member(net, "a").await;
    a.replica.bootstrap().await.expect("bootstrap");
    wait_leader(&[&a], Duration::from_secs(3)).await;
    if let Some(id) = first {
        put(&a, id).await.expect("first write");
    }
    let b = member(net, "b").await;
    let c = member(net, "c").await;
    for m in [&b, &c] {
        a.replica
            .add_learner(&m.replica.me().node, &m.replica.me().addr)
            .await
            .expect("learner");
    }
    a.replica
        .change(Change::Promote(vec!["b".into(), "c".into()]))
        .await
        .expect("promote");
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_elect_replicate_and_fail_over() {
    let net = Arc::new(Net::default());
    let (a, b, c) = three_voters(&net, Some("n0")).await;
    assert_eq!(a.replica.status().voters.len(), 3);
    for i in 1..100 {
        put(&a, &format!("n{i}")).await.expect("write");
    }
    // Followers apply the same state, installing a snapshot on the way (every 50 entries).
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.store.state().nodes.len() < 100 || c.store.state().nodes.len() < 100 {
        assert!(Instant::now() < deadline, "followers did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.store.state().nodes, a.store.state().nodes);

    // Writes on a follower are refused with the leader's address.
    match put(&b, "x").await {
        Err(StoreError::NotLeader { leader }) => assert_eq!(leader.as_deref(), Some("a")),
        other => panic!("follower write: {other:?}"),
    }

    // Cut the leader off: the other two elect one and go on; the old leader refuses writes.
    net.cut.lock().expect("lock").insert("a".into());
    let started = Instant::now();
    let i = wait_leader(&[&b, &c], Duration::from_secs(10)).await;
    let new = [&b, &c][i];
    put(new, "after").await.expect("write on the new leader");
    eprintln!("failover took {:?}", started.elapsed());
    assert!(matches!(
        put(&a, "lost").await,
        Err(StoreError::NoQuorum { .. } | StoreError::NotLeader { .. })
    ));

    // Heal: the old leader follows and converges.
    net.cut.lock().expect("lock").clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.store.state().nodes.contains_key("after") {
        assert!(Instant::now() < deadline, "old leader did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!a.store.state().nodes.contains_key("lost"));
    assert!(!a.replica.is_leader());
}

/// A vote from a manager that is no longer (or never was) a voter moves nothing: a huge
/// term used to be granted and made openraft panic for good, or made the leader step down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_manager_certificate_cannot_vote() {
    let net = Arc::new(Net::default());
    let (a, b, _c) = three_voters(&net, None).await;
    a.replica
        .change(Change::Remove(vec!["c".into()]))
        .await
        .expect("remove c");
    put(&a, "before").await.expect("write");
    let term = a.replica.status().term;

    let vote = |from: &str, term: u64| {
        let req =
            openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(term, raft_id(from)), None);
        serde_json::to_vec(&req).expect("encode")
    };
    let append = |from: &str, term: u64| {
        let req = openraft::raft::AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(term, raft_id(from)),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        serde_json::to_vec(&req).expect("encode")
    };
    let pre_vote = |from: &str| {
        serde_json::to_vec(&PreVote {
            term: u64::MAX,
            last_log: None,
            candidate: from.into(),
            transfer: true,
        })
        .expect("encode")
    };
    for replica in [&a.replica, &b.replica] {
        // The removed manager, with the highest term there is.
        let r = replica.handle("c", Rpc::Vote, &vote("c", u64::MAX)).await;
        assert!(
            r.as_ref().is_err_and(|e| e.contains("not a voter")),
            "{r:?}"
        );
        let r = replica.handle("c", Rpc::PreVote, &pre_vote("c")).await;
        assert!(r.is_err(), "{r:?}");
        let r = replica
            .handle("c", Rpc::Append, &append("c", u64::MAX))
            .await;
        assert!(
            r.as_ref().is_err_and(|e| e.contains("not a member")),
            "{r:?}"
        );
        let r = replica.handle("c", Rpc::TimeoutNow, b"{}").await;
        assert!(r.is_err(), "{r:?}");
        // A certificate that never was a member.
        let r = replica.handle("x", Rpc::Vote, &vote("x", 1_000_000)).await;
        assert!(r.is_err(), "{r:?}");
        // A member's certificate speaking for another member.
        let r = replica.handle("b", Rpc::Vote, &vote("a", 1_000_000)).await;
        assert!(
            r.as_ref().is_err_and(|e| e.contains("another member")),
            "{r:?}"
        );
    }
    assert!(a.replica.is_leader(), "the leader stepped down");
    assert_eq!(a.replica.status().term, term, "the term moved");
    put(&a, "after")
        .await
        .expect("write after the refused votes");
}

/// A leader's graceful stop hands leadership to another voter before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_hands_leadership_over() {
    let net = Arc::new(Net::default());
    let (a, b, c) = three_voters(&net, Some("n0")).await;
    put(&a, "n1").await.expect("write");
    let term = a.replica.status().term;
    a.replica.step_down().await;
    assert!(!a.replica.is_leader(), "the stopping leader still leads");
    let i = wait_leader(&[&b, &c], Duration::from_millis(500)).await;
    let new = [&b, &c][i];
    assert!(new.replica.status().term > term);
    put(new, "n2").await.expect("write on the new leader");
}

/// The only manager has no one to hand over to: its stop does not wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_leader_stops_at_once() {
    let net = Arc::new(Net::default());
    let a = member(&net, "a").await;
    a.replica.bootstrap().await.expect("bootstrap");
    wait_leader(&[&a], Duration::from_secs(3)).await;
    let started = Instant::now();
    a.replica.step_down().await;
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

/// A manager stopping gracefully kept running for leader: under load, the leader stopping
/// won back the leadership it was handing over, then left the group without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_manager_does_not_run_for_leader() {
    let net = Arc::new(Net::default());
    let (a, b, c) = three_voters(&net, None).await;
    // c misses a write a and b commit, so b would win any election c takes part in.
    net.cut.lock().expect("lock").insert("c".into());
    put(&a, "n1").await.expect("write");
    b.replica.step_down().await;
    // The leader goes and c comes back: b, on its way out, must not run.
    {
        let mut cut = net.cut.lock().expect("lock");
        cut.insert("a".into());
        cut.remove("c");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert!(!b.replica.is_leader(), "a stopping manager was elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // c, behind, cannot win b's vote: nobody leads until the others are back.
    assert!(!c.replica.is_leader());
}
