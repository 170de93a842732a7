//! Round-robin with fall-through: each pick starts one further along, and a caller that
//! fails to connect walks on through the rest of the set before giving up.

use crate::balancer::{Balancer, Order, PickCx};
use crate::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }

    /// Indices into a set of `len` endpoints, in the order to try them: the round-robin
    /// choice first, then every other endpoint once.
    pub fn order(&self, len: usize) -> Order {
        let start = if len == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % len
        };
        Order::rotated(start, len)
    }
}

impl Balancer for RoundRobin {
    fn order(&self, endpoints: &[Endpoint], _cx: &PickCx) -> Order {
        RoundRobin::order(self, endpoints.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_rotate_evenly() {
        let rr = RoundRobin::new();
        let mut counts = [0usize; 3];
        for _ in 0..30 {
            let first = rr.order(3).next().expect("non-empty");
            counts[first] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn order_covers_every_endpoint_once() {
        let rr = RoundRobin::new();
        rr.order(4).next();
        let order: Vec<usize> = rr.order(4).collect();
        assert_eq!(order, vec![1, 2, 3, 0]);
        assert_eq!(rr.order(0).count(), 0);
    }
}
