//! A listener for one published port: binds it and accepts until closed; every connection
//! holds a slot of the port and one of the mesh until it ends.

use crate::connection;
use crate::error::MeshError;
use crate::shared::Shared;
use shoal_balance::{balancer_for, Ejecting, Policy, Throttle, WARN_INTERVAL};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::PoisonError;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Listen queue length asked for; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// Pause after an accept error such as running out of file descriptors, so the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the connections of one published port share.
#[derive(Debug)]
pub(crate) struct Port {
    pub(crate) number: u16,
    /// Lives as long as the listener, across table swaps, so rotation continues evenly;
    /// replaced when the service's policy changes.
    balancer: std::sync::RwLock<Arc<PortBalancer>>,
    pub(crate) shared: Arc<Shared>,
    /// One permit per connection this port may hold open.
    slots: Arc<Semaphore>,
    /// Warnings that the port is at its cap.
    at_cap: Throttle,
}

/// A port's balancer: the service's policy, with endpoints that refused or reset a
/// connect set aside for a while (passive health).
#[derive(Debug)]
pub(crate) struct PortBalancer {
    pub(crate) policy: Policy,
    pub(crate) inner: Ejecting,
}

impl PortBalancer {
    pub(crate) fn new(policy: Policy) -> PortBalancer {
        PortBalancer {
            policy,
            inner: Ejecting::new(balancer_for(policy)),
        }
    }
}

impl Port {
    /// The balancer for `policy`: the port's own, or a new one if the policy changed.
    pub(crate) fn balancer(&self, policy: Policy) -> Arc<PortBalancer> {
        {
            let b = self.balancer.read().unwrap_or_else(PoisonError::into_inner);
            if b.policy == policy {
                return b.clone();
            }
        }
        let mut b = self
            .balancer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if b.policy != policy {
            *b = Arc::new(PortBalancer::new(policy));
        }
        b.clone()
    }
}

/// An open published port. Dropping or closing it stops accepting; connections already
/// accepted run on to their end.
#[derive(Debug)]
pub(crate) struct Listener {
    accept: JoinHandle<()>,
}

impl Listener {
    /// Binds `ip:port` (with `SO_REUSEADDR`, so a restarted daemon rebinds at once) and
    /// starts accepting. Must be called within a tokio runtime.
    pub(crate) fn bind(
        ip: IpAddr,
        number: u16,
        shared: Arc<Shared>,
    ) -> Result<Listener, MeshError> {
        let listener = listen(SocketAddr::new(ip, number)).map_err(|source| MeshError::Bind {
            port: number,
            source,
        })?;
        let port = Arc::new(Port {
            number,
            balancer: std::sync::RwLock::new(Arc::new(PortBalancer::new(Policy::default()))),
            slots: Arc::new(Semaphore::new(shared.caps.per_port)),
            at_cap: Throttle::new(WARN_INTERVAL),
            shared,
        });
        Ok(Listener {
            accept: tokio::spawn(accept_loop(listener, port)),
        })
    }

    /// Stops accepting and waits until the listening socket is closed.
    pub(crate) async fn close(mut self) {
        self.accept.abort();
        // The task's future (and with it the socket) is dropped before the handle completes.
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(listener: TcpListener, port: Arc<Port>) {
    tracing::info!(port = port.number, "listening on published port");
    let shared = &port.shared;
    loop {
        // The port's slot before accepting: at its cap the port stops accepting and new
        // clients wait in the listen queue.
        let own = take(&port.slots, || {
            if port.at_cap.ready(std::time::Instant::now()) {
                tracing::warn!(
                    port = port.number,
                    cap = shared.caps.per_port,
                    "published port at its connection cap; new connections wait until one ends"
                );
            }
        })
        .await;
        let (stream, peer) = accept(&listener, port.number).await;
        shared.stats.accepted();
        // Then the mesh's, taken only for a connection in hand, so idle ports hold none: at
        // the mesh-wide cap this port waits, holding this one connection, until a connection
        // on any port ends.
        let mesh = take(&shared.slots, || {
            if shared.at_cap.ready(std::time::Instant::now()) {
                tracing::warn!(
                    cap = shared.caps.total,
                    "routing mesh at its connection cap; new connections wait until one ends"
                );
            }
        })
        .await;
        let port = Arc::clone(&port);
        tokio::spawn(async move {
            connection::serve(stream, peer, &port).await;
            drop((own, mesh));
        });
    }
}

pub(crate) async fn accept(listener: &TcpListener, port: u16) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            // The client gave up before we took the connection: nothing to do.
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                tracing::warn!(port, error = %e, "accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

pub(crate) async fn take(slots: &Arc<Semaphore>, at_cap: impl FnOnce()) -> OwnedSemaphorePermit {
    if slots.available_permits() == 0 {
        at_cap();
    }
    match Arc::clone(slots).acquire_owned().await {
        Ok(permit) => permit,
        // Never closed: the semaphore lives as long as its port or mesh.
        Err(_) => std::future::pending().await,
    }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
