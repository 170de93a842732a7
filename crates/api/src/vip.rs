//! The pool service VIPs come from (`shoal init --vip-pool`): an IPv4 network whose first
//! host address is every node's DNS resolver and whose other host addresses are the
//! services' virtual IPs.

use crate::SpecError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The pool a cluster created without `--vip-pool` uses.
pub const DEFAULT_VIP_POOL: &str = "10.96.0.0/16";

/// Longest prefix a pool may have: a /24 holds the resolver and 253 services.
pub const MAX_POOL_PREFIX: u8 = 24;
/// Shortest prefix a pool may have: a /8 is already more than anyone needs.
pub const MIN_POOL_PREFIX: u8 = 8;

/// An IPv4 network, `10.96.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipPool {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Default for VipPool {
    fn default() -> Self {
        VipPool {
            network: Ipv4Addr::new(10, 96, 0, 0),
            prefix: 16,
        }
    }
}

impl VipPool {
    /// Parse and check a `--vip-pool` value: a network address with its prefix length,
    /// between /8 and /24, not loopback, link-local, multicast or reserved.
    pub fn parse(text: &str) -> Result<VipPool, SpecError> {
        let bad = |reason: String| SpecError::invalid("vip-pool", text, reason);
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| bad("expected a network such as 10.96.0.0/16".into()))?;
        let network: Ipv4Addr = addr
            .trim()
            .parse()
            .map_err(|_| bad(format!("{addr:?} is not an IPv4 address")))?;
        let prefix: u8 = len
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad(format!("{len:?} is not a prefix length (0-32)")))?;
        if prefix > MAX_POOL_PREFIX {
            return Err(bad(format!(
                "too small: a pool needs at least a /{MAX_POOL_PREFIX} (254 addresses)"
            )));
        }
        if prefix < MIN_POOL_PREFIX {
            return Err(bad(format!(
                "too large: a pool may be at most a /{MIN_POOL_PREFIX}"
            )));
        }
        let pool = VipPool { network, prefix };
        if u32::from(network) & !pool.mask() != 0 {
            let base = Ipv4Addr::from(u32::from(network) & pool.mask());
            return Err(bad(format!(
                "{network} is not the network's first address (did you mean {base}/{prefix}?)"
            )));
        }
        if network.is_loopback()
            || network.is_link_local()
            || network.is_multicast()
            || network.is_unspecified()
            || u32::from(network) >= u32::from(Ipv4Addr::new(240, 0, 0, 0))
        {
            return Err(bad(
                "loopback, link-local, multicast and reserved networks cannot hold VIPs".into(),
            ));
        }
        Ok(pool)
    }

    fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    /// Whether `ip` lies in the pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Whether the pool and the network `other/prefix` share an address.
    pub fn overlaps(&self, other: Ipv4Addr, prefix: u8) -> bool {
        let mask = mask(self.prefix.min(prefix));
        u32::from(self.network) & mask == u32::from(other) & mask
    }

    /// The address every node's DNS server answers on: the pool's first host address.
    pub fn resolver(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The addresses services may get, in order: every host address after the resolver
    /// (the network and broadcast addresses are never used).
    pub fn vips(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let last = u32::from(self.network) | !self.mask();
        (first..last).map(Ipv4Addr::from)
    }

    /// How many services the pool holds.
    pub fn capacity(&self) -> u32 {
        (!self.mask()).saturating_sub(2)
    }
}

/// The netmask of a prefix length (32 and above: every bit).
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl std::fmt::Display for VipPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pool_parses_to_the_default() {
        assert_eq!(
            VipPool::parse(DEFAULT_VIP_POOL).expect("valid"),
            VipPool::default()
        );
    }

    #[test]
    fn a_pool_gives_the_resolver_then_the_vips() {
        let pool = VipPool::parse("10.96.0.0/24").expect("valid");
        assert_eq!(pool.resolver(), Ipv4Addr::new(10, 96, 0, 1));
        let vips: Vec<Ipv4Addr> = pool.vips().collect();
        assert_eq!(vips.first(), Some(&Ipv4Addr::new(10, 96, 0, 2)));
        assert_eq!(vips.last(), Some(&Ipv4Addr::new(10, 96, 0, 254)));
        assert_eq!(vips.len() as u32, pool.capacity());
        assert!(pool.contains(Ipv4Addr::new(10, 96, 0, 77)));
        assert!(!pool.contains(Ipv4Addr::new(10, 96, 1, 1)));
    }

    #[test]
    fn bad_pools_say_what_is_wrong() {
        for (text, says) in [
            ("10.96.0.0", "expected a network"),
            ("10.96.0.0/25", "too small"),
            ("10.0.0.0/7", "too large"),
            ("10.96.0.1/16", "did you mean 10.96.0.0/16"),
            ("127.0.0.0/8", "loopback"),
            ("224.0.0.0/8", "multicast"),
            ("ten/8", "not an IPv4 address"),
            ("10.0.0.0/x", "not a prefix length"),
        ] {
            let err = VipPool::parse(text).expect_err(text).to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.starts_with("invalid vip-pool"), "{err}");
        }
    }

    #[test]
    fn overlap_with_a_node_network() {
        let pool = VipPool::default();
        assert!(pool.overlaps(Ipv4Addr::new(10, 96, 3, 0), 24));
        assert!(pool.overlaps(Ipv4Addr::new(10, 0, 0, 0), 8));
        assert!(!pool.overlaps(Ipv4Addr::new(10, 97, 0, 0), 16));
        assert!(!pool.overlaps(Ipv4Addr::new(192, 168, 1, 0), 24));
    }
}
