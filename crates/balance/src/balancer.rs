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

/// The order in which one connection tries the endpoints of a set: indices into it.
#[derive(Debug, Clone)]
pub struct Order {
    start: usize,
    len: usize,
    next: usize,
}

impl Order {
    /// Every index once, starting at `start` and wrapping around.
    pub fn rotated(start: usize, len: usize) -> Order {
        Order {
            start: if len == 0 { 0 } else { start % len },
            len,
            next: 0,
        }
    }
}

impl Iterator for Order {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.next >= self.len {
            return None;
        }
        let i = (self.start + self.next) % self.len;
        self.next += 1;
        Some(i)
    }
}

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
    /// The order in which a new connection tries `endpoints`: the choice first, then the
    /// endpoints to fall through to.
    fn order(&self, endpoints: &[Endpoint], cx: &PickCx) -> Order;

    /// The connection to `endpoint` opened; it counts as in flight while the guard lives.
    fn opened(&self, _endpoint: &Endpoint) -> InFlight {
        InFlight::default()
    }

    /// An attempt on `endpoint` failed (the caller goes on to the next in its order).
    fn failed(&self, _endpoint: &Endpoint, _failure: Failure) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_order_covers_every_index_once() {
        assert_eq!(Order::rotated(6, 4).collect::<Vec<_>>(), [2, 3, 0, 1]);
        assert_eq!(Order::rotated(3, 0).count(), 0);
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
