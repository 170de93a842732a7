//! Caps and timeouts of the control port, and the per-address count behind one of them.
//!
//! Every open connection holds a file descriptor, so the port takes at most
//! [`ControlLimits::max_connections`] at once and stops accepting at the cap. A connection
//! that has not shown a verified client certificate (still in its TLS handshake, or a
//! first-contact connection without one) also counts against its source address, so one
//! address cannot take the port's every slot with handshakes it never finishes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Connections the control port holds open at once (default). Each node keeps one or two
/// (its session with the leader, Raft between managers); remote CLIs open one per call.
const MAX_CONNECTIONS: usize = 1024;

/// Connections without a verified client certificate from one source address (default).
const MAX_UNAUTHENTICATED_PER_IP: usize = 32;

/// Longest TLS handshake (default).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a complete HTTP/1.1 request head (default), counted from the end of the
/// handshake or of the previous response: the header-read and keep-alive idle timeout.
const HTTP1_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Caps and timeouts of one control port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    /// Open connections at once; at the cap the port stops accepting (clients wait in the
    /// listen queue) until one ends.
    pub max_connections: usize,
    /// Open connections from one source address (IPv6: one /64) that have not shown a
    /// verified client certificate; more are closed as soon as they are accepted.
    pub max_unauthenticated_per_ip: usize,
    /// A TLS handshake not done by then is cut.
    pub handshake_timeout: Duration,
    /// An HTTP/1.1 connection whose next request head is not complete by then is closed
    /// (slow headers, or a keep-alive connection left idle). HTTP/2 sessions (gRPC) are
    /// long-lived, kept alive by pings, and never cut.
    pub http1_header_timeout: Duration,
}

impl Default for ControlLimits {
    fn default() -> ControlLimits {
        ControlLimits {
            max_connections: MAX_CONNECTIONS,
            max_unauthenticated_per_ip: MAX_UNAUTHENTICATED_PER_IP,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            http1_header_timeout: HTTP1_HEADER_TIMEOUT,
        }
    }
}

/// Open connections per source address, each capped.
#[derive(Debug)]
pub(crate) struct PerIp {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted against its address until dropped.
#[derive(Debug)]
pub(crate) struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    pub(crate) fn new(cap: usize) -> PerIp {
        PerIp {
            cap,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` if it has `cap` already.
    pub(crate) fn enter(&self, ip: IpAddr) -> Option<IpSlot> {
        let ip = source(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            open: Arc::clone(&self.open),
        })
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&source(ip)).copied().unwrap_or(0)
    }
}

/// What counts as one source: an IPv4 address (also when mapped into IPv6), or an IPv6
/// /64, the block one site usually holds whole.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Addresses seen once do not pile up in the map.
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn per_ip_caps_each_address_and_frees_on_drop() {
        let per_ip = PerIp::new(2);
        let a1 = per_ip.enter(A);
        let a2 = per_ip.enter(A);
        assert!(a1.is_some() && a2.is_some());
        assert!(per_ip.enter(A).is_none(), "third from A refused");
        assert!(per_ip.enter(B).is_some(), "B has its own count");
        drop(a1);
        assert_eq!(per_ip.count(A), 1);
        let a3 = per_ip.enter(A);
        assert!(a3.is_some(), "a freed slot is taken again");
        drop((a2, a3));
        assert_eq!(per_ip.count(A), 0);
        assert!(per_ip.open.lock().unwrap().is_empty());
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_source() {
        let per_ip = PerIp::new(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let _a = per_ip.enter(a);
        assert!(per_ip.enter(same_64).is_none());
        assert!(per_ip.enter(other_64).is_some());
        let _v4 = per_ip.enter(A);
        assert!(
            per_ip.enter(mapped).is_none(),
            "a mapped IPv4 address is that address"
        );
    }
}
