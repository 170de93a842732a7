//! The DNS server handle: binds UDP and TCP on one address, serves the names of the last
//! snapshot applied, and reports the version it answers by.

use crate::error::DnsError;
use crate::forward::Upstreams;
use crate::names::{normalize_domain, Names, DEFAULT_DOMAIN};
use crate::{tcp, udp};
use shoal_balance::DataPlaneSnapshot;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long each upstream resolver gets to answer before the next is asked.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded UDP queries in flight at once; beyond, queries to forward are dropped (the
/// client retries).
pub const MAX_FORWARDS: usize = 1024;
/// TCP connections open at once; beyond, new ones wait in the listen queue.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection with no complete query for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending TCP connections the kernel holds for us.
const TCP_BACKLOG: u32 = 1024;
/// Ephemeral UDP ports tried when the TCP side of one is taken (listening on port 0).
const BIND_ATTEMPTS: usize = 16;

/// Where the server listens and where the names it does not know go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP and TCP, same port; port 0 picks a free one (see [`DnsServer::local_addr`]).
    pub listen: SocketAddr,
    /// Resolvers for every other name, asked in turn (see [`crate::host_resolvers`]).
    /// None: such names get SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
    /// The domain service names are answered under; default [`DEFAULT_DOMAIN`].
    pub domain: String,
    /// How long each upstream gets; default [`DEFAULT_UPSTREAM_TIMEOUT`].
    pub upstream_timeout: Duration,
}

impl DnsConfig {
    /// Listens on `listen`, forwards to `upstreams`, with the default domain and timeout.
    pub fn new(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> DnsConfig {
        DnsConfig {
            listen,
            upstreams,
            domain: DEFAULT_DOMAIN.to_string(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
        }
    }
}

/// The node's DNS server. Answers from no service until the first [`DnsServer::apply`].
/// Dropping it stops everything: both listeners, open connections, forwards in flight.
#[derive(Debug)]
pub struct DnsServer {
    local: SocketAddr,
    domain: String,
    names: watch::Sender<Names>,
    acked: watch::Sender<u64>,
    /// One apply at a time, so names and acknowledgements follow the order of applies.
    applying: Mutex<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on `config.listen` and starts serving.
    pub async fn start(config: DnsConfig) -> Result<DnsServer, DnsError> {
        let domain = normalize_domain(&config.domain).ok_or_else(|| DnsError::Domain {
            domain: config.domain.clone(),
        })?;
        let (udp_socket, tcp_listener) = bind(config.listen).await?;
        let local = udp_socket.local_addr().map_err(|source| DnsError::Bind {
            addr: config.listen,
            transport: "udp",
            source,
        })?;
        let names = watch::Sender::new(Names::new(&DataPlaneSnapshot::default(), &domain));
        let upstreams = Arc::new(Upstreams::new(config.upstreams, config.upstream_timeout));
        let tasks = vec![
            tokio::spawn(udp::serve(
                Arc::new(udp_socket),
                names.subscribe(),
                Arc::clone(&upstreams),
            )),
            tokio::spawn(tcp::serve(tcp_listener, names.subscribe(), upstreams)),
        ];
        tracing::info!(%local, %domain, "dns server listening");
        Ok(DnsServer {
            local,
            domain,
            names,
            acked: watch::Sender::new(0),
            applying: Mutex::new(()),
            tasks,
        })
    }

    /// The address served, UDP and TCP (with the port picked when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Answers by `snapshot` from the next query on, then publishes its version on
    /// [`DnsServer::acked`].
    pub fn apply(&self, snapshot: Arc<DataPlaneSnapshot>) {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        let names = Names::new(&snapshot, &self.domain);
        let services = names.service_count();
        // The old names are dropped here, outside the lock readers take.
        drop(self.names.send_replace(names));
        self.acked.send_replace(snapshot.version);
        tracing::debug!(version = snapshot.version, services, "dns names applied");
    }

    /// The version of the last snapshot applied (0 before the first).
    pub fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// UDP and TCP sockets on the same address. For port 0, the TCP side takes the port the
/// UDP side was given, and another is tried if that one is taken for TCP.
async fn bind(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                addr: listen,
                transport: "udp",
                source,
            })?;
        let port = udp.local_addr().map(|a| a.port()).unwrap_or(listen.port());
        let addr = SocketAddr::new(listen.ip(), port);
        match listen_tcp(addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if listen.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < BIND_ATTEMPTS => {}
            Err(source) => {
                return Err(DnsError::Bind {
                    addr,
                    transport: "tcp",
                    source,
                })
            }
        }
    }
}

fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(TCP_BACKLOG)
}
