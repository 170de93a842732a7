//! Endpoint sets and load-balancing algorithms for the data plane.
//!
//! Pure data and pure decisions: the data plane's snapshot of the services (`snapshot`),
//! which published port maps to which ready endpoints, in which order a connection should
//! try them (round-robin, least connections, power of two choices, source hash, Maglev,
//! random; see [`Policy`]), the slot tables the kernel balances by ([`kernel`]), which endpoints are ejected after failed connects
//! ([`Ejections`]); the throttle for warnings of caps hit. No I/O, no clocks in the
//! decisions (callers give the time; only the [`Ejecting`] wrapper reads it); the mesh, the
//! control port (and later the VIP proxy and L7 router) drive it. Depends only on
//! `shoal-api` (and `rand` for the random draws).

mod balancer;
mod eject;
mod endpoint;
mod hash;
pub mod kernel;
mod least_conn;
mod loads;
mod maglev;
mod p2c;
mod random;
mod round_robin;
pub mod snapshot;
mod source_hash;
#[cfg(test)]
mod testing;
mod throttle;
mod weights;

pub use balancer::{Balancer, Failure, InFlight, Order, PickCx};
pub use eject::{Ejecting, Ejections, Partition, EJECTION_BASE, EJECTION_MAX};
pub use endpoint::{Endpoint, EndpointSet, EndpointTable, PortKey};
pub use least_conn::LeastConn;
pub use maglev::{Maglev, MAGLEV_TABLE_SIZE};
pub use p2c::P2c;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use snapshot::{balancer_for, DataPlaneSnapshot, Policy, ServiceEndpoint, ServiceEntry};
pub use source_hash::SourceHash;
pub use throttle::{Throttle, WARN_INTERVAL};
