//! The control port's caps and timeouts over real TLS connections on loopback.

// A failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use shoal_rpc::pki::{self, CaMaterial, CertRole};
use shoal_rpc::server::{serve_with, ControlLimits};
use shoal_rpc::tls;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another loopback address, so a flood and a well-behaved client have different sources.
const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Generous bound on any wait for something that must happen.
const DEADLINE: Duration = Duration::from_secs(30);
/// A timeout that does not fire during a test, so what the test sees is the cap's doing.
const LONG: Duration = Duration::from_secs(3600);

async fn bounded<F: Future>(test: F) -> F::Output {
    timeout(Duration::from_secs(120), test)
        .await
        .expect("test did not finish in time")
}

struct Port {
    addr: SocketAddr,
    ca: CaMaterial,
    _stop: watch::Sender<bool>,
}

fn cert(ca: &CaMaterial, name: &str, role: CertRole) -> (String, String) {
    let key = pki::new_node_key().unwrap();
    let cert = pki::sign_node_cert(
        ca,
        &key.csr_pem,
        name,
        role,
        "cluster-1",
        Duration::from_secs(3600),
        &[],
    )
    .unwrap();
    (cert, key.key_pem)
}

/// A control port on 127.0.0.1 serving `GET /ping` within `limits`.
async fn control_port(limits: ControlLimits) -> Port {
    let ca = pki::new_root_ca("cluster-1").unwrap();
    let (cert, key) = cert(&ca, "manager-1", CertRole::Manager);
    let server = tls::server_config(&ca.cert_pem, &cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind((HERE, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/ping", get(|| async { "pong" }));
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_with(
        listener,
        watch::channel(server).1,
        app,
        stop_rx,
        limits,
    ));
    Port {
        addr,
        ca,
        _stop: stop,
    }
}

fn limits() -> ControlLimits {
    ControlLimits {
        max_connections: 100,
        max_unauthenticated_per_ip: 100,
        handshake_timeout: Duration::from_secs(1),
        http1_header_timeout: Duration::from_secs(1),
    }
}

/// A TCP connection to `to` from address `from`.
async fn tcp_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// A TLS connection from `from`, with a client certificate if `with_cert`, offering `alpn`.
async fn tls_from(
    port: &Port,
    from: IpAddr,
    with_cert: bool,
    alpn: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let identity = with_cert.then(|| cert(&port.ca, "client-1", CertRole::Client));
    let cfg = tls::client_config(
        &port.ca.cert_pem,
        identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        &[alpn],
    )
    .unwrap();
    let tcp = tcp_from(from, port.addr).await;
    let name = ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
}

/// One `GET /ping` over HTTP/1.1 keep-alive on `s`; true if it answered "pong".
async fn ping(s: &mut TlsStream<TcpStream>) -> bool {
    if s.write_all(b"GET /ping HTTP/1.1\r\nHost: shoal\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"pong") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

/// A fresh connection from `from` that pings successfully.
async fn pings_from(port: &Port, from: IpAddr, with_cert: bool) -> bool {
    match timeout(DEADLINE, tls_from(port, from, with_cert, b"http/1.1")).await {
        Ok(Ok(mut s)) => ping(&mut s).await,
        _ => false,
    }
}

/// Waits until the server closes `s` (end of stream or reset); false if it did not.
async fn closed_by_server(s: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 256];
    let read_to_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    timeout(DEADLINE, read_to_end).await.is_ok()
}

/// Whether a TLS handshake over `tcp` finishes within `wait`.
async fn handshake_within(port: &Port, tcp: TcpStream, wait: Duration) -> bool {
    let cfg = tls::client_config(&port.ca.cert_pem, None, &[b"http/1.1"]).unwrap();
    let name = ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME).unwrap();
    let connect = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp);
    matches!(timeout(wait, connect).await, Ok(Ok(_)))
}

#[tokio::test]
async fn control_port_at_its_cap_stops_accepting_until_a_connection_ends() {
    bounded(async {
        let port = control_port(ControlLimits {
            max_connections: 3,
            handshake_timeout: LONG,
            ..limits()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(tcp_from(HERE, port.addr).await);
        }
        // The fourth client waits in the listen queue: connected, never answered.
        let waiting = tcp_from(HERE, port.addr).await;
        let waiting = tokio::spawn({
            let cfg = tls::client_config(&port.ca.cert_pem, None, &[b"http/1.1"]).unwrap();
            async move {
                let name = ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME).unwrap();
                tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, waiting)
                    .await
            }
        });
        let fourth = tcp_from(HERE, port.addr).await;
        assert!(
            !handshake_within(&port, fourth, Duration::from_millis(500)).await,
            "a connection over the cap was served"
        );
        assert!(!waiting.is_finished());

        // One ends: the waiting client gets its slot and is served.
        drop(held.pop());
        let mut s = timeout(DEADLINE, waiting).await.unwrap().unwrap().unwrap();
        assert!(ping(&mut s).await);
    })
    .await;
}

#[tokio::test]
async fn unauthenticated_connections_per_address_are_capped() {
    bounded(async {
        let port = control_port(ControlLimits {
            max_unauthenticated_per_ip: 3,
            handshake_timeout: LONG,
            ..limits()
        })
        .await;
        // Three silent connections from one address fill its share...
        let mut flood = Vec::new();
        for _ in 0..3 {
            flood.push(tcp_from(FLOODER, port.addr).await);
        }
        // ...a fourth from it is closed at once (long before the handshake timeout)...
        let mut fourth = tcp_from(FLOODER, port.addr).await;
        assert!(closed_by_server(&mut fourth).await);
        // ...while other addresses are served, with or without a certificate.
        assert!(pings_from(&port, HERE, true).await);
        assert!(pings_from(&port, HERE, false).await);
        // Once the flood ends, the address is served again.
        drop(flood);
        let served = async {
            while !pings_from(&port, FLOODER, false).await {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        assert!(timeout(DEADLINE, served).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn silent_connection_ends_at_the_handshake_timeout() {
    bounded(async {
        let port = control_port(limits()).await;
        let mut silent = tcp_from(FLOODER, port.addr).await;
        assert!(closed_by_server(&mut silent).await);
        assert!(pings_from(&port, FLOODER, false).await);
    })
    .await;
}

#[tokio::test]
async fn connections_with_a_client_certificate_do_not_count_against_their_address() {
    bounded(async {
        let port = control_port(ControlLimits {
            max_unauthenticated_per_ip: 2,
            handshake_timeout: LONG,
            http1_header_timeout: LONG,
            ..limits()
        })
        .await;
        let mut with_cert = Vec::new();
        for _ in 0..4 {
            let mut s = tls_from(&port, HERE, true, b"http/1.1").await.unwrap();
            assert!(ping(&mut s).await);
            with_cert.push(s);
        }
        // Without a certificate, a finished handshake keeps counting.
        let mut without = Vec::new();
        for _ in 0..2 {
            let mut s = tls_from(&port, HERE, false, b"http/1.1").await.unwrap();
            assert!(ping(&mut s).await);
            without.push(s);
        }
        let mut third = tcp_from(HERE, port.addr).await;
        assert!(closed_by_server(&mut third).await);
        for s in &mut with_cert {
            assert!(ping(s).await, "an authenticated connection was cut");
        }
    })
    .await;
}

#[tokio::test]
async fn http1_connection_idle_past_the_header_timeout_is_closed() {
    bounded(async {
        let port = control_port(limits()).await;
        let mut idle = tls_from(&port, HERE, true, b"http/1.1").await.unwrap();
        assert!(ping(&mut idle).await);
        assert!(closed_by_server(&mut idle).await);
    })
    .await;
}

#[tokio::test]
async fn http1_request_head_never_finished_is_cut_at_the_header_timeout() {
    bounded(async {
        let port = control_port(limits()).await;
        let mut slow = tls_from(&port, HERE, true, b"http/1.1").await.unwrap();
        slow.write_all(b"GET /ping HTTP/1.1\r\nHost: sho")
            .await
            .unwrap();
        assert!(closed_by_server(&mut slow).await);
    })
    .await;
}

#[tokio::test]
async fn http2_session_outlives_the_http1_timeout() {
    bounded(async {
        let port = control_port(limits()).await;
        let h2 = tls_from(&port, HERE, true, b"h2").await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let request = || {
            hyper::Request::get("http://shoal/ping")
                .body(String::new())
                .unwrap()
        };
        assert_eq!(sender.send_request(request()).await.unwrap().status(), 200);

        // An HTTP/1.1 connection idle as long is closed; the HTTP/2 session is not.
        let mut h1 = tls_from(&port, HERE, true, b"http/1.1").await.unwrap();
        assert!(ping(&mut h1).await);
        assert!(closed_by_server(&mut h1).await);
        assert!(!conn.is_finished(), "the HTTP/2 session was closed");
        assert_eq!(sender.send_request(request()).await.unwrap().status(), 200);
    })
    .await;
}
