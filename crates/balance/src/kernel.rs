//! How the kernel balances a service forwarded by NAT (`--lb-mode nat`): a NAT rule picks
//! one slot of a small table, by a counter (round-robin), a random number (random) or a
//! hash of the client's address (source-hash, maglev), and each slot names an endpoint.
//! Weights are slots: an endpoint of weight 2 holds twice as many as one of weight 1.
//! Maglev fills its table as the proxy's does, in fewer slots ([`KERNEL_MAGLEV_SLOTS`]).
//!
//! Pure: the node writes the slots into its rules.

use crate::endpoint::Endpoint;
use crate::maglev::Table;
use crate::weights::Weights;
use shoal_api::Policy;

/// Slots of a Maglev table in the kernel: a prime, so that every skip visits every slot;
/// small enough to rewrite at every change, enough for a few dozen endpoints.
pub const KERNEL_MAGLEV_SLOTS: usize = 251;

/// About this many slots at most for weights: heavier sets are scaled down to it, each
/// endpoint keeping at least one slot (so a set of many endpoints may take a few more, and
/// its shares are approximate).
pub const KERNEL_MAX_SLOTS: u64 = 256;

/// What picks a slot for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPick {
    /// A counter, one step per connection: round-robin.
    Counter,
    /// A random number per connection.
    Random,
    /// A hash of the client's address: a client keeps its slot.
    ClientHash,
}

/// A table the kernel balances by: `slots[k]` is the index into the set of the endpoint
/// slot `k` sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTable {
    pub pick: SlotPick,
    pub slots: Vec<usize>,
}

/// The table for `endpoints` balanced by `policy`; `None` when the set is empty or the
/// kernel cannot balance by `policy` (it counts no open connections).
pub fn kernel_table(policy: Policy, endpoints: &[Endpoint]) -> Option<KernelTable> {
    if endpoints.is_empty() || !policy.in_kernel() {
        return None;
    }
    let pick = match policy {
        Policy::RoundRobin => SlotPick::Counter,
        Policy::Random => SlotPick::Random,
        _ => SlotPick::ClientHash,
    };
    let slots = if policy == Policy::Maglev {
        Table::build(endpoints, KERNEL_MAGLEV_SLOTS)
            .slots()
            .iter()
            .map(|&i| i as usize)
            .collect()
    } else {
        weighted_slots(endpoints)
    };
    Some(KernelTable { pick, slots })
}

/// Each endpoint in as many slots as its weight (divided by the weights' greatest common
/// divisor, scaled down to [`KERNEL_MAX_SLOTS`]), interleaved as smoothly as weighted
/// round-robin takes turns: weights 2 and 1 give `0 1 0`, not `0 0 1`.
fn weighted_slots(endpoints: &[Endpoint]) -> Vec<usize> {
    let weights = Weights::of(endpoints);
    let mut shares: Vec<(usize, u64)> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| (i, u64::from(weights.get(e))))
        .filter(|(_, w)| *w > 0)
        .collect();
    let divisor = shares.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    for (_, w) in &mut shares {
        *w /= divisor;
    }
    let total: u64 = shares.iter().map(|(_, w)| w).sum();
    if total > KERNEL_MAX_SLOTS {
        for (_, w) in &mut shares {
            *w = (*w * KERNEL_MAX_SLOTS / total).max(1);
        }
    }
    let total: u64 = shares.iter().map(|(_, w)| w).sum();
    let mut credit = vec![0i64; shares.len()];
    let mut slots = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (k, (_, w)) in shares.iter().enumerate() {
            credit[k] += i64::try_from(*w).unwrap_or(i64::MAX);
            if credit[k] > credit[best] {
                best = k;
            }
        }
        credit[best] -= i64::try_from(total).unwrap_or(i64::MAX);
        slots.push(shares[best].0);
    }
    slots
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{set, set_of};

    fn shares(table: &KernelTable, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &i in &table.slots {
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn equal_endpoints_take_one_slot_each_in_turn() {
        let t = kernel_table(Policy::RoundRobin, &set_of(3)).expect("a table");
        assert_eq!(t.pick, SlotPick::Counter);
        assert_eq!(t.slots, [0, 1, 2]);
        let t = kernel_table(Policy::Random, &set_of(2)).expect("a table");
        assert_eq!((t.pick, t.slots), (SlotPick::Random, vec![0, 1]));
        let t = kernel_table(Policy::SourceHash, &set_of(2)).expect("a table");
        assert_eq!(t.pick, SlotPick::ClientHash);
    }

    #[test]
    fn weights_are_slots_interleaved() {
        let t = kernel_table(Policy::RoundRobin, &set(&[200, 100])).expect("a table");
        assert_eq!(t.slots, [0, 1, 0]);
        let t = kernel_table(Policy::RoundRobin, &set(&[100, 100, 300])).expect("a table");
        assert_eq!(shares(&t, 3), [1, 1, 3]);
        assert_ne!(t.slots[..3], [2, 2, 2], "{:?}", t.slots);
    }

    #[test]
    fn weight_zero_counts_only_when_every_endpoint_has_it() {
        let t = kernel_table(Policy::RoundRobin, &set(&[0, 5, 0])).expect("a table");
        assert_eq!(t.slots, [1]);
        let t = kernel_table(Policy::RoundRobin, &set(&[0, 0])).expect("a table");
        assert_eq!(t.slots, [0, 1]);
    }

    #[test]
    fn heavy_sets_are_scaled_down_keeping_every_endpoint() {
        let t = kernel_table(Policy::RoundRobin, &set(&[10_000, 1, 9_999])).expect("a table");
        let s = shares(&t, 3);
        assert!(
            t.slots.len() as u64 <= KERNEL_MAX_SLOTS + 3,
            "{}",
            t.slots.len()
        );
        assert_eq!(s[1], 1);
        assert!(s[0].abs_diff(s[2]) <= 1, "{s:?}");
    }

    #[test]
    fn maglev_fills_its_prime_table_near_equally() {
        let t = kernel_table(Policy::Maglev, &set_of(4)).expect("a table");
        assert_eq!(t.pick, SlotPick::ClientHash);
        assert_eq!(t.slots.len(), KERNEL_MAGLEV_SLOTS);
        for s in shares(&t, 4) {
            assert!((55..=70).contains(&s), "{s}");
        }
    }

    #[test]
    fn maglev_moves_few_slots_when_an_endpoint_leaves() {
        let all = set_of(5);
        let before = kernel_table(Policy::Maglev, &all).expect("a table");
        let after = kernel_table(Policy::Maglev, &all[..4]).expect("a table");
        // Slots of the four that stay, now sent elsewhere.
        let moved = before
            .slots
            .iter()
            .zip(&after.slots)
            .filter(|(b, a)| **b != 4 && b != a)
            .count();
        assert!(moved <= KERNEL_MAGLEV_SLOTS / 10, "{moved} slots moved");
    }

    #[test]
    fn no_table_for_counts_of_connections_or_an_empty_set() {
        assert_eq!(kernel_table(Policy::LeastConn, &set_of(2)), None);
        assert_eq!(kernel_table(Policy::P2c, &set_of(2)), None);
        assert_eq!(kernel_table(Policy::RoundRobin, &[]), None);
    }
}
