//! The DNS server over real sockets on 127.0.0.1: answers over UDP and TCP, snapshots
//! applied, forwarding to a fake upstream, and garbage that must not stop it.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::{Rng, SeedableRng};
use shoal_api::task::EndpointPort;
use shoal_api::{PortConfig, Protocol, PublishMode};
use shoal_balance::snapshot::EndpointMode;
use shoal_balance::{DataPlaneSnapshot, ServiceEndpoint, ServiceEntry};
use shoal_dns::{DnsConfig, DnsServer};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long a reply may take on a slow machine; no test waits this long when all is well.
const WAIT: Duration = Duration::from_secs(30);
const LOCALHOST: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

fn snapshot(version: u64, vip: [u8; 4]) -> Arc<DataPlaneSnapshot> {
    let endpoint = |task: &str, addr: [u8; 4], host_port: u16| ServiceEndpoint {
        task_id: task.into(),
        addr: addr.into(),
        ports: vec![EndpointPort {
            target: 80,
            host_port,
            protocol: Protocol::Tcp,
        }],
        ..ServiceEndpoint::default()
    };
    Arc::new(DataPlaneSnapshot {
        vip_pool: None,
        version,
        services: vec![ServiceEntry {
            id: "s1".into(),
            name: "web".into(),
            vip: Some(vip.into()),
            endpoint_mode: EndpointMode::Vip,
            ports: vec![PortConfig {
                published: Some(8080),
                target: 80,
                protocol: Protocol::Tcp,
                mode: PublishMode::Ingress,
                proxy_protocol: None,
            }],
            endpoints: vec![
                endpoint("t1", [10, 0, 0, 1], 30001),
                endpoint("t2", [10, 0, 0, 2], 30002),
            ],
            ..ServiceEntry::default()
        }],
    })
}

async fn start(upstreams: Vec<SocketAddr>, upstream_timeout: Duration) -> DnsServer {
    let mut config = DnsConfig::new(LOCALHOST, upstreams);
    config.upstream_timeout = upstream_timeout;
    DnsServer::start(config).await.expect("dns server starts")
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    msg.to_vec().expect("encode")
}

async fn udp_client() -> UdpSocket {
    UdpSocket::bind(LOCALHOST).await.expect("client socket")
}

/// Sends `bytes` from `client` and reads the reply.
async fn udp_exchange(client: &UdpSocket, server: SocketAddr, bytes: &[u8]) -> Message {
    client.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
        .await
        .expect("a reply in time")
        .expect("recv");
    Message::from_vec(&buf[..n]).expect("reply parses")
}

async fn udp_ask(server: SocketAddr, bytes: &[u8]) -> Message {
    udp_exchange(&udp_client().await, server, bytes).await
}

async fn tcp_exchange(stream: &mut TcpStream, bytes: &[u8]) -> Message {
    let len = u16::try_from(bytes.len()).expect("fits");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(bytes).await.expect("write");
    let reply = timeout(WAIT, async {
        let len = stream.read_u16().await?;
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await?;
        std::io::Result::Ok(reply)
    })
    .await
    .expect("a reply in time")
    .expect("read");
    Message::from_vec(&reply).expect("reply parses")
}

fn addresses(records: &[Record]) -> Vec<String> {
    let mut found: Vec<String> = records
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::SRV(s) => format!("{s}"),
            other => format!("{other:?}"),
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn service_names_are_answered_over_udp_and_tcp() {
    let server = start(vec![], Duration::from_secs(2)).await;
    server.apply(snapshot(1, [10, 255, 0, 2]));
    let addr = server.local_addr();

    let reply = udp_ask(addr, &query(1, "web.", RecordType::A)).await;
    assert_eq!(reply.id, 1);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply.answers), vec!["10.255.0.2"]);

    let reply = udp_ask(
        addr,
        &query(2, "_http._tcp.tasks.web.shoal.internal.", RecordType::SRV),
    )
    .await;
    assert_eq!(
        addresses(&reply.answers),
        vec![
            "0 10 30001 t1.tasks.web.shoal.internal.",
            "0 10 30002 t2.tasks.web.shoal.internal."
        ]
    );
    assert_eq!(addresses(&reply.additionals), vec!["10.0.0.1", "10.0.0.2"]);

    let reply = udp_ask(addr, &query(3, "nosuch.", RecordType::A)).await;
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
    assert!(reply.authoritative);

    // Over TCP, several queries on one connection.
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let reply = tcp_exchange(&mut stream, &query(4, "tasks.web.", RecordType::A)).await;
    assert_eq!(reply.id, 4);
    assert_eq!(addresses(&reply.answers), vec!["10.0.0.1", "10.0.0.2"]);
    let reply = tcp_exchange(&mut stream, &query(5, "_80._tcp.web.", RecordType::SRV)).await;
    assert_eq!(
        addresses(&reply.answers),
        vec!["0 10 80 web.shoal.internal."]
    );
    assert_eq!(addresses(&reply.additionals), vec!["10.255.0.2"]);
    let reply = tcp_exchange(
        &mut stream,
        &query(6, "nosuch.shoal.internal.", RecordType::A),
    )
    .await;
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn a_new_snapshot_changes_the_answer_and_is_acknowledged() {
    let server = start(vec![], Duration::from_secs(2)).await;
    let mut acked = server.acked();
    assert_eq!(*acked.borrow(), 0);
    let addr = server.local_addr();

    let reply = udp_ask(addr, &query(1, "web.", RecordType::A)).await;
    assert_eq!(
        reply.response_code,
        ResponseCode::NXDomain,
        "no snapshot yet"
    );

    server.apply(snapshot(1, [10, 255, 0, 2]));
    assert_eq!(*acked.borrow_and_update(), 1);
    let reply = udp_ask(addr, &query(2, "web.", RecordType::A)).await;
    assert_eq!(addresses(&reply.answers), vec!["10.255.0.2"]);

    server.apply(snapshot(2, [10, 255, 0, 9]));
    timeout(WAIT, acked.wait_for(|v| *v == 2))
        .await
        .expect("acknowledged in time")
        .expect("server alive");
    let reply = udp_ask(addr, &query(3, "web.", RecordType::A)).await;
    assert_eq!(addresses(&reply.answers), vec!["10.255.0.9"]);
}

/// A resolver on 127.0.0.1 (UDP and TCP, one port) answering every question with `answer`,
/// reporting the IDs it is asked under.
struct FakeUpstream {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<u16>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn upstream_reply(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let mut reply = Message::response(query.id, OpCode::Query);
    reply.metadata.recursion_available = true;
    let question = query.queries.first()?.clone();
    reply.add_answer(Record::from_rdata(
        question.name().clone(),
        60,
        RData::A(A(answer)),
    ));
    reply.add_query(question);
    reply.to_vec().ok()
}

async fn fake_upstream(answer: Ipv4Addr) -> FakeUpstream {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind(LOCALHOST).await.expect("bind");
        let addr = udp.local_addr().expect("addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().expect("addr");
    let (tx, seen) = mpsc::unbounded_channel();
    let udp_tx = tx.clone();
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            if n >= 2 {
                let _ = udp_tx.send(u16::from_be_bytes([buf[0], buf[1]]));
            }
            if let Some(reply) = upstream_reply(&buf[..n], answer) {
                let _ = udp.send_to(&reply, from).await;
            }
        }
    });
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(len) = stream.read_u16().await {
                    let mut query = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    let _ = tx.send(u16::from_be_bytes([query[0], query[1]]));
                    let Some(reply) = upstream_reply(&query, answer) else {
                        return;
                    };
                    let len = u16::try_from(reply.len()).expect("fits");
                    let _ = stream.write_all(&len.to_be_bytes()).await;
                    let _ = stream.write_all(&reply).await;
                }
            });
        }
    });
    FakeUpstream {
        addr,
        seen,
        tasks: vec![udp_task, tcp_task],
    }
}

#[tokio::test]
async fn other_names_are_forwarded_and_answered_as_the_upstream_answers() {
    let mut upstream = fake_upstream(Ipv4Addr::new(192, 0, 2, 7)).await;
    let server = start(vec![upstream.addr], Duration::from_secs(10)).await;
    server.apply(snapshot(1, [10, 255, 0, 2]));
    let addr = server.local_addr();

    let reply = udp_ask(addr, &query(0x1111, "example.com.", RecordType::A)).await;
    assert_eq!(reply.id, 0x1111, "the client's ID");
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply.answers), vec!["192.0.2.7"]);
    assert_eq!(reply.answers[0].ttl, 60, "as the upstream answered");
    let asked = timeout(WAIT, upstream.seen.recv()).await.expect("in time");
    assert!(asked.is_some());

    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let reply = tcp_exchange(&mut stream, &query(0x2222, "example.org.", RecordType::A)).await;
    assert_eq!(reply.id, 0x2222);
    assert_eq!(addresses(&reply.answers), vec!["192.0.2.7"]);
    // Our own names still come from us on the same connection.
    let reply = tcp_exchange(&mut stream, &query(0x3333, "web.", RecordType::A)).await;
    assert_eq!(addresses(&reply.answers), vec!["10.255.0.2"]);
}

#[tokio::test]
async fn a_silent_upstream_is_passed_over_then_servfail() {
    // Bound, never answering.
    let silent = UdpSocket::bind(LOCALHOST).await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let upstream = fake_upstream(Ipv4Addr::new(192, 0, 2, 8)).await;

    // Long enough for the answering upstream on a busy machine; the silent one still times out.
    let server = start(vec![silent_addr, upstream.addr], Duration::from_secs(2)).await;
    let reply = udp_ask(
        server.local_addr(),
        &query(7, "example.com.", RecordType::A),
    )
    .await;
    assert_eq!(
        addresses(&reply.answers),
        vec!["192.0.2.8"],
        "the next upstream answers"
    );

    let server = start(vec![silent_addr], Duration::from_secs(2)).await;
    let reply = udp_ask(
        server.local_addr(),
        &query(8, "example.com.", RecordType::A),
    )
    .await;
    assert_eq!(reply.id, 8);
    assert_eq!(reply.response_code, ResponseCode::ServFail);
    assert_eq!(reply.queries.len(), 1);
    drop(silent);
}

#[tokio::test]
async fn without_upstreams_other_names_fail_at_once() {
    let server = start(vec![], Duration::from_secs(60)).await;
    let reply = udp_ask(
        server.local_addr(),
        &query(9, "example.com.", RecordType::A),
    )
    .await;
    assert_eq!(reply.response_code, ResponseCode::ServFail);
    let mut stream = timeout(WAIT, TcpStream::connect(server.local_addr()))
        .await
        .expect("connect in time")
        .expect("connect");
    let reply = tcp_exchange(&mut stream, &query(10, "example.com.", RecordType::A)).await;
    assert_eq!(reply.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn garbage_does_not_stop_the_server() {
    let server = start(vec![], Duration::from_secs(2)).await;
    server.apply(snapshot(1, [10, 255, 0, 2]));
    let addr = server.local_addr();
    let client = udp_client().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..500 {
        let len = rng.random_range(0..600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        client.send_to(&bytes, addr).await.expect("send");
    }
    // A header that parses, a body that does not: FORMERR under the same ID.
    let mut bad = query(0x5151, "web.", RecordType::A);
    bad.truncate(15);
    let other = udp_client().await;
    let reply = udp_exchange(&other, addr, &bad).await;
    assert_eq!(reply.id, 0x5151);
    assert_eq!(reply.response_code, ResponseCode::FormErr);

    // Garbage over TCP closes that connection only.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&[0, 3, 1, 2, 3]).await.expect("write");
    let mut rest = Vec::new();
    let read = timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("closed cleanly");
    assert_eq!(read, 0, "no reply to garbage");

    let reply = udp_exchange(&other, addr, &query(0x6161, "web.", RecordType::A)).await;
    assert_eq!(reply.id, 0x6161);
    assert_eq!(addresses(&reply.answers), vec!["10.255.0.2"]);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = start(vec![], Duration::from_secs(2)).await;
    let addr = server.local_addr();
    drop(server);
    // The listener closes once its task is cancelled: poll until a connect is refused.
    timeout(WAIT, async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the listener closes");
}

#[tokio::test]
async fn a_taken_address_is_reported() {
    let server = start(vec![], Duration::from_secs(2)).await;
    let err = DnsServer::start(DnsConfig::new(server.local_addr(), vec![]))
        .await
        .expect_err("address in use");
    assert!(err.to_string().contains("cannot listen for DNS"), "{err}");
    let mut config = DnsConfig::new(LOCALHOST, vec![]);
    config.domain = "bad domain".into();
    let err = DnsServer::start(config).await.expect_err("bad domain");
    assert!(err.to_string().contains("invalid DNS domain"), "{err}");
}
