//! Round-robin with fall-through: each pick starts one further along, and a caller that
//! fails to connect walks on through the rest of the set before giving up.
//!
//! Weighted, it is smooth: an endpoint of weight 3 beside two of weight 1 is picked 3 times
//! in every 5, spread out (a b a c a), not in a burst (a a a b c).

use crate::balancer::{Balancer, Order, PickCx};
use crate::endpoint::Endpoint;
use crate::weights::Weights;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Picks so far, when the candidates weigh the same (no lock taken).
    next: AtomicUsize,
    /// Where the weighted cycle stands, when they do not.
    smooth: Mutex<Vec<Slot>>,
}

/// One endpoint in the weighted cycle.
#[derive(Debug)]
struct Slot {
    task_id: String,
    weight: u32,
    /// Grows by the weight every pick and falls by the total weight when picked: the
    /// highest is due.
    current: i64,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }

    /// The index of the next endpoint in turn; `endpoints` is not empty.
    fn pick(&self, endpoints: &[Endpoint]) -> usize {
        let weights = Weights::of(endpoints);
        let mut positive = endpoints.iter().map(|e| weights.get(e)).filter(|&w| w > 0);
        let first_weight = positive.next().unwrap_or(1);
        if positive.all(|w| w == first_weight) {
            let candidates = weights.candidates(endpoints);
            let k = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
            return candidates.get(k);
        }
        self.pick_weighted(endpoints, weights)
    }

    /// Smooth weighted round-robin. A change of the set or of a weight starts a new cycle.
    fn pick_weighted(&self, endpoints: &[Endpoint], weights: Weights) -> usize {
        let mut slots = self.smooth.lock().unwrap_or_else(PoisonError::into_inner);
        let same = slots.len() == endpoints.len()
            && slots
                .iter()
                .zip(endpoints)
                .all(|(s, e)| s.weight == weights.get(e) && s.task_id == e.task_id);
        if !same {
            *slots = endpoints
                .iter()
                .map(|e| Slot {
                    task_id: e.task_id.clone(),
                    weight: weights.get(e),
                    current: 0,
                })
                .collect();
        }
        let total: i64 = slots.iter().map(|s| i64::from(s.weight)).sum();
        let mut best = None;
        for (i, s) in slots.iter_mut().enumerate() {
            if s.weight == 0 {
                continue;
            }
            s.current += i64::from(s.weight);
            if best.is_none_or(|(_, current)| s.current > current) {
                best = Some((i, s.current));
            }
        }
        let (chosen, _) = best.unwrap_or((0, 0));
        slots[chosen].current -= total;
        chosen
    }
}

impl Balancer for RoundRobin {
    fn order(&self, endpoints: &[Endpoint], _cx: &PickCx) -> Order {
        if endpoints.is_empty() {
            return Order::rotated(0, 0);
        }
        Order::first_then_rest(self.pick(endpoints), endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{firsts, set, set_of};

    #[test]
    fn picks_rotate_evenly() {
        let rr = RoundRobin::new();
        assert_eq!(firsts(&rr, &set_of(3), 30), [10, 10, 10]);
    }

    #[test]
    fn order_covers_every_endpoint_once() {
        let rr = RoundRobin::new();
        let four = set_of(4);
        rr.order(&four, &PickCx::default()).next();
        let order: Vec<usize> = rr.order(&four, &PickCx::default()).collect();
        assert_eq!(order, vec![1, 2, 3, 0]);
        assert_eq!(rr.order(&[], &PickCx::default()).count(), 0);
    }

    #[test]
    fn weights_split_each_cycle_exactly() {
        let rr = RoundRobin::new();
        let endpoints = set(&[5, 1, 3, 1]);
        for _ in 0..3 {
            assert_eq!(firsts(&rr, &endpoints, 10), [5, 1, 3, 1]);
        }
    }

    #[test]
    fn weighted_picks_are_interleaved() {
        let picks = |weights: &[u32], n: usize| -> Vec<usize> {
            let rr = RoundRobin::new();
            let endpoints = set(weights);
            (0..n)
                .map(|_| rr.order(&endpoints, &PickCx::default()).next().unwrap())
                .collect()
        };
        assert_eq!(picks(&[3, 1, 1], 10), [0, 1, 0, 2, 0, 0, 1, 0, 2, 0]);
        // Half the picks, never more than two in a row.
        let half = picks(&[4, 1, 1, 1, 1], 80);
        assert_eq!(half.iter().filter(|&&i| i == 0).count(), 40);
        assert!(half.windows(3).all(|w| w != [0, 0, 0]), "{half:?}");
    }

    #[test]
    fn weight_zero_is_picked_only_when_alone() {
        let rr = RoundRobin::new();
        let endpoints = set(&[0, 1, 0, 1]);
        assert_eq!(firsts(&rr, &endpoints, 10), [0, 5, 0, 5]);
        let order: Vec<usize> = rr.order(&endpoints, &PickCx::default()).collect();
        assert_eq!(order, [1, 3, 2, 0]);
        let weighted = set(&[0, 2, 0, 1]);
        assert_eq!(firsts(&rr, &weighted, 9), [0, 6, 0, 3]);
        assert_eq!(firsts(&rr, &set(&[0, 0]), 4), [2, 2]);
    }
}
