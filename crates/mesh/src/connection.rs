//! One client connection: pick an endpoint, connect with fall-through, proxy.

use crate::error::ConnectionError;
use crate::listener::Port;
use crate::splice;
use shoal_api::Protocol;
use shoal_balance::{Balancer, Failure, InFlight, PickCx};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one connect attempt to an endpoint may take before the next one is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one accepted client connection to the end; closes it if no endpoint is reachable.
pub(crate) async fn serve(client: TcpStream, peer: SocketAddr, port: &Port) {
    let shared = &port.shared;
    let cx = PickCx {
        client: Some(peer.ip()),
    };
    let (upstream, _in_flight) = match connect(port, &cx).await {
        Ok(connected) => connected,
        Err(e) => {
            shared.stats.no_endpoint();
            tracing::debug!(port = port.number, %peer, error = %e, retry_safe = e.retry_safe(), "closing connection");
            return;
        }
    };
    // Latency over batching: small requests and responses go out at once.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = splice::proxy(client, upstream, &shared.pipes).await {
        let e = ConnectionError::Proxy(e);
        tracing::debug!(port = port.number, %peer, error = %e, retry_safe = e.retry_safe(), "connection ended with an error");
    }
}

/// Connects to the endpoints of the port's current set in the order its balancer gives,
/// moving on to the next endpoint when one refuses or times out (nothing was sent yet, so
/// trying another is safe).
async fn connect(port: &Port, cx: &PickCx) -> Result<(TcpStream, InFlight), ConnectionError> {
    let table = port.shared.table();
    let Some(set) = table
        .get(port.number, Protocol::Tcp)
        .filter(|set| !set.endpoints.is_empty())
    else {
        return Err(ConnectionError::NoEndpoint { tried: 0 });
    };
    let balancer = port.balancer(set.policy);
    let balancer = &balancer.inner;
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
        port.shared.stats.connect_failed();
        tracing::debug!(
            port = port.number,
            service = %set.service_name,
            task = %endpoint.task_id,
            endpoint = %endpoint.addr,
            %error,
            "connect to endpoint failed; trying the next"
        );
    }
    tracing::warn!(
        port = port.number,
        service = %set.service_name,
        endpoints = set.endpoints.len(),
        "no endpoint reachable; closing connection"
    );
    Err(ConnectionError::NoEndpoint {
        tried: set.endpoints.len(),
    })
}
