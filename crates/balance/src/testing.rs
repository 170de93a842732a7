//! Helpers for the algorithms' tests.

use crate::balancer::{Balancer, PickCx};
use crate::endpoint::Endpoint;
use std::net::IpAddr;

/// Endpoints `t0`, `t1`, ... of these weights.
pub(crate) fn set(weights: &[u32]) -> Vec<Endpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let octet = u8::try_from(i % 250).unwrap_or(0);
            Endpoint::weighted(format!("t{i}"), ([10, 0, 1, octet], 8080), w)
        })
        .collect()
}

/// `n` endpoints of weight 1.
pub(crate) fn set_of(n: usize) -> Vec<Endpoint> {
    set(&vec![1; n])
}

/// How often each endpoint comes first in `picks` orders without a client address, after
/// checking that every order lists each endpoint once.
pub(crate) fn firsts(b: &dyn Balancer, endpoints: &[Endpoint], picks: usize) -> Vec<usize> {
    firsts_with(b, endpoints, picks, |_| PickCx::default())
}

/// The same, with the context of pick `k` given by `cx`.
pub(crate) fn firsts_with(
    b: &dyn Balancer,
    endpoints: &[Endpoint],
    picks: usize,
    cx: impl Fn(usize) -> PickCx,
) -> Vec<usize> {
    let mut counts = vec![0; endpoints.len()];
    for k in 0..picks {
        let mut order: Vec<usize> = b.order(endpoints, &cx(k)).collect();
        counts[order[0]] += 1;
        order.sort_unstable();
        assert_eq!(order, (0..endpoints.len()).collect::<Vec<_>>());
    }
    counts
}

/// The first choice for a client at `ip`.
pub(crate) fn first_for(b: &dyn Balancer, endpoints: &[Endpoint], ip: IpAddr) -> usize {
    b.order(endpoints, &PickCx { client: Some(ip) })
        .next()
        .unwrap_or(usize::MAX)
}

/// The `k`th of a run of client addresses, 10.0.0.0 on.
pub(crate) fn client(k: usize) -> IpAddr {
    let k = u32::try_from(k).unwrap_or(u32::MAX);
    IpAddr::from((0x0a00_0000 | (k & 0x00ff_ffff)).to_be_bytes())
}
