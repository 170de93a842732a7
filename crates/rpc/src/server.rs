//! The TLS server loop shared by the control port: every accepted connection is TLS,
//! its verified peer identity is attached to each request, and HTTP/2 (gRPC) and HTTP/1.1
//! (JSON API) are served on the same port, within the caps and timeouts of
//! [`ControlLimits`].

pub use crate::control_limits::ControlLimits;
use crate::control_limits::PerIp;
use crate::tls::{peer_identity, PeerAddr, PeerIdentity};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use shoal_balance::{Throttle, WARN_INTERVAL};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Serve `app` on `listener` over TLS until `stop` flips, with the default
/// [`ControlLimits`]; the TLS configuration is read anew for every connection, so a
/// renewed certificate applies at once.
pub async fn serve(
    listener: TcpListener,
    tls: watch::Receiver<Arc<ServerConfig>>,
    app: axum::Router,
    stop: watch::Receiver<bool>,
) {
    serve_with(listener, tls, app, stop, ControlLimits::default()).await;
}

/// [`serve`] with the given caps and timeouts.
pub async fn serve_with(
    listener: TcpListener,
    tls: watch::Receiver<Arc<ServerConfig>>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
    limits: ControlLimits,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let unauthenticated = PerIp::new(limits.max_unauthenticated_per_ip.max(1));
    let (port_full, address_full) = (Throttle::new(WARN_INTERVAL), Throttle::new(WARN_INTERVAL));
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.http1_header_timeout);
    let http = Arc::new(http);
    loop {
        // A slot first, then accept: at the cap new clients wait in the listen queue.
        let slot = tokio::select! {
            s = take_slot(&slots, &port_full, limits.max_connections) => s,
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "control port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(pending) = unauthenticated.enter(remote.ip()) else {
            if address_full.ready(std::time::Instant::now()) {
                tracing::warn!(
                    address = %remote.ip(),
                    cap = limits.max_unauthenticated_per_ip,
                    "control port: too many connections without a client certificate from one address; closing new ones"
                );
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.borrow().clone());
        let app = app.clone();
        let http = Arc::clone(&http);
        tokio::spawn(async move {
            let _slot = slot;
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => return,
            };
            // A verified client certificate: the connection stops counting against its address.
            let _pending = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_none()
                .then_some(pending);
            let peer: PeerIdentity = peer_identity(tls.get_ref().1.peer_certificates());
            let svc = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req.extensions_mut().insert(PeerAddr(remote));
                app.clone().oneshot(req)
            });
            let served = http
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                .await;
            if let Err(e) = served {
                tracing::debug!(%remote, error = %e, "control connection ended");
            }
        });
    }
}

/// A connection slot, waiting for a connection to end while the port is at its cap.
async fn take_slot(slots: &Arc<Semaphore>, full: &Throttle, cap: usize) -> OwnedSemaphorePermit {
    if slots.available_permits() == 0 && full.ready(std::time::Instant::now()) {
        tracing::warn!(
            cap,
            "control port at its connection cap; new connections wait until one ends"
        );
    }
    match Arc::clone(slots).acquire_owned().await {
        Ok(permit) => permit,
        // Never closed: the semaphore lives as long as this loop.
        Err(_) => std::future::pending().await,
    }
}
