//! Host ports for tasks' target ports: handed out by the agent from a range of its own,
//! below the kernel's ephemeral range (so an outgoing connection never takes one between
//! the agent's choice and the task's bind) and below Swarm's range of auto-published ports.
//!
//! A port is held for its task until the task is no longer live; it is given again only
//! after every other port of the range had its turn, and only if nothing on the host holds
//! it at that moment (the caller's probe). The first port tried is random, so agents of
//! several daemons on one host do not all start at the same port.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// The range task host ports come from.
pub const TASK_PORTS: RangeInclusive<u16> = 20000..=29999;

/// The host ports the agent's tasks hold.
#[derive(Debug)]
pub struct HostPorts {
    range: RangeInclusive<u16>,
    /// The port to try first next time.
    next: u16,
    held: BTreeMap<u16, String>,
}

impl HostPorts {
    /// Ports of `range`, the first try at `start` (moved into the range).
    pub fn new(range: RangeInclusive<u16>, start: u16) -> HostPorts {
        let (first, last) = (*range.start(), *range.end());
        let span = u32::from(last - first) + 1;
        let next = first + u16::try_from(u32::from(start) % span).unwrap_or(0);
        HostPorts {
            range,
            next,
            held: BTreeMap::new(),
        }
    }

    /// A port for `task`: no live task of this agent holds it (tasks `live` says are gone
    /// give theirs back first) and `free` finds nothing else on the host holding it.
    /// `None` when every port of the range is taken.
    pub fn take(
        &mut self,
        task: &str,
        live: impl Fn(&str) -> bool,
        mut free: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        self.held.retain(|_, t| live(t));
        let (first, last) = (*self.range.start(), *self.range.end());
        let mut port = self.next;
        for _ in first..=last {
            let candidate = port;
            port = if port == last { first } else { port + 1 };
            if self.held.contains_key(&candidate) || !free(candidate) {
                continue;
            }
            self.next = port;
            self.held.insert(candidate, task.to_string());
            return Some(candidate);
        }
        None
    }

    /// Records that `task` (adopted after a restart) holds `port`.
    pub fn hold(&mut self, port: u16, task: &str) {
        if self.range.contains(&port) {
            self.held.insert(port, task.to_string());
        }
    }

    /// How many ports tasks hold.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Whether nothing on the host holds `port`: TCP and UDP on the wildcard address bind.
pub fn unbound(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_go_round_the_range_skipping_held_and_bound_ones() {
        let mut p = HostPorts::new(100..=104, 2);
        let all_live = |_: &str| true;
        assert_eq!(p.take("a", all_live, |_| true), Some(102));
        assert_eq!(p.take("b", all_live, |port| port != 103), Some(104));
        assert_eq!(p.take("c", all_live, |_| true), Some(100));
        assert_eq!(p.take("d", all_live, |_| true), Some(101));
        assert_eq!(p.take("e", all_live, |_| true), Some(103));
        assert_eq!(p.take("f", all_live, |_| true), None, "all held");
        // Task a is gone: its port comes back.
        assert_eq!(p.take("g", |t| t != "a", |_| true), Some(102));
        assert_eq!(p.held(), 5);
    }

    #[test]
    fn a_released_port_waits_for_the_rest_of_the_range() {
        let mut p = HostPorts::new(100..=109, 0);
        assert_eq!(p.take("a", |_| true, |_| true), Some(100));
        assert_eq!(p.take("b", |t| t != "a", |_| true), Some(101));
        assert_eq!(p.take("c", |t| t != "a", |_| true), Some(102));
    }

    #[test]
    fn adopted_ports_are_held_and_the_start_lands_in_the_range() {
        let mut p = HostPorts::new(100..=101, 7);
        p.hold(101, "old");
        p.hold(5000, "elsewhere");
        assert_eq!(p.held(), 1);
        assert_eq!(p.take("a", |_| true, |_| true), Some(100));
        assert_eq!(p.take("b", |_| true, |_| true), None);
        let q = HostPorts::new(TASK_PORTS, u16::MAX);
        assert!(TASK_PORTS.contains(&q.next));
    }
}
