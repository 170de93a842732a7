//! openraft's network, over a [`Transport`]: each call is one JSON request and answer.

use super::{Contact, Peer, Rpc, Transport, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// An append of several entries larger than this is split (a single entry always goes).
const MAX_APPEND_BYTES: usize = 16 << 20;

pub(crate) struct Network {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) contact: Arc<Contact>,
}

pub(crate) struct Conn {
    target: u64,
    addr: String,
    transport: Arc<dyn Transport>,
    contact: Arc<Contact>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, node: &Peer) -> Conn {
        Conn {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            contact: self.contact.clone(),
        }
    }
}

type Err<E> = RPCError<u64, Peer, RaftError<u64, E>>;

impl Conn {
    async fn call<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, Err<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let call = self.transport.call(&self.addr, rpc, body);
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::other(e),
                )))
            }
            Err(_) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::other(format!("{} to {} timed out", rpc.as_str(), self.addr)),
                )))
            }
        };
        let res: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.contact.peer_ok(self.target);
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Err<openraft::error::Infallible>> {
        // Big writes (thousands of tasks in one entry) can make a batch of entries larger
        // than a message may be: ask openraft to send fewer at a time.
        let n = rpc.entries.len() as u64;
        if n > 1 {
            let size = serde_json::to_vec(&rpc).map_or(0, |b| b.len());
            if size > MAX_APPEND_BYTES {
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(n / 2),
                ));
            }
        }
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Err<InstallSnapshotError>> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, Err<openraft::error::Infallible>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
