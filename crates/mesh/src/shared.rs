//! State shared by the mesh handle, its listeners and their connections.

use crate::caps::ConnectionCaps;
use crate::pipe::PipePool;
use crate::stats::Counters;
use shoal_balance::EndpointTable;
use shoal_balance::{Throttle, WARN_INTERVAL};
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct Shared {
    /// The table connections route by. Swapped whole by `apply`; readers only clone the
    /// `Arc` under the read lock, so nothing in the request path waits on anything else.
    table: RwLock<Arc<EndpointTable>>,
    pub(crate) stats: Counters,
    pub(crate) pipes: PipePool,
    pub(crate) caps: ConnectionCaps,
    /// One permit per connection the whole mesh may hold open.
    pub(crate) slots: Arc<Semaphore>,
    /// Warnings that the mesh is at its cap.
    pub(crate) at_cap: Throttle,
}

impl Shared {
    pub(crate) fn new(caps: ConnectionCaps) -> Shared {
        // At least one connection each, and no more than a semaphore can count.
        let caps = ConnectionCaps {
            total: caps.total.clamp(1, Semaphore::MAX_PERMITS),
            per_port: caps.per_port.clamp(1, Semaphore::MAX_PERMITS),
        };
        Shared {
            table: RwLock::default(),
            stats: Counters::default(),
            // One pipe per connection the cap admits: see FDS_PER_CONNECTION.
            pipes: PipePool::new(caps.total),
            caps,
            slots: Arc::new(Semaphore::new(caps.total)),
            at_cap: Throttle::new(WARN_INTERVAL),
        }
    }

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
