//! The kinds of object the store keeps, one table each.
//!
//! A kind is one line of the `kinds!` list in `op.rs`: its type, its map in
//! [`ClusterState`], its redb table and the names of its two ops. That line generates the
//! kind's [`Kind`] impl and its `Put…`/`Delete…` variants of [`crate::Op`]; applying,
//! persisting, loading and snapshot installs reach every kind through [`Kind`] alone.

use serde::{de::DeserializeOwned, Serialize};
use shoal_api::{Cluster, ClusterState};
use std::collections::BTreeMap;

/// An object kept in a table of its own, keyed by its ID.
pub trait Kind: Clone + Serialize + DeserializeOwned + 'static {
    /// Its redb table: part of the on-disk format, never renamed.
    const TABLE: &'static str;
    /// Its map's field in [`ClusterState`] (and so in a snapshot's JSON).
    const FIELD: &'static str;

    /// The key it is kept under.
    fn id(&self) -> &str;
    fn map(state: &ClusterState) -> &BTreeMap<String, Self>;
    fn map_mut(state: &mut ClusterState) -> &mut BTreeMap<String, Self>;
    /// The op that writes it.
    fn put_op(self) -> crate::Op;
    /// The op that deletes the object with ID `id`.
    fn delete_op(id: String) -> crate::Op;
}

/// Something done once per kind (see [`each_kind`](crate::op::each_kind)).
pub(crate) trait KindVisitor {
    type Error;
    fn visit<K: Kind>(&mut self) -> Result<(), Self::Error>;
}

/// What an op does, with its kind as a type (see [`crate::Op::visit`]).
pub(crate) trait OpVisitor {
    type Error;
    fn set_cluster(&mut self, cluster: &Cluster) -> Result<(), Self::Error>;
    fn reset(&mut self) -> Result<(), Self::Error>;
    fn put<K: Kind>(&mut self, object: &K) -> Result<(), Self::Error>;
    fn delete<K: Kind>(&mut self, id: &str) -> Result<(), Self::Error>;
}

/// Defines [`crate::Op`] and the kinds, each as
/// `Type in field, table "name", ops PutType / DeleteType;`. The op names are the Raft log's
/// JSON form (`{"PutTask": {...}}`, `{"DeleteTask": "id"}`) and the table names the disk's:
/// neither is ever renamed.
macro_rules! kinds {
    ($($kind:ident in $field:ident, table $table:literal, ops $put:ident / $delete:ident;)*) => {
        /// One change of a write; a log entry carries a write's ops.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum Op {
            SetCluster(Box<shoal_api::Cluster>),
            /// Forget everything (leaving the cluster for good).
            Reset,
            $(
                $put(Box<shoal_api::$kind>),
                $delete(String),
            )*
        }

        impl Op {
            /// Hand the op to `v` with its kind as a type.
            pub(crate) fn visit<V: $crate::kind::OpVisitor>(&self, v: &mut V) -> Result<(), V::Error> {
                match self {
                    Op::SetCluster(c) => v.set_cluster(c),
                    Op::Reset => v.reset(),
                    $(
                        Op::$put(o) => v.put::<shoal_api::$kind>(o),
                        Op::$delete(id) => v.delete::<shoal_api::$kind>(id),
                    )*
                }
            }
        }

        /// Visit every kind, in the order listed.
        pub(crate) fn each_kind<V: $crate::kind::KindVisitor>(v: &mut V) -> Result<(), V::Error> {
            $(v.visit::<shoal_api::$kind>()?;)*
            Ok(())
        }

        $(
            impl $crate::kind::Kind for shoal_api::$kind {
                const TABLE: &'static str = $table;
                const FIELD: &'static str = stringify!($field);

                fn id(&self) -> &str {
                    &self.id
                }

                fn map(state: &shoal_api::ClusterState) -> &std::collections::BTreeMap<String, Self> {
                    &state.$field
                }

                fn map_mut(
                    state: &mut shoal_api::ClusterState,
                ) -> &mut std::collections::BTreeMap<String, Self> {
                    &mut state.$field
                }

                fn put_op(self) -> Op {
                    Op::$put(Box::new(self))
                }

                fn delete_op(id: String) -> Op {
                    Op::$delete(id)
                }
            }
        )*
    };
}

pub(crate) use kinds;
