//! One client connection: pick an endpoint, connect with fall-through, proxy.

use crate::listener::Port;
use crate::splice;
use shoal_api::Protocol;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one connect attempt to an endpoint may take before the next one is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one accepted client connection to the end; closes it if no endpoint is reachable.
pub(crate) async fn serve(client: TcpStream, peer: SocketAddr, port: &Port) {
    let shared = &port.shared;
    let Some(upstream) = connect(port).await else {
        shared.stats.no_endpoint();
        return;
    };
    // Latency over batching: small requests and responses go out at once.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = splice::proxy(client, upstream, &shared.pipes).await {
        tracing::debug!(port = port.number, %peer, error = %e, "connection ended with an error");
    }
}

/// Connects to the endpoints of the port's current set in round-robin order, moving on to
/// the next endpoint when one refuses or times out.
async fn connect(port: &Port) -> Option<TcpStream> {
    let table = port.shared.table();
    let Some(set) = table
        .get(port.number, Protocol::Tcp)
        .filter(|set| !set.endpoints.is_empty())
    else {
        tracing::debug!(
            port = port.number,
            "no endpoint for published port; closing connection"
        );
        return None;
    };
    for i in port.round_robin.order(set.endpoints.len()) {
        let endpoint = &set.endpoints[i];
        let error = match timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint.addr)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
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
    None
}
