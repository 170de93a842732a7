//! The UDP flows of one port: client address → the endpoint its first datagram was sent to
//! and the connected socket that carries the flow both ways.
//!
//! A flow ends when it is idle too long (its relay removes it), when the endpoint refused
//! it (an ICMP port unreachable), or when a new endpoint set no longer has its endpoint
//! among the ready ones ([`Flows::keep_only`]). Dropping a flow closes its socket at once,
//! so the client's next datagram starts a new flow on a ready endpoint.

use shoal_balance::{Endpoint, InFlight};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::UdpSocket;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::splice::Activity;

/// One client's flow.
#[derive(Debug)]
pub(crate) struct Flow {
    /// Tells this flow from a later one of the same client.
    pub(crate) id: u64,
    pub(crate) endpoint: Endpoint,
    /// Connected to the endpoint.
    pub(crate) upstream: Arc<UdpSocket>,
    /// The last datagram either way.
    pub(crate) activity: Arc<Activity>,
    /// Carries the endpoint's replies to the client, and ends the flow when it goes idle.
    pub(crate) relay: Option<JoinHandle<()>>,
    /// Counts the flow for the balancer (least-conn) while it lives.
    pub(crate) _in_flight: InFlight,
    /// Its slots under the port's and the mesh's caps.
    pub(crate) _slots: [OwnedSemaphorePermit; 2],
}

impl Drop for Flow {
    fn drop(&mut self) {
        if let Some(relay) = &self.relay {
            relay.abort();
        }
    }
}

/// The flows of one port.
#[derive(Debug, Default)]
pub(crate) struct Flows {
    by_client: Mutex<HashMap<SocketAddr, Flow>>,
    next_id: AtomicU64,
}

impl Flows {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The flow of `client`, its activity touched: its socket and endpoint.
    pub(crate) fn get(&self, client: &SocketAddr) -> Option<(Arc<UdpSocket>, Endpoint, u64)> {
        let flows = self.lock();
        let flow = flows.get(client)?;
        flow.activity.touch();
        Some((flow.upstream.clone(), flow.endpoint.clone(), flow.id))
    }

    /// Adds `client`'s flow (ending one it had before).
    pub(crate) fn insert(&self, client: SocketAddr, flow: Flow) {
        let old = self.lock().insert(client, flow);
        drop(old);
    }

    /// Ends `client`'s flow if it is still flow `id`; whether it was.
    pub(crate) fn remove(&self, client: &SocketAddr, id: u64) -> bool {
        let removed = {
            let mut flows = self.lock();
            match flows.get(client) {
                Some(f) if f.id == id => flows.remove(client),
                _ => None,
            }
        };
        removed.is_some()
    }

    /// Ends every flow whose endpoint is not among `endpoints` (same task at the same
    /// address); returns how many ended.
    pub(crate) fn keep_only(&self, endpoints: &[Endpoint]) -> usize {
        let ready: HashSet<(&str, SocketAddr)> = endpoints
            .iter()
            .map(|e| (e.task_id.as_str(), e.addr))
            .collect();
        let ended: Vec<Flow> = {
            let mut flows = self.lock();
            let gone: Vec<SocketAddr> = flows
                .iter()
                .filter(|(_, f)| !ready.contains(&(f.endpoint.task_id.as_str(), f.endpoint.addr)))
                .map(|(client, _)| *client)
                .collect();
            gone.iter().filter_map(|c| flows.remove(c)).collect()
        };
        // Sockets close here, outside the lock.
        ended.len()
    }

    /// Ends every flow.
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Flow>> {
        self.by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    async fn flow(flows: &Flows, task: &str, addr: SocketAddr) -> Flow {
        let slots = Arc::new(Semaphore::new(8));
        let take = || slots.clone().try_acquire_owned().expect("a slot");
        Flow {
            id: flows.next_id(),
            endpoint: Endpoint::new(task, addr),
            upstream: Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind")),
            activity: Arc::new(Activity::new()),
            relay: None,
            _in_flight: InFlight::default(),
            _slots: [take(), take()],
        }
    }

    fn client(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn flows_of_endpoints_that_left_the_set_end() {
        let flows = Flows::default();
        let a = SocketAddr::from(([10, 0, 0, 1], 53));
        let b = SocketAddr::from(([10, 0, 0, 2], 53));
        flows.insert(client(1), flow(&flows, "a", a).await);
        flows.insert(client(2), flow(&flows, "b", b).await);
        flows.insert(client(3), flow(&flows, "b", b).await);
        assert_eq!(
            flows.keep_only(&[Endpoint::new("a", a), Endpoint::new("b", b)]),
            0
        );
        assert_eq!(flows.keep_only(&[Endpoint::new("a", a)]), 2);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows.get(&client(1)).map(|f| f.1.task_id), Some("a".into()));
        // The same task at another address is another endpoint.
        let moved = SocketAddr::from(([10, 0, 0, 1], 54));
        assert_eq!(flows.keep_only(&[Endpoint::new("a", moved)]), 1);
        assert_eq!(flows.len(), 0);
    }

    #[tokio::test]
    async fn a_flow_is_removed_only_by_its_own_id() {
        let flows = Flows::default();
        let a = SocketAddr::from(([10, 0, 0, 1], 53));
        let first = flow(&flows, "a", a).await;
        let first_id = first.id;
        flows.insert(client(1), first);
        let second = flow(&flows, "a", a).await;
        let second_id = second.id;
        flows.insert(client(1), second);
        assert!(
            !flows.remove(&client(1), first_id),
            "a stale id ended the newer flow"
        );
        assert_eq!(flows.len(), 1);
        assert!(flows.remove(&client(1), second_id));
        assert_eq!(flows.len(), 0);
    }
}
