//! The TCP side: 2-byte length framing, several queries per connection answered in turn,
//! an idle timeout, and a cap on connections (at the cap, new clients wait in the listen
//! queue).

use crate::answer::{answer, servfail, Outcome, Transport};
use crate::forward::Upstreams;
use crate::names::Names;
use crate::server::{MAX_TCP_CONNECTIONS, TCP_IDLE_TIMEOUT};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Accepts on `listener` until the task is dropped; open connections are dropped with it.
pub(crate) async fn serve(
    listener: TcpListener,
    names: watch::Receiver<Names>,
    upstreams: Arc<Upstreams>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_TCP_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "dns: tcp accept failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        connections.spawn(connection(stream, names.clone(), Arc::clone(&upstreams)));
    }
}

/// Answers queries on one connection until the client closes it, goes idle or sends
/// something that is not a query.
async fn connection(stream: TcpStream, names: watch::Receiver<Names>, upstreams: Arc<Upstreams>) {
    let _ = stream.set_nodelay(true);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    let mut query = Vec::new();
    loop {
        let Ok(Ok(len)) = timeout(TCP_IDLE_TIMEOUT, reader.read_u16()).await else {
            return;
        };
        query.resize(usize::from(len), 0);
        let Ok(Ok(_)) = timeout(TCP_IDLE_TIMEOUT, reader.read_exact(&mut query)).await else {
            return;
        };
        let outcome = answer(&names.borrow(), &query, Transport::Tcp, &mut rng);
        let reply = match outcome {
            Outcome::Reply(reply) => reply,
            Outcome::Drop => return,
            Outcome::Forward(forward) => {
                let asked = if upstreams.is_empty() {
                    None
                } else {
                    upstreams.ask(&query, forward, Transport::Tcp).await
                };
                match asked.or_else(|| servfail(&query, Transport::Tcp)) {
                    Some(reply) => reply,
                    None => return,
                }
            }
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let written = timeout(TCP_IDLE_TIMEOUT, async {
            writer.write_all(&len.to_be_bytes()).await?;
            writer.write_all(&reply).await?;
            writer.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}
