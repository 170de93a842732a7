//! Least connections: the endpoint with the fewest connections in flight for its weight
//! (the lowest `(in flight + 1) / weight`, so an idle endpoint of weight 2 goes before an
//! idle one of weight 1). Ties go in turn, so short connections still spread. Then the rest
//! of the set in turn after it, to fall through to.

use crate::balancer::{Balancer, InFlight, Order, PickCx};
use crate::endpoint::Endpoint;
use crate::loads::Loads;
use crate::weights::Weights;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct LeastConn {
    loads: Loads,
    /// Where the search for the least loaded starts: ties go to the first found.
    next: AtomicUsize,
}

impl LeastConn {
    pub fn new() -> LeastConn {
        LeastConn::default()
    }
}

impl Balancer for LeastConn {
    fn order(&self, endpoints: &[Endpoint], _cx: &PickCx) -> Order {
        let len = endpoints.len();
        if len == 0 {
            return Order::rotated(0, 0);
        }
        let weights = Weights::of(endpoints);
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        let first = self.loads.read(endpoints, |load| {
            // (load + 1) / weight compared as products, in integers.
            let mut best: Option<(usize, u128, u128)> = None;
            for i in (0..len).map(|k| (start + k) % len) {
                let weight = u128::from(weights.get(&endpoints[i]));
                if weight == 0 {
                    continue;
                }
                let busy = load(i) as u128 + 1;
                if best.is_none_or(|(_, b_busy, b_weight)| busy * b_weight < b_busy * weight) {
                    best = Some((i, busy, weight));
                }
            }
            best.map_or(start, |(i, _, _)| i)
        });
        Order::first_then_rest(first, endpoints)
    }

    fn opened(&self, endpoint: &Endpoint) -> InFlight {
        self.loads.open(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{firsts, set, set_of};

    #[test]
    fn picks_the_endpoint_with_fewest_in_flight() {
        let lc = LeastConn::new();
        let endpoints = set_of(4);
        let mut guards = Vec::new();
        for (i, n) in [3, 1, 4, 2].into_iter().enumerate() {
            guards.extend((0..n).map(|_| lc.opened(&endpoints[i])));
        }
        assert_eq!(firsts(&lc, &endpoints, 10), [0, 10, 0, 0]);
        guards.extend((0..2).map(|_| lc.opened(&endpoints[1])));
        assert_eq!(firsts(&lc, &endpoints, 10), [0, 0, 0, 10]);
    }

    #[test]
    fn connections_that_stay_open_fill_the_endpoints_evenly() {
        let lc = LeastConn::new();
        let endpoints = set_of(3);
        let guards: Vec<InFlight> = (0..30)
            .map(|_| {
                let first = lc.order(&endpoints, &PickCx::default()).next().unwrap();
                lc.opened(&endpoints[first])
            })
            .collect();
        lc.loads.read(&endpoints, |load| {
            assert_eq!((load(0), load(1), load(2)), (10, 10, 10));
        });
        drop(guards);
        lc.loads.read(&endpoints, |load| assert_eq!(load(0), 0));
    }

    #[test]
    fn idle_ties_go_in_turn() {
        assert_eq!(firsts(&LeastConn::new(), &set_of(4), 40), [10, 10, 10, 10]);
    }

    #[test]
    fn in_flight_is_divided_by_weight() {
        let lc = LeastConn::new();
        let endpoints = set(&[3, 1, 0]);
        let guards: Vec<InFlight> = (0..40)
            .map(|_| {
                let first = lc.order(&endpoints, &PickCx::default()).next().unwrap();
                lc.opened(&endpoints[first])
            })
            .collect();
        lc.loads.read(&endpoints, |load| {
            assert_eq!((load(0), load(1), load(2)), (30, 10, 0));
        });
        drop(guards);
    }
}
