//! Passive health: an endpoint that refuses, resets or does not answer a connect is
//! ejected for a while, and new connections try it only after every endpoint that is not.
//! The while starts at a base and doubles each time it fails again once let back, up to a
//! cap; a connect that succeeds clears it. Ejection never refuses a client: when every
//! endpoint is ejected, they are all tried as usual.
//!
//! [`Ejections`] decides, at the times it is given; [`Ejecting`] wraps any [`Balancer`]
//! with one, reading the clock.

use crate::balancer::{Balancer, Failure, InFlight, Order, PickCx};
use crate::endpoint::Endpoint;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a first failure ejects an endpoint.
pub const EJECTION_BASE: Duration = Duration::from_secs(1);
/// The longest ejection, however often an endpoint fails.
pub const EJECTION_MAX: Duration = Duration::from_secs(30);

/// The endpoints ejected, by task ID.
#[derive(Debug, Clone)]
pub struct Ejections {
    base: Duration,
    max: Duration,
    by_task: HashMap<String, Ejection>,
}

#[derive(Debug, Clone, Copy)]
struct Ejection {
    until: Instant,
    /// How long it was ejected for, last time.
    backoff: Duration,
}

/// The endpoints of a set split by ejection, as indices into the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Not ejected, in the set's order.
    pub healthy: Vec<usize>,
    /// Ejected, the soonest let back first.
    pub ejected: Vec<usize>,
}

impl Default for Ejections {
    fn default() -> Ejections {
        Ejections::new(EJECTION_BASE, EJECTION_MAX)
    }
}

impl Ejections {
    /// Ejections of `base` at first, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Ejections {
        Ejections {
            base,
            max: max.max(base),
            by_task: HashMap::new(),
        }
    }

    /// An attempt on `task_id` failed at `now`. Refused, reset and timed-out connects eject
    /// it (other failures may be this node's own); returns until when it is ejected.
    ///
    /// Failures while it is ejected (the other connections of a burst, or attempts when
    /// every endpoint is ejected) do not lengthen the ejection: only failing again once let
    /// back doubles it. One that stayed clear of failures for `max` after its ejection
    /// ended starts again from the base.
    pub fn failed(&mut self, task_id: &str, failure: Failure, now: Instant) -> Option<Instant> {
        if !matches!(
            failure,
            Failure::Refused | Failure::Reset | Failure::TimedOut
        ) {
            return self.ejected_until(task_id, now);
        }
        let backoff = match self.by_task.get(task_id) {
            Some(e) if now < e.until => return Some(e.until),
            Some(e) if now < e.until + self.max => (e.backoff * 2).min(self.max),
            _ => self.base,
        };
        let until = now + backoff;
        self.by_task
            .insert(task_id.to_owned(), Ejection { until, backoff });
        Some(until)
    }

    /// A connect to `task_id` succeeded: it is healthy again, and a next failure starts
    /// from the base.
    pub fn succeeded(&mut self, task_id: &str) {
        self.by_task.remove(task_id);
    }

    pub fn is_ejected(&self, task_id: &str, now: Instant) -> bool {
        self.ejected_until(task_id, now).is_some()
    }

    /// Until when `task_id` is ejected, if it is at `now`.
    pub fn ejected_until(&self, task_id: &str, now: Instant) -> Option<Instant> {
        self.by_task
            .get(task_id)
            .map(|e| e.until)
            .filter(|&until| now < until)
    }

    /// Whether no endpoint has failed since its last success (nothing to look up).
    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }

    /// `endpoints` split into those ejected at `now` and the others; `None` when none is.
    /// Forgets the endpoints that left the set once they are let back (looked for only
    /// when more are remembered than the set has).
    pub fn partition(&mut self, endpoints: &[Endpoint], now: Instant) -> Option<Partition> {
        if self.by_task.is_empty() {
            return None;
        }
        if self.by_task.len() > endpoints.len() {
            let present: std::collections::HashSet<&str> =
                endpoints.iter().map(|e| e.task_id.as_str()).collect();
            self.by_task
                .retain(|id, e| present.contains(id.as_str()) || now < e.until);
        }
        let mut ejected: Vec<(Instant, usize)> = endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((self.ejected_until(&e.task_id, now)?, i)))
            .collect();
        if ejected.is_empty() {
            return None;
        }
        ejected.sort_unstable();
        let healthy = (0..endpoints.len())
            .filter(|&i| !self.is_ejected(&endpoints[i].task_id, now))
            .collect();
        Some(Partition {
            healthy,
            ejected: ejected.into_iter().map(|(_, i)| i).collect(),
        })
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.by_task.len()
    }
}

/// A balancer that keeps ejected endpoints for last: its inner balancer chooses among the
/// others, then the ejected follow, the soonest let back first.
#[derive(Debug)]
pub struct Ejecting {
    inner: Box<dyn Balancer>,
    ejections: Mutex<Ejections>,
}

impl Ejecting {
    /// `inner` with ejections of the default base and cap.
    pub fn new(inner: Box<dyn Balancer>) -> Ejecting {
        Ejecting::with_ejections(inner, Ejections::default())
    }

    pub fn with_ejections(inner: Box<dyn Balancer>, ejections: Ejections) -> Ejecting {
        Ejecting {
            inner,
            ejections: Mutex::new(ejections),
        }
    }

    /// [`Balancer::order`] at `now`.
    pub fn order_at(&self, endpoints: &[Endpoint], cx: &PickCx, now: Instant) -> Order {
        let partition = self
            .ejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .partition(endpoints, now);
        let Some(Partition { healthy, ejected }) = partition else {
            return self.inner.order(endpoints, cx);
        };
        if healthy.is_empty() {
            return self.inner.order(endpoints, cx);
        }
        let others: Vec<Endpoint> = healthy.iter().map(|&i| endpoints[i].clone()).collect();
        let mut indices = Vec::with_capacity(endpoints.len());
        indices.extend(self.inner.order(&others, cx).map(|k| healthy[k]));
        indices.extend(ejected);
        Order::listed(indices)
    }

    /// [`Balancer::failed`] at `now`.
    pub fn failed_at(&self, endpoint: &Endpoint, failure: Failure, now: Instant) {
        self.ejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed(&endpoint.task_id, failure, now);
        self.inner.failed(endpoint, failure);
    }

    /// The ejections as they stand.
    pub fn ejections(&self) -> Ejections {
        self.ejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Balancer for Ejecting {
    fn order(&self, endpoints: &[Endpoint], cx: &PickCx) -> Order {
        self.order_at(endpoints, cx, Instant::now())
    }

    fn opened(&self, endpoint: &Endpoint) -> InFlight {
        self.inner.opened(endpoint)
    }

    fn failed(&self, endpoint: &Endpoint, failure: Failure) {
        self.failed_at(endpoint, failure, Instant::now());
    }

    fn succeeded(&self, endpoint: &Endpoint) {
        {
            let mut ejections = self
                .ejections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !ejections.is_empty() {
                ejections.succeeded(&endpoint.task_id);
            }
        }
        self.inner.succeeded(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{firsts, set_of};
    use crate::{Policy, RoundRobin};

    const S: Duration = Duration::from_secs(1);

    /// How long `task` stays ejected after failing at `now`.
    fn ejected_for(e: &mut Ejections, task: &str, now: Instant) -> Option<Duration> {
        e.failed(task, Failure::Refused, now)
            .map(|until| until - now)
    }

    #[test]
    fn failing_again_once_let_back_doubles_the_ejection_up_to_the_cap() {
        let mut e = Ejections::default();
        let mut now = Instant::now();
        for expected in [1, 2, 4, 8, 16, 30, 30] {
            assert_eq!(ejected_for(&mut e, "a", now), Some(expected * S));
            assert!(e.is_ejected("a", now + expected * S - Duration::from_millis(1)));
            now += expected * S;
            assert!(!e.is_ejected("a", now), "let back after {expected}s");
        }
    }

    #[test]
    fn failures_while_ejected_do_not_lengthen_it() {
        let mut e = Ejections::default();
        let t0 = Instant::now();
        assert_eq!(ejected_for(&mut e, "a", t0), Some(S));
        for ms in [1, 10, 500] {
            let now = t0 + Duration::from_millis(ms);
            assert_eq!(e.failed("a", Failure::Reset, now), Some(t0 + S));
        }
        assert_eq!(ejected_for(&mut e, "a", t0 + S), Some(2 * S));
    }

    #[test]
    fn a_success_clears_the_ejection_and_its_backoff() {
        let mut e = Ejections::default();
        let t0 = Instant::now();
        ejected_for(&mut e, "a", t0);
        ejected_for(&mut e, "a", t0 + S);
        e.succeeded("a");
        assert!(!e.is_ejected("a", t0 + S));
        assert!(e.is_empty());
        assert_eq!(ejected_for(&mut e, "a", t0 + 2 * S), Some(S));
    }

    #[test]
    fn a_long_quiet_spell_starts_the_backoff_again() {
        let mut e = Ejections::new(S, 8 * S);
        let t0 = Instant::now();
        ejected_for(&mut e, "a", t0);
        assert_eq!(ejected_for(&mut e, "a", t0 + S), Some(2 * S));
        // Let back at 3s; still doubling up to 8s after that, from the base once past it.
        assert_eq!(ejected_for(&mut e, "a", t0 + 10 * S), Some(4 * S));
        assert_eq!(ejected_for(&mut e, "a", t0 + 40 * S), Some(S));
    }

    #[test]
    fn only_connect_failures_of_the_endpoint_eject_it() {
        let mut e = Ejections::default();
        let now = Instant::now();
        assert_eq!(e.failed("a", Failure::Other, now), None);
        assert!(!e.is_ejected("a", now));
        for (task, failure) in [
            ("r", Failure::Refused),
            ("s", Failure::Reset),
            ("t", Failure::TimedOut),
        ] {
            assert!(e.failed(task, failure, now).is_some());
            assert!(e.is_ejected(task, now));
        }
    }

    #[test]
    fn ejected_endpoints_come_last_soonest_back_first() {
        let mut e = Ejections::default();
        let endpoints = set_of(5);
        let t0 = Instant::now();
        assert_eq!(e.partition(&endpoints, t0), None);
        e.failed("t3", Failure::Refused, t0);
        e.failed("t3", Failure::Refused, t0 + S);
        e.failed("t1", Failure::Refused, t0 + S);
        assert_eq!(
            e.partition(&endpoints, t0 + S),
            Some(Partition {
                healthy: vec![0, 2, 4],
                ejected: vec![1, 3],
            })
        );
        assert_eq!(e.partition(&endpoints, t0 + 3 * S), None);
    }

    #[test]
    fn departed_endpoints_are_forgotten_once_let_back() {
        let mut e = Ejections::default();
        let t0 = Instant::now();
        for task in ["t0", "x", "y"] {
            e.failed(task, Failure::Refused, t0);
        }
        e.partition(&set_of(2), t0);
        assert_eq!(e.remembered(), 3, "still ejected");
        e.partition(&set_of(2), t0 + S);
        assert_eq!(e.remembered(), 1, "t0 is still in the set");
    }

    #[test]
    fn the_wrapped_balancer_chooses_among_the_healthy() {
        let b = Ejecting::new(Box::new(RoundRobin::new()));
        let endpoints = set_of(4);
        let t0 = Instant::now();
        b.failed_at(&endpoints[2], Failure::Refused, t0);
        let cx = PickCx::default();
        let mut counts = [0; 4];
        for _ in 0..30 {
            let order: Vec<usize> = b.order_at(&endpoints, &cx, t0).collect();
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], 2, "ejected, still tried last: {order:?}");
            counts[order[0]] += 1;
        }
        assert_eq!(counts, [10, 10, 0, 10]);
        b.succeeded(&endpoints[2]);
        assert!(b.ejections().is_empty());
        assert_eq!(b.order_at(&endpoints, &cx, t0).count(), 4);
    }

    #[test]
    fn when_every_endpoint_is_ejected_all_are_still_tried() {
        let b = Ejecting::new(crate::balancer_for(Policy::Maglev));
        let endpoints = set_of(3);
        let t0 = Instant::now();
        for e in &endpoints {
            b.failed_at(e, Failure::TimedOut, t0);
        }
        let mut order: Vec<usize> = b.order_at(&endpoints, &PickCx::default(), t0).collect();
        order.sort_unstable();
        assert_eq!(order, [0, 1, 2]);
    }

    #[test]
    fn every_policy_can_be_wrapped() {
        for policy in Policy::ALL {
            let b = Ejecting::new(crate::balancer_for(policy));
            let endpoints = set_of(3);
            b.failed(&endpoints[0], Failure::Refused);
            let counts = firsts(&b, &endpoints, 30);
            assert_eq!(counts[0], 0, "{policy}: {counts:?}");
            let _guard = b.opened(&endpoints[1]);
            b.succeeded(&endpoints[0]);
        }
    }
}
