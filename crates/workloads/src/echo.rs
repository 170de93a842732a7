//! `shoal echo`: TCP and UDP echo on the same port number.
//!
//! TCP copies every byte back and half-closes its side once the client has finished sending;
//! UDP sends every datagram back to its sender.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::net::pause_after_accept_error;
use crate::signal::shutdown_signal;

/// Largest UDP payload (65535 minus the IPv4 and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// Settings of `shoal echo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoOptions {
    /// Port to listen on, for TCP and UDP alike (see [`crate::port_from_env`]).
    pub port: u16,
    /// Address to listen on; `0.0.0.0` by default.
    pub bind: IpAddr,
}

impl Default for EchoOptions {
    fn default() -> Self {
        Self {
            port: 7,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// Echoes TCP and UDP on `bind:port` until SIGTERM or SIGINT.
///
/// With port 0 the UDP socket takes the port the system chose for TCP.
pub async fn run_echo(opts: EchoOptions) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let addr = SocketAddr::new(opts.bind, opts.port);
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("echo cannot listen on tcp {addr}"))?;
    let udp_addr = tcp.local_addr().context("echo tcp listener address")?;
    let udp = UdpSocket::bind(udp_addr)
        .await
        .with_context(|| format!("echo cannot listen on udp {udp_addr}"))?;
    serve_echo(tcp, udp, shutdown).await
}

/// Echoes on `tcp` and `udp` until `shutdown` resolves; open TCP connections are then closed.
pub async fn serve_echo(
    tcp: TcpListener,
    udp: UdpSocket,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tcp_addr = tcp.local_addr().context("echo tcp listener address")?;
    let udp_addr = udp.local_addr().context("echo udp socket address")?;
    println!("echo listening on tcp {tcp_addr} and udp {udp_addr}");
    // Dropping the TCP loop drops its JoinSet, which aborts the open connections.
    let result = tokio::select! {
        () = shutdown => Ok(()),
        result = tcp_echo(tcp) => result,
        result = udp_echo(udp) => result,
    };
    println!("echo stopping");
    result
}

async fn tcp_echo(listener: TcpListener) -> anyhow::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(echo_connection(stream));
                }
                Err(err) => pause_after_accept_error(&err).await,
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Copies everything back; once the client half-closes, finishes and half-closes too.
async fn echo_connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    // A reset from the client only ends this connection.
    if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
        let _ = writer.shutdown().await;
    }
}

async fn udp_echo(socket: UdpSocket) -> anyhow::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, peer)) => {
                // A datagram that cannot be sent back is lost, as UDP allows.
                let _ = socket.send_to(&buf[..len], peer).await;
            }
            Err(err) if is_transient_udp_error(&err) => {}
            Err(err) => return Err(err).context("echo udp receive"),
        }
    }
}

/// Errors a UDP socket reports for one earlier peer (ICMP unreachable and the like).
fn is_transient_udp_error(err: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionRefused, ConnectionReset, Interrupted, WouldBlock};
    matches!(
        err.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TEST_TIMEOUT;
    use tokio::io::AsyncReadExt as _;
    use tokio::sync::oneshot;
    use tokio::time::timeout;

    async fn start() -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let addr = tcp.local_addr().expect("addr");
        let udp = UdpSocket::bind(addr).await.expect("bind udp");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_echo(tcp, udp, async move {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    }

    #[tokio::test]
    async fn tcp_round_trip_with_half_close() {
        timeout(TEST_TIMEOUT, async {
            let (addr, stop, task) = start().await;
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let (mut reader, mut writer) = stream.split();
            let send = async {
                writer.write_all(&payload).await.expect("write");
                writer.shutdown().await.expect("half-close");
            };
            let mut echoed = Vec::new();
            let receive = reader.read_to_end(&mut echoed);
            let ((), read) = tokio::join!(send, receive);
            read.expect("read");
            assert_eq!(echoed, payload);
            let _ = stop.send(());
            task.await.expect("join").expect("serve");
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn udp_round_trip() {
        timeout(TEST_TIMEOUT, async {
            let (addr, stop, task) = start().await;
            let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
            for message in [&b"ping"[..], &b"second datagram"[..]] {
                client.send_to(message, addr).await.expect("send");
                let mut buf = [0u8; 64];
                let (len, from) = client.recv_from(&mut buf).await.expect("receive");
                assert_eq!(&buf[..len], message);
                assert_eq!(from, addr);
            }
            let _ = stop.send(());
            task.await.expect("join").expect("serve");
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn shutdown_closes_open_connections() {
        timeout(TEST_TIMEOUT, async {
            let (addr, stop, task) = start().await;
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(b"x").await.expect("write");
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.expect("echo");
            let _ = stop.send(());
            task.await.expect("join").expect("serve");
            let mut rest = Vec::new();
            // The server side is gone: EOF or reset, not a hang.
            let _ = stream.read_to_end(&mut rest).await;
            assert!(rest.is_empty());
            assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
        })
        .await
        .expect("timed out");
    }
}
