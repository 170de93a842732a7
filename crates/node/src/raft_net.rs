//! Raft between managers over the control port: the gRPC `Raft` service (manager
//! certificates only) and the client side, a [`Transport`] with one lazy channel per peer.

use rustls::ClientConfig;
use shoal_rpc::pki::CertRole;
use shoal_rpc::proto::raft_client::RaftClient;
use shoal_rpc::proto::{raft_server, RaftMessage, RaftReply};
use shoal_rpc::tls::{self, PeerIdentity};
use shoal_store::raft::{BoxFuture, Rpc, Transport};
use shoal_store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Raft messages (log entries, snapshot chunks) can be large.
pub const MAX_MESSAGE: usize = 64 << 20;

/// Calls to other managers' `Raft` service.
pub struct GrpcTransport {
    tls: watch::Receiver<Arc<ClientConfig>>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport").finish_non_exhaustive()
    }
}

impl GrpcTransport {
    pub fn new(tls: watch::Receiver<Arc<ClientConfig>>) -> GrpcTransport {
        GrpcTransport {
            tls,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let sock: SocketAddr = addr
            .parse()
            .map_err(|_| format!("invalid manager address {addr:?}"))?;
        let c = tls::channel(sock, self.tls.borrow().clone()).map_err(|e| e.to_string())?;
        channels.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

impl Transport for GrpcTransport {
    fn call(&self, addr: &str, rpc: Rpc, body: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let channel = self.channel(addr);
        Box::pin(async move {
            let mut client = RaftClient::new(channel?)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            client
                .call(RaftMessage {
                    rpc: rpc.as_str().to_string(),
                    body,
                })
                .await
                .map(|r| r.into_inner().body)
                .map_err(|s| s.message().to_string())
        })
    }
}

/// The `Raft` gRPC service: hands messages from other managers to the local replica.
#[derive(Debug, Clone)]
pub struct RaftService {
    pub store: Arc<Store>,
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn call(&self, req: Request<RaftMessage>) -> Result<Response<RaftReply>, Status> {
        // The store, not the certificate, says who is a member: the replica checks the
        // sender against its membership (see `Replica::handle`).
        let from = req
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.as_ref())
            .filter(|i| i.role == CertRole::Manager)
            .map(|i| (i.node_id.clone(), i.cluster_id.clone()))
            .ok_or_else(|| {
                Status::permission_denied("raft messages are accepted from managers only")
            })?;
        let ours = self.store.state().cluster.as_ref().map(|c| c.id.clone());
        if ours.is_some_and(|c| c != from.1) {
            return Err(Status::permission_denied("certificate of another cluster"));
        }
        let replica = self
            .store
            .replica()
            .ok_or_else(|| Status::unavailable("this node is not a manager (yet)"))?;
        let msg = req.into_inner();
        let rpc = Rpc::parse(&msg.rpc)
            .ok_or_else(|| Status::invalid_argument(format!("unknown raft call {:?}", msg.rpc)))?;
        let body = replica
            .handle(&from.0, rpc, &msg.body)
            .await
            .map_err(Status::internal)?;
        Ok(Response::new(RaftReply { body }))
    }
}

/// The server side of [`RaftService`], with the message limits raised.
pub fn server(store: Arc<Store>) -> raft_server::RaftServer<RaftService> {
    raft_server::RaftServer::new(RaftService { store })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}
