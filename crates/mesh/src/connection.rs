//! One client connection: pick an endpoint, connect with fall-through, send the PROXY
//! header if the endpoint's port asks for one, proxy.

use crate::error::ConnectionError;
use crate::listener::Port;
use crate::shared::Shared;
use crate::splice;
use shoal_api::Protocol;
use shoal_balance::{Balancer, Ejecting, EndpointSet, Failure, InFlight, PickCx};
use shoal_proxy_header::Header;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one connect attempt to an endpoint may take before the next one is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one accepted client connection to the end; closes it if no endpoint is reachable.
pub(crate) async fn serve(client: TcpStream, peer: SocketAddr, port: &Port) {
    let table = port.shared.table();
    let Some(set) = table.get(port.number, Protocol::Tcp) else {
        port.shared.stats.no_endpoint();
        return;
    };
    // The published port's address as the client reached it (the listener may be bound to
    // every address).
    let destination = match client.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::debug!(port = port.number, %peer, error = %e, "connection gone before routing; closing");
            return;
        }
    };
    let balancer = port.balancer(set.policy);
    let to = Route {
        label: port.number,
        destination,
        set,
        balancer: &balancer.inner,
    };
    proxy(client, peer, &to, &port.shared).await;
}

/// Where one connection goes: an endpoint set and the balancer that picks among it.
pub(crate) struct Route<'a> {
    /// The published port (or VIP port) the client connected to, for logs.
    pub(crate) label: u16,
    /// The address the client connected to: the published port's, or the VIP and port
    /// before the kernel redirected the connection. The PROXY header names it.
    pub(crate) destination: SocketAddr,
    pub(crate) set: &'a EndpointSet,
    pub(crate) balancer: &'a Ejecting,
}

/// Connects `client` to an endpoint of `to` and proxies both directions to the end.
pub(crate) async fn proxy(client: TcpStream, peer: SocketAddr, to: &Route<'_>, shared: &Shared) {
    let cx = PickCx {
        client: Some(peer.ip()),
    };
    let (mut upstream, _in_flight) = match connect(to, &cx, shared).await {
        Ok(connected) => connected,
        Err(e) => {
            shared.stats.no_endpoint();
            tracing::debug!(port = to.label, %peer, error = %e, retry_safe = e.retry_safe(), "closing connection");
            return;
        }
    };
    // Latency over batching: small requests and responses go out at once.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if to.set.proxy_protocol.is_some() {
        // Before any byte of the client's: the task reads the header first.
        let header = Header::tcp(peer, to.destination).encode();
        if let Err(e) = upstream.write_all(&header).await {
            let e = ConnectionError::ProxyHeader(e);
            tracing::debug!(port = to.label, %peer, error = %e, retry_safe = e.retry_safe(), "closing connection");
            return;
        }
    }
    let idle = to.set.tcp_idle_timeout();
    if let Err(e) = splice::proxy(client, upstream, &shared.pipes, idle).await {
        let e = ConnectionError::Proxy(e);
        tracing::debug!(port = to.label, %peer, error = %e, retry_safe = e.retry_safe(), "connection ended with an error");
    }
}

/// Connects to the endpoints of the set in the order its balancer gives, moving on to the
/// next endpoint when one refuses or times out (nothing was sent yet, so trying another is
/// safe).
async fn connect(
    to: &Route<'_>,
    cx: &PickCx,
    shared: &Shared,
) -> Result<(TcpStream, InFlight), ConnectionError> {
    let (set, balancer) = (to.set, to.balancer);
    if set.endpoints.is_empty() {
        return Err(ConnectionError::NoEndpoint { tried: 0 });
    }
    for i in balancer.order(&set.endpoints, cx) {
        let endpoint = &set.endpoints[i];
        let (failure, error) =
            match timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint.addr)).await {
                Ok(Ok(stream)) => {
                    balancer.succeeded(endpoint);
                    return Ok((stream, balancer.opened(endpoint)));
                }
                Ok(Err(e)) => (Failure::of(&e), e.to_string()),
                Err(_) => (Failure::TimedOut, "timed out".to_owned()),
            };
        balancer.failed(endpoint, failure);
        shared.stats.connect_failed();
        tracing::debug!(
            port = to.label,
            service = %set.service_name,
            task = %endpoint.task_id,
            endpoint = %endpoint.addr,
            %error,
            "connect to endpoint failed; trying the next"
        );
    }
    tracing::warn!(
        port = to.label,
        service = %set.service_name,
        endpoints = set.endpoints.len(),
        "no endpoint reachable; closing connection"
    );
    Err(ConnectionError::NoEndpoint {
        tried: set.endpoints.len(),
    })
}
