//! Connections in flight per endpoint, for the algorithms that weigh endpoints by them.

use crate::balancer::InFlight;
use crate::endpoint::Endpoint;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// One counter per task ID, shared with the [`InFlight`] guards of its connections.
#[derive(Debug, Default)]
pub(crate) struct Loads {
    counters: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

impl Loads {
    /// Calls `f` with the connections in flight to each of `endpoints`, by index. Forgets
    /// the counters of endpoints that left the set once their last connection is gone
    /// (looked for only when there are more counters than endpoints).
    pub(crate) fn read<R>(
        &self,
        endpoints: &[Endpoint],
        f: impl FnOnce(&dyn Fn(usize) -> usize) -> R,
    ) -> R {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if counters.len() > endpoints.len() {
            let present: std::collections::HashSet<&str> =
                endpoints.iter().map(|e| e.task_id.as_str()).collect();
            counters.retain(|id, c| present.contains(id.as_str()) || c.load(Ordering::Relaxed) > 0);
        }
        let load = |i: usize| {
            counters
                .get(&endpoints[i].task_id)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        };
        f(&load)
    }

    /// A guard counting one connection to `endpoint` while it lives.
    pub(crate) fn open(&self, endpoint: &Endpoint) -> InFlight {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let counter = match counters.get(&endpoint.task_id) {
            Some(c) => c.clone(),
            None => counters
                .entry(endpoint.task_id.clone())
                .or_default()
                .clone(),
        };
        InFlight::counting(counter)
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_live_guards_and_forgets_departed_idle_endpoints() {
        let a = Endpoint::new("a", ([10, 0, 0, 1], 80));
        let b = Endpoint::new("b", ([10, 0, 0, 2], 80));
        let c = Endpoint::new("c", ([10, 0, 0, 3], 80));
        let loads = Loads::default();
        let g1 = loads.open(&a);
        let _g2 = loads.open(&a);
        let g3 = loads.open(&b);
        let both = [a.clone(), b.clone()];
        assert_eq!(loads.read(&both, |l| (l(0), l(1))), (2, 1));
        drop(g1);
        assert_eq!(loads.read(&both, |l| l(0)), 1);

        // b left the set with a connection still open: kept until it closes.
        let after = [a.clone(), c.clone()];
        assert_eq!(loads.read(&after, |l| (l(0), l(1))), (1, 0));
        assert_eq!(loads.tracked(), 2);
        drop(g3);
        let _g4 = loads.open(&c);
        loads.read(&after, |_| ());
        assert_eq!(loads.tracked(), 2, "b forgotten, c tracked");
    }
}
