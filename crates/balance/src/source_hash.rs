//! Source hashing: a client's address, hashed alike on every node, picks its endpoint, so
//! a client keeps landing on the same one while the set stays the same. A change of the set
//! remaps most clients ([`crate::Maglev`] remaps few). Weights are not considered, except
//! that endpoints of weight 0 are picked only when every endpoint has weight 0. Without a
//! client address, round-robin. Then the rest of the set in turn after the choice, to fall
//! through to.

use crate::balancer::{Balancer, Order, PickCx};
use crate::endpoint::Endpoint;
use crate::hash;
use crate::round_robin::RoundRobin;
use crate::weights::Weights;

#[derive(Debug, Default)]
pub struct SourceHash {
    /// For connections without a client address.
    round_robin: RoundRobin,
}

impl SourceHash {
    pub fn new() -> SourceHash {
        SourceHash::default()
    }
}

impl Balancer for SourceHash {
    fn order(&self, endpoints: &[Endpoint], cx: &PickCx) -> Order {
        let Some(client) = cx.client else {
            return self.round_robin.order(endpoints, cx);
        };
        let candidates = Weights::of(endpoints).candidates(endpoints);
        if candidates.len() == 0 {
            return Order::rotated(0, 0);
        }
        let k = hash::client(client) % candidates.len() as u64;
        let first = candidates.get(usize::try_from(k).unwrap_or(0));
        Order::first_then_rest(first, endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{client, first_for, firsts, firsts_with, set, set_of};

    #[test]
    fn a_client_stays_on_its_endpoint() {
        let endpoints = set_of(5);
        let sh = SourceHash::new();
        for k in 0..200 {
            let first = first_for(&sh, &endpoints, client(k));
            assert_eq!(first_for(&sh, &endpoints, client(k)), first);
            assert_eq!(first_for(&SourceHash::new(), &endpoints, client(k)), first);
        }
    }

    #[test]
    fn clients_spread_over_the_endpoints() {
        let endpoints = set_of(4);
        let counts = firsts_with(&SourceHash::new(), &endpoints, 10_000, |k| PickCx {
            client: Some(client(k)),
        });
        assert!(
            counts.iter().all(|&c| (2_000..=3_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn without_a_client_it_goes_round_robin() {
        assert_eq!(firsts(&SourceHash::new(), &set_of(3), 30), [10, 10, 10]);
    }

    #[test]
    fn weight_zero_is_picked_only_when_alone() {
        let counts = firsts_with(&SourceHash::new(), &set(&[0, 1, 0, 1]), 1_000, |k| PickCx {
            client: Some(client(k)),
        });
        assert_eq!((counts[0], counts[2]), (0, 0));
        assert!(counts[1] > 300 && counts[3] > 300, "{counts:?}");
    }
}
