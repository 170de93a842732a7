//! The control API on a manager that is not the leader: requests go to the leader.
//!
//! Writes are answered by the leader once committed. Reads are answered by the leader
//! after a read-index check, so they reflect every acknowledged write. When no leader can
//! be reached, reads are answered from this manager's last known state and flagged with
//! `shoal-stale: true`; writes fail at once naming the reachable managers.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use shoal_manager::control::ApiError;
use shoal_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Response header set when the answer may miss recent writes.
pub const STALE_HEADER: &str = "shoal-stale";
/// Set on forwarded requests, so they are never forwarded twice.
const FORWARDED_HEADER: &str = "shoal-forwarded";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bodies of API requests are small specs; anything bigger is refused.
const MAX_BODY: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Forward {
    pub store: Arc<Store>,
    /// Client TLS (this manager's certificate, HTTP/1.1) for talking to the leader; none
    /// while the node is not a manager.
    pub tls: watch::Receiver<Option<Arc<ClientConfig>>>,
}

fn stale(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(STALE_HEADER, HeaderValue::from_static("true"));
    resp
}

/// Middleware: serve here on the leader, forward elsewhere.
pub async fn to_leader(State(f): State<Forward>, req: Request, next: Next) -> Response {
    let Some(replica) = f.store.replica() else {
        return next.run(req).await;
    };
    let read = req.method() == Method::GET;
    if replica.is_leader() {
        if !read {
            return next.run(req).await;
        }
        return match replica.linearize().await {
            Ok(()) => next.run(req).await,
            Err(_) => stale(next.run(req).await),
        };
    }
    let leader = replica
        .status()
        .leader
        .filter(|l| l.node != replica.me().node);
    let refuse = |e: StoreError| ApiError::from(e).into_response();
    let Some(leader) = leader else {
        return if read {
            stale(next.run(req).await)
        } else {
            refuse(replica.no_quorum())
        };
    };
    if req.headers().contains_key(FORWARDED_HEADER) {
        return refuse(StoreError::NotLeader {
            leader: Some(leader.addr),
        });
    }
    match proxy(&f, &leader.addr, req).await {
        Ok(resp) => resp,
        Err((e, Some(req))) if read => {
            tracing::debug!(leader = %leader.addr, error = %e, "leader unreachable: answering from local state");
            stale(next.run(req).await)
        }
        Err((e, _)) => {
            ApiError::unavailable(format!("cannot reach the leader at {}: {e}", leader.addr))
                .into_response()
        }
    }
}

/// Send `req` to the leader's control port. On a connection failure the request is handed
/// back (reads are then answered locally).
async fn proxy(
    f: &Forward,
    addr: &str,
    req: Request,
) -> Result<Response, (String, Option<Request>)> {
    let Some(tls_cfg) = f.tls.borrow().clone() else {
        return Err(("this node has no manager certificate".into(), Some(req)));
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME)
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(tls_cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok::<_, String>(sender)
    };
    let mut sender = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err((e, Some(req))),
        Err(_) => return Err(("connection timed out".into(), Some(req))),
    };
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return Err((format!("reading the request: {e}"), None)),
    };
    parts
        .headers
        .insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    let out = hyper::Request::from_parts(parts, http_body_util::Full::new(bytes));
    match sender.send_request(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Ok(Response::from_parts(
                parts,
                Body::new(body.map_err(axum::Error::new)),
            ))
        }
        Err(e) => Err((e.to_string(), None)),
    }
}
