//! The seam every balancing algorithm fits: published ports and service VIPs (and the L7
//! router later) ask a [`Balancer`] which endpoints to try for a new connection, hold an
//! [`InFlight`] guard while the connection lasts, and report a failed attempt.

use crate::endpoint::Endpoint;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a balancer may consider besides the endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickCx {
    /// The client's address, when the connection has one.
    pub client: Option<IpAddr>,
}

/// Why an attempt on an endpoint failed. Every attempt that fails before anything was sent
/// upstream may be retried on another endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens there (connection refused).
    Refused,
    /// The endpoint reset the connection.
    Reset,
    /// No answer in time.
    TimedOut,
    /// Anything else (unreachable network, no route, ...).
    Other,
}

impl Failure {
    /// The failure an I/O error of a connect attempt stands for.
    pub fn of(e: &std::io::Error) -> Failure {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::Refused,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                Failure::Reset
            }
            std::io::ErrorKind::TimedOut => Failure::TimedOut,
            _ => Failure::Other,
        }
    }
}

/// The order in which one connection tries the endpoints of a set: indices into it, each
/// once.
#[derive(Debug, Clone)]
pub struct Order(Indices);

#[derive(Debug, Clone)]
enum Indices {
    /// The common case, without allocating: `start`, `start + 1`, ... wrapping around.
    Rotated {
        start: usize,
        len: usize,
        next: usize,
    },
    /// Any other order, spelled out.
    Listed(std::vec::IntoIter<usize>),
}

impl Order {
    /// Every index once, starting at `start` and wrapping around.
    pub fn rotated(start: usize, len: usize) -> Order {
        Order(Indices::Rotated {
            start: if len == 0 { 0 } else { start % len },
            len,
            next: 0,
        })
    }

    /// Exactly these indices, in this order. The caller lists every index of the set once.
    pub fn listed(indices: Vec<usize>) -> Order {
        Order(Indices::Listed(indices.into_iter()))
    }

    /// The choice `first`, then every other endpoint of weight above 0 in turn after it,
    /// then those of weight 0 (used only when nothing else is left). Without an allocation
    /// when no endpoint (or every one) has weight 0.
    pub fn first_then_rest(first: usize, endpoints: &[Endpoint]) -> Order {
        let len = endpoints.len();
        let zeros = endpoints.iter().filter(|e| e.weight == 0).count();
        if zeros == 0 || zeros == len {
            return Order::rotated(first, len);
        }
        let first = first % len;
        let after = (1..len).map(|k| (first + k) % len);
        let mut indices = Vec::with_capacity(len);
        indices.push(first);
        indices.extend(after.clone().filter(|&i| endpoints[i].weight > 0));
        indices.extend(after.filter(|&i| endpoints[i].weight == 0));
        Order::listed(indices)
    }
}

impl Iterator for Order {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match &mut self.0 {
            Indices::Rotated { start, len, next } => {
                if *next >= *len {
                    return None;
                }
                let i = (*start + *next) % *len;
                *next += 1;
                Some(i)
            }
            Indices::Listed(indices) => indices.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            Indices::Rotated { len, next, .. } => len.saturating_sub(*next),
            Indices::Listed(indices) => indices.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Order {}

/// Counts a connection to an endpoint as in flight until dropped (for algorithms that
/// weigh endpoints by their open connections; a no-op for the others).
#[derive(Debug, Default)]
pub struct InFlight(Option<Arc<AtomicUsize>>);

impl InFlight {
    /// A guard counting on `counter`.
    pub fn counting(counter: Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(Some(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A balancing algorithm. One lives as long as what it balances (a published port, a
/// VIP), across endpoint-set changes, so its rotation or counts carry on.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// The order in which a new connection tries `endpoints`: the choice first, then every
    /// other endpoint once to fall through to, those of weight 0 last.
    fn order(&self, endpoints: &[Endpoint], cx: &PickCx) -> Order;

    /// The connection to `endpoint` opened; it counts as in flight while the guard lives.
    fn opened(&self, _endpoint: &Endpoint) -> InFlight {
        InFlight::default()
    }

    /// An attempt on `endpoint` failed (the caller goes on to the next in its order).
    fn failed(&self, _endpoint: &Endpoint, _failure: Failure) {}

    /// An attempt on `endpoint` connected (reported before [`Balancer::opened`]).
    fn succeeded(&self, _endpoint: &Endpoint) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_order_covers_every_index_once() {
        assert_eq!(Order::rotated(6, 4).collect::<Vec<_>>(), [2, 3, 0, 1]);
        assert_eq!(Order::rotated(3, 0).count(), 0);
        assert_eq!(Order::rotated(1, 3).len(), 3);
    }

    #[test]
    fn first_then_rest_puts_weight_zero_last() {
        let order = |first, weights: &[u32]| -> Vec<usize> {
            Order::first_then_rest(first, &crate::testing::set(weights)).collect()
        };
        assert_eq!(order(2, &[1, 1, 1, 1]), [2, 3, 0, 1]);
        assert_eq!(order(2, &[0, 0, 0]), [2, 0, 1]);
        assert_eq!(order(2, &[1, 0, 1, 0, 1]), [2, 4, 0, 3, 1]);
        assert_eq!(order(0, &[]), Vec::<usize>::new());
    }

    #[test]
    fn in_flight_guards_count_while_they_live() {
        let c = Arc::new(AtomicUsize::new(0));
        let a = InFlight::counting(c.clone());
        let b = InFlight::counting(c.clone());
        assert_eq!(c.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(c.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(c.load(Ordering::Relaxed), 0);
        drop(InFlight::default());
    }

    #[test]
    fn connect_errors_are_classified() {
        let e = |k| std::io::Error::from(k);
        assert_eq!(
            Failure::of(&e(std::io::ErrorKind::ConnectionRefused)),
            Failure::Refused
        );
        assert_eq!(
            Failure::of(&e(std::io::ErrorKind::ConnectionReset)),
            Failure::Reset
        );
        assert_eq!(
            Failure::of(&e(std::io::ErrorKind::TimedOut)),
            Failure::TimedOut
        );
        assert_eq!(Failure::of(&e(std::io::ErrorKind::Other)), Failure::Other);
    }
}
