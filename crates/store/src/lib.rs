//! The cluster state store: nodes, services and tasks, changed only in atomic batches.
//!
//! A write runs a closure against a working copy of [`ClusterState`]; the closure records
//! [`Op`]s through a [`Txn`]. If it returns an error nothing is written. Otherwise the ops are
//! persisted in one redb transaction, applied to the in-memory state, the version is bumped
//! and watchers are woken. The ops are plain data applied deterministically
//! ([`apply_op`]), which is what a replicated log will carry.
//!
//! Each kind of object (node, service, task) is one line of the `kinds!` list in `op.rs`,
//! which implements [`Kind`] for it and gives it its ops; the rest of the store reaches kinds
//! only through [`Kind`].
//!
//! Depends on `shoal-api` only; knows nothing of managers, agents or the data plane.

pub mod disk;
mod error;
mod kind;
mod op;
pub mod raft;
pub mod seal;
mod store;

pub use error::StoreError;
pub use kind::Kind;
pub use op::{apply_op, Op};
pub use seal::Sealer;
pub use store::{Store, Txn};
