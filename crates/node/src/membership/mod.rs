//! Cluster membership: where this node stands (`state`: detached, or a member with a role,
//! and the one guard every change passes), the changes themselves (`init`, `join`,
//! `leave`, `role_change`; `first_contact` is a joining node's CA exchange), the checks of
//! an init request (`settings`) and typed errors (`error`), and what survives a restart
//! (`record`, persisted by `store`).
//!
//! Nothing here knows HTTP: the local API calls `Runtime::init`, `join` and `leave` with
//! the plain request structs of `shoal_wire::v1::membership` and maps [`MembershipError`]
//! to its responses.

mod error;
mod first_contact;
mod init;
mod join;
mod leave;
mod record;
mod role_change;
mod settings;
mod state;
pub mod store;

pub use error::MembershipError;
pub use record::{Certs, Membership};
pub use state::Standing;
