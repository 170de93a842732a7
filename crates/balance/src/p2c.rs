//! Power of two choices: two distinct endpoints drawn at random, the one with fewer
//! connections in flight wins (a tie: the first drawn). Nearly as even as least connections,
//! without looking at every endpoint, and a burst of new connections does not all land on
//! the one endpoint that was idle. Weights are not considered, except that endpoints of
//! weight 0 are drawn only when every endpoint has weight 0. Then the rest of the set in turn
//! after the choice, to fall through to.

use crate::balancer::{Balancer, InFlight, Order, PickCx};
use crate::endpoint::Endpoint;
use crate::loads::Loads;
use crate::weights::Weights;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct P2c {
    loads: Loads,
    rng: Mutex<SmallRng>,
}

impl P2c {
    pub fn new() -> P2c {
        P2c::with_rng(SmallRng::from_rng(&mut rand::rng()))
    }

    /// Draws from a generator seeded with `seed`: the same draws every run.
    pub fn seeded(seed: u64) -> P2c {
        P2c::with_rng(SmallRng::seed_from_u64(seed))
    }

    fn with_rng(rng: SmallRng) -> P2c {
        P2c {
            loads: Loads::default(),
            rng: Mutex::new(rng),
        }
    }
}

impl Default for P2c {
    fn default() -> P2c {
        P2c::new()
    }
}

impl Balancer for P2c {
    fn order(&self, endpoints: &[Endpoint], _cx: &PickCx) -> Order {
        let candidates = Weights::of(endpoints).candidates(endpoints);
        let n = candidates.len();
        if n <= 1 {
            return Order::first_then_rest(candidates.get(0), endpoints);
        }
        let (a, b) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n - 1);
            (
                candidates.get(a),
                candidates.get(if b >= a { b + 1 } else { b }),
            )
        };
        let first = self
            .loads
            .read(endpoints, |load| if load(b) < load(a) { b } else { a });
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

    fn loaded(p2c: &P2c, endpoints: &[Endpoint], loads: &[usize]) -> Vec<InFlight> {
        let mut guards = Vec::new();
        for (e, &n) in endpoints.iter().zip(loads) {
            guards.extend((0..n).map(|_| p2c.opened(e)));
        }
        guards
    }

    #[test]
    fn never_picks_the_most_loaded() {
        for n in 3..=6 {
            let p2c = P2c::seeded(n as u64);
            let endpoints = set_of(n);
            // Endpoint 0 carries far more than the others, which differ too.
            let loads: Vec<usize> = (0..n).map(|i| if i == 0 { 100 } else { i }).collect();
            let _guards = loaded(&p2c, &endpoints, &loads);
            let counts = firsts(&p2c, &endpoints, 3_000);
            assert_eq!(counts[0], 0, "{counts:?}");
            // The least loaded wins every draw it is in: about 2/n of them.
            assert!(counts[1] * n > 3_000 * 3 / 2, "{counts:?}");
        }
    }

    #[test]
    fn idle_endpoints_spread_evenly() {
        let counts = firsts(&P2c::new(), &set_of(4), 10_000);
        assert!(
            counts.iter().all(|&c| (1_500..=3_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn weight_zero_is_drawn_only_when_alone() {
        let p2c = P2c::seeded(1);
        assert_eq!(firsts(&p2c, &set(&[0, 1, 0]), 100), [0, 100, 0]);
        let counts = firsts(&p2c, &set(&[0, 5, 0, 1]), 1_000);
        assert_eq!((counts[0], counts[2]), (0, 0));
        assert_eq!(firsts(&p2c, &set(&[0]), 5), [5]);
        assert_eq!(p2c.order(&[], &PickCx::default()).count(), 0);
    }
}
