//! The routing mesh: the L4 proxy every node runs for the cluster's published ports.
//!
//! [`Mesh::apply`] takes a whole [`shoal_balance::EndpointTable`]: it listens on every TCP
//! published port, and each accepted connection is forwarded to a ready endpoint picked by
//! round-robin from the port's current endpoint set, falling through to the next endpoint
//! when a connect fails. Bytes move with zero-copy `splice(2)` through a pipe per direction.
//! [`Mesh::acked`] reports the table version the mesh routes by, so the agent can wait for
//! every node before it stops a task.
//!
//! Every published UDP port is received on too, and relayed per flow (a client address
//! and port): the flow's first datagram picks an endpoint by the same balancer, later ones
//! go to the same endpoint, and the flow ends when idle for the service's UDP idle timeout,
//! when the endpoint answers with an ICMP port unreachable, or at once when its endpoint is
//! no longer ready (`udp`, `flows`; replies leave from the address the client sent to,
//! `datagram`). Service VIPs get UDP the same way ([`VipProxy::apply_udp`]).
//!
//! Dependencies: only `shoal-api`, `shoal-balance` and `shoal-proxy-header`, never manager
//! code. The request path never waits on the control plane: a table, once applied, is
//! served until the next one arrives, so the mesh keeps routing by its last table when
//! managers are gone.
//!
//! Layers of one connection, in order: a slot under the port's connection cap, accept, a
//! slot under the mesh's (`listener`; at a cap the port stops accepting and clients wait in
//! the listen queue), pick and connect with fall-through (`connection`), the PROXY v2
//! header naming the client when the target port was published with `proxy-protocol=v2`
//! (`connection`, encoded by `shoal-proxy-header`), proxy both directions (`splice`, pipes
//! from `pipe`). [`ConnectionCaps`] bound the file descriptors the mesh can take
//! ([`FDS_PER_CONNECTION`] per connection), so a flood on one port cannot starve the other
//! ports or the rest of the daemon.

mod caps;
mod connection;
mod datagram;
mod error;
mod flows;
mod listener;
mod mesh;
mod pipe;
mod shared;
mod splice;
mod stats;
mod udp;
mod vip;

pub use caps::{ConnectionCaps, FDS_PER_CONNECTION};
pub use error::{ConnectionError, MeshError};
pub use mesh::{Mesh, MeshConfig};
pub use stats::MeshStats;
pub use vip::VipProxy;
