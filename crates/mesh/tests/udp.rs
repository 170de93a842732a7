//! Published UDP ports over real sockets on 127.0.0.1: flows, affinity, idle expiry, flows
//! of removed endpoints, refused endpoints and the flow cap. Backends are tiny UDP servers
//! in the test that answer with their name and the payload.

// A failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use shoal_api::Protocol;
use shoal_balance::{Endpoint, EndpointSet, EndpointTable, PortKey};
use shoal_mesh::{ConnectionCaps, Mesh, MeshConfig, MeshStats};
use shoal_testkit::free_port;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long a test waits for a condition (a loaded CI machine is slow).
const WAIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(test: F) -> F::Output {
    timeout(Duration::from_secs(60), test)
        .await
        .expect("test did not finish in time")
}

/// A backend answering every datagram with `<name>:<payload>`.
async fn named(name: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 65_536];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..len]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    addr
}

fn udp_table(
    version: u64,
    port: u16,
    endpoints: &[(&str, SocketAddr)],
    idle_ms: u64,
) -> Arc<EndpointTable> {
    let set = EndpointSet {
        service_id: "svc".into(),
        service_name: "dns".into(),
        endpoints: endpoints
            .iter()
            .map(|&(task, addr)| Endpoint::new(task, addr))
            .collect(),
        policy: Default::default(),
        idle_timeout_ms: idle_ms,
        proxy_protocol: None,
    };
    let key = PortKey {
        port,
        protocol: Protocol::Udp,
    };
    Arc::new(EndpointTable {
        version,
        ports: BTreeMap::from([(key, set)]),
    })
}

async fn client() -> UdpSocket {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    socket
}

/// Sends `payload` to the mesh's port and returns the name of the backend that answered,
/// checking the reply comes from the published port with the payload intact; `None`
/// when no answer comes within `wait`.
async fn ask(c: &UdpSocket, port: u16, payload: &str, wait: Duration) -> Option<String> {
    c.send_to(payload.as_bytes(), (LOCALHOST, port))
        .await
        .unwrap();
    let mut buf = vec![0; 65_536];
    let (len, from) = timeout(wait, c.recv_from(&mut buf)).await.ok()?.unwrap();
    assert_eq!(
        from,
        SocketAddr::new(LOCALHOST, port),
        "reply from elsewhere"
    );
    let reply = String::from_utf8_lossy(&buf[..len]).into_owned();
    let (name, echoed) = reply.split_once(':').unwrap();
    assert_eq!(echoed, payload, "payload changed on the way");
    Some(name.to_owned())
}

/// Asks until an answer comes (the first datagram may race a port being bound).
async fn answer(c: &UdpSocket, port: u16, payload: &str) -> String {
    for _ in 0..20 {
        if let Some(name) = ask(c, port, payload, Duration::from_secs(1)).await {
            return name;
        }
    }
    panic!("no answer on udp port {port}");
}

async fn stats_until(mesh: &Mesh, what: &str, f: impl Fn(&MeshStats) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f(&mesh.stats()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {:?}",
            mesh.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_stays_on_its_endpoint_and_clients_are_spread() {
    bounded(async {
        let (a, b) = (named("a").await, named("b").await);
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        let errors = mesh
            .apply(udp_table(1, port, &[("a", a), ("b", b)], 0))
            .await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(mesh.listening_udp(), vec![port]);
        assert!(mesh.listening().is_empty(), "no TCP port for a UDP entry");

        let mut firsts = BTreeSet::new();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let c = client().await;
            let first = answer(&c, port, "hello").await;
            for i in 0..5 {
                let name = answer(&c, port, &format!("datagram {i}")).await;
                assert_eq!(name, first, "a flow moved to another endpoint");
            }
            firsts.insert(first);
            clients.push(c);
        }
        assert_eq!(
            firsts.len(),
            2,
            "round-robin put every client on one endpoint"
        );
        let stats = mesh.stats();
        assert_eq!((stats.flows_opened, stats.flows_open), (4, 4));

        // A big datagram arrives whole.
        let big = "x".repeat(60_000);
        answer(&clients[0], port, &big).await;
    })
    .await;
}

#[tokio::test]
async fn an_idle_flow_is_forgotten() {
    bounded(async {
        let (a, b) = (named("a").await, named("b").await);
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(udp_table(1, port, &[("a", a), ("b", b)], 300))
            .await
            .is_empty());
        let c = client().await;
        let first = answer(&c, port, "one").await;
        assert_eq!(mesh.stats().flows_open, 1);
        stats_until(&mesh, "the idle flow was not forgotten", |s| {
            s.flows_open == 0
        })
        .await;
        // A new flow, and round-robin's next pick.
        let second = answer(&c, port, "two").await;
        assert_ne!(first, second);
        assert_eq!(mesh.stats().flows_opened, 2);
    })
    .await;
}

#[tokio::test]
async fn flows_of_an_endpoint_that_left_end_at_once() {
    bounded(async {
        let (a, b) = (named("a").await, named("b").await);
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(udp_table(1, port, &[("a", a), ("b", b)], 0))
            .await
            .is_empty());
        let (c1, c2) = (client().await, client().await);
        let n1 = answer(&c1, port, "x").await;
        let n2 = answer(&c2, port, "x").await;
        assert_ne!(n1, n2);
        // Take c1's endpoint away: its flow ends with the apply, c2's stays.
        let keep = if n1 == "a" { ("b", b) } else { ("a", a) };
        assert!(mesh.apply(udp_table(2, port, &[keep], 0)).await.is_empty());
        assert_eq!(mesh.stats().flows_open, 1);
        assert_eq!(answer(&c1, port, "y").await, keep.0);
        assert_eq!(answer(&c2, port, "y").await, n2);

        // A port no longer in the table is closed, and its flows with it.
        assert!(mesh
            .apply(Arc::new(EndpointTable {
                version: 3,
                ports: BTreeMap::new()
            }))
            .await
            .is_empty());
        assert!(mesh.listening_udp().is_empty());
        assert_eq!(mesh.stats().flows_open, 0);
    })
    .await;
}

#[tokio::test]
async fn a_refusing_endpoint_ends_its_flow_and_is_ejected() {
    bounded(async {
        let dead = SocketAddr::new(LOCALHOST, free_port());
        let good = named("good").await;
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(udp_table(1, port, &[("dead", dead)], 0))
            .await
            .is_empty());
        let c = client().await;
        assert_eq!(ask(&c, port, "x", Duration::from_millis(200)).await, None);
        // The ICMP port unreachable ends the flow and counts as a failure.
        stats_until(&mesh, "the refused flow did not end", |s| {
            s.flows_open == 0 && s.connect_failed >= 1
        })
        .await;
        // The dead endpoint is ejected: a new flow goes to the good one first.
        assert!(mesh
            .apply(udp_table(2, port, &[("dead", dead), ("good", good)], 0))
            .await
            .is_empty());
        for _ in 0..3 {
            let c = client().await;
            assert_eq!(answer(&c, port, "y").await, "good");
        }
    })
    .await;
}

#[tokio::test]
async fn at_the_flow_cap_new_clients_are_dropped_and_open_flows_carry_on() {
    bounded(async {
        let a = named("a").await;
        let port = free_port();
        let mesh = Mesh::new(MeshConfig {
            bind_ip: LOCALHOST,
            caps: ConnectionCaps {
                total: 10,
                per_port: 1,
            },
        });
        assert!(mesh
            .apply(udp_table(1, port, &[("a", a)], 0))
            .await
            .is_empty());
        let c1 = client().await;
        answer(&c1, port, "first").await;
        let c2 = client().await;
        assert_eq!(
            ask(&c2, port, "second", Duration::from_millis(300)).await,
            None
        );
        assert!(mesh.stats().datagrams_dropped >= 1);
        assert_eq!(answer(&c1, port, "again").await, "a");
        // Once the flow ends (its endpoint left and came back), the next client gets in.
        assert!(mesh.apply(udp_table(2, port, &[], 0)).await.is_empty());
        assert!(mesh
            .apply(udp_table(3, port, &[("a", a)], 0))
            .await
            .is_empty());
        assert_eq!(answer(&c2, port, "second").await, "a");
    })
    .await;
}
