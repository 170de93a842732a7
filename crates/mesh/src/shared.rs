//! State shared by the mesh handle, its listeners and their connections.

use crate::pipe::PipePool;
use crate::stats::Counters;
use shoal_balance::EndpointTable;
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The table connections route by. Swapped whole by `apply`; readers only clone the
    /// `Arc` under the read lock, so nothing in the request path waits on anything else.
    table: RwLock<Arc<EndpointTable>>,
    pub(crate) stats: Counters,
    pub(crate) pipes: PipePool,
}

impl Shared {
    pub(crate) fn table(&self) -> Arc<EndpointTable> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_table(&self, table: Arc<EndpointTable>) {
        let old = std::mem::replace(
            &mut *self.table.write().unwrap_or_else(PoisonError::into_inner),
            table,
        );
        // The old table is freed here, after the lock is released.
        drop(old);
    }
}
