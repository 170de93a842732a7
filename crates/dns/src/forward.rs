//! Asking the upstream resolvers: the client's query as it stands, under a fresh random ID,
//! to each upstream in turn until one answers within the timeout; the reply goes back to
//! the client with the client's ID.

use crate::answer::{Forward, Transport};
use crate::request::HEADER_LEN;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The node's resolvers and how long each gets to answer.
#[derive(Debug)]
pub(crate) struct Upstreams {
    addrs: Vec<SocketAddr>,
    timeout: Duration,
}

impl Upstreams {
    pub(crate) fn new(addrs: Vec<SocketAddr>, timeout: Duration) -> Upstreams {
        Upstreams { addrs, timeout }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The first upstream reply to `query`, with the client's ID; `None` if none answered
    /// in time. Over the transport the client used: a client that asks over TCP (after a
    /// truncated UDP answer, usually) wants the whole reply.
    pub(crate) async fn ask(
        &self,
        query: &[u8],
        forward: Forward,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        if query.len() < HEADER_LEN {
            return None;
        }
        let mut message = query.to_vec();
        for &upstream in &self.addrs {
            let id: u16 = rand::random();
            message[..2].copy_from_slice(&id.to_be_bytes());
            let asked = match transport {
                Transport::Udp => {
                    tokio::time::timeout(
                        self.timeout,
                        over_udp(upstream, &message, forward.reply_limit),
                    )
                    .await
                }
                Transport::Tcp => {
                    tokio::time::timeout(self.timeout, over_tcp(upstream, &message)).await
                }
            };
            match asked {
                Ok(Ok(mut reply)) => {
                    reply[..2].copy_from_slice(&forward.id.to_be_bytes());
                    return Some(reply);
                }
                Ok(Err(e)) => {
                    tracing::debug!(%upstream, error = %e, "upstream resolver failed");
                }
                Err(_) => {
                    tracing::debug!(%upstream, timeout = ?self.timeout, "upstream resolver did not answer");
                }
            }
        }
        None
    }
}

/// Whether `reply` answers `message` (same ID, a response).
fn answers(reply: &[u8], message: &[u8]) -> bool {
    reply.len() >= HEADER_LEN && reply[..2] == message[..2] && reply[2] & 0x80 != 0
}

async fn over_udp(upstream: SocketAddr, message: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(message).await?;
    // One byte more than the client takes, to tell a reply too large for it.
    let mut buf = vec![0u8; limit + 1];
    loop {
        let n = socket.recv(&mut buf).await?;
        if n <= limit && answers(&buf[..n], message) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(upstream: SocketAddr, message: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await?;
    loop {
        let len = usize::from(stream.read_u16().await?);
        let mut reply = vec![0u8; len];
        stream.read_exact(&mut reply).await?;
        if answers(&reply, message) {
            return Ok(reply);
        }
    }
}
