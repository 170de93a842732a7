//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016). A lookup table of a prime number of slots is filled
//! by the endpoints in turn, each taking the next free slot in its own permutation of the
//! table (from two hashes of its task ID); a client's address, hashed, picks a slot. Every
//! node builds the same table from the same set (in whatever order: the endpoints take
//! their turns in task-ID order), and a change of the set moves few clients beyond those of
//! the endpoints that left. Weighted: an endpoint of weight 2 takes twice as many turns, so
//! twice as many slots; endpoints of weight 0 have none unless every endpoint has weight 0.
//! Without a client address, round-robin. Then the rest of the set in turn after the
//! choice, to fall through to.
//!
//! One departure from the paper: two endpoints whose skips are equal walk the same cycle of
//! slots, one some steps behind the other, and then a change anywhere in the set ripples
//! along it (removing a third endpoint moved 5 to 10% of all clients instead of 0.2%). So
//! the skips of a set are made distinct: in task-ID order, an endpoint whose skip is taken
//! draws another from the next seed. With 65536 skips this happens to about one set of 20
//! endpoints in 350.
//!
//! The table is built when the set (task IDs and weights, in order) differs from the one
//! it was last built for.

use crate::balancer::{Balancer, Order, PickCx};
use crate::endpoint::Endpoint;
use crate::hash;
use crate::round_robin::RoundRobin;
use crate::weights::Weights;
use std::sync::{Arc, Mutex, PoisonError};

/// Slots in the lookup table: a prime, so that every skip visits every slot; far more than
/// endpoints, so that they get near-equal shares and a change moves few clients.
pub const MAGLEV_TABLE_SIZE: usize = 65_537;

/// Seeds of the two hashes of a task ID (where its permutation starts, and its step).
const OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66;
const SKIP_SEED: u64 = 0x6d61_676c_6576_736b;

#[derive(Debug, Default)]
pub struct Maglev {
    table: Mutex<Option<Arc<Table>>>,
    /// For connections without a client address.
    round_robin: RoundRobin,
}

/// The lookup table for one set.
pub(crate) struct Table {
    /// The set it was built for: task IDs and weights, in order.
    key: Vec<(String, u32)>,
    /// Slot → index into the set.
    slots: Vec<u32>,
}

impl Maglev {
    pub fn new() -> Maglev {
        Maglev::default()
    }

    /// The table for `endpoints`: the last one built, or a new one if the set differs.
    fn table(&self, endpoints: &[Endpoint]) -> Arc<Table> {
        let last = self
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(table) = last.filter(|t| t.fits(endpoints)) {
            return table;
        }
        let table = Arc::new(Table::build(endpoints, MAGLEV_TABLE_SIZE));
        *self.table.lock().unwrap_or_else(PoisonError::into_inner) = Some(table.clone());
        table
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not its 65537 slots.
        f.debug_struct("Table")
            .field("key", &self.key)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Table {
    fn fits(&self, endpoints: &[Endpoint]) -> bool {
        self.key.len() == endpoints.len()
            && self
                .key
                .iter()
                .zip(endpoints)
                .all(|((id, w), e)| *w == e.weight && *id == e.task_id)
    }

    /// Fills `size` slots (a prime) from `endpoints` (not empty, fewer than `u32::MAX`).
    pub(crate) fn build(endpoints: &[Endpoint], size: usize) -> Table {
        const FREE: u32 = u32::MAX;
        let weights = Weights::of(endpoints);
        let size64 = size as u64;
        let mut turns: Vec<Turns> = endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| weights.get(e) > 0)
            .map(|(i, e)| Turns {
                index: u32::try_from(i).unwrap_or(FREE),
                weight: u64::from(weights.get(e)),
                next: hash::task(OFFSET_SEED, &e.task_id) % size64,
                skip: hash::task(SKIP_SEED, &e.task_id) % (size64 - 1) + 1,
                credit: 0,
            })
            .collect();
        // In task-ID order, so that the table does not depend on the order of the set.
        turns.sort_unstable_by(|a, b| {
            endpoints[a.index as usize]
                .task_id
                .cmp(&endpoints[b.index as usize].task_id)
        });
        distinct_skips(&mut turns, endpoints, size64);
        let heaviest = turns.iter().map(|t| t.weight).max().unwrap_or(1);
        let mut slots = vec![FREE; size];
        let mut filled = 0;
        // Each round, every endpoint earns its weight in credit and takes a slot for each
        // `heaviest` of it: the heaviest one slot a round, the others in proportion.
        while filled < size && !turns.is_empty() {
            for t in &mut turns {
                t.credit += t.weight;
                while t.credit >= heaviest && filled < size {
                    t.credit -= heaviest;
                    // Its next free slot in its permutation (one is free: not all are filled).
                    loop {
                        let slot = t.next as usize;
                        t.next = (t.next + t.skip) % size64;
                        if slots[slot] == FREE {
                            slots[slot] = t.index;
                            filled += 1;
                            break;
                        }
                    }
                }
            }
        }
        Table {
            key: endpoints
                .iter()
                .map(|e| (e.task_id.clone(), e.weight))
                .collect(),
            slots,
        }
    }

    /// Slot → index into the set.
    pub(crate) fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// The index into the set of the endpoint for a client.
    fn lookup(&self, client_hash: u64) -> usize {
        self.slots[(client_hash % self.slots.len() as u64) as usize] as usize
    }
}

/// Gives every endpoint a skip of its own: in the order of `turns` (task-ID order), one
/// whose skip an earlier one has draws again with the next seed, until it finds a free one.
fn distinct_skips(turns: &mut [Turns], endpoints: &[Endpoint], size: u64) {
    if turns.len() as u64 >= size - 1 {
        return; // Not enough skips to go round (and far more endpoints than make sense).
    }
    let mut taken = std::collections::HashSet::with_capacity(turns.len());
    for t in turns {
        let id = &endpoints[t.index as usize].task_id;
        let mut seed = SKIP_SEED;
        while !taken.insert(t.skip) {
            seed = seed.wrapping_add(1);
            t.skip = hash::task(seed, id) % (size - 1) + 1;
        }
    }
}

/// One endpoint's place in the filling of a table.
struct Turns {
    index: u32,
    weight: u64,
    /// Its permutation's next slot, and its step.
    next: u64,
    skip: u64,
    credit: u64,
}

impl Balancer for Maglev {
    fn order(&self, endpoints: &[Endpoint], cx: &PickCx) -> Order {
        let Some(client) = cx.client else {
            return self.round_robin.order(endpoints, cx);
        };
        if endpoints.is_empty() {
            return Order::rotated(0, 0);
        }
        let first = self.table(endpoints).lookup(hash::client(client));
        Order::first_then_rest(first, endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{client, first_for, firsts, firsts_with, set, set_of};
    use proptest::prelude::*;

    fn shares(table: &Table, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &s in &table.slots {
            counts[s as usize] += 1;
        }
        counts
    }

    #[test]
    fn endpoints_get_near_equal_shares_of_the_table() {
        for n in [1, 2, 3, 7, 20] {
            let table = Table::build(&set_of(n), MAGLEV_TABLE_SIZE);
            let fair = MAGLEV_TABLE_SIZE / n;
            for share in shares(&table, n) {
                assert!(share.abs_diff(fair) <= 1, "{n} endpoints: {share} slots");
            }
        }
    }

    #[test]
    fn weights_divide_the_table() {
        let table = Table::build(&set(&[1, 2, 0, 1]), MAGLEV_TABLE_SIZE);
        let counts = shares(&table, 4);
        let quarter = MAGLEV_TABLE_SIZE / 4;
        assert!(counts[0].abs_diff(quarter) <= 1, "{counts:?}");
        assert!(counts[1].abs_diff(2 * quarter) <= 2, "{counts:?}");
        assert_eq!(counts[2], 0);
        assert!(counts[3].abs_diff(quarter) <= 1, "{counts:?}");
        let zeros = shares(&Table::build(&set(&[0, 0]), MAGLEV_TABLE_SIZE), 2);
        assert!(zeros[0].abs_diff(zeros[1]) <= 1, "{zeros:?}");
    }

    #[test]
    fn a_client_stays_on_its_endpoint() {
        let endpoints = set_of(6);
        let maglev = Maglev::new();
        for k in 0..200 {
            let first = first_for(&maglev, &endpoints, client(k));
            assert_eq!(first_for(&maglev, &endpoints, client(k)), first);
            assert_eq!(first_for(&Maglev::new(), &endpoints, client(k)), first);
        }
    }

    #[test]
    fn the_order_of_the_set_does_not_matter() {
        let endpoints = set(&[1, 2, 1, 3, 1]);
        let mut reversed = endpoints.clone();
        reversed.reverse();
        let (a, b) = (Maglev::new(), Maglev::new());
        for k in 0..500 {
            let id =
                |b: &Maglev, set: &[Endpoint]| set[first_for(b, set, client(k))].task_id.clone();
            assert_eq!(id(&a, &endpoints), id(&b, &reversed));
        }
    }

    #[test]
    fn the_table_is_built_again_only_when_the_set_changes() {
        let maglev = Maglev::new();
        let endpoints = set_of(3);
        first_for(&maglev, &endpoints, client(1));
        let built = maglev.table(&endpoints);
        first_for(&maglev, &endpoints, client(2));
        assert!(Arc::ptr_eq(&built, &maglev.table(&endpoints)));
        let heavier = set(&[1, 2, 1]);
        assert!(!Arc::ptr_eq(&built, &maglev.table(&heavier)));
        assert!(!Arc::ptr_eq(
            &maglev.table(&heavier),
            &maglev.table(&set_of(2))
        ));
    }

    #[test]
    fn clients_spread_over_the_endpoints() {
        let counts = firsts_with(&Maglev::new(), &set_of(4), 10_000, |k| PickCx {
            client: Some(client(k)),
        });
        assert!(
            counts.iter().all(|&c| (2_000..=3_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn without_a_client_it_goes_round_robin() {
        assert_eq!(firsts(&Maglev::new(), &set_of(3), 30), [10, 10, 10]);
        assert_eq!(Maglev::new().order(&[], &PickCx::default()).count(), 0);
        assert_eq!(first_for(&Maglev::new(), &[], client(1)), usize::MAX);
    }

    /// Two task IDs whose skips, as the paper derives them, are equal.
    const SAME_SKIP: [&str; 2] = ["nsgv9rx6fkr4", "u0vc1di3e34y"];

    /// The share of `clients` whose endpoint changes when `before[removed]` leaves, and the
    /// share of those that were not on it.
    fn moved(before: &[Endpoint], removed: usize, clients: &[u32]) -> (f64, f64) {
        let mut after = before.to_vec();
        after.remove(removed);
        let (old, new) = (Maglev::new(), Maglev::new());
        let (mut moved, mut moved_staying) = (0, 0);
        for &c in clients {
            let ip = std::net::IpAddr::from(c.to_be_bytes());
            let was = &before[first_for(&old, before, ip)].task_id;
            let is = &after[first_for(&new, &after, ip)].task_id;
            if was != is {
                moved += 1;
                if *was != before[removed].task_id {
                    moved_staying += 1;
                }
            }
        }
        let total = clients.len() as f64;
        (moved as f64 / total, moved_staying as f64 / total)
    }

    #[test]
    fn endpoints_with_equal_skips_do_not_ripple_when_another_leaves() {
        let natural = |id: &str| hash::task(SKIP_SEED, id) % (MAGLEV_TABLE_SIZE as u64 - 1);
        assert_eq!(natural(SAME_SKIP[0]), natural(SAME_SKIP[1]));
        let mut endpoints = set_of(8);
        endpoints.extend(SAME_SKIP.map(|id| Endpoint::new(id, ([10, 0, 2, 1], 80))));
        let clients: Vec<u32> = (0..4000u32)
            .map(|k| k.wrapping_mul(2_654_435_761))
            .collect();
        for removed in 0..8 {
            let (_, moved_staying) = moved(&endpoints, removed, &clients);
            assert!(
                moved_staying < 0.01,
                "{moved_staying} moved off staying endpoints"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            // The same cases every run: a bound of sampled shares is not for chance to break.
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d61_676c_6576),
            ..ProptestConfig::default()
        })]

        /// Removing one of `n` endpoints moves the clients it had and few others: at most
        /// 1/n of all clients plus 5 points in all, and under 4 points of all clients from
        /// the endpoints that stay. Measured over tables (not samples) of random sets of 2 to
        /// 20: those from staying endpoints average 0.3 points and stay under 2.5, except
        /// when the endpoint leaving had the same paper skip as another (one set of 20 in
        /// 350, and then 2 in 20 of its endpoints), which moves that other one's clients too.
        /// Sampling 2000 clients adds up to 3.5 points at n = 2, less beyond.
        #[test]
        fn removing_an_endpoint_moves_about_its_share_of_clients(
            n in 2usize..=20,
            removed in any::<prop::sample::Index>(),
            ids in prop::collection::btree_set("[a-z0-9]{12}", 20),
            clients in prop::collection::vec(any::<u32>(), 2000),
        ) {
            let before: Vec<Endpoint> = ids
                .into_iter()
                .take(n)
                .enumerate()
                .map(|(i, id)| Endpoint::new(id, ([10, 0, 1, i as u8], 80)))
                .collect();
            let (moved, moved_staying) = moved(&before, removed.index(n), &clients);
            prop_assert!(moved <= 1.0 / n as f64 + 0.05, "{moved} of clients moved, {n} endpoints");
            prop_assert!(moved_staying < 0.04, "{moved_staying} of clients moved off staying endpoints");
        }
    }
}
