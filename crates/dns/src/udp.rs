//! The UDP side: one receive loop answering inline (answers are pure and fast) and
//! spawning forwards, so a slow upstream holds up no other query.

use crate::answer::{answer, servfail, Outcome, Transport};
use crate::forward::Upstreams;
use crate::names::Names;
use crate::reply::MAX_MESSAGE;
use crate::server::MAX_FORWARDS;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use shoal_balance::{Throttle, WARN_INTERVAL};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Serves `socket` until the task is dropped; forwards in flight are dropped with it.
pub(crate) async fn serve(
    socket: Arc<UdpSocket>,
    names: watch::Receiver<Names>,
    upstreams: Arc<Upstreams>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut forwards = JoinSet::new();
    let at_cap = Throttle::new(WARN_INTERVAL);
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(error = %e, "dns: udp receive failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let query = &buf[..len];
        let outcome = answer(&names.borrow(), query, Transport::Udp, &mut rng);
        let forward = match outcome {
            Outcome::Reply(reply) => {
                send(&socket, &reply, client).await;
                continue;
            }
            Outcome::Drop => continue,
            Outcome::Forward(forward) => forward,
        };
        if upstreams.is_empty() {
            if let Some(reply) = servfail(query, Transport::Udp) {
                send(&socket, &reply, client).await;
            }
            continue;
        }
        while forwards.try_join_next().is_some() {}
        if forwards.len() >= MAX_FORWARDS {
            if at_cap.ready(Instant::now()) {
                tracing::warn!(cap = MAX_FORWARDS, "dns: forwards at cap, queries dropped");
            }
            continue;
        }
        let query = query.to_vec();
        let socket = Arc::clone(&socket);
        let upstreams = Arc::clone(&upstreams);
        forwards.spawn(async move {
            let reply = match upstreams.ask(&query, forward, Transport::Udp).await {
                Some(reply) => reply,
                None => match servfail(&query, Transport::Udp) {
                    Some(reply) => reply,
                    None => return,
                },
            };
            send(&socket, &reply, client).await;
        });
    }
}

async fn send(socket: &UdpSocket, reply: &[u8], client: SocketAddr) {
    if let Err(e) = socket.send_to(reply, client).await {
        tracing::debug!(%client, error = %e, "dns: udp reply not sent");
    }
}
