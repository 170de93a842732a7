//! At random, by weight: an endpoint of weight 2 is drawn twice as often as one of weight 1.
//! Then the rest of the set in turn after it, to fall through to.

use crate::balancer::{Balancer, Order, PickCx};
use crate::endpoint::Endpoint;
use crate::weights::Weights;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct Random {
    rng: Mutex<SmallRng>,
}

impl Random {
    pub fn new() -> Random {
        Random {
            rng: Mutex::new(SmallRng::from_rng(&mut rand::rng())),
        }
    }

    /// Draws from a generator seeded with `seed`: the same picks every run.
    pub fn seeded(seed: u64) -> Random {
        Random {
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }
}

impl Default for Random {
    fn default() -> Random {
        Random::new()
    }
}

impl Balancer for Random {
    fn order(&self, endpoints: &[Endpoint], _cx: &PickCx) -> Order {
        let weights = Weights::of(endpoints);
        let total: u64 = endpoints.iter().map(|e| u64::from(weights.get(e))).sum();
        if total == 0 {
            return Order::rotated(0, 0);
        }
        let mut left = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0..total);
        let mut first = 0;
        for (i, e) in endpoints.iter().enumerate() {
            let w = u64::from(weights.get(e));
            if left < w {
                first = i;
                break;
            }
            left -= w;
        }
        Order::first_then_rest(first, endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{firsts, set, set_of};

    #[test]
    fn picks_spread_evenly() {
        let counts = firsts(&Random::seeded(7), &set_of(4), 10_000);
        assert!(
            counts.iter().all(|&c| (1_500..=3_500).contains(&c)),
            "{counts:?}"
        );
        let counts = firsts(&Random::new(), &set_of(4), 10_000);
        assert!(
            counts.iter().all(|&c| (1_500..=3_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn picks_follow_the_weights() {
        // Expected 2_000, 6_000, 0 and 2_000.
        let counts = firsts(&Random::seeded(11), &set(&[1, 3, 0, 1]), 10_000);
        assert!((1_500..=2_500).contains(&counts[0]), "{counts:?}");
        assert!((5_400..=6_600).contains(&counts[1]), "{counts:?}");
        assert_eq!(counts[2], 0, "weight 0 is never the choice");
        assert!((1_500..=2_500).contains(&counts[3]), "{counts:?}");
    }

    #[test]
    fn a_seed_fixes_the_picks() {
        let endpoints = set_of(5);
        let picks = |r: &Random| -> Vec<usize> {
            (0..20)
                .map(|_| r.order(&endpoints, &PickCx::default()).next().unwrap())
                .collect()
        };
        assert_eq!(picks(&Random::seeded(3)), picks(&Random::seeded(3)));
    }
}
