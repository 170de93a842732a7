//! The mesh over real sockets on 127.0.0.1: backends are tiny TCP servers in the test.

// A failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use shoal_api::Protocol;
use shoal_balance::{Endpoint, EndpointSet, EndpointTable, PortKey};
use shoal_mesh::{ConnectionCaps, Mesh, MeshConfig, MeshError};
use shoal_testkit::free_port;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn bounded<F: Future>(test: F) -> F::Output {
    timeout(Duration::from_secs(30), test)
        .await
        .expect("test did not finish in time")
}

/// Serves each connection with `handle` on its own task.
async fn backend<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// A backend that sends its name, half-closes, and waits for the client to close.
async fn named(name: &'static str) -> SocketAddr {
    backend(move |mut s| async move {
        let _ = s.write_all(name.as_bytes()).await;
        let _ = s.shutdown().await;
        let mut sink = [0u8; 64];
        while let Ok(1..) = s.read(&mut sink).await {}
    })
    .await
}

/// A backend that echoes everything until the client half-closes.
async fn echo() -> SocketAddr {
    backend(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

fn table(version: u64, ports: &[(u16, &[SocketAddr])]) -> Arc<EndpointTable> {
    let ports: BTreeMap<PortKey, EndpointSet> = ports
        .iter()
        .map(|&(port, addrs)| {
            let key = PortKey {
                port,
                protocol: Protocol::Tcp,
            };
            let set = EndpointSet {
                policy: Default::default(),
                idle_timeout_ms: 0,
                proxy_protocol: None,
                service_id: format!("svc-{port}"),
                service_name: format!("web-{port}"),
                endpoints: addrs
                    .iter()
                    .enumerate()
                    .map(|(i, &addr)| Endpoint {
                        task_id: format!("task-{i}"),
                        addr,
                        weight: 1,
                    })
                    .collect(),
            };
            (key, set)
        })
        .collect();
    Arc::new(EndpointTable { version, ports })
}

/// Connects to the mesh and reads until it closes: a backend's name, or "" when dropped.
async fn fetch(port: u16) -> String {
    let mut s = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    reply
}

async fn tally(port: u16, connections: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..connections {
        *counts.entry(fetch(port).await).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
}

#[tokio::test]
async fn connections_are_spread_evenly_over_endpoints() {
    bounded(async {
        let backends = [named("a").await, named("b").await, named("c").await];
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh.apply(table(1, &[(port, &backends)])).await.is_empty());
        assert_eq!(mesh.listening(), vec![port]);
        assert_eq!(*mesh.acked().borrow(), 1);

        assert_eq!(
            tally(port, 30).await,
            counts(&[("a", 10), ("b", 10), ("c", 10)])
        );
        let stats = mesh.stats();
        assert_eq!(
            (stats.accepted, stats.no_endpoint, stats.connect_failed),
            (30, 0, 0)
        );
    })
    .await;
}

#[tokio::test]
async fn dead_endpoint_is_skipped_without_client_error() {
    bounded(async {
        let dead = SocketAddr::new(LOCALHOST, free_port());
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(table(1, &[(port, &[dead, named("a").await])]))
            .await
            .is_empty());

        assert_eq!(tally(port, 10).await, counts(&[("a", 10)]));
        let stats = mesh.stats();
        // Round-robin would start on the dead endpoint every other connection; once it
        // refused, it is set aside (ejected for a second, more on a slow machine's rerun).
        assert_eq!(stats.no_endpoint, 0);
        assert!(
            (1..5).contains(&stats.connect_failed),
            "refused {} times",
            stats.connect_failed
        );
    })
    .await;
}

#[tokio::test]
async fn connection_without_reachable_endpoint_is_closed() {
    bounded(async {
        let dead = SocketAddr::new(LOCALHOST, free_port());
        let (empty, all_dead) = (free_port(), free_port());
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        let errors = mesh
            .apply(table(1, &[(empty, &[]), (all_dead, &[dead])]))
            .await;
        assert!(errors.is_empty());

        assert_eq!(fetch(empty).await, "");
        assert_eq!(fetch(all_dead).await, "");
        let stats = mesh.stats();
        assert_eq!((stats.no_endpoint, stats.connect_failed), (2, 1));
    })
    .await;
}

#[tokio::test]
async fn table_swap_takes_endpoint_out_of_rotation_at_once() {
    bounded(async {
        let [a, b, c] = [named("a").await, named("b").await, named("c").await];
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        let mut acked = mesh.acked();
        assert!(mesh.apply(table(1, &[(port, &[a, b, c])])).await.is_empty());
        assert_eq!(tally(port, 3).await.len(), 3);

        assert!(mesh.apply(table(2, &[(port, &[a, b])])).await.is_empty());
        acked.changed().await.unwrap();
        assert_eq!(*acked.borrow_and_update(), 2);
        assert_eq!(tally(port, 20).await, counts(&[("a", 10), ("b", 10)]));
        assert_eq!(mesh.listening(), vec![port]);
    })
    .await;
}

#[tokio::test]
async fn removing_port_closes_listener_but_not_open_connections() {
    bounded(async {
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(table(1, &[(port, &[echo().await])]))
            .await
            .is_empty());
        let mut open = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        let mut reply = [0u8; 4];
        open.write_all(b"ping").await.unwrap();
        open.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ping");

        assert!(mesh.apply(table(2, &[])).await.is_empty());
        assert_eq!(mesh.listening(), Vec::<u16>::new());
        assert_eq!(*mesh.acked().borrow(), 2);
        let refused = TcpStream::connect((LOCALHOST, port)).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

        open.write_all(b"pong").await.unwrap();
        open.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong");
        open.shutdown().await.unwrap();
        assert_eq!(open.read(&mut reply).await.unwrap(), 0);
    })
    .await;
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ ((i >> 11) as u8).wrapping_add(seed))
        .collect()
}

const UP: usize = 8 << 20;
const DOWN: usize = 6 << 20;

/// Sends `DOWN` bytes while reading what the client sends; once the client half-closes,
/// appends whether the upload arrived intact, then closes.
async fn exchange_backend() -> SocketAddr {
    backend(|mut s| async move {
        let (mut r, mut w) = s.split();
        let upload = async {
            let mut got = Vec::with_capacity(UP);
            r.read_to_end(&mut got).await.unwrap();
            got == pattern(1, UP)
        };
        let download = async { w.write_all(&pattern(2, DOWN)).await.unwrap() };
        let (intact, ()) = tokio::join!(upload, download);
        w.write_all(&[u8::from(intact)]).await.unwrap();
        w.shutdown().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn large_transfer_both_ways_with_half_close_arrives_intact() {
    bounded(async {
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(table(1, &[(port, &[exchange_backend().await])]))
            .await
            .is_empty());

        let mut s = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        let (mut r, mut w) = s.split();
        let upload = async {
            w.write_all(&pattern(1, UP)).await.unwrap();
            // Only the mesh passing this half-close on lets the backend finish.
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::with_capacity(DOWN + 1);
        let ((), read) = tokio::join!(upload, r.read_to_end(&mut got));
        read.unwrap();

        assert_eq!(got.len(), DOWN + 1);
        assert!(got[..DOWN] == pattern(2, DOWN), "download corrupted");
        assert_eq!(got[DOWN], 1, "upload corrupted");
    })
    .await;
}

#[tokio::test]
async fn many_concurrent_keep_alive_clients_get_their_own_bytes() {
    bounded(async {
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh
            .apply(table(1, &[(port, &[echo().await, echo().await])]))
            .await
            .is_empty());

        let clients = (0..50u32).map(|client| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect((LOCALHOST, port)).await.unwrap();
                for round in 0..20u32 {
                    let message = format!("client {client} round {round}\n");
                    let mut reply = vec![0u8; message.len()];
                    s.write_all(message.as_bytes()).await.unwrap();
                    s.read_exact(&mut reply).await.unwrap();
                    assert_eq!(reply, message.as_bytes());
                }
            })
        });
        for client in clients.collect::<Vec<_>>() {
            client.await.unwrap();
        }
        assert_eq!(mesh.stats().accepted, 50);
    })
    .await;
}

#[tokio::test]
async fn bind_conflict_names_the_port_and_the_rest_routes() {
    bounded(async {
        let a = named("a").await;
        // On a claimed port, so nothing else takes it once the blocker goes.
        let taken = free_port();
        let blocker = std::net::TcpListener::bind((LOCALHOST, taken)).unwrap();
        let port = free_port();
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));

        let errors = mesh.apply(table(1, &[(taken, &[a]), (port, &[a])])).await;
        assert_eq!(errors.len(), 1);
        assert!(matches!(errors[0], MeshError::Bind { port: p, .. } if p == taken));
        assert_eq!(errors[0].port(), taken);
        assert!(errors[0].to_string().contains(&taken.to_string()));
        assert_eq!(mesh.listening(), vec![port]);
        assert_eq!(*mesh.acked().borrow(), 1);
        assert_eq!(fetch(port).await, "a");

        // Once the port is free, the next apply listens on it.
        drop(blocker);
        assert!(mesh
            .apply(table(2, &[(taken, &[a]), (port, &[a])]))
            .await
            .is_empty());
        let mut both = vec![taken, port];
        both.sort_unstable();
        assert_eq!(mesh.listening(), both);
        assert_eq!(fetch(taken).await, "a");
    })
    .await;
}

/// A mesh on 127.0.0.1 holding at most `total` connections, `per_port` on any one port.
fn capped(total: usize, per_port: usize) -> Mesh {
    Mesh::new(MeshConfig {
        bind_ip: LOCALHOST,
        caps: ConnectionCaps { total, per_port },
    })
}

/// Sends `message` and waits for it to come back through the mesh.
async fn echoed(s: &mut TcpStream, message: &[u8]) {
    let mut reply = vec![0u8; message.len()];
    s.write_all(message).await.unwrap();
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, message);
}

/// Whether `s` gets an answer within `wait` (true) or not yet (false).
async fn answered_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    timeout(wait, s.peek(&mut byte)).await.is_ok()
}

#[tokio::test]
async fn port_at_its_cap_stops_accepting_until_a_connection_ends() {
    bounded(async {
        let port = free_port();
        let mesh = capped(10, 2);
        assert!(mesh
            .apply(table(1, &[(port, &[echo().await])]))
            .await
            .is_empty());
        let mut first = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        let mut second = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        echoed(&mut first, b"one").await;
        echoed(&mut second, b"two").await;

        // The third client is queued by the kernel, not accepted and not refused.
        let mut third = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        third.write_all(b"three").await.unwrap();
        assert!(
            !answered_within(&mut third, Duration::from_millis(500)).await,
            "a connection over the cap was served"
        );
        assert_eq!(mesh.stats().accepted, 2);

        // One ends: its slot goes to the waiting client.
        drop(first);
        let mut reply = [0u8; 5];
        third.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"three");
        assert_eq!(mesh.stats().accepted, 3);
        echoed(&mut second, b"still").await;
    })
    .await;
}

#[tokio::test]
async fn flooded_port_leaves_room_for_the_others() {
    bounded(async {
        let (flooded, other) = (free_port(), free_port());
        let mesh = capped(4, 2);
        let backend = echo().await;
        assert!(mesh
            .apply(table(1, &[(flooded, &[backend]), (other, &[backend])]))
            .await
            .is_empty());
        let mut flood = Vec::new();
        for _ in 0..20 {
            flood.push(TcpStream::connect((LOCALHOST, flooded)).await.unwrap());
        }
        for i in 0..5 {
            let mut s = TcpStream::connect((LOCALHOST, other)).await.unwrap();
            echoed(&mut s, format!("other {i}").as_bytes()).await;
        }
        // The flood took the port's two slots and no more.
        echoed(&mut flood[0], b"first").await;
        echoed(&mut flood[1], b"second").await;
        flood[2].write_all(b"third").await.unwrap();
        assert!(
            !answered_within(&mut flood[2], Duration::from_millis(500)).await,
            "a connection over the port's cap was served"
        );
        assert_eq!(mesh.stats().accepted, 2 + 5);
    })
    .await;
}

#[tokio::test]
async fn ports_share_the_mesh_wide_cap() {
    bounded(async {
        let (a, b) = (free_port(), free_port());
        let mesh = capped(3, 2);
        let backend = echo().await;
        assert!(mesh
            .apply(table(1, &[(a, &[backend]), (b, &[backend])]))
            .await
            .is_empty());
        let mut on_a = Vec::new();
        for i in 0..2 {
            let mut s = TcpStream::connect((LOCALHOST, a)).await.unwrap();
            echoed(&mut s, format!("a {i}").as_bytes()).await;
            on_a.push(s);
        }
        let mut b1 = TcpStream::connect((LOCALHOST, b)).await.unwrap();
        echoed(&mut b1, b"b1").await;

        // Port b has a slot of its own left, but the mesh is full.
        let mut b2 = TcpStream::connect((LOCALHOST, b)).await.unwrap();
        b2.write_all(b"b2").await.unwrap();
        assert!(
            !answered_within(&mut b2, Duration::from_millis(500)).await,
            "a connection over the mesh-wide cap was served"
        );
        drop(on_a.pop());
        let mut reply = [0u8; 2];
        b2.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"b2");
    })
    .await;
}

#[tokio::test]
async fn idle_ports_hold_no_mesh_slots() {
    bounded(async {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mesh = capped(2, 1);
        let backend = echo().await;
        let entries: Vec<(u16, &[SocketAddr])> = ports
            .iter()
            .map(|&p| (p, std::slice::from_ref(&backend)))
            .collect();
        assert!(mesh.apply(table(1, &entries)).await.is_empty());
        // More ports than mesh slots: each still serves while the others are idle (in any
        // order; listeners start in ascending order, so descending tries the last first).
        let mut descending = ports;
        descending.sort_unstable_by(|a, b| b.cmp(a));
        for port in descending {
            let mut s = TcpStream::connect((LOCALHOST, port)).await.unwrap();
            echoed(&mut s, format!("port {port}").as_bytes()).await;
        }
    })
    .await;
}

/// A backend that reads a PROXY v2 header byte by byte until it parses, then the client's
/// line, and answers `<source> <destination> <line>` (or `malformed` / `no header`).
async fn header_reader() -> SocketAddr {
    backend(|mut s| async move {
        let mut buf = Vec::new();
        let answer = loop {
            let mut byte = [0u8; 1];
            if s.read_exact(&mut byte).await.is_err() {
                break "no header".to_owned();
            }
            buf.push(byte[0]);
            match shoal_proxy_header::parse(&buf) {
                Err(shoal_proxy_header::ParseError::Incomplete { .. }) => continue,
                Ok((shoal_proxy_header::Header::Proxy(Some(a)), len)) if len == buf.len() => {
                    let mut line = [0u8; 5];
                    let _ = s.read_exact(&mut line).await;
                    break format!(
                        "{} {} {}",
                        a.source,
                        a.destination,
                        String::from_utf8_lossy(&line)
                    );
                }
                _ => break "malformed".to_owned(),
            }
        };
        let _ = s.write_all(answer.as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_proxy_protocol_port_names_the_client_to_the_endpoint_before_its_bytes() {
    bounded(async {
        let port = free_port();
        let mut t = (*table(1, &[(port, &[header_reader().await])])).clone();
        for set in t.ports.values_mut() {
            set.proxy_protocol = Some(shoal_api::ProxyProtocol::V2);
        }
        let mesh = Mesh::new(MeshConfig::new(LOCALHOST));
        assert!(mesh.apply(Arc::new(t)).await.is_empty());

        let mut s = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        let client = s.local_addr().unwrap();
        assert_eq!(reply, format!("{client} {LOCALHOST}:{port} hello"));
    })
    .await;
}
