//! Endpoint sets and load-balancing algorithms for the data plane.
//!
//! Pure data and pure decisions: the data plane's snapshot of the services (`snapshot`),
//! which published port maps to which ready endpoints, and in
//! which order a connection should try them; the throttle for warnings of caps hit. No I/O,
//! no clocks (callers give the time); the mesh, the control port (and later the VIP proxy
//! and L7 router) drive it. Depends only on `shoal-api`.

mod balancer;
mod endpoint;
mod round_robin;
pub mod snapshot;
mod throttle;

pub use balancer::{Balancer, Failure, InFlight, Order, PickCx};
pub use endpoint::{Endpoint, EndpointSet, EndpointTable, PortKey};
pub use round_robin::RoundRobin;
pub use snapshot::{DataPlaneSnapshot, ServiceEndpoint, ServiceEntry};
pub use throttle::{Throttle, WARN_INTERVAL};
